//! The lease segment between a writer and readers: whole readings, a replaced writer followed,
//! no segment read as "not leading".

use std::time::Duration;

use quantum_ipc::lease::{boot_ns, Lease, LeaseReader, LeaseRole, LeaseWriter};

fn instance(tag: &str) -> String {
    format!("leasetest{}{tag}", std::process::id())
}

fn leader(now: u64, epoch: u64) -> Lease {
    Lease {
        role: LeaseRole::Leader,
        epoch,
        deadline_ns: now + 5_000_000_000,
        trade_after_ns: now,
        acquired_ns: now,
        renewed_ns: now,
        ttl_ms: 5000,
        recv_window_ms: 500,
        host: "host-a".into(),
        other: "host-b".into(),
        takeover_ms: 12,
        updated_ns: now,
    }
}

#[test]
fn a_reader_sees_what_the_writer_published_and_nothing_without_a_writer() {
    let inst = instance("a");
    let mut r = LeaseReader::new(&inst);
    assert_eq!(r.read(), None, "no segment: no lease");
    assert!(!r.may_send());
    let w = LeaseWriter::create(&inst).unwrap();
    assert_eq!(r.read(), None, "created, never published: no lease");
    std::thread::sleep(Duration::from_millis(60));
    let now = boot_ns();
    let l = leader(now, 3);
    w.publish(&l);
    assert_eq!(r.read(), Some(l.clone()));
    assert!(r.may_send());
    // A second writer on the same host is refused while this one lives (this process).
    assert!(
        LeaseWriter::create(&inst).is_ok(),
        "the same process may replace its own"
    );
}

#[test]
fn a_replaced_writer_is_followed() {
    let inst = instance("b");
    let w1 = LeaseWriter::create(&inst).unwrap();
    let now = boot_ns();
    w1.publish(&leader(now, 1));
    let mut r = LeaseReader::new(&inst);
    assert_eq!(r.read().map(|l| l.epoch), Some(1));
    drop(w1);
    let w2 = LeaseWriter::create(&inst).unwrap();
    w2.publish(&Lease {
        role: LeaseRole::Standby,
        ..leader(now, 2)
    });
    std::thread::sleep(Duration::from_millis(60));
    let l = r.read().expect("the new writer's lease");
    assert_eq!((l.epoch, l.role), (2, LeaseRole::Standby));
    assert!(!r.may_send());
}

#[test]
fn readings_are_never_torn() {
    let inst = instance("c");
    let w = LeaseWriter::create(&inst).unwrap();
    // Every field derived from the epoch: a torn reading mixes two epochs.
    let derived = |e: u64| Lease {
        deadline_ns: e * 3,
        trade_after_ns: e * 5,
        ..leader(e, e)
    };
    w.publish(&derived(1));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut e = 1;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            e += 1;
            w.publish(&derived(e));
        }
    });
    let mut r = LeaseReader::new(&inst);
    let mut seen = 0;
    for _ in 0..2_000 {
        if let Some(l) = r.read() {
            assert_eq!(l.deadline_ns, l.epoch * 3);
            assert_eq!(l.trade_after_ns, l.epoch * 5);
            seen += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(seen > 0, "some readings were whole");
}
