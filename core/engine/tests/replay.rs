//! Replay: the journal's recorded inputs through a new engine reproduce every recorded
//! decision under the same configuration (restarts, re-attaches, order reports, switches and
//! throttles included), and under another one say what would have changed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use quantum_core::event::{Event, Switch};
use quantum_core::governor::{GovMode, GovernorConfig};
use quantum_core::orders::{Failure, OrderInput, Report};
use quantum_core::p33::P33Reason;
use quantum_core::recovery::State;
use quantum_core::replay::{replay_all, Decision, OrderNote, Replay};
use quantum_core::result::Block;
use quantum_core::{
    Action, Clock, Command, Decision as PlanDecision, Engine, EngineConfig, Input, Outcome, Plan,
    PlanId, PositionSide, SymbolId,
};
use quantum_ipc::codes::{ContractStatus, FailKind, OrderStatus, ReportSource, UnknownReason};
use support::{p, q, RING};

/// A daemon as the journal sees it: an engine on a mocked clock, every event it makes
/// appended, and restarts done the daemon's way (fold the journal, restore, `Started` first).
struct Recorder {
    cfg: EngineConfig,
    clock: Clock,
    mock: Arc<quanta::Mock>,
    engine: Engine,
    journal: Vec<Event>,
}

impl Recorder {
    fn new(cfg: EngineConfig) -> Recorder {
        let (clock, mock) = Clock::mock();
        mock.increment(Duration::from_secs(48 * 3600));
        let engine = Engine::new(cfg.clone(), clock.clone()).unwrap();
        let mut r = Recorder {
            cfg,
            clock,
            mock,
            engine,
            journal: Vec::new(),
        };
        r.restart(false);
        r
    }

    fn now_ms(&self) -> u64 {
        self.clock.wall_ms(self.clock.now_ns())
    }

    fn advance(&mut self, ms: u64) {
        self.mock.increment(Duration::from_millis(ms));
        let mut out = Vec::new();
        self.engine.poll(&mut |e| out.push(e));
        self.journal.extend(out);
    }

    fn folded(&self) -> State {
        let mut s = State::new(
            self.cfg.symbols.len(),
            self.cfg.dedupe_horizon_ms,
            self.cfg.max_orders,
        );
        for (i, e) in self.journal.iter().enumerate() {
            s.apply(i as u64 + 1, e);
        }
        s
    }

    /// A restart as `quantum run` does one: the journal folded and restored into a new
    /// engine, the start journaled first; then the exchange adapter re-attaches.
    fn restart(&mut self, history: bool) {
        let state = self.folded();
        self.engine = Engine::new(self.cfg.clone(), self.clock.clone()).unwrap();
        let mut out = Vec::new();
        self.engine.restore(&state, &mut |e| out.push(e)).unwrap();
        if history {
            self.engine.require_history(&mut |e| out.push(e));
        }
        out.insert(
            0,
            Event::Started {
                history,
                at_ms: self.now_ms(),
                since_ms: self.engine.front.history_since_ms(),
            },
        );
        self.journal.extend(out);
        self.input(Input::Reoffer);
        // The bridge tells the account's mode at every (re)attach: the configuration's.
        let hedge = self.cfg.symbols.iter().any(|s| s.side.is_hedge());
        self.command(Command::AccountMode { hedge });
    }

    fn input(&mut self, i: Input) -> Vec<Event> {
        let mut out = Vec::new();
        self.engine.handle(i, RING, &mut |e| out.push(e)).unwrap();
        self.engine.poll(&mut |e| out.push(e));
        self.journal.extend(out.iter().copied());
        out
    }

    fn plan(&mut self, p: Plan) -> Vec<Event> {
        self.input(Input::Plan(p))
    }

    /// The daemon killed while it journaled `p`'s events: only the first `k` reach the
    /// journal (the crash test's `event_journaled` crash point), then it restarts.
    fn crash_during(&mut self, p: Plan, k: usize) {
        let mut out = Vec::new();
        self.engine
            .handle(Input::Plan(p), RING, &mut |e| out.push(e))
            .unwrap();
        self.journal.extend(out.into_iter().take(k));
        self.restart(false);
    }

    fn command(&mut self, c: Command) {
        self.input(Input::Command(c));
    }

    fn sym(&self, name: &str) -> SymbolId {
        self.engine.symbols().id(name).unwrap()
    }
}

fn exit(id: u64, symbol: SymbolId, action: Action) -> Plan {
    Plan::exit(PlanId(id), symbol, PlanDecision::Execute, action)
}

fn report(
    plan: PlanId,
    symbol: SymbolId,
    side: quantum_core::Side,
    status: OrderStatus,
    cum: Qty,
) -> Input {
    Input::Order(OrderInput::Report(Report {
        plan,
        symbol,
        side,
        status,
        cum_qty: cum,
        price: p("100"),
        order_id: 1000 + plan.0,
        time_ms: 5,
        orig_qty: cum,
        source: ReportSource::Stream,
    }))
}

