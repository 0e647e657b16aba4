//! Removing the segments of dead instances, except ingress rings that still matter (records
//! a producer was told were sent, or a live producer).

use crate::ring::{Ring, RingSpec};
use crate::shm::{list_segments, path_of, SegmentInfo, SegmentKind};

/// What [`remove_stale_segments`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Segment ids removed.
    pub removed: Vec<String>,
    /// Ingress rings of a dead creator that were kept, with why: they hold records a
    /// producer was told were sent, or a live producer still writes into them. A restarted
    /// daemon takes them over.
    pub kept: Vec<(String, String)>,
}

/// Why an ingress ring of a dead creator must stay, if it must.
fn keep_reason(seg: &SegmentInfo) -> Option<String> {
    if seg.kind != SegmentKind::Ring || !crate::contract::INGRESS.iter().any(|d| d.name == seg.name)
    {
        return None;
    }
    let spec = RingSpec::new(&seg.instance, &seg.name, 0);
    let ring = Ring::open(&spec).ok()?;
    let waiting = ring.len();
    if waiting > 0 {
        return Some(format!("{waiting} record(s) not yet taken by a daemon"));
    }
    match ring.producer_status(u64::MAX) {
        crate::liveness::PeerStatus::Alive { pid, .. } => {
            Some(format!("producer pid {pid} is attached"))
        }
        _ => None,
    }
}

/// Removes the segments (of one instance or of all) whose creator is dead, except ingress
/// rings that hold records or have a live producer (see [`Cleanup::kept`]). Segments that are
/// not recognisably ours, or whose owner lives, are left alone.
pub fn remove_stale_segments(instance: Option<&str>) -> std::io::Result<Cleanup> {
    let mut done = Cleanup::default();
    for seg in list_segments(instance)? {
        if seg.kind != SegmentKind::Unknown && !seg.owner_alive {
            if let Some(why) = keep_reason(&seg) {
                done.kept.push((seg.os_id, why));
                continue;
            }
            // Unlinking the /dev/shm file is `shm_unlink`; processes that still map it keep
            // their mapping.
            match std::fs::remove_file(path_of(&seg.os_id)) {
                Ok(()) => done.removed.push(seg.os_id),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(done)
}
