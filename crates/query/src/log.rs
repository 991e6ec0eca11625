//! `jcs log`: the journal's transactions and summaries, oldest first, filtered by VE,
//! variable and time. Sealed segments with an index are read only where the filter's keys
//! are; [`Log::read_new`] goes on from where it stopped (`--follow`).

use crate::{decode, journal_err, open, Result};
use analysis::summary::Summary;
use model::at::{At, Name, VarDef, VarId};
use record::{key, Record, Tier, VarQuery};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use store::Store;

/// Which transactions to list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub ves: Option<HashSet<u64>>,
    pub var: Option<VarQuery>,
    /// Only these operations (transactions; summaries have none and are left out).
    pub ops: Option<Vec<model::at::Op>>,
    /// Only this process's transactions (summaries are left out).
    pub pid: Option<u32>,
    /// Only transactions of this status (summaries are left out).
    pub status: Option<model::at::Status>,
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    /// Only transactions of processes running this program: the executed file's name (its
    /// last component, or the whole path) or the argv[0] it got (summaries are left out).
    pub exe: Option<String>,
}

/// One thing the log lists, with its variables' names.
#[derive(Debug)]
pub enum Entry<'a> {
    At {
        at: &'a At,
        /// The variables' names: a file by the name it had in the transaction's VE at its
        /// time (else the path it was first seen by).
        src: &'a str,
        dst: &'a str,
        /// A file's identity (`file:[DEV:INO:GEN]`, what `--var` takes), when it has one.
        src_id: Option<&'a str>,
        dst_id: Option<&'a str>,
        /// An exec's command line, ids and parent.
        exec: Option<&'a model::at::ExecInfo>,
        /// An aborted transaction's rule: `no-smtp (deny tcp connect,send ports 25)`, from the
        /// VE's policy record.
        rule: Option<&'a str>,
    },
    Summary {
        tier: Tier,
        st: &'a Summary,
        src: &'a str,
        dst: &'a str,
        /// The VE whose memory is one of its ends.
        ve: Option<u64>,
    },
    /// A repair of the journal when a recorder opened it (listed without filters, or within
    /// `--since`/`--until`).
    Repair(&'a record::Repair),
    /// A file put back by `jcs abort` or `jcs recover` (listed without filters, or with the VE
    /// whose change it undid).
    Restore(&'a record::Restore),
}

/// A reader of the log that remembers where it is.
#[derive(Debug)]
pub struct Log<'s> {
    dir: PathBuf,
    storage: journal::DirStorage,
    filter: Filter,
    /// The index keys to read sealed segments by, when the filter has any.
    keys: Option<Vec<u64>>,
    /// The variables the filter names (from the catalog, and from definitions as they are read).
    matching: HashSet<VarId>,
    names: Names<'s>,
    /// (VE, rule number) → the rule, from the VEs' policy records.
    rules: HashMap<(u64, u32), String>,
    /// (VE, pid, time) → what an exec ran, until its transaction is listed.
    execs: HashMap<(u64, u32, u64), model::at::ExecInfo>,
    /// With `--exe`: (VE, pid) → the names its program goes by (file name, path, argv[0]),
    /// from its last exec or, until it execs, its parent's.
    programs: HashMap<(u64, u32), Vec<String>>,
    /// Where reading goes on: (segment, offset in it).
    at: (u64, u64),
    /// Damaged stretches skipped since the last [`Log::take_skipped`].
    skipped: Vec<journal::Skipped>,
}