use quantum_core::Qty;

fn failure(plan: PlanId, symbol: SymbolId, kind: FailKind, reason: u16, at_ms: u64) -> Input {
    Input::Order(OrderInput::Failed(Failure {
        plan,
        symbol,
        kind,
        reason,
        exchange_code: if kind == FailKind::Rejected { -2019 } else { 0 },
        at_ms,
    }))
}

/// A small deterministic generator (the story must be the same every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn production() -> EngineConfig {
    EngineConfig {
        table_capacity: 64,
        dedupe_capacity: 4096,
        governor: GovernorConfig {
            mode: GovMode::Production,
            rate_limit: 3,
            rate_window_ms: 20_000,
            cooldown_ms: 1_500,
            ..GovernorConfig::default()
        },
        ..EngineConfig::default()
    }
}

/// A day in the life of a core: plans of every kind, re-deliveries, stale plans, positions and
/// ledger syncs, switches, order reports of every kind (fills, partial fills, rejections,
/// unknown outcomes resolved either way), and three restarts, one that cannot trust its
/// journal, one with orders in flight.
fn story(seed: u64) -> Recorder {
    let mut r = Recorder::new(production());
    let names = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
    let syms: Vec<SymbolId> = names.iter().map(|n| r.sym(n)).collect();
    let mut pos = [q("0.9"), q("40"), q("-900")];
    for (i, s) in syms.iter().enumerate() {
        r.command(Command::Position {
            symbol: *s,
            amount: pos[i],
            mark: p("100"),
        });
        r.command(Command::SetLedger {
            symbol: *s,
            amount: pos[i],
        });
    }
    let mut rng = Lcg(seed);
    let mut live: Vec<quantum_core::OrderIntent> = Vec::new();
    let mut next_id = 1u64;
    for step in 0..400 {
        r.advance(rng.next(900));
        match rng.next(20) {
            0..=8 => {
                let s = syms[rng.next(3) as usize];
                let action = [
                    Action::Partial25,
                    Action::Partial50,
                    Action::Partial75,
                    Action::FullClose,
                ][rng.next(4) as usize];
                let mut plan = exit(next_id, s, action);
                next_id += 1;
                if rng.next(10) == 0 {
                    plan.created_at_ms = r.now_ms() - 3_600_000; // stale
                }
                let ev = r.plan(plan);
                live.extend(support::intents(&ev));
            }
            // A re-delivery of an earlier plan.
            9 if next_id > 1 => {
                let id = 1 + rng.next(next_id - 1);
                let s = syms[(id % 3) as usize];
                r.plan(exit(id, s, Action::Partial50));
            }
            10 => {
                let s = syms[rng.next(3) as usize];
                r.plan(Plan::exit(
                    PlanId(1 << 40 | step),
                    s,
                    PlanDecision::Hold,
                    Action::None,
                ));
            }
            11..=15 if !live.is_empty() => {
                let k = rng.next(live.len() as u64) as usize;
                let o = live[k];
                let sent = Input::Order(OrderInput::Sent {
                    plan: o.plan,
                    symbol: o.symbol,
                    at_ms: r.now_ms(),
                });
                r.input(sent);
                match rng.next(7) {
                    0 => {
                        let half = Qty::from_units(o.qty.units() / 2);
                        r.input(report(
                            o.plan,
                            o.symbol,
                            o.side,
                            OrderStatus::PartiallyFilled,
                            half,
                        ));
                    }
                    1 => {
                        r.input(failure(o.plan, o.symbol, FailKind::Rejected, 3, r.now_ms()));
                        live.remove(k);
                    }
                    2 => {
                        r.input(failure(
                            o.plan,
                            o.symbol,
                            FailKind::Unknown,
                            UnknownReason::Ambiguous.code(),
                            r.now_ms(),
                        ));
                    }
                    3 => {
                        r.input(failure(o.plan, o.symbol, FailKind::NotFound, 0, r.now_ms()));
                    }
                    4 => {
                        // The exchange's own REJECTED status (no adapter codes).
                        r.input(report(
                            o.plan,
                            o.symbol,
                            o.side,
                            OrderStatus::Rejected,
                            Qty::ZERO,
                        ));
                        live.remove(k);
                    }
                    _ => {
                        r.input(report(
                            o.plan,
                            o.symbol,
                            o.side,
                            OrderStatus::New,
                            Qty::ZERO,
                        ));
                        r.input(report(o.plan, o.symbol, o.side, OrderStatus::Filled, o.qty));
                        live.remove(k);
                        let i = syms.iter().position(|s| *s == o.symbol).unwrap();
                        let signed = if pos[i].units() > 0 {
                            -o.qty.units()
                        } else {
                            o.qty.units()
                        };
                        pos[i] = Qty::from_units(pos[i].units() + signed);
                        r.command(Command::Position {
                            symbol: o.symbol,
                            amount: pos[i],
                            mark: p("100"),
                        });
                    }
                }
            }
            16 => {
                let i = rng.next(3) as usize;
                r.command(Command::SetLedger {
                    symbol: syms[i],
                    amount: pos[i],
                });
            }
            17 => {
                let on = rng.next(2) == 0;
                r.command(Command::Switch(Switch::SymbolKillSwitch(
                    syms[rng.next(3) as usize],
                    on,
                )));
            }
            18 => {
                let i = rng.next(3) as usize;
                r.command(Command::Position {
                    symbol: syms[i],
                    amount: pos[i],
                    mark: p("101"),
                });
            }
            _ => {}
        }
        if let Some(k) = match step {
            60 => Some(1),
            170 => Some(3),
            260 => Some(4),
            _ => None,
        } {
            // Killed after the first k events of an executed plan were journaled: its
            // acceptance, its permits, its intent.
            let s = syms[rng.next(3) as usize];
            r.crash_during(exit(next_id, s, Action::Partial25), k);
            next_id += 1;
        }
        if step == 120 || step == 330 {
            r.restart(false);
            for (i, s) in syms.iter().enumerate() {
                r.command(Command::Position {
                    symbol: *s,
                    amount: pos[i],
                    mark: p("100"),
                });
            }
        }
        if step == 290 {
            // Failover: this host takes the lead; every symbol waits for its history, then,
            // once no order of ours on it can fill, for its ledger from the shared ledger.
            let mut ev = r.input(Input::Lead { epoch: 5 });
            let since = r.engine.front.history_since_ms();
            for s in &syms {
                ev.extend(r.input(Input::History(quantum_core::input::History {
                    symbol: *s,
                    orders: 0,
                    since_ms: since,
                    through_ms: r.now_ms(),
                })));
            }
            for e in ev {
                if let Event::LedgerWanted { symbol, epoch, .. } = e {
                    let i = syms.iter().position(|s| *s == symbol).unwrap();
                    r.command(Command::LedgerBase {
                        symbol,
                        amount: pos[i],
                        epoch,
                    });
                }
            }
            for (i, s) in syms.iter().enumerate() {
                r.command(Command::Position {
                    symbol: *s,
                    amount: pos[i],
                    mark: p("100"),
                });
            }
        }
        if step == 230 {
            // A start that cannot trust its journal: every symbol waits for its history.
            r.restart(true);
            let since = r.engine.front.history_since_ms();
            for (i, s) in syms.iter().enumerate() {
                r.input(Input::History(quantum_core::input::History {
                    symbol: *s,
                    orders: 0,
                    since_ms: since,
                    through_ms: r.now_ms(),
                }));
                r.command(Command::Position {
                    symbol: *s,
                    amount: pos[i],
                    mark: p("100"),
                });
            }
        }
    }
    r
}

