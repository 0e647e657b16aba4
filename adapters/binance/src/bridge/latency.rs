//! The exchange leg, timed live: each order this bridge places, from the intent read off the
//! `orders` ring to the request sent, the order acknowledged and its first fill seen, per
//! transport, recorded with the one live-latency machinery of every quantum process
//! ([`quantum_ipc::latency`]): HdrHistograms per interval, appended to an interval log
//! (`--hdr-log FILE`) and published as percentile gauges in the bridge's own counters segment
//! `quantum.<instance>.latency-binance`, which `quantum ctl latency` and `ctl metrics` read.
//!
//! ```text
//!  intent read ──send──> request sent ──ack──> acknowledged ──fill──> first fill seen
//!  (orders ring)         (to the connection)   (order answer)        (user data stream)
//!       └──────────────── intent ─────────────────┘
//! ```
//!
//! Series (`<stage>.transport=rest|ws`, [`Leg`]), all on the monotonic clock:
//! - `exchange.send`: the intent read off the ring (by the ring thread, after decoding) to its
//!   signed request handed to the connection: the hand-over to an order task, a look-up first
//!   when the intent asked for one, the wait for an earlier intent of the same plan, the
//!   failover fence, the rate limiter, signing, and on the WebSocket API a (re)connection;
//! - `exchange.ack`: the request handed over to the order answer parsed (the REST response or
//!   the WebSocket API response carrying the order);
//! - `exchange.fill`: the order acknowledged to its first fill seen: a fill on the user data
//!   stream (`ORDER_TRADE_UPDATE` with a filled quantity, or `TRADE_LITE`). When the answer
//!   itself reports a fill (a MARKET order answered FILLED, as `newOrderRespType=RESULT` does
//!   when the order matched at once), or the stream reported one before the answer arrived,
//!   the span is 0 and is recorded as 1 ns (a histogram's least value);
//! - `exchange.intent`: the intent read to the order acknowledged (`send` + `ack`). Named
//!   `intent` rather than `intent_ack` because the counter label of
//!   `exchange.intent_ack.transport=rest` would not fit the counters' 48-byte labels.
//!
//! One sample per placed intent in each series. A placement that needed more than one attempt
//! (an unknown outcome looked up, and a re-send once it proved never placed) records `send`
//! up to its first request, `ack` from that first request to the acknowledgement that ended
//! it (the order answer, or the look-up or the stream confirmation that found the order) and
//! `intent` from the read to that same moment: what the intent took, not what its last attempt
//! took. A refusal (Binance rejected the order) records `send` only, nothing is acknowledged.
//! Intents this bridge did not send (not leading, an unknown symbol, a quantity off the grid,
//! an end it already reported, an order found by its look-up-first) record nothing; nor do the
//! look-ups, history reads and position polls, which are not placements.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use quantum_core::bounded::FifoMap;
use quantum_core::fixed::Qty;
use quantum_ipc::latency::{self, writer::LiveConfig, SharedLive};

use crate::futures::client::Transport;

/// Intent read to request sent.
pub const SEND: &str = "exchange.send";
/// Request sent to order acknowledged.
pub const ACK: &str = "exchange.ack";
/// Order acknowledged to its first fill seen.
pub const FILL: &str = "exchange.fill";
/// Intent read to order acknowledged.
pub const INTENT: &str = "exchange.intent";
/// The label key of the transport (`transport=rest|ws`, [`Transport::name`]).
pub use quantum_ipc::latency::TRANSPORT;

/// How long one interval lasts by default (`--latency-interval-ms`).
pub const DEFAULT_INTERVAL: Duration =
    Duration::from_millis(quantum_ipc::latency::DEFAULT_INTERVAL_MS);

/// A span of an order's way to the exchange (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// Intent read to request sent.
    Send,
    /// Request sent to order acknowledged.
    Ack,
    /// Order acknowledged to its first fill seen.
    Fill,
    /// Intent read to order acknowledged.
    Intent,
}

impl Leg {
    /// Every leg, in the order of the series.
    pub const ALL: [Leg; 4] = [Leg::Send, Leg::Ack, Leg::Fill, Leg::Intent];