impl<'s> Log<'s> {
    pub fn open(store: &'s Store, filter: Filter) -> Result<Log<'s>> {
        let dir = store.journal_dir();
        let storage = open(&dir)?;
        let matching: HashSet<VarId> = match &filter.var {
            // A name: every file that had it, in the VEs asked about (the catalog's names).
            Some(q) if q.by_name() => {
                let names = match (q, q.prefix()) {
                    (record::VarQuery::File(_), Some(pre)) => {
                        store.catalog.names_with_prefix(Some(pre), None)?
                    }
                    (record::VarQuery::Store(_), Some(pre)) => {
                        store.catalog.names_with_prefix(None, Some(pre))?
                    }
                    (record::VarQuery::File(p), None) => store.catalog.names(Some(p), None)?,
                    (record::VarQuery::Unix(p), None) => store.catalog.names(Some(p), None)?,
                    (record::VarQuery::Store(n), None) => store.catalog.names(None, Some(n))?,
                    _ => Vec::new(),
                };
                let scope = crate::resolve::Scope {
                    ves: filter.ves.clone(),
                    at_ns: None,
                };
                let mut ids: HashSet<VarId> = crate::resolve::bindings(q, &names, &scope)
                    .into_iter()
                    .map(|b| b.var)
                    .collect();
                if let Some(k) = q.key() {
                    ids.extend(store.catalog.var_ids(&k)?);
                }
                ids
            }
            Some(q) => match q.key() {
                Some(k) => store.catalog.var_ids(&k)?.into_iter().collect(),
                None => HashSet::new(),
            },
            None => HashSet::new(),
        };
        let keys = match (&filter.var, &filter.ves) {
            // A file by identity without its generation: found as definitions are read.
            (Some(q), _) if !q.by_name() && q.key().is_none() => None,
            (Some(_), _) => Some(matching.iter().map(|&v| key::var(v)).collect()),
            // A VE's records, and the summaries from or into its memory (integrity records).
            (None, Some(ves)) => {
                let mut k: Vec<u64> = ves.iter().map(|&v| key::ve(v)).collect();
                for &ve in ves {
                    let mem = record::VarKey::of(&VarDef::Memory { ve });
                    k.extend(store.catalog.var_ids(&mem)?.into_iter().map(key::var));
                }
                Some(k)
            }
            (None, None) => None,
        };
        Ok(Log {
            dir,
            storage,
            filter,
            keys,
            matching,
            names: Names {
                catalog: &store.catalog,
                known: HashMap::new(),
            },
            rules: HashMap::new(),
            execs: HashMap::new(),
            programs: HashMap::new(),
            at: (0, 0),
            skipped: Vec::new(),
        })
    }

    /// Hands every entry recorded since the last call (all of them, the first time) to
    /// `sink`, in order; stops at the first error of the sink.
    pub fn read_new<E: From<crate::QueryError>>(
        &mut self,
        sink: &mut dyn FnMut(Entry) -> Result<(), E>,
    ) -> Result<(), E> {
        let segs = journal::segment_numbers(&self.storage).map_err(journal_err(&self.dir))?;
        let from = self.at.0;
        for (i, &seg) in segs.iter().enumerate().filter(|(_, &s)| s >= from) {
            let sealed = i + 1 < segs.len();
            let offset = if seg == self.at.0 { self.at.1 } else { 0 };
            let indexed = match (&self.keys, sealed && offset == 0) {
                (Some(k), true) => journal::index::load(&self.storage, seg).map(|idx| {
                    let blocks: Vec<_> = idx
                        .blocks_for(k)
                        .into_iter()
                        .map(|b| idx.blocks[b])
                        .collect();
                    journal::index::read_blocks(&self.storage, seg, &blocks)
                }),
                _ => None,
            };
            let records = match indexed {
                Some(Ok(r)) => {
                    self.at = (seg + 1, 0);
                    Ok(r)
                }
                // A damaged indexed block: the whole segment, tolerantly.
                Some(Err(_)) => {
                    journal::read_segment_tolerant(&self.storage, seg, 0).map(|(r, _, s)| {
                        self.at = (seg + 1, 0);
                        self.skipped.extend(s);
                        r
                    })
                }
                None => {
                    journal::read_segment_tolerant(&self.storage, seg, offset).map(|(r, end, s)| {
                        self.at = if sealed { (seg + 1, 0) } else { (seg, end) };
                        self.skipped.extend(s);
                        r
                    })
                }
            }
            .map_err(journal_err(&self.dir))?;
            for (seq, r) in records {
                if let Some(rec) = decode(seq, &r)? {
                    self.entries(rec, sink)?;
                }
            }
        }
        Ok(())
    }

    /// The damaged stretches skipped since the last call (each reported once).
    pub fn take_skipped(&mut self) -> Vec<journal::Skipped> {
        std::mem::take(&mut self.skipped)
    }

    fn entries<E>(
        &mut self,
        rec: Record,
        sink: &mut dyn FnMut(Entry) -> Result<(), E>,
    ) -> Result<(), E> {
        let (f, matching, names, rules, execs, programs) = (
            &self.filter,
            &mut self.matching,
            &mut self.names,
            &mut self.rules,
            &mut self.execs,
            &mut self.programs,
        );
        let wanted = |src: VarId, dst: VarId| {
            f.var.is_none() || matching.contains(&src) || matching.contains(&dst)
        };
        match rec {
            Record::Vars(defs) => {
                for (id, d) in defs {
                    if f.var.as_ref().is_some_and(|q| q.matches(&d)) {
                        matching.insert(id);
                    }
                    names.define(id, d);
                }
            }
            Record::Ats(ats) => {
                for a in ats.iter() {
                    if f.exe.is_some() {
                        follow_programs(programs, names, execs, a);
                    }
                    let runs = |x: &String| {
                        programs
                            .get(&(a.ve, a.pid))
                            .is_some_and(|p| p.iter().any(|n| n == x))
                    };
                    if !(f.ves.as_ref().is_none_or(|v| v.contains(&a.ve))
                        && f.ops.as_ref().is_none_or(|o| o.contains(&a.op))
                        && f.pid.is_none_or(|p| p == a.pid)
                        && f.status.is_none_or(|s| s == a.status)
                        && f.since_ns.is_none_or(|t| a.time_ns >= t)
                        && f.until_ns.is_none_or(|t| a.time_ns <= t)
                        && f.exe.as_ref().is_none_or(runs)
                        && wanted(a.src, a.dst))
                    {
                        continue;
                    }
                    names.learn(a.src);
                    names.learn(a.dst);
                    let rule = (a.status == model::at::Status::Aborted)
                        .then(|| rules.get(&(a.ve, a.off as u32)).map(String::as_str))
                        .flatten();
                    let exec = (a.op == model::at::Op::Exec)
                        .then(|| execs.remove(&(a.ve, a.pid, a.time_ns)))
                        .flatten();
                    sink(Entry::At {
                        at: a,
                        src: names.name_at(a.src, a.ve, a.time_ns, a.op),
                        dst: names.name_at(a.dst, a.ve, a.time_ns, a.op),
                        src_id: names.id(a.src),
                        dst_id: names.id(a.dst),
                        exec: exec.as_ref(),
                        rule,
                    })?;
                }
            }
            Record::Summaries { tier, sts } => {
                for s in sts.iter().filter(|s| {
                    f.ops.is_none()
                        && f.exe.is_none()
                        && f.pid.is_none()
                        && f.status.is_none()
                        && f.since_ns.is_none_or(|t| s.last >= t)
                        && f.until_ns.is_none_or(|t| s.first <= t)
                        && wanted(s.src, s.dst)
                }) {
                    names.learn(s.src);
                    names.learn(s.dst);
                    if let Some(ves) = &f.ves {
                        let of_ve = |v: VarId| matches!(names.def(v), Some(VarDef::Memory { ve }) if ves.contains(ve));
                        if !of_ve(s.src) && !of_ve(s.dst) {
                            continue;
                        }
                    }
                    let ve = [s.src, s.dst].into_iter().find_map(|v| match names.def(v) {
                        Some(VarDef::Memory { ve }) => Some(*ve),
                        _ => None,
                    });
                    sink(Entry::Summary {
                        tier,
                        st: s,
                        src: names.name(s.src),
                        dst: names.name(s.dst),
                        ve,
                    })?;
                }
            }
            Record::Repairs(rs) => {
                let unfiltered = f.var.is_none()
                    && f.ves.is_none()
                    && f.ops.is_none()
                    && f.pid.is_none()
                    && f.status.is_none();
                for r in rs.iter().filter(|r| {
                    unfiltered
                        && f.since_ns.is_none_or(|t| r.time_ns >= t)
                        && f.until_ns.is_none_or(|t| r.time_ns <= t)
                }) {
                    sink(Entry::Repair(r))?;
                }
            }
            Record::Restores(rs) => {
                for r in rs.iter().filter(|r| {
                    f.var.is_none()
                        && f.ops.is_none()
                        && f.pid.is_none()
                        && f.status.is_none()
                        && f.ves.as_ref().is_none_or(|v| v.contains(&r.ve))
                        && f.since_ns.is_none_or(|t| r.time_ns >= t)
                        && f.until_ns.is_none_or(|t| r.time_ns <= t)
                }) {
                    sink(Entry::Restore(r))?;
                }
            }
            Record::Policy(p) => {
                for r in p.rules {
                    rules.insert((p.ve, r.id), format!("{} ({})", r.name, r.text));
                }
            }
            // Names given after a variable was first printed (`--follow`).
            Record::Names(ns) => {
                for n in ns {
                    names.rename(&n);
                }
            }
            Record::Stats(_) | Record::Ve(_) => {}
            Record::Execs(xs) => {
                // (Bounded: an exec filtered out never claims its entry.)
                if execs.len() > 65536 {
                    execs.clear();
                }
                for x in xs {
                    execs.insert((x.ve, x.pid, x.time_ns), x);
                }
            }
        }
        Ok(())
    }
}

/// Keeps `programs` current with transaction `a`: a fork gives the child its parent's
/// program, an exec the names of the one it ran (its argv[0] from its `E` record, else the
/// file's path; each also by its last component).
fn follow_programs(
    programs: &mut HashMap<(u64, u32), Vec<String>>,
    names: &mut Names<'_>,
    execs: &HashMap<(u64, u32, u64), model::at::ExecInfo>,
    a: &At,
) {
    match a.op {
        model::at::Op::Fork if a.result > 0 => {
            if let Some(p) = programs.get(&(a.ve, a.pid)).cloned() {
                programs.insert((a.ve, a.result as u32), p);
            }
        }
        model::at::Op::Exec if a.status == model::at::Status::Committed => {
            // The program's argv[0] (busybox's applets are one file, named by whichever
            // applet ran first); without it, the file's name.
            let name = match execs
                .get(&(a.ve, a.pid, a.time_ns))
                .and_then(|x| x.argv.first())
            {
                Some(a0) => a0.clone(),
                None => {
                    names.learn(a.src);
                    let n = names.name(a.src);
                    n.strip_prefix("file:").unwrap_or(n).to_string()
                }
            };
            let mut p = vec![name.clone()];
            if let Some(last) = name.rsplit('/').next().filter(|l| *l != name) {
                p.push(last.to_string());
            }
            programs.insert((a.ve, a.pid), p);
        }
        // (Its own transactions come before its exit.)
        model::at::Op::Exit => {
            programs.remove(&(a.ve, a.pid));
        }
        _ => {}
    }
}

/// Variables seen so far: their definition (None: unknown), printed name, and for a file by
/// identity its identity and the names it had (the catalog's name records, as
/// `file:PATH`); from the journal's definitions as they are read, else the catalog.
#[derive(Debug)]
struct Names<'s> {
    catalog: &'s store::Catalog,
    known: HashMap<VarId, Known>,
}