/// The replay made the recording's events one for one, times included (but the refusals: a
/// refused input changes nothing and is not replayed), and its own events fold into the very
/// state the recording's do.
fn same_as_recorded(replay: &Replay, r: &Recorder, what: &str) {
    let recorded: Vec<Event> = r
        .journal
        .iter()
        .filter(|e| !matches!(e, Event::Refused(_)))
        .copied()
        .collect();
    let made = replay.events();
    if let Some(i) = (0..made.len().min(recorded.len())).find(|i| made[*i] != recorded[*i]) {
        panic!(
            "{what}: event {i} differs:\n recorded {:?}\n replayed {:?}",
            recorded[i], made[i]
        );
    }
    assert_eq!(made.len(), recorded.len(), "{what}");
    let (mut mine, mut theirs) = (replay.state().clone(), r.folded());
    let refused = (r.journal.len() - recorded.len()) as u64;
    assert_eq!(mine.seq + refused, theirs.seq, "{what}");
    (mine.seq, theirs.seq) = (0, 0);
    assert_eq!(mine, theirs, "{what}");
}

fn results(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::PlanResult(_)))
        .count()
}

#[test]
fn the_same_configuration_reproduces_every_recorded_decision() {
    for seed in [1, 7, 42] {
        let r = story(seed);
        let journal = &r.journal;
        let classes: std::collections::BTreeSet<&str> = journal
            .iter()
            .filter_map(|e| match e {
                Event::PlanResult(x) => Some(x.outcome.class().name()),
                _ => None,
            })
            .collect();
        assert!(
            classes.len() >= 4,
            "a story with many kinds of answers: {classes:?}"
        );
        assert!(
            journal
                .iter()
                .any(|e| matches!(e, Event::LedgerWanted { .. }))
                && journal.iter().any(|e| matches!(e, Event::Leading { .. })),
            "seed {seed}: a lead, and a ledger asked for"
        );
        let cfg = production();
        let mut replay = Replay::new(
            cfg.clone(),
            State::new(cfg.symbols.len(), cfg.dedupe_horizon_ms, cfg.max_orders),
        )
        .unwrap();
        replay.keep_events();
        let mut decisions: Vec<Decision> = Vec::new();
        for (i, e) in journal.iter().enumerate() {
            replay
                .feed(i as u64 + 1, e, &mut |d| decisions.push(d))
                .unwrap();
        }
        // The replay's own journal folds into the very state the recording's does (it has
        // fewer events: a refused input is journaled, changes nothing and is not replayed).
        same_as_recorded(&replay, &r, &format!("seed {seed}"));
        // Each answer is paired as soon as both sides exist: nothing is left for the end.
        assert_eq!(decisions.len(), results(journal), "seed {seed}");
        let so_far = replay.counts();
        assert_eq!(so_far.events, journal.len() as u64, "seed {seed}");
        assert!(so_far.inputs > results(journal) as u64, "seed {seed}");
        assert!(replay.engine().is_some());
        let counts = replay.finish(&mut |d| decisions.push(d));
        assert_eq!(counts, so_far);
        assert_eq!(decisions.len(), results(journal), "seed {seed}");
        for d in &decisions {
            // The recorded answer's time, which the replayed one shares.
            let (rec, rep) = (d.recorded.unwrap(), d.replayed.unwrap());
            assert_eq!(d.at_ms(), rec.result.at_ms);
            assert_eq!(rep.result.at_ms, rec.result.at_ms);
            // And what each verdict was judged with: the same permits, the same order, for
            // plans a crash cut short too.
            assert_eq!(
                (rep.gov, rep.p33, rep.intent),
                (rec.gov, rec.p33, rec.intent),
                "seed {seed}: {d:?}"
            );
            // The plan as it arrived (an EXECUTE plan's action is journaled with it).
            if d.plan.decision == PlanDecision::Execute {
                assert_ne!(d.plan.action, Action::None, "seed {seed}: {d:?}");
            }
        }
        let changed: Vec<_> = decisions.iter().filter(|d| d.changed()).collect();
        assert!(changed.is_empty(), "seed {seed}: {changed:#?}");
        assert_eq!(counts.starts, 7, "seed {seed}");
        let restored: Vec<&str> = journal
            .iter()
            .filter_map(|e| match e {
                Event::PlanResult(x) if x.outcome == Outcome::Blocked(Block::Interrupted) => {
                    Some("interrupted")
                }
                _ => None,
            })
            .collect();
        assert!(
            restored.len() >= 2,
            "seed {seed}: plans cut by a crash: {restored:?}"
        );
        assert_eq!(
            (counts.dropped_reports, counts.refused),
            (0, 0),
            "seed {seed}"
        );
        assert!(!counts.legacy);
        let executed = decisions
            .iter()
            .filter(|d| d.order_note() == OrderNote::Same)
            .count();
        assert!(executed > 10, "seed {seed}: {executed} orders");
    }
}

