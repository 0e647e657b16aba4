//! Named shared-memory segments (`/dev/shm/quantum.<instance>.<name>`): creating, mapping,
//! listing and removing them. What a segment is comes from its common preamble
//! (the `segment` module), read here without knowing the segment's version.

use std::io::Read;
use std::path::PathBuf;

use shared_memory::{Shmem, ShmemConf, ShmemError};

use crate::error::Error;
use crate::liveness::pid_alive;
use crate::segment::{BROADCAST_MAGIC, COUNTERS_MAGIC, RING_MAGIC};

/// Directory where Linux keeps POSIX shared memory.
pub const SHM_DIR: &str = "/dev/shm";

pub use crate::names::PREFIX;

pub use crate::names::os_id;

/// A mapped segment. The creator's handle unlinks the name when dropped.
pub(crate) struct Segment {
    shmem: Shmem,
    /// Device and inode of the file behind the name when it was mapped.
    identity: Option<(u64, u64)>,
}

// SAFETY: `Shmem` is an mmap'd region plus its fd and name; it is `!Send` only because it holds
// a raw pointer. Every access to the memory goes through atomics or the SPSC protocol, whose
// rules (one producer, one consumer) the ring enforces.
unsafe impl Send for Segment {}
// SAFETY: as above; `&Segment` only exposes the base pointer and length.
unsafe impl Sync for Segment {}

impl Segment {
    /// Creates a new segment of `size` zeroed bytes with mode 0600. Fails if it exists.
    pub(crate) fn create(os_id: &str, size: usize) -> Result<Segment, Error> {
        let shmem =
            ShmemConf::new()
                .os_id(os_id)
                .size(size)
                .create()
                .map_err(|source| match source {
                    ShmemError::MappingIdExists => Error::AlreadyExists {
                        os_id: os_id.to_owned(),
                    },
                    source => Error::Shm {
                        os_id: os_id.to_owned(),
                        source,
                    },
                })?;
        let identity = identity(&path_of(os_id));
        let segment = Segment { shmem, identity };
        // `shared_memory` passes 0600 to shm_open, which the umask can only narrow; set it
        // exactly so a restrictive umask cannot leave the owner without write access either.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = path_of(os_id);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| Error::Io {
                    os_id: os_id.to_owned(),
                    source,
                },
            )?;
        }
        Ok(segment)
    }

    /// Maps an existing segment.
    pub(crate) fn open(os_id: &str) -> Result<Segment, Error> {
        let shmem = ShmemConf::new()
            .os_id(os_id)
            .open()
            .map_err(|source| match source {
                ShmemError::MapOpenFailed(errno) if errno == libc::ENOENT as u32 => {
                    Error::NotFound {
                        os_id: os_id.to_owned(),
                    }
                }
                source => Error::Shm {
                    os_id: os_id.to_owned(),
                    source,
                },
            })?;
        let identity = identity(&path_of(os_id));
        Ok(Segment { shmem, identity })
    }

    pub(crate) fn is_owner(&self) -> bool {
        self.shmem.is_owner()
    }

    /// Leaves the name in place when this handle drops.
    pub(crate) fn keep(&mut self) {
        self.shmem.set_owner(false);
    }

    /// Device and inode of the file behind the name when it was mapped.
    pub(crate) fn identity(&self) -> Option<(u64, u64)> {
        self.identity
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.shmem.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.shmem.len()
    }
}

/// Device and inode of the file at `path` (None when it does not exist).
pub(crate) fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The file behind a segment id.
pub fn path_of(os_id: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(os_id)
}

/// What a segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// An SPSC ring.
    Ring,
    /// A broadcast ring.
    Broadcast,
    /// A counters segment.
    Counters,
    /// Not initialised, or not ours.
    Unknown,
}

/// One `quantum.*` segment found in `/dev/shm`.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// Segment id (`quantum.<instance>.<name>`).
    pub os_id: String,
    /// Instance part of the id.
    pub instance: String,
    /// Name part of the id.
    pub name: String,
    /// What its preamble says it is.
    pub kind: SegmentKind,
    /// Pid of the process that created it (0 if unknown).
    pub owner_pid: u64,
    /// Whether that process still exists.
    pub owner_alive: bool,
    /// Size in bytes.
    pub bytes: u64,
}

fn read_preamble(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let mut buf = [0u8; 48];
    std::fs::File::open(path)?.read_exact(&mut buf)?;
    let word = |off: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[off..off + 8]);
        u64::from_le_bytes(w)
    };
    Ok((word(0), word(24)))
}

/// Lists quantum segments, of one instance or of all.
pub fn list_segments(instance: Option<&str>) -> std::io::Result<Vec<SegmentInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        let Ok(os_id) = entry.file_name().into_string() else {
            continue;
        };
        let Some(rest) = os_id.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((inst, name)) = rest.split_once('.') else {
            continue;
        };
        if instance.is_some_and(|i| i != inst) {
            continue;
        }
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let (magic, owner_pid) = read_preamble(&entry.path()).unwrap_or((0, 0));
        let kind = match magic {
            RING_MAGIC => SegmentKind::Ring,
            BROADCAST_MAGIC => SegmentKind::Broadcast,
            COUNTERS_MAGIC => SegmentKind::Counters,
            _ => SegmentKind::Unknown,
        };
        let owner_pid = if kind == SegmentKind::Unknown {
            0
        } else {
            owner_pid
        };
        out.push(SegmentInfo {
            instance: inst.to_owned(),
            name: name.to_owned(),
            kind,
            owner_alive: owner_pid != 0 && pid_alive(owner_pid),
            owner_pid,
            bytes,
            os_id,
        });
    }
    out.sort_by(|a, b| a.os_id.cmp(&b.os_id));
    Ok(out)
}

/// Removes one segment by id, whoever owns it. A missing segment is not an error.
pub fn remove_segment(os_id: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path_of(os_id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