    /// Its stage name.
    pub fn stage(self) -> &'static str {
        match self {
            Leg::Send => SEND,
            Leg::Ack => ACK,
            Leg::Fill => FILL,
            Leg::Intent => INTENT,
        }
    }

    /// Its series for transport `t`: `<stage>.transport=<rest|ws>`.
    pub fn series(self, t: Transport) -> String {
        latency::tagged(self.stage(), TRANSPORT, t.name())
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The series a bridge sending over `t` records, in [`Leg::ALL`] order (a bridge uses one
/// transport; its segment holds that transport's series only).
pub fn series(t: Transport) -> Vec<String> {
    Leg::ALL.iter().map(|l| l.series(t)).collect()
}

/// Where the bridge's latency goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyConfig {
    /// The HdrHistogram interval log (`--hdr-log FILE`), if any.
    pub hdr_log: Option<PathBuf>,
    /// Interval length (`--latency-interval-ms`).
    pub interval: Duration,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            hdr_log: None,
            interval: DEFAULT_INTERVAL,
        }
    }
}

/// The comment line of the bridge's interval log.
const LOG_COMMENT: &str = "quantum bridge binance: the exchange leg per transport, ns on the monotonic clock; tags are series (exchange.send|ack|fill|intent.transport=rest|ws)";

/// Where an order this bridge sent stands on its way to its first fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Sent, not acknowledged yet; `filled`: the user data stream already reported a fill.
    InFlight { filled: bool },
    /// Acknowledged at this instant, no fill seen yet.
    Acked(Instant),
}

/// The bridge's recorder: the live series of its transport and the orders waiting for their
/// first fill (the most recent `capacity` of them).
pub(crate) struct Timing {
    live: Arc<SharedLive>,
    watch: Mutex<FifoMap<u64, Watch>>,
}

