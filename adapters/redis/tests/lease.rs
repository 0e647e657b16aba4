//! The failover lease against a real redis-server: its scripts (acquire, renew, lose,
//! release), two lease tasks of one lease name that never both may send while the lead
//! passes between them (hand-over, crash), the fenced result and ledger scripts, and that a
//! plan entry stays pending until the script that writes its result acknowledges it.

use std::time::{Duration, Instant};

use quantum_core::{Decision, Outcome, PlanId, PlanResult, Qty, SymbolId};
use quantum_ipc::lease::{boot_ns, settings, LeaseReader, LeaseRole};
use quantum_ipc::{remove_segment, CountersWriter};
use quantum_local_redis::RedisServer;
use quantum_redis::batch::{Batch, Fence};
use quantum_redis::lease::{self, Acquired, Renewed, Settings};
use quantum_redis::legacy::{self, PLAN_STREAM, RESULT_STREAM};
use quantum_redis::state::{self, Saved};
use quantum_redis::stats::Stats;
use redis::streams::StreamRangeReply;
use redis::Commands;
use tokio::sync::watch;

mod support;
use support::LeaseDaemon;

const GROUP: &str = "quantum-core";

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

async fn conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    server
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

#[tokio::test]
async fn the_scripts_acquire_renew_lose_and_release() {
    let server = RedisServer::start();
    let mut c = conn(&server).await;
    let mut sync = server.conn();
    let l = "scripts";

    assert_eq!(
        lease::acquire(&mut c, l, "ha", 5000).await.unwrap(),
        Acquired::Epoch(1)
    );
    let v: String = sync.get(lease::lease_key(l)).unwrap();
    assert_eq!(v, "ha 1");
    let epoch: u64 = sync.get(lease::epoch_key(l)).unwrap();
    assert_eq!(epoch, 1);
    match lease::acquire(&mut c, l, "hb", 5000).await.unwrap() {
        Acquired::Held { value, pttl_ms } => {
            assert_eq!(value, "ha 1");
            assert!(pttl_ms > 0 && pttl_ms <= 5000, "{pttl_ms}");
        }
        other => panic!("acquired a held lease: {other:?}"),
    }
    let epoch: u64 = sync.get(lease::epoch_key(l)).unwrap();
    assert_eq!(epoch, 1, "a failed acquisition takes no epoch");

    // Renewal: only the holder's value renews.
    let _: () = redis::cmd("PEXPIRE")
        .arg(lease::lease_key(l))
        .arg(1000)
        .query(&mut sync)
        .unwrap();
    assert_eq!(
        lease::renew(&mut c, l, "ha 1", 5000).await.unwrap(),
        Renewed::Ours
    );
    let pttl: i64 = sync.pttl(lease::lease_key(l)).unwrap();
    assert!(pttl > 4000, "renewed to the TTL: {pttl}");
    assert_eq!(
        lease::renew(&mut c, l, "hb 2", 5000).await.unwrap(),
        Renewed::Other("ha 1".into())
    );

    // Release: only the holder's value deletes.
    assert!(!lease::release(&mut c, l, "hb 2").await.unwrap());
    assert!(lease::release(&mut c, l, "ha 1").await.unwrap());
    assert!(!sync.exists::<_, bool>(lease::lease_key(l)).unwrap());
    assert_eq!(
        lease::renew(&mut c, l, "ha 1", 5000).await.unwrap(),
        Renewed::Gone,
        "a released lease is not renewed back"
    );

    // The next holder gets the next epoch; an expired lease is lost.
    assert_eq!(
        lease::acquire(&mut c, l, "hb", 150).await.unwrap(),
        Acquired::Epoch(2)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        lease::renew(&mut c, l, "hb 2", 150).await.unwrap(),
        Renewed::Gone
    );
    assert_eq!(
        lease::acquire(&mut c, l, "ha", 5000).await.unwrap(),
        Acquired::Epoch(3)
    );
}

