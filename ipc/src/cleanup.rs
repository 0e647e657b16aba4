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
    let ring = match Ring::open(&spec) {
        Ok(r) => r,
        // Written by a binary of another record layout (before an upgrade): its records cannot
        // be read here, and they must not be lost either.
        Err(crate::Error::LayoutMismatch { found_layout, .. }) => {
            let waiting = Ring::waiting_any_layout(&spec).unwrap_or(0);
            return (waiting > 0).then(|| {
                format!(
                    "{waiting} record(s) written under another record layout ({found_layout:#018x}) wait: let a daemon of the binary that wrote them take them, or remove the ring and lose them"
                )
            });
        }
        Err(_) => return None,
    };
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