/// The seeds' story as a journal: BTCUSDT's exchange 0.062 against a ledger of 0.002 is denied;
/// the re-delivery is a duplicate; the operator syncs the ledger (to 0.0615: the figure
/// they had, 0.0005 short, within the 0.001 tolerance), and the next plans execute and fill.
fn seeds_story() -> Recorder {
    let mut r = Recorder::new(EngineConfig::default());
    let btc = r.sym("BTCUSDT");
    let eth = r.sym("ETHUSDT");
    r.command(Command::Position {
        symbol: btc,
        amount: q("0.062"),
        mark: p("104000"),
    });
    r.command(Command::SetLedger {
        symbol: btc,
        amount: q("0.002"),
    });
    let first = exit(0xf1a8_d7f4_8713_d5cf, btc, Action::Partial75);
    r.plan(first);
    r.advance(5_000);
    r.plan(first);
    r.plan(Plan::exit(
        PlanId(0x0e7d_2f78_aa00_0001),
        eth,
        PlanDecision::Hold,
        Action::None,
    ));
    r.command(Command::SetLedger {
        symbol: btc,
        amount: q("0.0615"),
    });
    let mut position = q("0.062");
    for (id, action) in [
        (0xf33e_ffa0_343b_ecc4u64, Action::Partial75),
        (0xf33e_ffa0_343b_ecc5, Action::FullClose),
    ] {
        r.advance(2_000);
        let ev = r.plan(exit(id, btc, action));
        let o = support::intents(&ev)[0];
        r.input(Input::Order(OrderInput::Sent {
            plan: o.plan,
            symbol: o.symbol,
            at_ms: r.now_ms(),
        }));
        r.input(report(o.plan, btc, o.side, OrderStatus::Filled, o.qty));
        position = Qty::from_units(position.units() - o.qty.units());
        r.command(Command::Position {
            symbol: btc,
            amount: position,
            mark: p("104000"),
        });
    }
    r
}