#[test]
fn the_settings_come_from_the_daemons_gauges() {
    let s = Settings {
        ttl_ms: 3000,
        renew_ms: 1000,
        drift_ms: 200,
        recv_window_ms: 1000,
        clock_error_ms: 250,
    };
    let instance = unique("lease-gauges");
    let d = LeaseDaemon::start(&instance, &s);
    let r = quantum_ipc::CountersReader::open(&d.instance).unwrap();
    assert_eq!(Settings::from_counters(&r), Ok(Some(s)));
    let off = unique("lease-off");
    let w = CountersWriter::create(&off, 8).unwrap();
    let r = quantum_ipc::CountersReader::open(&off).unwrap();
    assert_eq!(
        Settings::from_counters(&r),
        Ok(None),
        "no gauge: failover off"
    );
    let id = w.register(settings::ENABLED).unwrap();
    w.set(id, 1);
    let err = Settings::from_counters(&r).unwrap_err();
    assert!(err.contains(settings::TTL_MS), "{err}");
    let _ = remove_segment(&format!("quantum.{off}.counters"));
}

/// Two hosts of one lease (two instances on this machine): sampled every millisecond, their
/// published leases never both may send, and every new holder has a higher epoch, through a
/// planned hand-over and a holder that stops dead without releasing (its last published view
/// is kept and sampled too, as a paused process would wake up with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_never_both_lead_and_each_new_holder_has_a_higher_epoch() {
    let server = RedisServer::start();
    let s = Settings {
        ttl_ms: 400,
        renew_ms: 100,
        drift_ms: 50,
        recv_window_ms: 100,
        clock_error_ms: 50,
    };
    let lease_name = unique("pair");
    let hosts = ["host-a", "host-b"];
    let instances = [unique("lease-a"), unique("lease-b")];
    let _daemons: Vec<LeaseDaemon> = instances
        .iter()
        .map(|i| LeaseDaemon::start(i, &s))
        .collect();
    let start = |k: usize| {
        let (tx, rx) = watch::channel(false);
        let run = lease::start(
            lease::Names {
                instance: instances[k].clone(),
                lease: lease_name.clone(),
                host: hosts[k].into(),
            },
            s,
            server.client(),
            std::sync::Arc::new(Stats::default()),
            rx,
        )
        .expect("lease task");
        (run, tx)
    };
    let mut tasks = vec![start(0), start(1)];
    let mut readers = [
        LeaseReader::new(&instances[0]),
        LeaseReader::new(&instances[1]),
    ];

    // (host, epoch) of each holder, in the order they first may send.
    let mut holders: Vec<(usize, u64)> = Vec::new();
    let mut released = false;
    let mut crashed = false;
    let mut samples = 0u64;
    let mut frozen: Option<quantum_ipc::lease::Lease> = None;
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(8) {
        let views: Vec<_> = tasks.iter().map(|(r, _)| r.handle.lease()).collect();
        let segs: Vec<_> = readers.iter_mut().map(LeaseReader::read).collect();
        let now = boot_ns();
        let sending: Vec<usize> = (0..2).filter(|&k| views[k].may_send(now)).collect();
        let frozen_sends = frozen.as_ref().is_some_and(|f| f.may_send(now));
        assert!(
            sending.len() + usize::from(frozen_sends) < 2,
            "two views may send at once: {:?} / {:?} / stopped {:?}",
            views[0],
            views[1],
            frozen
        );
        let seg_sending = segs
            .iter()
            .filter(|l| l.as_ref().is_some_and(|l| l.may_send(now)))
            .count();
        assert!(seg_sending < 2, "both lease segments say may send");
        samples += 1;
        if let Some(&k) = sending.first() {
            let epoch = views[k].epoch;
            if holders.last() != Some(&(k, epoch)) {
                holders.push((k, epoch));
            }
            let held_for = now.saturating_sub(views[k].trade_after_ns);
            if !released && held_for > 300_000_000 {
                // A planned hand-over: the other host takes it.
                released = true;
                tasks[k].0.handle.release();
            } else if released && !crashed && holders.len() >= 2 && held_for > 300_000_000 {
                // The holder dies without releasing: the other takes over once it expires.
                crashed = true;
                frozen = Some(views[k].clone());
                tasks[k].0.task.abort();
                let _ = (&mut tasks[k].0.task).await;
                tasks[k] = start(k);
            }
        }
        if holders.len() >= 3 && crashed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(samples > 500, "sampled {samples} times");
    assert!(
        holders.len() >= 3,
        "the lead passed on a release and a crash: {holders:?}"
    );
    assert!(
        holders
            .windows(2)
            .all(|w| w[0].0 != w[1].0 && w[1].1 > w[0].1),
        "each new holder is the other host, with a higher epoch: {holders:?}"
    );
    let last = tasks[holders.last().unwrap().0].0.handle.lease();
    assert_eq!(last.role, LeaseRole::Leader);
    assert_eq!(last.host, hosts[holders.last().unwrap().0]);
    for (run, stop) in tasks {
        let _ = stop.send(true);
        let _ = run.task.await;
    }
}

