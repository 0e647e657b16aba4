//! `redis+sentinel://` against real processes: a master, one replica (`--replicaof`) and one
//! sentinel monitoring the master with quorum 1. After `SENTINEL FAILOVER` the bridge's
//! connections (the shared one, dedicated ones) reach the new master, and the lease task keeps
//! (or takes again) the lease there.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quantum_local_redis::{free_port, RedisServer};
use quantum_redis::conn::{Redis, Target};
use quantum_redis::error::Error;
use quantum_redis::lease::{self, Acquired, Settings};
use quantum_redis::stats::Stats;
use redis::Commands;
use tokio::sync::watch;

mod support;
use support::LeaseDaemon;

const MASTER: &str = "qpcmaster";

/// `redis-server <conf> --sentinel` on a free loopback port, its config in a directory of its
/// own (Sentinel rewrites it); killed and removed on drop.
struct SentinelProc {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl SentinelProc {
    fn start(master_port: u16) -> SentinelProc {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("qpc-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("sentinel dir");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 5000\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                dir = dir.display()
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new(quantum_local_redis::binary())
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server --sentinel");
        let s = SentinelProc { port, dir, child };
        wait_for("the sentinel answers PING", Duration::from_secs(20), || {
            s.conn()
                .ok()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c).ok())
                .is_some()
        });
        s
    }

    fn conn(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?.get_connection()
    }

    fn url(&self, db: i64) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{MASTER}/{db}", self.port)
    }
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < end, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(c).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// A master, its replica in sync, and a sentinel that knows both.
struct Cluster {
    master: RedisServer,
    replica: RedisServer,
    sentinel: SentinelProc,
}

impl Cluster {
    fn start() -> Cluster {
        let master = RedisServer::start();
        let mport = master.port().to_string();
        let replica = RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &mport]);
        wait_for("the replica is in sync", Duration::from_secs(20), || {
            info_field(&mut replica.conn(), "replication", "master_link_status").as_deref()
                == Some("up")
        });
        let sentinel = SentinelProc::start(master.port());
        let rport = replica.port().to_string();
        wait_for(
            "the sentinel knows the replica",
            Duration::from_secs(30),
            || {
                let Ok(mut c) = sentinel.conn() else {
                    return false;
                };
                let replicas: Vec<std::collections::HashMap<String, String>> =
                    match redis::cmd("SENTINEL")
                        .arg("REPLICAS")
                        .arg(MASTER)
                        .query(&mut c)
                    {
                        Ok(r) => r,
                        Err(_) => return false,
                    };
                replicas.iter().any(|r| {
                    r.get("port") == Some(&rport)
                        && r.get("flags").map(String::as_str) == Some("slave")
                        && r.get("master-link-status").map(String::as_str) == Some("ok")
                })
            },
        );
        Cluster {
            master,
            replica,
            sentinel,
        }
    }

    /// `SENTINEL FAILOVER`, then waits until the sentinel names the replica.
    fn failover(&self) {
        let mut c = self.sentinel.conn().expect("sentinel");
        let () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER)
            .query(&mut c)
            .expect("SENTINEL FAILOVER");
        let rport = self.replica.port().to_string();
        wait_for(
            "the sentinel names the replica as master",
            Duration::from_secs(30),
            || {
                let addr: Vec<String> = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(MASTER)
                    .query(&mut c)
                    .unwrap_or_default();
                addr.get(1) == Some(&rport)
            },
        );
    }
}