#[derive(Debug)]
struct Known {
    def: Option<VarDef>,
    name: String,
    id: Option<String>,
    /// (VE, since, until (None: still bound), `file:PATH`), in the order they were given.
    bindings: Vec<(u64, u64, Option<u64>, String)>,
}

impl Known {
    fn new(catalog: &store::Catalog, id: VarId, def: Option<VarDef>) -> Known {
        let name = def
            .as_ref()
            .map_or_else(|| format!("var:{id}"), |d| d.to_string());
        let (file_id, names) = match &def {
            Some(VarDef::Inode { dev, ino, gen, .. }) => (
                Some(format!("file:[{dev}:{ino}:{gen}]")),
                catalog.names_of(id).unwrap_or_default(),
            ),
            _ => (None, Vec::new()),
        };
        let mut k = Known {
            def,
            name,
            id: file_id,
            bindings: Vec::new(),
        };
        for n in names {
            k.apply(&n);
        }
        k
    }

    /// The name the file had in VE `ve` when transaction `op` at `t` touched it; its
    /// printed name when it had none there. Names change when a call ends, transactions are
    /// stamped when it begins: a rename or link is named by the name it gave (the first one
    /// given from `t` on); any other call by the name bound at `t`, else — an open that
    /// created the name — the first one given from `t` on, else the last one it lost before
    /// (an unlinked file). An unlink is named by the name it took away.
    fn name_at(&self, ve: u64, t: u64, op: model::at::Op) -> &str {
        let k = self;
        let in_ve = || k.bindings.iter().filter(move |b| b.0 == ve);
        let given = || in_ve().filter(|b| b.1 >= t).min_by_key(|b| b.1);
        let bound = || {
            in_ve()
                .filter(|b| b.1 <= t && b.2.is_none_or(|u| u > t))
                .max_by_key(|b| b.1)
        };
        let lost = || in_ve().filter(|b| b.1 <= t).max_by_key(|b| b.1);
        // The name an unlink takes away: the first one lost from `t` on.
        let taken = || {
            in_ve()
                .filter(|b| b.1 <= t && b.2.is_some_and(|u| u >= t))
                .min_by_key(|b| b.2)
        };
        let b = match op {
            model::at::Op::Rename | model::at::Op::Link => given().or_else(bound),
            model::at::Op::Unlink | model::at::Op::Rmdir => taken().or_else(bound),
            _ => bound().or_else(given),
        };
        b.or_else(lost).map_or(k.name.as_str(), |b| b.3.as_str())
    }

