//! Where a path of a VE led, read from the host after the VE: its file system is the overlay
//! of its dirties over its layers with its storage directories bound on top, and a path may
//! pass through symbolic links in any of them — or through links the VE made and removed. The
//! storage report ([`crate::manifest`]'s callers) uses it to place the files that calls by
//! name (chmod, truncate, …) changed. Everything is read through `safefs`: no host-side link
//! is followed.

use crate::safefs;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A VE's file system as the host sees it after the VE.
#[derive(Debug)]
pub struct View<'a> {
    /// The writable branch (the dirties), then the read-only ones, top first.
    pub layers: Vec<&'a Path>,
    /// (path inside the VE, host directory) of each storage directory bound on top.
    pub storage: Vec<(&'a str, &'a Path)>,
    /// Symbolic links the VE made (link path → target as given), which may be gone by now.
    pub links: HashMap<&'a str, &'a str>,
    /// Where directories led: many changed paths share theirs.
    dirs: std::cell::RefCell<DirCache>,
}

/// (directory, with the VE's links) → its resolved components (None: a loop).
type DirCache = HashMap<(String, bool), Option<Vec<String>>>;

/// Links followed at most on one path (the kernel's limit).
const MAX_LINKS: usize = 40;

/// What one path of the VE is, in the branch that decides it.
enum Entry {
    Link(String),
    Missing,
    /// An overlay whiteout: missing, and the branches below are not looked at.
    Whiteout,
    /// Anything else; `opaque`: a directory of layer N that hides the layers below it.
    Other {
        opaque_at: Option<usize>,
    },
}