impl Timing {
    /// Starts the writer thread: gauges in `quantum.<instance>.latency-binance` (replacing a
    /// segment a dead bridge left), the interval log when `cfg` names one.
    pub(crate) fn start(
        instance: &str,
        transport: Transport,
        cfg: &LatencyConfig,
        capacity: usize,
    ) -> anyhow::Result<Timing> {
        let series = series(transport);
        let gauges =
            latency::segment_gauges(instance, latency::BINANCE_SEGMENT, &series).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the latency segment quantum.{instance}.{}: {e}",
                    latency::BINANCE_SEGMENT
                )
            })?;
        Timing::with(
            LiveConfig {
                series,
                hdr_log: cfg.hdr_log.clone(),
                gauges: Some(gauges),
                interval: cfg.interval,
                comment: LOG_COMMENT.into(),
            },
            capacity,
        )
    }

    fn with(cfg: LiveConfig, capacity: usize) -> anyhow::Result<Timing> {
        let live = SharedLive::start(cfg)
            .map_err(|e| anyhow::anyhow!("starting the exchange leg's live latency: {e}"))?;
        Ok(Timing {
            live: Arc::new(live),
            watch: Mutex::new(FifoMap::new(capacity.max(1))),
        })
    }

    fn record(&self, leg: Leg, from: Instant, to: Instant) {
        self.live.record(
            leg.index(),
            to.saturating_duration_since(from).as_nanos() as u64,
        );
    }

    /// A request of `plan`'s intent is about to be sent: a fill the stream reports from now on
    /// is remembered until the answer comes.
    pub(crate) fn placing(&self, plan: u64) {
        self.watch
            .lock()
            .get_or_insert_with(plan, || Watch::InFlight { filled: false });
    }

    /// The intent read at `read` had its first request handed to the connection at `sent`.
    pub(crate) fn sent(&self, read: Instant, sent: Instant) {
        self.record(Leg::Send, read, sent);
    }

    /// `plan`'s order, its intent read at `read` and its first request sent at `sent`, was
    /// acknowledged at `at` with `filled` already filled (the answer's executed quantity) and
    /// the answer's status final or not.
    pub(crate) fn acked(
        &self,
        plan: u64,
        read: Instant,
        sent: Option<Instant>,
        at: Instant,
        filled: Qty,
        is_final: bool,
    ) {
        if let Some(s) = sent {
            self.record(Leg::Ack, s, at);
        }
        self.record(Leg::Intent, read, at);
        let mut w = self.watch.lock();
        let early = matches!(w.remove(&plan), Some(Watch::InFlight { filled: true }));
        if early || filled > Qty::ZERO {
            // Filled no later than acknowledged: a span of 0, recorded as the least value.
            drop(w);
            self.live.record(Leg::Fill.index(), 1);
        } else if !is_final {
            w.insert(plan, Watch::Acked(at));
        }
    }

    /// `plan`'s intent ends without an acknowledged order (refused, never placed, given up,
    /// not sent after all): nothing more is timed for it.
    pub(crate) fn unacked(&self, plan: u64) {
        self.watch.lock().remove(&plan);
    }

    /// The user data stream reported a fill of `plan`'s order now: its first fill, when the
    /// order is one this bridge timed and none was seen yet.
    pub(crate) fn fill_seen(&self, plan: u64) {
        let now = Instant::now();
        let mut w = self.watch.lock();
        match w.get_mut(&plan) {
            Some(Watch::InFlight { filled }) => *filled = true,
            Some(Watch::Acked(at)) => {
                let at = *at;
                w.remove(&plan);
                drop(w);
                self.record(Leg::Fill, at, now);
            }
            None => {}
        }
    }

    /// The user data stream reported `plan`'s order ended without a fill (cancelled,
    /// expired): no fill will come.
    pub(crate) fn ended_unfilled(&self, plan: u64) {
        let mut w = self.watch.lock();
        if matches!(w.get(&plan), Some(Watch::Acked(_))) {
            w.remove(&plan);
        }
    }

    /// The recorder itself, for stopping it at shutdown.
    pub(crate) fn live(&self) -> &Arc<SharedLive> {
        &self.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_ipc::latency::read::intervals;

    #[test]
    fn every_series_fits_a_counter_label() {
        for t in Transport::ALL {
            let s = series(t);
            latency::check_series(&s).unwrap();
            assert_eq!(
                latency::split(&s[3]),
                ("exchange.intent".into(), vec![("transport", t.name())])
            );
        }
        assert_eq!(
            Leg::Ack.series(Transport::WsApi),
            "exchange.ack.transport=ws"
        );
    }

    /// The first-fill bookkeeping on every path, read back from a real interval log.
    #[test]
    fn first_fills_are_timed_once_from_the_ack_or_as_1_ns() {
        let dir = std::env::temp_dir().join(format!("qpc-exch-timing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("t.hlog");
        let t = Timing::with(
            LiveConfig {
                series: series(Transport::Rest),
                hdr_log: Some(log.clone()),
                gauges: None,
                interval: Duration::from_secs(60),
                comment: "test".into(),
            },
            16,
        )
        .unwrap();
        let read = Instant::now();
        let ms = Duration::from_millis;
        let one = Qty::from_units(1);
        // 1: answered FILLED.
        t.placing(1);
        t.sent(read, read + ms(1));
        t.acked(1, read, Some(read + ms(1)), read + ms(3), one, true);
        // 2: the stream's fill came before the answer (NEW).
        t.placing(2);
        t.fill_seen(2);
        t.acked(2, read, Some(read + ms(1)), read + ms(3), Qty::ZERO, false);
        t.fill_seen(2);
        // 3: answered NEW, filled on the stream later, twice (ORDER_TRADE_UPDATE, TRADE_LITE).
        t.placing(3);
        t.acked(
            3,
            read,
            Some(read + ms(1)),
            Instant::now(),
            Qty::ZERO,
            false,
        );
        std::thread::sleep(ms(20));
        t.fill_seen(3);
        t.fill_seen(3);
        // 4: answered NEW, then expired unfilled: no fill sample.
        t.placing(4);
        t.acked(4, read, Some(read + ms(1)), read + ms(2), Qty::ZERO, false);
        t.ended_unfilled(4);
        t.fill_seen(4);
        // 5: refused: no ack, no fill; 6: an order this bridge did not time.
        t.placing(5);
        t.unacked(5);
        t.fill_seen(5);
        t.fill_seen(6);
        let Timing { live, .. } = t;
        Arc::try_unwrap(live)
            .unwrap_or_else(|_| panic!("one holder"))
            .stop()
            .unwrap();
        let got = intervals(&std::fs::read(&log).unwrap()).unwrap();
        let of = |leg: Leg| {
            let tag = leg.series(Transport::Rest);
            got.iter().filter(move |i| i.tag == tag)
        };
        let count = |leg: Leg| of(leg).map(|i| i.hist.len()).sum::<u64>();
        assert_eq!(count(Leg::Send), 1);
        assert_eq!(count(Leg::Ack), 4);
        assert_eq!(count(Leg::Intent), 4);
        assert_eq!(count(Leg::Fill), 3, "orders 1, 2 and 3 filled");
        let at_once: u64 = of(Leg::Fill).map(|i| i.hist.count_at(1)).sum();
        assert_eq!(at_once, 2, "1 and 2 at once");
        let slowest = of(Leg::Fill).map(|i| i.hist.max()).max().unwrap();
        assert!(slowest >= 20_000_000, "3 from its ack: {slowest}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
