//! Keyspace notifications: the operators' `HSET quantum:position:<SYMBOL> ledger_amount …` (or
//! a hedge leg's `ledger_amount_long` / `ledger_amount_short`: a note names the hash, and the
//! session reads every leg of its symbol)
//! and, with `--permits-from redis`, the legacy issuers' `SET quantum:permit:…`, as they
//! happen.
//!
//! The bridge turns on what it needs in `notify-keyspace-events` (`K` for keyspace channels,
//! `h` for hash commands, `$` for string commands), keeping whatever else is configured. Where
//! `CONFIG SET` is not allowed (a managed Redis, an ACL), it says once what to run instead and
//! relies on the periodic re-read ([`crate::config::BridgeConfig::ledger_poll`],
//! [`crate::config::BridgeConfig::permit_poll`]). After every reconnect the session is told to
//! re-read everything, since notifications sent while it was away are gone.

use std::sync::Arc;

use futures_util::StreamExt;
use quantum_core::PlanId;
use tokio::sync::mpsc;

use crate::conn::{Backoff, Target};
use crate::legacy::{self, PermitKind, PERMIT_PREFIX, POSITION_PREFIX};
use crate::stats::Stats;

/// What a notification means to the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// (Re)subscribed: re-read everything; `enabled` says whether notifications will come.
    Subscribed {
        /// Redis sends the notifications the bridge needs.
        enabled: bool,
    },
    /// A position hash was written.
    Position(String),
    /// A permit key was set.
    Permit(PermitKind, PlanId),
    /// The subscription was lost.
    Lost,
}

/// The flags `notify-keyspace-events` must have; `$` only for permits.
pub fn missing_flags(current: &str, permits: bool) -> String {
    let has = |c: char| current.contains(c) || (c != 'K' && c != 'E' && current.contains('A'));
    let mut want = vec!['K', 'h'];
    if permits {
        want.push('$');
    }
    want.into_iter().filter(|c| !has(*c)).collect()
}

/// The note a keyspace message is (`None` for keys and events the bridge ignores).
pub fn note_of(channel: &str, event: &str) -> Option<Note> {
    let key = channel.split_once("__:").map(|(_, k)| k)?;
    if let Some(symbol) = legacy::position_symbol(key) {
        return (event == "hset").then(|| Note::Position(symbol.to_owned()));
    }
    let (kind, plan) = legacy::parse_permit_key(key)?;
    (event == "set").then_some(Note::Permit(kind, plan))
}

/// Turns the needed flags on; `Ok(false)` with the reason logged when Redis refuses.
async fn enable(client: &redis::Client, permits: bool) -> redis::RedisResult<bool> {
    let mut c = client.get_multiplexed_async_connection().await?;
    let current: Vec<String> = match redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query_async(&mut c)
        .await
    {
        Ok(v) => v,
        Err(e) if e.kind() == redis::ErrorKind::Io => return Err(e),
        Err(e) => {
            refused(&e.to_string(), permits);
            return Ok(false);
        }
    };
    let now = current.get(1).cloned().unwrap_or_default();
    let missing = missing_flags(&now, permits);
    if missing.is_empty() {
        return Ok(true);
    }
    let flags = format!("{now}{missing}");
    match redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg(&flags)
        .query_async::<()>(&mut c)
        .await
    {
        Ok(()) => {
            tracing::info!(flags = %flags, "keyspace notifications enabled (notify-keyspace-events)");
            Ok(true)
        }
        Err(e) if e.kind() == redis::ErrorKind::Io => Err(e),
        Err(e) => {
            refused(&e.to_string(), permits);
            Ok(false)
        }
    }
}

fn refused(why: &str, permits: bool) {
    let flags = if permits { "Kh$" } else { "Kh" };
    tracing::warn!(
        "cannot enable keyspace notifications ({why}); run `redis-cli CONFIG SET notify-keyspace-events {flags}` (or set it in redis.conf, adding to any flags already there). Until then ledger syncs are picked up by the periodic re-read"
    );
}

/// Subscribes and forwards notes until the session drops the receiver.
pub async fn run(
    target: Target,
    db: i64,
    permits: bool,
    tx: mpsc::Sender<Note>,
    stats: Arc<Stats>,
) {
    let mut backoff = Backoff::default();
    let mut patterns = vec![format!("__keyspace@{db}__:{POSITION_PREFIX}*")];
    if permits {
        patterns.push(format!("__keyspace@{db}__:{PERMIT_PREFIX}*"));
    }
    loop {
        let attempt = async {
            let client = target.client().await?;
            let enabled = enable(&client, permits).await?;
            let mut ps = client.get_async_pubsub().await?;
            for p in &patterns {
                ps.psubscribe(p).await?;
            }
            Ok::<_, redis::RedisError>((enabled, ps))
        }
        .await;
        let (enabled, ps) = match attempt {
            Ok(x) => x,
            Err(e) => {
                Stats::inc(&stats.redis_errors);
                tracing::debug!(error = %e, "keyspace subscription failed; retrying");
                if tx.is_closed() {
                    return;
                }
                backoff.wait().await;
                continue;
            }
        };
        backoff.reset();
        if tx.send(Note::Subscribed { enabled }).await.is_err() {
            return;
        }
        let mut messages = ps.into_on_message();
        while let Some(m) = messages.next().await {
            let event: String = m.get_payload().unwrap_or_default();
            if let Some(note) = note_of(m.get_channel_name(), &event) {
                if tx.send(note).await.is_err() {
                    return;
                }
            }
        }
        if tx.send(Note::Lost).await.is_err() {
            return;
        }
        backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_added_to_what_is_there() {
        assert_eq!(missing_flags("", false), "Kh");
        assert_eq!(missing_flags("", true), "Kh$");
        assert_eq!(missing_flags("Ex", true), "Kh$");
        assert_eq!(missing_flags("KA", true), "");
        assert_eq!(missing_flags("AE", false), "K");
        assert_eq!(missing_flags("hK$", true), "");
    }

    #[test]
    fn channels_name_positions_and_permits() {
        assert_eq!(
            note_of("__keyspace@0__:quantum:position:BTCUSDT", "hset"),
            Some(Note::Position("BTCUSDT".into()))
        );
        assert_eq!(
            note_of("__keyspace@0__:quantum:position:BTCUSDT", "del"),
            None
        );
        assert_eq!(
            note_of("__keyspace@3__:quantum:permit:p33:f1a8d7f48713d5cf", "set"),
            Some(Note::Permit(PermitKind::P33, PlanId(0xf1a8_d7f4_8713_d5cf)))
        );
        assert_eq!(
            note_of("__keyspace@0__:quantum:permit:f1a8d7f48713d5cf", "set"),
            Some(Note::Permit(PermitKind::Gov, PlanId(0xf1a8_d7f4_8713_d5cf)))
        );
        assert_eq!(note_of("__keyspace@0__:quantum:permit:oops", "set"), None);
        assert_eq!(note_of("nonsense", "set"), None);
    }
}
