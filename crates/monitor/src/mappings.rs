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

/// The live mappings of files (not of the VEs' own files: those stay inside).
#[derive(Debug, Default)]
pub struct Mappings {
    by_file: HashMap<VarId, Vec<Mapper>>,
    /// memory → the files its VE maps (with repeats: one per mapping).
    by_mem: HashMap<VarId, Vec<VarId>>,
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
        self.by_mem.entry(m.mem).or_default().push(file);
    }

    /// Forgets the mappings `keep` refuses.
    fn retain(&mut self, mut keep: impl FnMut(VarId, &Mapper) -> bool) {
        let by_mem = &mut self.by_mem;
        self.by_file.retain(|&file, v| {
            v.retain(|m| {
                let kept = keep(file, m);
                if !kept {
                    if let Some(files) = by_mem.get_mut(&m.mem) {
                        if let Some(i) = files.iter().position(|&f| f == file) {
                            files.swap_remove(i);
                        }
                        if files.is_empty() {
                            by_mem.remove(&m.mem);
                        }
                    }
                }
                kept
            });
            !v.is_empty()
        });
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
            self.retain(|f, m| !(f == file && m.pid == pid && m.writable));
        }
    }

    /// Process `pid`'s mappings end (its exec, its exit).
    pub fn end(&mut self, pid: u32) {
        if !self.is_empty() {
            self.retain(|_, m| m.pid != pid);
        }
    }

    /// VE `ve` is no longer watched: none of its mappings lasts.
    pub fn forget_ve(&mut self, ve: u64) {
        if !self.is_empty() {
            self.retain(|_, m| m.ve != ve);
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
        let inherited: Vec<(VarId, Mapper)> = self
            .by_file
            .iter()
            .flat_map(|(&f, v)| v.iter().filter(|m| m.pid == parent).map(move |m| (f, *m)))
            .collect();
        for (f, m) in inherited {
            self.add(f, Mapper { pid: child, ..m });
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
        for &file in self.by_mem.get(&at.src).into_iter().flatten() {
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
        assert!(maps.by_mem.is_empty());
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
