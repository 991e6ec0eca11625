//! Files VEs have mapped, and the flows a mapping carries while it lasts (docs/design.md,
//! "The classification audit").
//!
//! A mapping of a file is a channel for as long as it lasts, not only at its ends: what another
//! VE writes into the file reaches the mapper's memory at once (a private mapping sees it too,
//! in the pages it did not change), and what a VE that maps the file shared and writable holds
//! in memory can reach the file at any moment, by a store no system call makes. The translator
//! records each mapping's ends (the mmap, and for writable shared ones the munmap, exec or
//! exit); [`Mappings`] adds, at the instant of each transaction, the flows live mappings of
//! other VEs carry to or from it:
//! - after a flow into a mapped file: file → the memory of each other VE that maps it;
//! - before a flow out of a mapped file (a read, a new mapping, an exec): the memory of each
//!   other VE that maps it shared and writable → file;
//! - before a flow out of the memory of a VE that maps a file another VE maps shared and
//!   writable: that VE's memory → file → this memory (the two share pages, no call between).
//!
//! Flows at one instant chain in any order (the causality model's rule), so the added flows
//! carry data exactly when it could have moved. A mapping is forgotten at its munmap (the
//! kernel reports those of writable shared mappings), at its process's exec or exit; a
//! read-only one lives until then (more than it may: never less).

use model::at::{At, Op, Status, VarId};
use rustc_hash::FxHashMap as HashMap;

/// One mapping of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapper {
    pub pid: u32,
    pub ve: u64,
    /// The VE's memory variable.
    pub mem: VarId,
    /// The bytes of the file it maps.
    pub off: u64,
    pub len: u64,
    /// Shared and writable: the VE's stores reach the file.
    pub writable: bool,
    /// How many mappings of the process this stands for (one process's mappings of a file,
    /// read-only or writable, are one: their bytes together).
    pub count: u32,
}

/// The live mappings of files (not of the VEs' own files: those stay inside). Every operation
/// costs what the files it touches hold, never a pass over all mappings: a process that maps
/// thousands of files (a JVM's jars) costs nothing at its other calls.
#[derive(Debug, Default)]
pub struct Mappings {
    by_file: HashMap<VarId, Vec<Mapper>>,
    /// process → the files it maps (a file once per entry it has in `by_file`).
    by_pid: HashMap<u32, Vec<VarId>>,
    /// memory → the files it maps that another memory maps shared and writable (the pages
    /// they share: [`Mappings::around`]'s third case). Only such files are listed.
    shared: HashMap<VarId, Vec<VarId>>,
}

impl Mappings {
    pub fn is_empty(&self) -> bool {
        self.by_file.is_empty()
    }

    /// A mapping made. A process that maps a file again (a reader mapping it per request: the
    /// kernel reports no munmap of a read-only mapping) adds to the one it has: what is kept
    /// grows with the files mapped, not with the calls.
    pub fn add(&mut self, file: VarId, m: Mapper) {
        let maps = self.by_file.entry(file).or_default();
        if let Some(had) = maps
            .iter_mut()
            .find(|h| (h.pid, h.mem, h.writable) == (m.pid, m.mem, m.writable))
        {
            let end = (had.off.saturating_add(had.len)).max(m.off.saturating_add(m.len));
            had.off = had.off.min(m.off);
            had.len = end - had.off;
            had.count += 1;
            return;
        }
        maps.push(Mapper { count: 1, ..m });
        self.by_pid.entry(m.pid).or_default().push(file);
        self.reshare(file, &[]);
    }

