//! Where segments live. The journal only talks to [`Storage`], so crashes can be simulated:
//! [`MemStorage`] keeps what was written apart from what was synced, and a simulated crash
//! keeps only the synced bytes plus, optionally, a torn prefix of the rest.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

pub trait Storage: Send {
    /// Names of all files, sorted.
    fn list(&self) -> io::Result<Vec<String>>;
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Appends, creating the file if needed.
    fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Makes everything appended to `name` durable (fdatasync), and a new file's name.
    fn sync(&mut self, name: &str) -> io::Result<()>;
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()>;
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// The file's length.
    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(self.read(name)?.len() as u64)
    }
    /// Replaces `name` with `data` durably: written to `NAME.tmp`, synced, renamed into place
    /// (the directory synced): a crash leaves the old file or the new one, never a mix.
    fn replace(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = format!("{name}.tmp");
        let _ = self.remove(&tmp);
        self.append(&tmp, data)?;
        self.sync(&tmp)?;
        self.rename(&tmp, name)
    }
    /// `len` bytes from `offset` (fewer at the end of the file).
    fn read_range(&self, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let b = self.read(name)?;
        let start = (offset as usize).min(b.len());
        let end = start.saturating_add(len as usize).min(b.len());
        Ok(b[start..end].to_vec())
    }
}

/// Segments as files in a directory.
#[derive(Debug)]
pub struct DirStorage {
    dir: PathBuf,
    open: Option<(String, std::fs::File)>,
}

impl DirStorage {
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<DirStorage> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(DirStorage { dir, open: None })
    }

    fn file(&mut self, name: &str) -> io::Result<&mut std::fs::File> {
        if self.open.as_ref().map(|(n, _)| n.as_str()) != Some(name) {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))?;
            self.open = Some((name.to_string(), f));
        }
        Ok(&mut self.open.as_mut().expect("just opened").1)
    }

    fn sync_dir(&self) -> io::Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

impl Storage for DirStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
            .collect();
        v.sort();
        Ok(v)
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(name))
    }
    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(std::fs::metadata(self.dir.join(name))?.len())
    }
    fn read_range(&self, name: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(self.dir.join(name))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut v = Vec::with_capacity(len.min(1 << 26) as usize);
        f.take(len).read_to_end(&mut v)?;
        Ok(v)
    }
    fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let new = !self.dir.join(name).exists();
        self.file(name)?.write_all(data)?;
        if new {
            self.sync_dir()?;
        }
        Ok(())
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.file(name)?.sync_data()
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.open = None;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join(name))?;
        f.set_len(len)?;
        f.sync_all()
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.open = None;
        std::fs::rename(self.dir.join(from), self.dir.join(to))?;
        self.sync_dir()
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.open = None;
        std::fs::remove_file(self.dir.join(name))?;
        self.sync_dir()
    }
}

/// In-memory storage for crash tests: `written` may be ahead of `synced`.
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    pub written: BTreeMap<String, Vec<u8>>,
    pub synced: BTreeMap<String, Vec<u8>>,
    /// Fail every write after this many more bytes (a full disk); None = never.
    pub space_left: Option<usize>,
    /// The same, shared with a test that frees space while a writer thread owns the storage.
    pub shared_space: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
}

impl MemStorage {
    /// The storage after a crash: synced bytes survive, plus the first `torn` unsynced bytes
    /// of each file (a torn write).
    pub fn crash(&self, torn: usize) -> MemStorage {
        let mut out = MemStorage::default();
        for (name, w) in &self.written {
            let s = self.synced.get(name).cloned().unwrap_or_default();
            let keep = (s.len() + torn).min(w.len());
            let mut v = s.clone();
            if keep > s.len() {
                v.extend_from_slice(&w[s.len()..keep]);
            }
            out.written.insert(name.clone(), v.clone());
            out.synced.insert(name.clone(), v);
        }
        out
    }
}

impl Storage for MemStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.written.keys().cloned().collect())
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.written
            .get(name)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        if let Some(left) = self.space_left.as_mut() {
            if data.len() > *left {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            *left -= data.len();
        }
        if let Some(left) = &self.shared_space {
            use std::sync::atomic::Ordering;
            let have = left.load(Ordering::SeqCst);
            if data.len() > have {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            left.fetch_sub(data.len(), Ordering::SeqCst);
        }
        self.written
            .entry(name.to_string())
            .or_default()
            .extend_from_slice(data);
        Ok(())
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        let w = self.written.get(name).cloned().unwrap_or_default();
        self.synced.insert(name.to_string(), w);
        Ok(())
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        for m in [&mut self.written, &mut self.synced] {
            if let Some(v) = m.get_mut(name) {
                v.truncate(len as usize);
            }
        }
        Ok(())
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        for m in [&mut self.written, &mut self.synced] {
            if let Some(v) = m.remove(from) {
                m.insert(to.to_string(), v);
            }
        }
        Ok(())
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.written.remove(name);
        self.synced.remove(name);
        Ok(())
    }
}