fn with_tolerance(tolerance: &str) -> EngineConfig {
    let mut cfg = EngineConfig::default();
    for s in &mut cfg.symbols {
        if s.name == "BTCUSDT" {
            s.tolerance = q(tolerance);
        }
    }
    cfg
}

#[test]
fn a_tighter_tolerance_denies_the_executed_btcusdt_plans_and_says_so() {
    let r = seeds_story();
    let (same, _) = replay_all(EngineConfig::default(), &r.journal).unwrap();
    assert!(same.iter().all(|d| !d.changed()), "{same:#?}");
    assert_eq!(
        same.iter()
            .filter(|d| d.order_note() == OrderNote::Same)
            .count(),
        2
    );

    let (tight, counts) = replay_all(with_tolerance("0.0001"), &r.journal).unwrap();
    let changed: Vec<&Decision> = tight.iter().filter(|d| d.changed()).collect();
    assert_eq!(changed.len(), 2, "{tight:#?}");
    for d in &changed {
        assert_eq!(d.plan.symbol, r.sym("BTCUSDT"));
        let rec = d.recorded.unwrap();
        let rep = d.replayed.unwrap();
        assert!(
            matches!(rec.result.outcome, Outcome::Executed { .. }),
            "{rec:?}"
        );
        let Outcome::Blocked(Block::P33Denied(P33Reason::ReconcileRequiredQtyMismatch, ctx)) =
            rep.result.outcome
        else {
            panic!("{rep:?}");
        };
        assert_eq!(ctx.tolerance, q("0.0001"));
        assert!(ctx.diff() > ctx.tolerance);
        assert_eq!(
            rep.label(),
            (
                "blocked",
                Some("p33_denied:reconcile_required_qty_mismatch".to_string())
            )
        );
        // What P3.3 compared, and the governor's verdict, come with the replayed answer.
        let p33 = rep.p33.expect("the replayed P3.3 permit");
        assert_eq!((p33.allow, p33.context), (false, ctx));
        assert!(rep.gov.expect("the replayed governor permit").allow);
        assert_eq!(rec.p33.unwrap().context.tolerance, q("0.001"));
        // The order was not sent: the exchange's reports of it are dropped.
        assert_eq!(d.order_note(), OrderNote::NotSent);
        assert_eq!(d.order_note().name(), "not_sent");
    }
    // Sent, accepted, filled, done: four recorded events for each of the two orders.
    assert_eq!(counts.dropped_reports, 8, "{counts:?}");
    // Each decision names the journal's event of its recorded result.
    for d in &tight {
        let at = usize::try_from(d.seq).unwrap() - 1;
        assert!(
            matches!(r.journal[at], Event::PlanResult(x) if x.plan == d.plan.id),
            "{d:?}"
        );
    }
}

#[test]
fn a_looser_tolerance_would_have_ordered_the_denied_plan_its_fill_unknown() {
    let r = seeds_story();
    let (loose, counts) = replay_all(with_tolerance("0.1"), &r.journal).unwrap();
    let first = loose
        .iter()
        .find(|d| d.plan.id == PlanId(0xf1a8_d7f4_8713_d5cf))
        .unwrap();
    assert!(first.changed());
    assert_eq!(first.order_note(), OrderNote::WouldSend);
    let rep = first.replayed.unwrap();
    assert!(
        matches!(rep.result.outcome, Outcome::Executed { .. }),
        "{rep:?}"
    );
    // Nothing is invented for it: the next plan sizes on it as an order still in flight, so
    // its order differs from the recorded one, and that one's fill is unknown too.
    let next = loose
        .iter()
        .find(|d| d.plan.id == PlanId(0xf33e_ffa0_343b_ecc4))
        .unwrap();
    assert_eq!(next.order_note(), OrderNote::Differs, "{next:#?}");
    assert!(next.changed(), "another quantity is a change: {next:#?}");
    // Both recorded orders differ from the replayed ones: their four events each are dropped.
    assert_eq!(counts.dropped_reports, 8, "{counts:?}");
    let names: std::collections::BTreeSet<&str> = [
        OrderNote::None,
        OrderNote::Same,
        OrderNote::Differs,
        OrderNote::NotSent,
        OrderNote::WouldSend,
    ]
    .iter()
    .map(|n| n.name())
    .collect();
    assert_eq!(names.len(), 5, "{names:?}");
}

