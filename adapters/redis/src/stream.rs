//! Reading `quantum:stream:apply.plan` through a consumer group, on a connection of its own.
//!
//! On start (once the session says the core has answered everything pushed before), the task
//! reads this consumer's own pending entries (`XREADGROUP … 0`: entries an earlier process of
//! the same name read and never acknowledged), then claims the entries other consumers left
//! idle for `--claim-idle-ms` (`XAUTOCLAIM`, again every `--claim-every-ms`), then reads new
//! entries (`XREADGROUP … >`, blocking up to a second). After a lost connection it reads its
//! own pending entries again first (a read whose answer was lost leaves entries pending that
//! the session never saw); the session skips those it already has. Every entry takes one unit of the
//! in-flight bound before it is read, released when the core has answered it, so a stalled
//! core stops the reading instead of filling memory.
//!
//! A pending entry whose stream entry was trimmed away (`MAXLEN`) before the core saw it comes
//! back without fields (own pending list) or in XAUTOCLAIM's deleted ids (Redis 7: it leaves
//! the pending list there): either way it is reported, counted (`pending_trimmed`) and, in the
//! first case, acknowledged.
//!
//! In failover mode ([`crate::lease`]) the reader issues no XREADGROUP or XAUTOCLAIM unless
//! this host may act ([`LeaseHandle::acting`], checked right before each of them; a blocking
//! read never blocks past the deadline). When it starts acting under a new epoch it reads its
//! own pending entries again and claims every entry pending for the other consumers at once
//! (`XAUTOCLAIM` with min-idle 0, through the whole cursor): the old leader's unfinished plans.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::config::BridgeConfig;
use crate::conn::{Backoff, Redis, Target};
use crate::error::{Error, Result};
use crate::lease::LeaseHandle;
use crate::legacy::PLAN_STREAM;
use crate::plan_entry::Fields;
use crate::stats::Stats;

/// How long one XREADGROUP blocks.
const BLOCK: Duration = Duration::from_secs(1);
/// Entries read per command, at most.
const COUNT: usize = 256;

/// One entry read from the plan stream.
#[derive(Debug)]
pub struct Entry {
    /// Its id.
    pub id: String,
    /// Its fields in order; `None` for a pending entry the stream no longer holds.
    pub fields: Option<Fields>,
    /// Read from a pending list (delivered before).
    pub redelivered: bool,
    /// When it was read.
    pub read_at: Instant,
    /// Its unit of the in-flight bound.
    pub slot: Option<OwnedSemaphorePermit>,
}

/// What the reader hands the session.
#[derive(Debug)]
pub enum Read {
    /// Entries, in stream order.
    Entries(Vec<Entry>),
    /// Pending entries XAUTOCLAIM found trimmed away (already gone from the pending list).
    Trimmed(Vec<String>),
}

/// `(id, fields or None)` of every entry in an XREADGROUP / XAUTOCLAIM entry list.
fn entries_of(v: &Value) -> Result<Vec<(String, Option<Fields>)>, String> {
    let Value::Array(items) = v else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else {
            return Err(format!("unexpected entry {item:?}"));
        };
        let id = match pair.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            other => return Err(format!("unexpected entry id {other:?}")),
        };
        let fields = match pair.get(1) {
            None | Some(Value::Nil) => None,
            Some(Value::Array(kv)) => {
                let mut f = Vec::with_capacity(kv.len() / 2);
                for c in kv.chunks(2) {
                    let text = |v: &Value| match v {
                        Value::BulkString(b) => Some(b.clone()),
                        Value::SimpleString(s) => Some(s.clone().into_bytes()),
                        Value::Int(i) => Some(i.to_string().into_bytes()),
                        _ => None,
                    };
                    let (Some(k), Some(val)) = (c.first().and_then(text), c.get(1).and_then(text))
                    else {
                        return Err(format!("unexpected fields of entry {id}"));
                    };
                    f.push((String::from_utf8_lossy(&k).into_owned(), val));
                }
                Some(f)
            }
            Some(other) => return Err(format!("unexpected fields {other:?}")),
        };
        out.push((id, fields));
    }
    Ok(out)
}

/// The entries of the plan stream in an XREADGROUP reply (nil: none).
fn read_reply(v: &Value) -> Result<Vec<(String, Option<Fields>)>, String> {
    let streams = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(s) => s,
        Value::Map(m) => {
            // RESP3: stream name -> entries.
            let mut out = Vec::new();
            for (_, entries) in m {
                out.extend(entries_of(entries)?);
            }
            return Ok(out);
        }
        other => return Err(format!("unexpected XREADGROUP reply {other:?}")),
    };
    let mut out = Vec::new();
    for s in streams {
        if let Value::Array(pair) = s {
            if let Some(entries) = pair.get(1) {
                out.extend(entries_of(entries)?);
            }
        }
    }
    Ok(out)
}