impl<'a> View<'a> {
    pub fn new(
        layers: Vec<&'a Path>,
        storage: Vec<(&'a str, &'a Path)>,
        links: HashMap<&'a str, &'a str>,
    ) -> View<'a> {
        View {
            layers,
            storage,
            links,
            dirs: Default::default(),
        }
    }

    /// The storage files `path` (absolute, inside the VE) led to: (storage directory's index,
    /// path relative to it), following symbolic links on the way, and a final one unless
    /// `nofollow`. Both readings where the VE made a link at a name the branches show
    /// otherwise now (it may have been either when the call came).
    pub fn storage_of(&self, path: &str, nofollow: bool) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for with_links in [true, false] {
            if !with_links && self.links.is_empty() {
                break;
            }
            if let Some(r) = self.resolve(path, nofollow, with_links) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out
    }

    fn resolve(&self, path: &str, nofollow: bool, with_links: bool) -> Option<(usize, String)> {
        // The directory once (cached), then the last component.
        let (dir, name) = match path.trim_end_matches('/').rsplit_once('/') {
            Some((d, n)) if !n.is_empty() => (d, n),
            _ => return None,
        };
        let key = (dir.to_string(), with_links);
        let cached = self.dirs.borrow().get(&key).cloned();
        let start = match cached {
            Some(r) => r?,
            None => {
                let r = self.walk(Vec::new(), dir, false, with_links);
                self.dirs.borrow_mut().insert(key, r.clone());
                r?
            }
        };
        let cur = self.walk(start, name, nofollow, with_links)?;
        let joined = format!("/{}", cur.join("/"));
        let (i, rel) = self.storage_dir(&joined)?;
        (!rel.is_empty()).then(|| (i, rel.to_string()))
    }

    /// Where `path` (relative to `cur`, or absolute) leads from `cur` (resolved components),
    /// following links (a final one unless `nofollow`); None past [`MAX_LINKS`].
    fn walk(
        &self,
        mut cur: Vec<String>,
        path: &str,
        nofollow: bool,
        with_links: bool,
    ) -> Option<Vec<String>> {
        if path.starts_with('/') {
            cur.clear();
        }
        let mut todo: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut followed = 0;
        // The lowest layer still seen below an opaque directory on the way.
        let mut bottom = self.layers.len();
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => cur.push(c),
            }
            let last = todo.is_empty();
            match self.entry(&cur, with_links, bottom) {
                Entry::Link(target) if !(last && nofollow) => {
                    followed += 1;
                    if followed > MAX_LINKS {
                        return None;
                    }
                    cur.pop();
                    if target.starts_with('/') {
                        cur.clear();
                        bottom = self.layers.len();
                    }
                    todo.extend(components(&target).rev().map(str::to_string));
                }
                Entry::Other { opaque_at: Some(k) } => bottom = bottom.min(k + 1),
                _ => {}
            }
        }
        Some(cur)
    }

    /// The storage directory `path` is in (the longest match), and the rest of it.
    fn storage_dir<'p>(&self, path: &'p str) -> Option<(usize, &'p str)> {
        self.storage
            .iter()
            .enumerate()
            .filter_map(|(i, (inner, _))| {
                let inner = inner.trim_end_matches('/');
                let rest = path.strip_prefix(inner)?;
                match rest.strip_prefix('/') {
                    Some(r) => Some((i, inner.len(), r)),
                    None if rest.is_empty() => Some((i, inner.len(), "")),
                    None => None,
                }
            })
            .max_by_key(|(_, len, _)| *len)
            .map(|(i, _, r)| (i, r))
    }

    fn entry(&self, cur: &[String], with_links: bool, bottom: usize) -> Entry {
        let path = format!("/{}", cur.join("/"));
        if with_links {
            if let Some(t) = self.links.get(path.as_str()) {
                return Entry::Link(t.to_string());
            }
        }
        if let Some((i, rel)) = self.storage_dir(&path) {
            return lookup(self.storage[i].1, Path::new(rel));
        }
        let rel = PathBuf::from(cur.join("/"));
        for (k, layer) in self.layers.iter().enumerate().take(bottom) {
            match lookup(layer, &rel) {
                Entry::Missing => continue,
                Entry::Whiteout => return Entry::Missing,
                Entry::Other { opaque_at: Some(_) } => return Entry::Other { opaque_at: Some(k) },
                e => return e,
            }
        }
        Entry::Missing
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// `rel` in one branch: a link (its target), a whiteout (missing: it hides the branches
/// below), an opaque directory, or anything else.
fn lookup(branch: &Path, rel: &Path) -> Entry {
    if rel.as_os_str().is_empty() {
        return Entry::Other { opaque_at: None };
    }
    let Some(st) = safefs::lstat(branch, rel) else {
        return Entry::Missing;
    };
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::Symlink => {
            let (parent, name) = (rel.parent().unwrap_or(Path::new("")), rel.file_name());
            match (safefs::open_dir(branch, parent), name) {
                (Ok(dir), Some(name)) => safefs::read_link(&dir, name)
                    .map(Entry::Link)
                    .unwrap_or(Entry::Missing),
                _ => Entry::Missing,
            }
        }
        // An overlay whiteout: a character device 0:0.
        rustix::fs::FileType::CharacterDevice if st.st_rdev == 0 => Entry::Whiteout,
        rustix::fs::FileType::Directory => {
            let opaque = safefs::open_dir(branch, rel).is_ok_and(|d| {
                let mut v = [0u8; 4];
                rustix::fs::fgetxattr(&d, "trusted.overlay.opaque", &mut v)
                    .is_ok_and(|n| v[..n] == *b"y")
            });
            Entry::Other {
                opaque_at: opaque.then_some(0),
            }
        }
        _ => Entry::Other { opaque_at: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Links in a layer, in the dirties, in storage, made by the VE and gone, chains and
    /// loops, a final link left alone, whiteouts: each path lands where the kernel would
    /// have taken it.
    #[test]
    fn paths_lead_through_every_kind_of_link() {
        let d = tempfile::tempdir().unwrap();
        let (upper, lower, data) = (d.path().join("u"), d.path().join("l"), d.path().join("s"));
        for dir in [&upper, &lower, &data] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::create_dir_all(lower.join("opt/app")).unwrap();
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::create_dir_all(upper.join("tmp")).unwrap();
        // The app's layer links into storage; the dirties link to that link (a chain).
        symlink("/data/sub", lower.join("opt/app/state")).unwrap();
        symlink("../opt/app/state", upper.join("tmp/chain")).unwrap();
        // Inside storage, a relative link and an absolute one.
        symlink("sub", data.join("rel")).unwrap();
        symlink("/data/sub/f", data.join("abs")).unwrap();
        // A loop.
        symlink("loop", upper.join("tmp/loop")).unwrap();
        // The layer's /opt/gone is whited out in the dirties.
        symlink("/data", lower.join("opt/gone")).unwrap();
        // (A whiteout needs CAP_MKNOD: checked where the test runs as root.)
        std::fs::create_dir_all(upper.join("opt")).unwrap();
        let whiteout = rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("opt/gone").as_path(),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .is_ok();
        let mut view = View::new(vec![&upper, &lower], vec![("/data", &data)], HashMap::new());
        let s = |v: &View, p: &str, nofollow: bool| v.storage_of(p, nofollow);
        let at = |rel: &str| vec![(0, rel.to_string())];
        assert_eq!(s(&view, "/data/x", false), at("x"));
        assert_eq!(s(&view, "/data/./sub/../x", false), at("x"));
        assert_eq!(s(&view, "/opt/app/state/f", false), at("sub/f"));
        assert_eq!(s(&view, "/tmp/chain/f", false), at("sub/f"));
        assert_eq!(s(&view, "/data/rel/f", false), at("sub/f"));
        assert_eq!(s(&view, "/data/abs", false), at("sub/f"));
        // lchown of the link itself: the link, in storage.
        assert_eq!(s(&view, "/data/abs", true), at("abs"));
        // The link is the final component and left alone: outside storage.
        assert!(s(&view, "/opt/app/state", true).is_empty());
        assert!(s(&view, "/tmp/loop/f", false).is_empty());
        if whiteout {
            assert!(s(&view, "/opt/gone/f", false).is_empty(), "whited out");
        } else {
            assert_eq!(s(&view, "/opt/gone/f", false), at("f"), "the layer's link");
        }
        assert!(s(&view, "/etc/passwd", false).is_empty());
        assert!(
            s(&view, "/data", false).is_empty(),
            "the storage root itself"
        );
        // A link the VE made and removed: both readings.
        assert!(s(&view, "/tmp/d/f", false).is_empty());
        view = View::new(
            vec![&upper, &lower],
            vec![("/data", &data)],
            HashMap::from([("/tmp/d", "/data/sub")]),
        );
        assert_eq!(s(&view, "/tmp/d/f", false), at("sub/f"));
    }
}
