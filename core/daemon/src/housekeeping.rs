//! Housekeeping of the I/O thread: heartbeats on every ring, peers watched (attached, stale,
//! dead, detached), and the book's amounts copied into the gauges. When a consumer of
//! `orders` (a Binance bridge starting, or restarting after a crash) replaces an earlier one,
//! the engine offers it every order without a final outcome again, marked "look it up by
//! client order id before sending anything".

use std::sync::Arc;

use quantum_core::book::Book;
use quantum_core::{Input, SymbolId};
use quantum_ipc::contract;
use quantum_ipc::liveness::clock_ms;
use quantum_ipc::PeerStatus;

use crate::egress::Egress;
use crate::ingress::Ingress;
use crate::stats::Counters;

/// How often the book gauges (`ledger.<S>` ...) are refreshed: the engine applies commands on
/// its own thread, so the I/O thread samples the book instead of tracking each command.
const GAUGES_EVERY_MS: u64 = 5;

/// What a ring's peer was at the last look.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nobody,
    Alive(u64),
    Stale(u64),
    Gone(u64),
}

/// Heartbeats, peers and gauges, each when due.
pub(crate) struct Housekeeping {
    /// `rings.heartbeat_ms`.
    heartbeat_ms: u64,
    /// `rings.peer_timeout_ms`: a peer without a heartbeat for longer is stale.
    peer_timeout_ms: u64,
    /// Peers per SPSC ring, in [`contract::RINGS`] order.
    seen: [Seen; 4],
    /// The `orders` consumer the engine last offered its unresolved orders to.
    offered_to: Option<u64>,
    /// The engine's book (read only here, for the gauges).
    book: Arc<Book>,
    /// Symbols configured.
    n_symbols: usize,
    /// When the next heartbeat is due (`clock_ms`).
    next_tick: u64,
    /// When the gauges are next refreshed (`clock_ms`).
    next_gauges: u64,
}

impl Housekeeping {
    pub fn new(heartbeat_ms: u64, peer_timeout_ms: u64, book: Arc<Book>, n_symbols: usize) -> Self {
        Housekeeping {
            heartbeat_ms,
            peer_timeout_ms,
            seen: [Seen::Nobody; 4],
            offered_to: None,
            book,
            n_symbols,
            next_tick: 0,
            next_gauges: 0,
        }
    }

    /// The `orders` consumer was alive at the last look.
    pub fn orders_consumer_alive(&self) -> bool {
        matches!(self.seen[contract::ORDERS.index as usize], Seen::Alive(_))
    }

    /// Heartbeats and peer checks, every `rings.heartbeat_ms`.
    pub fn tick_if_due(&mut self, ingress: &mut Ingress, egress: &mut Egress, counters: &Counters) {
        let now = clock_ms();
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + self.heartbeat_ms;
        ingress.heartbeat();
        egress.heartbeat();
        let mut faults: Vec<_> = ingress.faults().collect();
        faults.extend(egress.orders_fault());
        for f in faults {
            counters.inc(counters.cursor_faults);
            tracing::error!("{f}");
        }
        let timeout = self.peer_timeout_ms;
        let mut statuses: Vec<_> = ingress
            .producers(timeout)
            .map(|(def, st)| (def, "producer", st))
            .collect();
        statuses.push((
            &contract::ORDERS,
            "consumer",
            egress.orders_consumer(timeout),
        ));
        let mut alive = 0;
        for (i, (ring, role, st)) in statuses.into_iter().enumerate() {
            let now_seen = match st {
                PeerStatus::NeverAttached => Seen::Nobody,
                PeerStatus::Alive { pid, .. } => Seen::Alive(pid),
                PeerStatus::Stale { pid, .. } => Seen::Stale(pid),
                PeerStatus::Dead { pid } | PeerStatus::Detached { pid } => Seen::Gone(pid),
            };
            if matches!(now_seen, Seen::Alive(_)) {
                alive += 1;
            }
            if now_seen == self.seen[i] {
                continue;
            }
            let ring = ring.name;
            match st {
                PeerStatus::Alive { pid, .. } => {
                    tracing::info!(ring, role, pid, "peer attached")
                }
                PeerStatus::Stale { pid, age_ms } => {
                    tracing::warn!(ring, role, pid, age_ms, "peer stale: no heartbeat")
                }
                PeerStatus::Dead { pid } => {
                    counters.inc(counters.peer_deaths[i]);
                    tracing::warn!(
                        ring,
                        role,
                        pid,
                        "peer died without detaching; a new {role} may attach"
                    )
                }
                PeerStatus::Detached { pid } => tracing::info!(ring, role, pid, "peer detached"),
                PeerStatus::NeverAttached => {}
            }
            self.seen[i] = now_seen;
        }
        let readers = egress.results_readers(timeout);
        counters.set(counters.peers_alive, alive + readers as u64);
        // A consumer that replaces an earlier one gets every order without a final outcome
        // again: the earlier one may have taken intents off the ring and died before sending
        // or answering them. The first consumer ever finds every intent still in the ring.
        if let Seen::Alive(pid) = self.seen[contract::ORDERS.index as usize] {
            if self.offered_to != Some(pid) && !ingress.is_holding() {
                self.offered_to = Some(pid);
                if egress.orders_attaches() > 1 {
                    tracing::info!(pid, "a new orders consumer replaced an earlier one: offering it every order without a final outcome, to look up first");
                    ingress.hold((contract::ORDERS.index, Input::Reoffer, None));
                }
            }
        }
    }

    /// Copies the engine's book into the gauges, every [`GAUGES_EVERY_MS`].
    pub fn gauges_if_due(&mut self, counters: &mut Counters) {
        let now = clock_ms();
        if now < self.next_gauges {
            return;
        }
        self.next_gauges = now + GAUGES_EVERY_MS;
        self.refresh_gauges(counters);
    }

    /// Copies the engine's book into the gauges now.
    pub fn refresh_gauges(&self, counters: &mut Counters) {
        for i in 0..self.n_symbols {
            if let Some(view) = self.book.view(SymbolId(i as u16)) {
                counters.book(i, &view);
            }
        }
    }
}