    /// A name record: a binding begins or ends (one already known is kept as it is).
    fn apply(&mut self, n: &Name) {
        let path = format!("file:{}", n.path);
        if n.bound {
            if !self
                .bindings
                .iter()
                .any(|b| b.0 == n.ve && b.1 == n.time_ns && b.3 == path)
            {
                self.bindings.push((n.ve, n.time_ns, None, path));
            }
        } else if let Some(open) = self
            .bindings
            .iter_mut()
            .rev()
            .find(|b| b.0 == n.ve && b.3 == path && b.1 <= n.time_ns && b.2.is_none())
        {
            open.2 = Some(n.time_ns);
        } else if !self
            .bindings
            .iter()
            .any(|b| b.0 == n.ve && b.3 == path && b.2 == Some(n.time_ns))
        {
            // A name the VE never gave but took away (another VE gave it, in storage both
            // see): it had it until then.
            self.bindings.push((n.ve, 0, Some(n.time_ns), path));
        }
    }
}

impl Names<'_> {
    fn define(&mut self, id: VarId, d: VarDef) {
        let k = Known::new(self.catalog, id, Some(d));
        self.known.insert(id, k);
    }

    /// Knows variable `id`'s name: from the definitions read so far, else the catalog.
    fn learn(&mut self, id: VarId) {
        if id == 0 || self.known.contains_key(&id) {
            return;
        }
        let def = self.catalog.var(id).ok().flatten();
        let k = Known::new(self.catalog, id, def);
        self.known.insert(id, k);
    }

    /// The name of variable `id` for transaction `op` of VE `ve` at `t` (see
    /// [`Known::name_at`]).
    fn name_at(&self, id: VarId, ve: u64, t: u64, op: model::at::Op) -> &str {
        self.known.get(&id).map_or("-", |k| k.name_at(ve, t, op))
    }

    /// A file's identity, as `--var` takes it.
    fn id(&self, id: VarId) -> Option<&str> {
        self.known.get(&id).and_then(|k| k.id.as_deref())
    }

    fn def(&self, id: VarId) -> Option<&VarDef> {
        self.known.get(&id).and_then(|n| n.def.as_ref())
    }

    fn name(&self, id: VarId) -> &str {
        self.known.get(&id).map_or("-", |n| n.name.as_str())
    }

    fn rename(&mut self, n: &Name) {
        if let Some(k) = self.known.get_mut(&n.var) {
            k.apply(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::at::Op;

    fn name(t: u64, ve: u64, path: &str, bound: bool) -> Name {
        Name {
            time_ns: t,
            ve,
            var: 7,
            path: path.into(),
            store: None,
            bound,
        }
    }

    #[test]
    fn a_file_is_named_as_it_was_when_touched() {
        let mut k = Known {
            def: None,
            name: "file:/d/a.lock".into(),
            id: Some("file:[1:2:3]".into()),
            bindings: vec![],
        };
        // VE 1: open a.lock (entry 10, name given at 12), write at 20, rename to a (entry 30,
        // names at 32), read at 40; VE 2 (which never named it) unlinks a (entry 50, at 52).
        for n in [
            name(12, 1, "/d/a.lock", true),
            name(32, 1, "/d/a.lock", false),
            name(32, 1, "/d/a", true),
            name(52, 2, "/d/a", false),
            name(52, 2, "/d/a", false), // a repeated record changes nothing
        ] {
            k.apply(&n);
        }
        assert_eq!(k.name_at(1, 10, Op::Open), "file:/d/a.lock");
        assert_eq!(k.name_at(1, 20, Op::Write), "file:/d/a.lock");
        assert_eq!(k.name_at(1, 30, Op::Rename), "file:/d/a");
        assert_eq!(k.name_at(1, 40, Op::Read), "file:/d/a");
        assert_eq!(k.name_at(2, 50, Op::Unlink), "file:/d/a");
        // After its last name went: the one it lost; in a VE that never saw it: the label.
        assert_eq!(k.name_at(2, 60, Op::Read), "file:/d/a");
        assert_eq!(k.name_at(3, 40, Op::Read), "file:/d/a.lock");
        assert_eq!(k.bindings.len(), 3);
    }
}