    /// Removes the mappings of `file` that `gone` selects; `file` stays listed for their
    /// processes only as often as they still map it.
    fn remove(&mut self, file: VarId, gone: impl Fn(&Mapper) -> bool) {
        let Some(maps) = self.by_file.get_mut(&file) else {
            return;
        };
        let removed: Vec<Mapper> = maps.iter().filter(|m| gone(m)).copied().collect();
        maps.retain(|m| !gone(m));
        if maps.is_empty() {
            self.by_file.remove(&file);
        }
        for m in &removed {
            if let Some(files) = self.by_pid.get_mut(&m.pid) {
                if let Some(i) = files.iter().position(|&f| f == file) {
                    files.swap_remove(i);
                }
                if files.is_empty() {
                    self.by_pid.remove(&m.pid);
                }
            }
        }
        let mems: Vec<VarId> = removed.iter().map(|m| m.mem).collect();
        self.reshare(file, &mems);
    }

    /// Brings `shared` up to date for `file`, after a change to its mappers (`left`: memories
    /// that may no longer map it).
    fn reshare(&mut self, file: VarId, left: &[VarId]) {
        let maps = self.by_file.get(&file).map(Vec::as_slice).unwrap_or(&[]);
        let mut mems: Vec<VarId> = maps
            .iter()
            .map(|m| m.mem)
            .chain(left.iter().copied())
            .collect();
        mems.sort_unstable();
        mems.dedup();
        for mem in mems {
            let maps_it = maps.iter().any(|m| m.mem == mem);
            let other_writes = maps.iter().any(|m| m.writable && m.mem != mem);
            let list = self.shared.entry(mem).or_default();
            let at = list.iter().position(|&f| f == file);
            match (maps_it && other_writes, at) {
                (true, None) => list.push(file),
                (false, Some(i)) => {
                    list.swap_remove(i);
                }
                _ => {}
            }
            if list.is_empty() {
                self.shared.remove(&mem);
            }
        }
    }

    /// A writable shared mapping of `file` that process `pid` unmapped.
    pub fn unmap(&mut self, pid: u32, file: VarId) {
        let Some(m) = self
            .by_file
            .get_mut(&file)
            .and_then(|v| v.iter_mut().find(|m| m.pid == pid && m.writable))
        else {
            return;
        };
        m.count -= 1;
        if m.count == 0 {
            self.remove(file, |m| m.pid == pid && m.writable);
        }
    }

    /// Process `pid`'s mappings end (its exec, its exit).
    pub fn end(&mut self, pid: u32) {
        let Some(mut files) = self.by_pid.remove(&pid) else {
            return;
        };
        files.sort_unstable();
        files.dedup();
        for file in files {
            self.remove(file, |m| m.pid == pid);
        }
    }

    /// VE `ve` is no longer watched: none of its mappings lasts.
    pub fn forget_ve(&mut self, ve: u64) {
        let pids: Vec<u32> = self
            .by_file
            .values()
            .flatten()
            .filter(|m| m.ve == ve)
            .map(|m| m.pid)
            .collect();
        for pid in pids {
            self.end(pid);
        }
    }

    /// A mapping of `pid` at `off` grew to `len` bytes (mremap).
    pub fn grow(&mut self, pid: u32, file: VarId, off: u64, len: u64) {
        for m in self.by_file.get_mut(&file).into_iter().flatten() {
            if m.pid == pid {
                let end = (m.off.saturating_add(m.len)).max(off.saturating_add(len));
                m.len = end - m.off;
            }
        }
    }

    /// A forked child has its parent's mappings.
    pub fn fork(&mut self, parent: u32, child: u32) {
        let Some(files) = self.by_pid.get(&parent) else {
            return;
        };
        let mut inherited: Vec<(VarId, Mapper)> = Vec::new();
        for &f in files {
            for m in self.by_file[&f].iter().filter(|m| m.pid == parent) {
                if !inherited.contains(&(f, *m)) {
                    inherited.push((f, *m));
                }
            }
        }
        for (f, m) in inherited {
            self.add(f, Mapper { pid: child, ..m });
            // (The child's entry stands for as many mappings as the parent's.)
            if let Some(c) = self.by_file.get_mut(&f).and_then(|v| {
                v.iter_mut()
                    .find(|h| (h.pid, h.mem, h.writable) == (child, m.mem, m.writable))
            }) {
                c.count = m.count;
            }
        }
    }