fn result(plan: u64) -> PlanResult {
    PlanResult {
        plan: PlanId(plan),
        symbol: SymbolId(0),
        decision: Decision::Hold,
        outcome: Outcome::NonExecute,
        wait_ns: 0,
        at_ms: 1_700_000_000_000,
    }
}

/// A plan entry read by a consumer: its id.
fn read_one(c: &mut redis::Connection, plan: u64) -> String {
    let id: String = c
        .xadd(
            PLAN_STREAM,
            "*",
            &[
                ("plan_id", format!("{plan:016x}")),
                ("symbol", "BTCUSDT".into()),
            ],
        )
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("bridge-i@h1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(PLAN_STREAM)
        .arg(">")
        .query(c)
        .unwrap();
    id
}

fn pending(c: &mut redis::Connection) -> u64 {
    let v: redis::streams::StreamPendingReply = c.xpending(PLAN_STREAM, GROUP).unwrap();
    v.count() as u64
}

fn saved() -> Saved {
    Saved {
        epoch: "e".into(),
        next_seq: 1,
        low_seq: 1,
    }
}

#[test]
fn a_fenced_write_lands_nothing_and_an_entry_is_acknowledged_only_with_its_result() {
    let server = RedisServer::start();
    let mut c = server.conn();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(PLAN_STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut c)
        .unwrap();
    let l = "fenced";
    let _: () = c.set(lease::epoch_key(l), 5).unwrap();
    let entry = read_one(&mut c, 0xab);
    assert_eq!(pending(&mut c), 1);

    // A batch with state but no result acknowledges nothing.
    let b = Batch::new(l, 1000, GROUP, 60);
    let _: redis::Value = b
        .transaction("i@h1", &saved(), "m-0")
        .query(&mut c)
        .unwrap();
    assert_eq!(pending(&mut c), 1, "pending until its result is written");

    // An old epoch's writes are fenced: nothing written, nothing acknowledged.
    let mut b = Batch::new(l, 1000, GROUP, 60);
    b.set_fence(Some(Fence {
        epoch_key: lease::epoch_key(l),
        epoch: 4,
    }));
    b.result_acking(&result(0xab), "BTCUSDT", None, std::slice::from_ref(&entry));
    b.ledger(
        l,
        "BTCUSDT",
        "0.062".parse::<Qty>().unwrap(),
        1_700_000_000_000,
    );
    let reply: redis::Value = b
        .transaction("i@h1", &saved(), "m-1")
        .query(&mut c)
        .unwrap();
    let r = b.replies(&reply);
    assert!(r.fenced());
    assert_eq!((r.fenced_results, r.fenced_ledger, r.repeated), (1, 1, 0));
    assert_eq!(c.xlen::<_, u64>(RESULT_STREAM).unwrap(), 0);
    assert!(!c
        .exists::<_, bool>(state::answered_key(l, PlanId(0xab)))
        .unwrap());
    assert!(!c
        .hexists::<_, _, bool>(legacy::position_key("BTCUSDT"), "ledger_amount")
        .unwrap());
    assert_eq!(pending(&mut c), 1, "a fenced result acknowledges nothing");

    // The current epoch's result is written with its epoch and acknowledges the entry in
    // the same call.
    let mut b = Batch::new(l, 1000, GROUP, 60);
    b.set_fence(Some(Fence {
        epoch_key: lease::epoch_key(l),
        epoch: 5,
    }));
    b.result_acking(&result(0xab), "BTCUSDT", None, std::slice::from_ref(&entry));
    b.ledger(
        l,
        "BTCUSDT",
        "0.062".parse::<Qty>().unwrap(),
        1_700_000_000_000,
    );
    let reply: redis::Value = b
        .transaction("i@h1", &saved(), "m-2")
        .query(&mut c)
        .unwrap();
    let r = b.replies(&reply);
    assert!(!r.fenced(), "{r:?}");
    assert_eq!(pending(&mut c), 0, "acknowledged with its result");
    let entries: StreamRangeReply = c.xrange_all(RESULT_STREAM).unwrap();
    assert_eq!(entries.ids.len(), 1);
    let e = &entries.ids[0];
    assert_eq!(e.get::<String>("epoch").as_deref(), Some("5"));
    assert_eq!(
        e.get::<String>("plan_id").as_deref(),
        Some("00000000000000ab")
    );
    assert!(c
        .hexists::<_, _, bool>(legacy::position_key("BTCUSDT"), "ledger_amount")
        .unwrap());

    // The plan delivered again: its answer finds the result and acknowledges the new entry,
    // writing no second result.
    let again = read_one(&mut c, 0xab);
    assert_eq!(pending(&mut c), 1);
    let mut b = Batch::new(l, 1000, GROUP, 60);
    b.set_fence(Some(Fence {
        epoch_key: lease::epoch_key(l),
        epoch: 5,
    }));
    b.result_acking(&result(0xab), "BTCUSDT", None, &[again]);
    let reply: redis::Value = b
        .transaction("i@h1", &saved(), "m-3")
        .query(&mut c)
        .unwrap();
    assert_eq!(b.replies(&reply).repeated, 1);
    assert_eq!(pending(&mut c), 0);
    assert_eq!(c.xlen::<_, u64>(RESULT_STREAM).unwrap(), 1);
}

/// The plan stream reader of a host that may not act issues no read or claim (its consumer
/// does not even exist in the group); once the host leads past its fence it claims every
/// entry pending for the other consumers at once, and reads the new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_reads_nothing_and_a_new_leader_claims_everything_pending() {
    use quantum_redis::stream::{Read, Reader};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    let server = RedisServer::start();
    let mut c = server.conn();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(PLAN_STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut c)
        .unwrap();
    let mut ids = BTreeSet::new();
    for plan in 1..=2u64 {
        ids.insert(read_one(&mut c, plan)); // pending for the other host's consumer
    }
    let fresh: String = c
        .xadd(PLAN_STREAM, "*", &[("plan_id", "0000000000000003")])
        .unwrap();
    ids.insert(fresh);

    let s = Settings {
        ttl_ms: 400,
        renew_ms: 100,
        drift_ms: 50,
        recv_window_ms: 100,
        clock_error_ms: 50,
    };
    let lease_name = unique("reader");
    // The other host holds the lease for a while.
    let _: () = redis::cmd("SET")
        .arg(lease::lease_key(&lease_name))
        .arg("host-b 1")
        .arg("PX")
        .arg(800)
        .query(&mut c)
        .unwrap();
    let _: () = c.set(lease::epoch_key(&lease_name), 1).unwrap();
    let instance = unique("lease-reader");
    let _daemon = LeaseDaemon::start(&instance, &s);
    let (stop_tx, stop) = watch::channel(false);
    let run = lease::start(
        lease::Names {
            instance: instance.clone(),
            lease: lease_name.clone(),
            host: "host-a".into(),
        },
        s,
        server.client(),
        Arc::new(Stats::default()),
        stop,
    )
    .unwrap();
    let consumer = "bridge-i@host-a";
    let cfg = quantum_redis::BridgeConfig::new(&instance, &server.url());
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reader = tokio::spawn(Reader::new(&cfg, consumer, Some(run.handle.clone())).run(
        server.client(),
        Arc::new(tokio::sync::Semaphore::new(64)),
        tx,
        Arc::new(Stats::default()),
    ));

    // Standing by: nothing read, no command as this consumer.
    let r = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(r.is_err(), "a standby read entries: {r:?}");
    assert!(run.handle.acting().is_none());
    let consumers: redis::streams::StreamInfoConsumersReply =
        c.xinfo_consumers(PLAN_STREAM, GROUP).unwrap();
    assert!(
        consumers.consumers.iter().all(|x| x.name != consumer),
        "the standby's consumer issued a command"
    );

    // The lease expires; this host acquires it, waits its fence, then claims everything.
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got != ids && Instant::now() < deadline {
        if let Ok(Some(Read::Entries(es))) =
            tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
        {
            for e in es {
                got.insert(e.id);
            }
        }
    }
    assert_eq!(got, ids, "every pending and new entry, once leading");
    let lease_now = run.handle.lease();
    assert_eq!(lease_now.role, LeaseRole::Leader);
    assert_eq!(lease_now.epoch, 2, "the next epoch");
    let owned: redis::streams::StreamPendingCountReply = c
        .xpending_consumer_count(PLAN_STREAM, GROUP, "-", "+", 10, consumer)
        .unwrap();
    assert_eq!(owned.ids.len(), 3, "all pending for this host now");
    reader.abort();
    let _ = stop_tx.send(true);
    let _ = run.task.await;
}