/// The reading task's settings.
#[derive(Clone, Debug)]
pub struct Reader {
    /// Group.
    pub group: String,
    /// Consumer.
    pub consumer: String,
    /// Where a new group starts.
    pub start_id: &'static str,
    /// Claim others' entries idle this long.
    pub claim_idle: Duration,
    /// How often to look for them.
    pub claim_every: Duration,
    /// Failover: this host's lease (no claim command unless it may act).
    pub gate: Option<LeaseHandle>,
}

impl Reader {
    /// From the bridge's settings, reading as `consumer`, gated by `gate` in failover mode.
    pub fn new(cfg: &BridgeConfig, consumer: &str, gate: Option<LeaseHandle>) -> Reader {
        Reader {
            group: cfg.group.clone(),
            consumer: consumer.to_owned(),
            start_id: cfg.group_start.id(),
            claim_idle: cfg.claim_idle,
            claim_every: cfg.claim_every,
            gate,
        }
    }

    /// Waits until this host may claim (failover); at once otherwise.
    async fn ready(&self) {
        if let Some(g) = &self.gate {
            g.wait_acting().await;
        }
    }

    /// Creates the group if it is missing (`MKSTREAM`: the stream may not exist yet).
    pub async fn ensure_group(&self, c: &mut MultiplexedConnection) -> Result<()> {
        let r: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(PLAN_STREAM)
            .arg(&self.group)
            .arg(self.start_id)
            .arg("MKSTREAM")
            .query_async(c)
            .await;
        match r {
            Ok(_) => {
                tracing::info!(stream = PLAN_STREAM, group = %self.group, start = self.start_id, "consumer group created");
                Ok(())
            }
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs until the session drops the receiver: own pending entries, claims, new entries.
    pub async fn run(
        self,
        target: impl Into<Target>,
        slots: Arc<Semaphore>,
        tx: mpsc::Sender<Read>,
        stats: Arc<Stats>,
    ) {
        let target = target.into();
        let mut backoff = Backoff::default();
        let mut own_done = false;
        let mut next_claim = Instant::now();
        let mut lost = false;
        // The epoch this reader last started acting under (failover).
        let mut acted_epoch = 0;
        loop {
            let res = async {
                let (mut c, _) = Redis::dedicated(&target, BLOCK).await?;
                self.ensure_group(&mut c).await?;
                if lost {
                    lost = false;
                    // A read whose answer was lost left entries pending for this consumer:
                    // read them again (the session skips those it has).
                    own_done = false;
                    tracing::info!("plan stream reader reconnected");
                }
                loop {
                    if let Some(g) = &self.gate {
                        let epoch = g.wait_acting().await;
                        if epoch != acted_epoch {
                            tracing::info!(epoch, consumer = %self.consumer, "acting under a new epoch: reading this consumer's pending entries and claiming every entry pending for the others");
                            self.own_pending(&mut c, &slots, &tx, &stats).await?;
                            self.claim(&mut c, &slots, &tx, &stats, Duration::ZERO)
                                .await?;
                            acted_epoch = epoch;
                            own_done = true;
                            next_claim = Instant::now() + self.claim_every;
                        }
                    }
                    if !own_done {
                        self.own_pending(&mut c, &slots, &tx, &stats).await?;
                        own_done = true;
                    }
                    if Instant::now() >= next_claim {
                        self.claim(&mut c, &slots, &tx, &stats, self.claim_idle)
                            .await?;
                        next_claim = Instant::now() + self.claim_every;
                    }
                    if !self.read_new(&mut c, &slots, &tx, &stats).await? {
                        return Ok::<bool, Error>(false);
                    }
                }
            }
            .await;
            match res {
                Ok(false) => return,
                Ok(true) => {}
                Err(e) => {
                    if tx.is_closed() {
                        return;
                    }
                    Stats::inc(&stats.redis_errors);
                    if !lost {
                        lost = true;
                        tracing::warn!(error = %e, "plan stream reader: Redis failed; retrying with back-off");
                    }
                    backoff.wait().await;
                    continue;
                }
            }
            backoff.reset();
        }
    }

    /// Takes at least one unit of the bound (waiting), and up to `COUNT`.
    async fn take_slots(slots: &Arc<Semaphore>) -> Option<Vec<OwnedSemaphorePermit>> {
        let first = slots.clone().acquire_owned().await.ok()?;
        let mut v = vec![first];
        while v.len() < COUNT {
            match slots.clone().try_acquire_owned() {
                Ok(p) => v.push(p),
                Err(_) => break,
            }
        }
        Some(v)
    }

    /// Hands `found` over with slots; false when the session has gone.
    async fn hand_over(
        found: Vec<(String, Option<Fields>)>,
        redelivered: bool,
        mut permits: Vec<OwnedSemaphorePermit>,
        tx: &mpsc::Sender<Read>,
        stats: &Stats,
    ) -> bool {
        if found.is_empty() {
            return true;
        }
        let now = Instant::now();
        Stats::add(&stats.plans_read, found.len() as u64);
        if redelivered {
            Stats::add(&stats.plans_redelivered, found.len() as u64);
        }
        let entries = found
            .into_iter()
            .map(|(id, fields)| Entry {
                id,
                fields,
                redelivered,
                read_at: now,
                slot: permits.pop(),
            })
            .collect();
        tx.send(Read::Entries(entries)).await.is_ok()
    }

    async fn own_pending(
        &self,
        c: &mut MultiplexedConnection,
        slots: &Arc<Semaphore>,
        tx: &mpsc::Sender<Read>,
        stats: &Stats,
    ) -> Result<()> {
        let mut after = "0".to_string();
        loop {
            let Some(permits) = Self::take_slots(slots).await else {
                return Ok(());
            };
            self.ready().await;
            let v: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(permits.len())
                .arg("STREAMS")
                .arg(PLAN_STREAM)
                .arg(&after)
                .query_async(c)
                .await?;
            let found = read_reply(&v).map_err(|e| Error::Config(format!("XREADGROUP: {e}")))?;
            let Some((last, _)) = found.last() else {
                return Ok(());
            };
            after = last.clone();
            if !found.is_empty() {
                tracing::info!(entries = found.len(), consumer = %self.consumer, "delivering this consumer's pending entries again");
            }
            if !Self::hand_over(found, true, permits, tx, stats).await {
                return Ok(());
            }
        }
    }

    async fn claim(
        &self,
        c: &mut MultiplexedConnection,
        slots: &Arc<Semaphore>,
        tx: &mpsc::Sender<Read>,
        stats: &Stats,
        min_idle: Duration,
    ) -> Result<()> {
        let mut cursor = "0-0".to_string();
        loop {
            let Some(permits) = Self::take_slots(slots).await else {
                return Ok(());
            };
            self.ready().await;
            let v: Value = redis::cmd("XAUTOCLAIM")
                .arg(PLAN_STREAM)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(min_idle.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(permits.len())
                .query_async(c)
                .await?;
            let Value::Array(parts) = &v else {
                return Err(Error::Config(format!("XAUTOCLAIM: unexpected reply {v:?}")));
            };
            cursor = match parts.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                other => return Err(Error::Config(format!("XAUTOCLAIM cursor {other:?}"))),
            };
            let found = parts
                .get(1)
                .map(entries_of)
                .transpose()
                .map_err(|e| Error::Config(format!("XAUTOCLAIM: {e}")))?
                .unwrap_or_default();
            let deleted: Vec<String> = match parts.get(2) {
                Some(Value::Array(ids)) => ids
                    .iter()
                    .filter_map(|v| match v {
                        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                        Value::SimpleString(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if !found.is_empty() {
                tracing::info!(
                    entries = found.len(),
                    idle_ms = min_idle.as_millis() as u64,
                    "claimed pending entries left idle by other consumers"
                );
            }
            if !Self::hand_over(found, true, permits, tx, stats).await {
                return Ok(());
            }
            if !deleted.is_empty() && tx.send(Read::Trimmed(deleted)).await.is_err() {
                return Ok(());
            }
            if cursor == "0-0" {
                return Ok(());
            }
        }
    }

    /// One blocking read of new entries; false when the session has gone.
    async fn read_new(
        &self,
        c: &mut MultiplexedConnection,
        slots: &Arc<Semaphore>,
        tx: &mpsc::Sender<Read>,
        stats: &Stats,
    ) -> Result<bool> {
        let Some(permits) = Self::take_slots(slots).await else {
            return Ok(false);
        };
        self.ready().await;
        let block = self.gate.as_ref().map_or(BLOCK, |g| g.block_for(BLOCK));
        let v: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(permits.len())
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(PLAN_STREAM)
            .arg(">")
            .query_async(c)
            .await?;
        let found = read_reply(&v).map_err(|e| Error::Config(format!("XREADGROUP: {e}")))?;
        Ok(Self::hand_over(found, false, permits, tx, stats).await && !tx.is_closed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn replies_read_as_entries_with_or_without_fields() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(PLAN_STREAM),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("plan_id"), bulk("f1a8d7f48713d5cf")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let e = read_reply(&reply).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            (
                "1-0".to_string(),
                Some(vec![("plan_id".to_string(), b"f1a8d7f48713d5cf".to_vec())])
            )
        );
        assert_eq!(e[1], ("2-0".to_string(), None));
        assert!(read_reply(&Value::Nil).unwrap().is_empty());
        assert!(read_reply(&Value::Int(3)).is_err());
    }
}