async fn port_of(c: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<u16> {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query_async(c)
        .await?;
    Ok(v[1].parse().expect("a port"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reach_the_new_master_after_a_sentinel_failover() {
    let cl = Cluster::start();
    let mut redis = Redis::new(&cl.sentinel.url(2), Arc::new(Stats::default())).unwrap();
    assert_eq!(
        redis.shown(),
        format!("redis+sentinel://127.0.0.1:{}/{MASTER}/2", cl.sentinel.port)
    );
    assert_eq!(redis.db(), 2);

    // Through the sentinel to the master, in database 2.
    let mut c = redis.conn().await.expect("connect through the sentinel");
    assert_eq!(port_of(&mut c).await.unwrap(), cl.master.port());
    let () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query_async(&mut c)
        .await
        .unwrap();
    let on_master: Option<String> = cl.master.conn_db(2).unwrap().get("before").unwrap();
    assert_eq!(on_master.as_deref(), Some("1"));
    let (mut d, _) = Redis::dedicated(redis.target(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(port_of(&mut d).await.unwrap(), cl.master.port());

    cl.failover();

    // The shared connection: writes go on until one lands on the new master (the old one
    // may take writes until Sentinel demotes it; then READONLY or a closed connection makes
    // the bridge connect again, through the sentinel).
    let began = Instant::now();
    let mut n = 0u64;
    loop {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "no write reached the new master within 30 s"
        );
        n += 1;
        let res = async {
            let mut c = redis.conn().await?;
            let () = redis::cmd("SET")
                .arg("after")
                .arg(n)
                .query_async(&mut c)
                .await?;
            Ok::<_, Error>(port_of(&mut c).await?)
        }
        .await;
        match res {
            Ok(port) if port == cl.replica.port() => break,
            Ok(_) => {}
            Err(e) => redis.failed(&e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.ok();
    let mut new_master = cl.replica.conn_db(2).unwrap();
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut new_master).unwrap();
    assert_eq!(
        role.first(),
        Some(&redis::Value::BulkString(b"master".to_vec()))
    );
    let after: Option<u64> = new_master.get("after").unwrap();
    assert_eq!(after, Some(n), "the last write is on the new master");
    let before: Option<String> = new_master.get("before").unwrap();
    assert_eq!(
        before.as_deref(),
        Some("1"),
        "replicated before the failover"
    );

    // A connection made now goes to the new master too.
    let (mut d, _) = Redis::dedicated(redis.target(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(port_of(&mut d).await.unwrap(), cl.replica.port());
    let () = redis::cmd("SET")
        .arg("dedicated")
        .arg("1")
        .query_async(&mut d)
        .await
        .unwrap();
    let v: Option<String> = new_master.get("dedicated").unwrap();
    assert_eq!(v.as_deref(), Some("1"));
}

async fn until_leading(h: &lease::LeaseHandle, within: Duration) -> u64 {
    let end = Instant::now() + within;
    loop {
        if let Some(e) = h.leads() {
            return e;
        }
        assert!(
            Instant::now() < end,
            "not leading within {within:?}: {:?}",
            h.lease()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_follows_a_sentinel_failover() {
    let cl = Cluster::start();
    let s = Settings {
        ttl_ms: 1500,
        renew_ms: 300,
        drift_ms: 200,
        recv_window_ms: 100,
        clock_error_ms: 50,
    };
    let instance = format!("sentinel-lease-{}", std::process::id());
    let _daemon = LeaseDaemon::start(&instance, &s);
    let lease_name = format!("sent-{}", std::process::id());
    let host = "host-a";
    let target = Target::parse(&cl.sentinel.url(0)).unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = lease::start(
        lease::Names {
            instance: instance.clone(),
            lease: lease_name.clone(),
            host: host.into(),
        },
        s,
        target.clone(),
        Arc::new(Stats::default()),
        stop_rx,
    )
    .expect("lease task");

    let e1 = until_leading(&run.handle, Duration::from_secs(10)).await;
    let held: Option<String> = cl.master.conn().get(lease::lease_key(&lease_name)).unwrap();
    assert_eq!(
        held,
        Some(lease::lease_value(host, e1)),
        "acquired on the master"
    );

    cl.failover();
    let switched = Instant::now();

    // The task leads again (or still), under an epoch at least e1, with its value on the new
    // master; and the value stays there over several TTLs: the renewals reach the new master
    // (without them the key would expire there after one TTL).
    let mut new_master = cl.replica.conn();
    let mut leading_since: Option<Instant> = None;
    let mut epoch = 0;
    while leading_since.is_none_or(|t| t.elapsed() < Duration::from_millis(3 * s.ttl_ms)) {
        assert!(
            switched.elapsed() < Duration::from_secs(40),
            "the lease did not settle on the new master: {:?}",
            run.handle.lease()
        );
        let on_new: Option<String> = new_master.get(lease::lease_key(&lease_name)).unwrap();
        match (run.handle.leads(), on_new) {
            (Some(e), Some(v)) if v == lease::lease_value(host, e) => {
                if e != epoch {
                    assert!(e >= e1, "epoch {e} after {e1}");
                    epoch = e;
                    leading_since = Some(Instant::now());
                }
                leading_since.get_or_insert_with(Instant::now);
            }
            _ => leading_since = None,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(epoch >= e1);
    eprintln!(
        "lease: epoch {e1} before the failover, {epoch} after; settled {:?} after the switch",
        switched.elapsed() - Duration::from_millis(3 * s.ttl_ms)
    );
    let epoch_on_new: u64 = new_master.get(lease::epoch_key(&lease_name)).unwrap();
    assert!(epoch_on_new >= epoch);

    // The scripts on a fresh connection through the sentinel run on the new master: the
    // lease is held by the task; once the task gives it up, a fresh acquire takes a larger
    // epoch there.
    let (mut c, _) = Redis::dedicated(&target, Duration::ZERO).await.unwrap();
    assert_eq!(port_of(&mut c).await.unwrap(), cl.replica.port());
    match lease::acquire(&mut c, &lease_name, "host-b", s.ttl_ms)
        .await
        .unwrap()
    {
        Acquired::Held { value, .. } => assert_eq!(value, lease::lease_value(host, epoch)),
        other => panic!("the task's lease is on the new master, found {other:?}"),
    }
    stop_tx.send_replace(true);
    run.task.await.unwrap();
    assert_eq!(
        lease::acquire(&mut c, &lease_name, "host-b", s.ttl_ms)
            .await
            .unwrap(),
        Acquired::Epoch(epoch + 1)
    );
}
