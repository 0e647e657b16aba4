//! The legacy plan and result streams read back: result entries per plan, and what the
//! bridges' consumer group has not finished.

use std::collections::BTreeMap;

use quantum_redis::legacy::{PLAN_STREAM, RESULT_STREAM};

/// A stream entry: its id and fields.
pub type Entry = (String, BTreeMap<String, String>);

/// Every entry of `quantum:stream:apply.result`.
pub fn result_entries(conn: &mut redis::Connection) -> redis::RedisResult<Vec<Entry>> {
    redis::cmd("XRANGE")
        .arg(RESULT_STREAM)
        .arg("-")
        .arg("+")
        .query(conn)
}

/// Result entries per `plan_id`.
pub fn per_plan(entries: &[Entry]) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    for (_, f) in entries {
        if let Some(id) = f.get("plan_id") {
            *out.entry(id.clone()).or_default() += 1;
        }
    }
    out
}

/// Plan entries delivered to `group` and not acknowledged (0 when the group is missing).
pub fn pending(conn: &mut redis::Connection, group: &str) -> u64 {
    let summary: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(PLAN_STREAM)
        .arg(group)
        .query(conn)
        .unwrap_or_default();
    match summary.first() {
        Some(redis::Value::Int(n)) => *n as u64,
        _ => 0,
    }
}
