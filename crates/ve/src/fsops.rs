//! The small funnel through which cgroup management touches the file system, with a real
//! implementation and a recording fake for unit tests.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub trait Fs {
    fn create_dir(&self, p: &Path) -> io::Result<()>;
    fn write(&self, p: &Path, data: &str) -> io::Result<()>;
    fn read(&self, p: &Path) -> io::Result<String>;
    fn remove_dir(&self, p: &Path) -> io::Result<()>;
    fn exists(&self, p: &Path) -> bool;
    /// The inode number (a cgroup2 directory's inode is its cgroup id).
    fn ino(&self, p: &Path) -> io::Result<u64>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostFs;

impl Fs for HostFs {
    fn create_dir(&self, p: &Path) -> io::Result<()> {
        match std::fs::create_dir(p) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
    }
    fn write(&self, p: &Path, data: &str) -> io::Result<()> {
        // cgroup files want one write(2) with the whole value and no O_CREAT/O_TRUNC semantics.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(p)?;
        f.write_all(data.as_bytes())
    }
    fn read(&self, p: &Path) -> io::Result<String> {
        std::fs::read_to_string(p)
    }
    fn remove_dir(&self, p: &Path) -> io::Result<()> {
        std::fs::remove_dir(p)
    }
    fn exists(&self, p: &Path) -> bool {
        p.exists()
    }
    fn ino(&self, p: &Path) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(std::fs::metadata(p)?.ino())
    }
}

/// A fake that records every operation and keeps written files in memory.
#[derive(Debug, Default)]
pub struct RecordingFs {
    pub ops: RefCell<Vec<String>>,
    pub files: RefCell<BTreeMap<PathBuf, String>>,
    pub dirs: RefCell<Vec<PathBuf>>,
}

impl RecordingFs {
    pub fn with_file(self, p: &str, content: &str) -> Self {
        self.files
            .borrow_mut()
            .insert(PathBuf::from(p), content.to_string());
        self
    }
    pub fn ops(&self) -> Vec<String> {
        self.ops.borrow().clone()
    }
}

impl Fs for RecordingFs {
    fn create_dir(&self, p: &Path) -> io::Result<()> {
        self.ops.borrow_mut().push(format!("mkdir {}", p.display()));
        self.dirs.borrow_mut().push(p.to_path_buf());
        Ok(())
    }
    fn write(&self, p: &Path, data: &str) -> io::Result<()> {
        self.ops
            .borrow_mut()
            .push(format!("write {} {data}", p.display()));
        self.files
            .borrow_mut()
            .insert(p.to_path_buf(), data.to_string());
        Ok(())
    }
    fn read(&self, p: &Path) -> io::Result<String> {
        self.files
            .borrow()
            .get(p)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn remove_dir(&self, p: &Path) -> io::Result<()> {
        self.ops.borrow_mut().push(format!("rmdir {}", p.display()));
        Ok(())
    }
    fn exists(&self, p: &Path) -> bool {
        self.files.borrow().contains_key(p) || self.dirs.borrow().iter().any(|d| d == p)
    }
    fn ino(&self, _p: &Path) -> io::Result<u64> {
        Ok(4242)
    }
}