/// A journal of the version before `Started` and `PlanSeen` (the same story with those events
/// taken out, as that version wrote it) replays unchanged: a start is recognised by every
/// symbol starting to reconcile, and a plan answered at admission by its result.
#[test]
fn a_journal_without_start_events_still_replays_unchanged() {
    for seed in [3, 9] {
        let r = story(seed);
        let old: Vec<Event> = r
            .journal
            .iter()
            .filter(|e| {
                !matches!(
                    e,
                    Event::Started { .. } | Event::PlanSeen { .. } | Event::AccountMode { .. }
                )
            })
            .copied()
            .collect();
        let seen = r.journal.len() - old.len();
        assert!(
            seen > 4,
            "seed {seed}: the story has refused plans and starts"
        );
        let (decisions, counts) = replay_all(production(), &old).unwrap();
        assert!(counts.legacy);
        assert_eq!(counts.starts, 7, "seed {seed}: every start recognised");
        assert_eq!(decisions.len(), results(&old), "seed {seed}");
        let changed: Vec<_> = decisions.iter().filter(|d| d.changed()).collect();
        assert!(changed.is_empty(), "seed {seed}: {changed:#?}");
    }
}

/// A journal of the version before the account's mode was journaled (it has `Started` and
/// `PlanSeen`, and no `AccountMode`): told so, the replay makes every start's account
/// one-way, as that version traded, and changes nothing; not told, every plan after a start
/// is denied `position_mode_unknown`.
#[test]
fn a_journal_without_account_modes_replays_as_one_way() {
    let r = story(5);
    let old: Vec<Event> = r
        .journal
        .iter()
        .filter(|e| !matches!(e, Event::AccountMode { .. }))
        .copied()
        .collect();
    assert!(old.len() < r.journal.len());
    let cfg = production();
    let run = |journaled: bool| {
        let mut replay = Replay::new(
            cfg.clone(),
            State::new(cfg.symbols.len(), cfg.dedupe_horizon_ms, cfg.max_orders),
        )
        .unwrap();
        replay.account_journaled(journaled);
        let mut out = Vec::new();
        for (i, e) in old.iter().enumerate() {
            replay.feed(i as u64 + 1, e, &mut |d| out.push(d)).unwrap();
        }
        let counts = replay.finish(&mut |d| out.push(d));
        assert!(!counts.legacy);
        out
    };
    let told = run(false);
    assert_eq!(told.len(), results(&old));
    assert!(told.iter().all(|d| !d.changed()), "{told:#?}");
    let unknown = run(true)
        .into_iter()
        .filter(|d| {
            d.replayed.is_some_and(|v| {
                matches!(
                    v.result.outcome,
                    Outcome::Blocked(Block::P33Denied(P33Reason::PositionModeUnknown, _))
                )
            })
        })
        .count();
    assert!(unknown > 10, "{unknown} plans denied position_mode_unknown");
}

/// Bad configurations are refused with the reason, before anything is replayed.
#[test]
fn an_invalid_configuration_is_refused() {
    let cfg = EngineConfig {
        dedupe_horizon_ms: 1_000,
        max_plan_age_ms: 60_000,
        ..EngineConfig::default()
    };
    let e = replay_all(cfg, &seeds_story().journal).unwrap_err();
    assert!(e.to_string().starts_with("configuration: "), "{e}");
}

