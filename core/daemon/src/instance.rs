//! One daemon per instance name. The counters segment `quantum.<instance>.counters` is the
//! instance's lock: it is created exclusively (`O_EXCL`), and its preamble names the owner pid.
//! A start that finds it owned by a live process refuses; one that finds its owner dead removes
//! every segment the dead predecessor left and creates it again. Two daemons racing for a dead
//! instance cannot both win: only one exclusive create succeeds, and a segment still being
//! initialised (no magic yet) is never taken for stale.

use anyhow::{bail, Context, Result};
use quantum_ipc::{CountersReader, CountersWriter, Error};

/// Creates the counters segment of `instance` with room for `capacity` counters, or says which
/// live process owns the instance. Returns the writer and the ids of leftover segments removed.
pub fn claim(instance: &str, capacity: usize) -> Result<(CountersWriter, Vec<String>)> {
    let mut removed = Vec::new();
    for _ in 0..2 {
        match CountersWriter::create(instance, capacity) {
            Ok(w) => {
                // Rings of a dead predecessor whose counters were already gone.
                removed.extend(remove_leftovers(instance)?);
                return Ok((w, removed));
            }
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create the counters of instance {instance}"))
            }
        }
        match CountersReader::open(instance) {
            Ok(r) if r.owner_alive() => bail!(
                "instance {instance:?} is already running (pid {}); stop it first or pick another --instance",
                r.owner_pid()
            ),
            Ok(_) => {}
            Err(Error::NotInitialised { .. }) => {
                bail!("instance {instance:?} is being started by another process")
            }
            // Unreadable (another layout, corrupt): treated as stale below if its owner is dead.
            Err(_) => {}
        }
        removed.extend(remove_leftovers(instance)?);
    }
    bail!("instance {instance:?}: segment quantum.{instance}.counters exists and its owner could not be determined; remove it with `quantum ctl gc` if no daemon runs")
}

/// Removes segments of `instance` whose creator is dead, but not the ingress rings that hold
/// records or have a live producer: the new daemon takes those over. Returns the ids removed.
fn remove_leftovers(instance: &str) -> Result<Vec<String>> {
    Ok(quantum_ipc::remove_stale_segments(Some(instance))
        .with_context(|| format!("cannot clean up old segments of instance {instance}"))?
        .removed)
}