    /// The flows live mappings add around `at`: those before it, and those after it.
    pub fn around(&self, at: &At) -> (Vec<At>, Vec<At>) {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        if at.status != Status::Committed
            || at.src == 0
            || at.dst == 0
            || !analysis::moves_data(at.op)
        {
            return (before, after);
        }
        let link = |m: &Mapper, src: VarId, dst: VarId| At {
            time_ns: at.time_ns,
            ve: m.ve,
            pid: m.pid,
            tid: m.pid,
            op: Op::Mmap,
            status: Status::Committed,
            src,
            dst,
            off: m.off,
            len: m.len,
            result: 0,
        };
        // (One link per memory, however many of its processes map the file.)
        let mut linked: Vec<(VarId, VarId, VarId)> = Vec::new();
        let mut push = |v: &mut Vec<At>, m: &Mapper, src: VarId, dst: VarId| {
            if !linked.contains(&(src, dst, m.mem)) {
                linked.push((src, dst, m.mem));
                v.push(link(m, src, dst));
            }
        };
        // Out of a mapped file: what writable mappers stored in it first.
        for m in self.by_file.get(&at.src).into_iter().flatten() {
            if m.writable && m.mem != at.dst {
                push(&mut before, m, m.mem, at.src);
            }
        }
        // Out of a memory whose VE shares a file's pages with a writable mapper's.
        for &file in self.shared.get(&at.src).into_iter().flatten() {
            let maps = &self.by_file[&file];
            let Some(own) = maps.iter().find(|m| m.mem == at.src) else {
                continue;
            };
            for m in maps.iter().filter(|m| m.writable && m.mem != at.src) {
                push(&mut before, m, m.mem, file);
                push(&mut before, own, file, at.src);
            }
        }
        // Into a mapped file: at once in every other mapper's memory.
        for m in self.by_file.get(&at.dst).into_iter().flatten() {
            if m.mem != at.src {
                push(&mut after, m, at.dst, m.mem);
            }
        }
        (before, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use analysis::{flows, Graph};

    const FILE: VarId = 10;
    const SECRET: VarId = 11;
    const OUT: VarId = 12;
    const MEM_A: VarId = 1;
    const MEM_B: VarId = 2;
    const MEM_C: VarId = 3;

    fn at(t: u64, op: Op, src: VarId, dst: VarId) -> At {
        At {
            time_ns: t,
            ve: 0,
            pid: 0,
            tid: 0,
            op,
            status: Status::Committed,
            src,
            dst,
            off: 0,
            len: 4,
            result: 4,
        }
    }

    fn mapper(mem: VarId, writable: bool) -> Mapper {
        Mapper {
            pid: mem,
            ve: u64::from(mem),
            mem,
            off: 0,
            len: 4096,
            writable,
            count: 1,
        }
    }

    /// The transactions with what `maps` adds around each, in order.
    fn with_links(maps: &Mappings, ats: &[At]) -> Vec<At> {
        let mut v = Vec::new();
        for a in ats {
            let (b, after) = maps.around(a);
            v.extend(b);
            v.push(*a);
            v.extend(after);
        }
        v
    }

    fn reaches_back(ats: &[At], var: VarId, at: u64, want: VarId) -> bool {
        let g = Graph::new(flows(ats, |v| v >= 10), Default::default());
        g.backward(var, None, at).reached.contains_key(&want)
    }

    /// The three ways a live mapping carries data, each lost by the mappings' ends alone and
    /// found with the links added.
    #[test]
    fn a_live_mapping_carries_data_at_the_instant_it_can() {
        // B maps FILE read-only at 1; A writes SECRET's bytes into FILE at 3 (write());
        // B writes OUT at 5.
        let mut maps = Mappings::default();
        maps.add(FILE, mapper(MEM_B, false));
        let ats = [
            at(1, Op::Mmap, FILE, MEM_B),
            at(2, Op::Read, SECRET, MEM_A),
            at(3, Op::Write, MEM_A, FILE),
            at(5, Op::Write, MEM_B, OUT),
        ];
        assert!(!reaches_back(&ats, OUT, 6, SECRET));
        assert!(reaches_back(&with_links(&maps, &ats), OUT, 6, SECRET));

        // A maps FILE shared and writable at 1, reads SECRET at 2 (stores it: no call);
        // C reads FILE with read() at 4, writes OUT at 5.
        let mut maps = Mappings::default();
        maps.add(FILE, mapper(MEM_A, true));
        let ats = [
            at(1, Op::Mmap, MEM_A, FILE),
            at(2, Op::Read, SECRET, MEM_A),
            at(4, Op::Read, FILE, MEM_C),
            at(5, Op::Write, MEM_C, OUT),
        ];
        assert!(!reaches_back(&ats, OUT, 6, SECRET));
        assert!(reaches_back(&with_links(&maps, &ats), OUT, 6, SECRET));

        // Both map FILE; A stores SECRET's bytes in it, B writes OUT: no call on FILE at all.
        let mut maps = Mappings::default();
        maps.add(FILE, mapper(MEM_B, false));
        maps.add(FILE, mapper(MEM_A, true));
        let ats = [
            at(1, Op::Mmap, FILE, MEM_B),
            at(1, Op::Mmap, MEM_A, FILE),
            at(2, Op::Read, SECRET, MEM_A),
            at(5, Op::Write, MEM_B, OUT),
        ];
        assert!(!reaches_back(&ats, OUT, 6, SECRET));
        let linked = with_links(&maps, &ats);
        assert!(reaches_back(&linked, OUT, 6, SECRET));
        // Nothing is added for a VE's own flows, and nothing reaches back before the links.
        assert!(!reaches_back(&linked, OUT, 6, OUT + 1));
        assert!(!reaches_back(&linked, MEM_B, 1, SECRET));
    }

    /// The indexes answer as a plain list of (file, mapping) does, over random mappings,
    /// munmaps, forks, exits and VE ends; and a memory that maps thousands of files nobody
    /// else writes gets nothing added (no pass over them).
    #[test]
    fn the_indexes_answer_as_a_plain_list_does() {
        let mut seed = 7u64;
        let mut rnd = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut maps = Mappings::default();
        let mut list: Vec<(VarId, Mapper)> = Vec::new();
        for step in 0..3000 {
            let pid = 1 + rnd(6) as u32;
            let mem = 1 + pid.div_ceil(2); // processes 1-2, 3-4, 5-6 share a VE
            let file = 10 + rnd(4) as VarId;
            match rnd(10) {
                0..=4 => {
                    let m = Mapper {
                        pid,
                        ve: u64::from(mem),
                        mem,
                        off: 0,
                        len: 4096,
                        writable: rnd(2) == 0,
                        count: 1,
                    };
                    maps.add(file, m);
                    match list
                        .iter_mut()
                        .find(|(f, h)| *f == file && (h.pid, h.writable) == (pid, m.writable))
                    {
                        Some((_, h)) => h.count += 1,
                        None => list.push((file, m)),
                    }
                }
                5 => {
                    maps.unmap(pid, file);
                    if let Some(i) = list
                        .iter()
                        .position(|(f, h)| *f == file && h.pid == pid && h.writable)
                    {
                        list[i].1.count -= 1;
                        if list[i].1.count == 0 {
                            list.remove(i);
                        }
                    }
                }
                6 => {
                    maps.end(pid);
                    list.retain(|(_, h)| h.pid != pid);
                }
                7 => {
                    let child = 100 + step;
                    maps.fork(pid, child);
                    let kids: Vec<_> = list
                        .iter()
                        .filter(|(_, h)| h.pid == pid)
                        .map(|(f, h)| (*f, Mapper { pid: child, ..*h }))
                        .collect();
                    list.extend(kids);
                }
                8 => {
                    maps.forget_ve(u64::from(mem));
                    list.retain(|(_, h)| h.mem != mem);
                }
                _ => {}
            }
            // The reference: the three cases over the plain list.
            let a = match rnd(3) {
                0 => at(step as u64, Op::Write, 1 + rnd(3) as VarId, file),
                1 => at(step as u64, Op::Read, file, 1 + rnd(3) as VarId),
                _ => at(step as u64, Op::Write, 1 + rnd(3) as VarId, OUT + 10),
            };
            let mut want_before: Vec<(VarId, VarId)> = Vec::new();
            let mut want_after: Vec<(VarId, VarId)> = Vec::new();
            for (f, h) in &list {
                if *f == a.src && h.writable && h.mem != a.dst {
                    want_before.push((h.mem, *f));
                }
                if *f == a.dst && h.mem != a.src {
                    want_after.push((*f, h.mem));
                }
                if h.mem == a.src {
                    for (g, w) in &list {
                        if g == f && w.writable && w.mem != a.src {
                            want_before.push((w.mem, *f));
                            want_before.push((*f, a.src));
                        }
                    }
                }
            }
            let (b, after) = maps.around(&a);
            let set =
                |v: &[(VarId, VarId)]| v.iter().copied().collect::<std::collections::BTreeSet<_>>();
            let got = |v: &[At]| set(&v.iter().map(|x| (x.src, x.dst)).collect::<Vec<_>>());
            assert_eq!(got(&b), set(&want_before), "step {step}: before {a:?}");
            assert_eq!(got(&after), set(&want_after), "step {step}: after {a:?}");
        }
        // Thousands of files mapped by one memory that nobody else writes: nothing to add.
        let mut maps = Mappings::default();
        for f in 0..5000 {
            maps.add(1000 + f, mapper(MEM_A, false));
        }
        assert!(maps.shared.is_empty());
        assert_eq!(maps.around(&at(1, Op::Write, MEM_A, OUT)), (vec![], vec![]));
        maps.end(MEM_A);
        assert!(maps.is_empty() && maps.by_pid.is_empty());
    }

    #[test]
    fn mappings_end_with_their_munmap_exec_or_exit_and_forks_inherit_them() {
        let mut maps = Mappings::default();
        maps.add(FILE, mapper(MEM_A, true));
        maps.add(FILE, mapper(MEM_B, false));
        maps.fork(MEM_B, 99);
        let write = at(3, Op::Write, MEM_C, FILE);
        assert_eq!(maps.around(&write).1.len(), 2, "one link per memory");
        maps.end(MEM_B);
        assert_eq!(maps.around(&write).1.len(), 2, "the child still maps it");
        maps.end(99);
        assert_eq!(maps.around(&write).1.len(), 1);
        // Two writable mappings of one process: one entry, which ends with the second munmap.
        maps.add(FILE, mapper(MEM_A, true));
        assert_eq!(maps.by_file[&FILE].len(), 1);
        maps.unmap(MEM_A, FILE);
        assert_eq!(maps.around(&write).1.len(), 1);
        maps.unmap(MEM_A, FILE);
        assert!(maps.is_empty());
        assert!(maps.by_pid.is_empty() && maps.shared.is_empty());
        // A reader mapping a file again and again (no munmap reported) is one mapping, of the
        // bytes of all of them.
        for i in 0..1000 {
            maps.add(
                FILE,
                Mapper {
                    off: i * 4096,
                    ..mapper(MEM_B, false)
                },
            );
        }
        assert_eq!(maps.by_file[&FILE].len(), 1);
        assert_eq!(maps.by_file[&FILE][0].len, 1000 * 4096);
        maps.forget_ve(u64::from(MEM_B));
        assert!(maps.is_empty());
        // A transaction that moves nothing gets nothing.
        maps.add(FILE, mapper(MEM_A, true));
        assert_eq!(maps.around(&at(4, Op::Open, FILE, MEM_C)), (vec![], vec![]));
        assert_eq!(maps.around(&at(4, Op::Read, FILE, MEM_C)).0.len(), 1);
    }
}
