//! Where `ctl doctor` reads the machine: files under one root (`/` in production, a prepared
//! tree in tests) and the one fact no file tells, the free space of a filesystem.

use std::io;
use std::path::{Path, PathBuf};

/// The machine as the checks see it.
pub trait Host {
    /// The text of `rel` (a path like `proc/cmdline`, relative to the root).
    fn read(&self, rel: &str) -> io::Result<String>;
    /// The names in directory `rel`, sorted.
    fn list(&self, rel: &str) -> io::Result<Vec<String>>;
    /// (size, free) in bytes of the filesystem holding `rel`.
    fn fs_space(&self, rel: &str) -> io::Result<(u64, u64)>;
}

/// Files under `root`; filesystem space by statvfs of the same path.
pub struct RootedHost {
    root: PathBuf,
}

impl RootedHost {
    /// The machine seen from `root` (`/` for this one).
    pub fn new(root: &Path) -> RootedHost {
        RootedHost {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }
}

impl Host for RootedHost {
    fn read(&self, rel: &str) -> io::Result<String> {
        std::fs::read_to_string(self.path(rel))
    }

    fn list(&self, rel: &str) -> io::Result<Vec<String>> {
        let mut names = std::fs::read_dir(self.path(rel))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        names.sort();
        Ok(names)
    }

    fn fs_space(&self, rel: &str) -> io::Result<(u64, u64)> {
        let p = self.path(rel);
        if !p.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", p.display()),
            ));
        }
        quantum_daemon::host::sys::fs_space(&p)
    }
}