/// Permits from the legacy services (`permits = external`) are inputs too: they arrive while
/// plans wait, out of order, some never, some too late; the replay feeds them at their issue
/// time and every plan is answered as it was, the waits that ran out included.
#[test]
fn legacy_permits_and_waits_that_run_out_replay_as_they_ran() {
    use quantum_core::config::PermitSource;
    use quantum_core::engine::ExternalPermit;
    use quantum_core::governor::GovReason;
    use quantum_core::permit::P33Context;
    let cfg = EngineConfig {
        permits: PermitSource::External,
        apply_wait_ms: 2_000,
        ..production()
    };
    let mut r = Recorder::new(cfg.clone());
    let syms: Vec<SymbolId> = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        .iter()
        .map(|n| r.sym(n))
        .collect();
    for (s, amount) in syms.iter().zip(["0.9", "40", "-900"]) {
        r.command(Command::Position {
            symbol: *s,
            amount: q(amount),
            mark: p("100"),
        });
        r.command(Command::SetLedger {
            symbol: *s,
            amount: q(amount),
        });
    }
    let mut rng = Lcg(11);
    let mut waiting: Vec<Plan> = Vec::new();
    for id in 1..=300u64 {
        r.advance(rng.next(400));
        let s = syms[rng.next(3) as usize];
        let plan = exit(id, s, Action::Partial25);
        r.plan(plan);
        waiting.push(plan);
        // Permits for some of the waiting plans, in any order.
        while !waiting.is_empty() && rng.next(3) != 0 {
            let k = rng.next(waiting.len() as u64) as usize;
            let w = waiting.swap_remove(k);
            r.advance(rng.next(300));
            let allow = rng.next(5) != 0;
            r.input(Input::Permit(ExternalPermit::Gov {
                plan: w.id,
                allow,
                reason: (!allow).then_some(GovReason::Cooldown),
                ttl_ms: 15_000,
            }));
            if rng.next(6) == 0 {
                continue; // P3.3 never answers: the wait runs out
            }
            r.advance(rng.next(300));
            let side = if w.symbol == syms[2] {
                quantum_core::Side::Buy
            } else {
                quantum_core::Side::Sell
            };
            let p33_allow = rng.next(4) != 0;
            r.input(Input::Permit(ExternalPermit::P33 {
                plan: w.id,
                allow: p33_allow,
                reason: (!p33_allow).then_some(P33Reason::NoPosition),
                safe_qty: if w.symbol == syms[2] {
                    q("1")
                } else {
                    q("0.001")
                },
                side: Some(side),
                context: P33Context::default(),
                ttl_ms: 15_000,
            }));
        }
        if rng.next(10) == 0 {
            // Too late: a permit for a plan no longer waiting is refused.
            r.input(Input::Permit(ExternalPermit::Gov {
                plan: PlanId(1 + rng.next(id)),
                allow: true,
                reason: None,
                ttl_ms: 15_000,
            }));
        }
    }
    r.advance(5_000);
    let journal = r.journal.clone();
    let expired = journal
        .iter()
        .filter(|e| matches!(e, Event::PlanResult(x) if matches!(x.outcome, Outcome::Blocked(Block::MissingGov | Block::MissingP33))))
        .count();
    let executed = journal
        .iter()
        .filter(|e| matches!(e, Event::PlanResult(x) if x.executed()))
        .count();
    assert!(
        expired > 10 && executed > 10,
        "{expired} waits ran out, {executed} executed"
    );

    let mut replay = Replay::new(
        cfg.clone(),
        State::new(cfg.symbols.len(), cfg.dedupe_horizon_ms, cfg.max_orders),
    )
    .unwrap();
    replay.keep_events();
    let mut decisions = Vec::new();
    for (i, e) in journal.iter().enumerate() {
        replay
            .feed(i as u64 + 1, e, &mut |d| decisions.push(d))
            .unwrap();
    }
    same_as_recorded(&replay, &r, "legacy permits");
    // With a shorter wait, plans whose permits came late run out of time: the permits that come
    // after are refused (counted), and those plans change.
    let short = EngineConfig {
        apply_wait_ms: 200,
        ..cfg.clone()
    };
    let (d, counts) = replay_all(short, &journal).unwrap();
    assert!(counts.refused > 0, "{counts:?}");
    assert!(
        d.iter().any(|d| d.changed()
            && matches!(
                d.replayed.unwrap().result.outcome,
                Outcome::Blocked(Block::MissingGov | Block::MissingP33)
            )),
        "a plan answered otherwise for want of a permit"
    );
    // A permit table of two slots: plans that waited three at a time find none, and say so.
    let small = EngineConfig {
        table_capacity: 2,
        ..cfg.clone()
    };
    let (_, counts) = replay_all(small, &journal).unwrap();
    assert!(counts.table_full > 0, "{counts:?}");
    replay.finish(&mut |d| decisions.push(d));
    assert_eq!(decisions.len(), results(&journal));
    assert!(decisions.iter().all(|d| !d.changed()));
}

/// A shorter dedupe horizon forgets the denied plan before its re-delivery 5 s later: the
/// replay judges it again (and denies it again, the ledger still out of sync) instead of
/// answering it as a duplicate.
#[test]
fn a_shorter_dedupe_horizon_judges_a_redelivery_again() {
    let r = seeds_story();
    let cfg = EngineConfig {
        dedupe_horizon_ms: 3_000,
        max_plan_age_ms: 3_000,
        ..EngineConfig::default()
    };
    let (short, _) = replay_all(cfg, &r.journal).unwrap();
    let changed: Vec<&Decision> = short.iter().filter(|d| d.changed()).collect();
    assert_eq!(changed.len(), 1, "{short:#?}");
    let d = changed[0];
    assert_eq!(d.plan.id, PlanId(0xf1a8_d7f4_8713_d5cf));
    assert!(d.recorded.unwrap().result.outcome.is_duplicate());
    assert!(
        matches!(
            d.replayed.unwrap().result.outcome,
            Outcome::Blocked(Block::P33Denied(P33Reason::ReconcileRequiredQtyMismatch, _))
        ),
        "{d:?}"
    );
}

/// A hedge-mode story: BTCUSDT's LONG and SHORT sides closed by their own plans, a mismatch on
/// one side, a plan naming no side, a symbol that stopped trading and traded again, and a
/// restart (after which the account's mode is told again). Replayed under the same
/// configuration it makes the recorded events one for one.
#[test]
fn a_hedge_mode_story_replays_side_by_side() {
    let d = quantum_core::SymbolSpec::defaults();
    let hedge = EngineConfig {
        symbols: vec![
            d[0].on_side(PositionSide::Long),
            d[0].on_side(PositionSide::Short),
            d[1].on_side(PositionSide::Long),
            d[1].on_side(PositionSide::Short),
        ],
        ..EngineConfig::default()
    };
    let mut r = Recorder::new(hedge.clone());
    let (long, short) = (r.sym("BTCUSDT:LONG"), r.sym("BTCUSDT:SHORT"));
    let eth = r.sym("ETHUSDT:LONG");
    let stock = |r: &mut Recorder, s, amount: &str| {
        r.command(Command::Position {
            symbol: s,
            amount: q(amount),
            mark: p("100"),
        });
        r.command(Command::SetLedger {
            symbol: s,
            amount: q(amount),
        });
    };
    stock(&mut r, long, "0.2");
    stock(&mut r, short, "-0.1");
    stock(&mut r, eth, "3");
    let named = |id, s, side| Plan {
        position_side: Some(side),
        ..exit(id, s, Action::Partial50)
    };
    let ev = r.plan(named(1, long, PositionSide::Long));
    let i1 = ev
        .iter()
        .find_map(|e| match e {
            Event::OrderIntent(i) => Some(*i),
            _ => None,
        })
        .expect("the long side's order");
    r.input(report(
        i1.plan,
        i1.symbol,
        i1.side,
        OrderStatus::Filled,
        i1.qty,
    ));
    r.command(Command::Position {
        symbol: long,
        amount: q("0.1"),
        mark: p("100"),
    });
    r.command(Command::SetLedger {
        symbol: short,
        amount: q("-0.2"),
    });
    r.plan(named(2, short, PositionSide::Short));
    r.plan(exit(3, short, Action::FullClose));
    r.command(Command::SymbolStatus {
        symbol: eth,
        status: ContractStatus::Settling,
    });
    r.plan(named(4, eth, PositionSide::Long));
    r.advance(50);
    r.restart(false);
    stock(&mut r, long, "0.1");
    stock(&mut r, short, "-0.1");
    stock(&mut r, eth, "3");
    r.command(Command::SymbolStatus {
        symbol: eth,
        status: ContractStatus::Trading,
    });
    r.plan(named(5, eth, PositionSide::Long));
    r.plan(named(6, short, PositionSide::Short));
    let reasons: Vec<Outcome> = r
        .journal
        .iter()
        .filter_map(|e| match e {
            Event::PlanResult(x) => Some(x.outcome),
            _ => None,
        })
        .collect();
    let denied = |why| Outcome::Blocked(Block::P33Denied(why, Default::default()));
    let same_kind = |a: &Outcome, b: &Outcome| match (a, b) {
        (Outcome::Blocked(Block::P33Denied(x, _)), Outcome::Blocked(Block::P33Denied(y, _))) => {
            x == y
        }
        (Outcome::Executed { .. }, Outcome::Executed { .. }) => true,
        _ => a == b,
    };
    let want = [
        Outcome::Executed { qty: q("0.1") },
        denied(P33Reason::ReconcileRequiredQtyMismatch),
        denied(P33Reason::PositionSideRequired),
        denied(P33Reason::SymbolNotTrading),
        Outcome::Executed { qty: q("1.5") },
        Outcome::Executed { qty: q("0.05") },
    ];
    assert_eq!(reasons.len(), want.len(), "{reasons:?}");
    for (got, want) in reasons.iter().zip(&want) {
        assert!(same_kind(got, want), "{got:?} is not {want:?}");
    }
    assert!(r
        .journal
        .iter()
        .any(|e| matches!(e, Event::AccountMode { hedge: true, .. })));

    let mut replay = Replay::new(
        hedge.clone(),
        State::new(
            hedge.symbols.len(),
            hedge.dedupe_horizon_ms,
            hedge.max_orders,
        ),
    )
    .unwrap();
    replay.keep_events();
    let mut decisions = Vec::new();
    for (i, e) in r.journal.iter().enumerate() {
        replay
            .feed(i as u64 + 1, e, &mut |d| decisions.push(d))
            .unwrap();
    }
    same_as_recorded(&replay, &r, "hedge");
    replay.finish(&mut |d| decisions.push(d));
    assert_eq!(decisions.len(), 6);
    assert!(decisions.iter().all(|d| !d.changed()), "{decisions:#?}");
}
