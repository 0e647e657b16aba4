//! The bridge process: one Redis client, and one session per core daemon it serves in turn.
//!
//! A session ends when its daemon goes away (stopped, restarted, killed); the bridge then waits
//! for the next daemon of the instance and starts a new session, so a restarted core is served
//! again without restarting the bridge. Plan entries the old daemon never answered are still
//! in the pending list and are delivered to the new one.
//!
//! When the first daemon's counters say failover is on, the bridge starts the lease task
//! ([`crate::lease`]) and keeps it for the life of the process; SIGUSR1 then hands the lease
//! over (`quantum ctl lease --instance NAME release`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::BridgeConfig;
use crate::conn::Redis;
use crate::error::{Error, Result};
use crate::lease::{self, LeaseHandle};
use crate::legs::Legs;
use crate::rings::Link;
use crate::session::{End, Session};
use crate::stats::Stats;

/// Runs the bridge until `shutdown` completes (then it flushes what it has and detaches) or a
/// fatal error (a bad option, a daemon that disagrees on the permit source, another bridge on
/// the instance).
pub async fn run(
    cfg: BridgeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if cfg.max_in_flight == 0 || cfg.batch == 0 {
        return Err(Error::Config(
            "--max-in-flight and --batch must be at least 1".into(),
        ));
    }
    let stats = Arc::new(Stats::default());
    let mut redis = Redis::new(&cfg.url, stats.clone())?;
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    tracing::info!(
        instance = %cfg.instance,
        redis = %redis.shown(),
        permits_from = ?cfg.permits_from,
        "starting the Redis bridge"
    );
    let mut running: Option<lease::Running> = None;
    // The lease task stops after the sessions (whether they stopped or failed).
    let (lease_stop_tx, lease_stop) = watch::channel(false);
    let mut legs: Option<Legs> = None;
    let r = serve(
        &cfg,
        &mut redis,
        &stats,
        &stop,
        &lease_stop,
        &mut running,
        &mut legs,
    )
    .await;
    if let Some(l) = legs {
        l.stop();
    }
    if let Some(run) = running {
        // It gives the lease up when it sees the stop; wait for that (bounded).
        let _ = lease_stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), run.task).await;
    }
    r
}

async fn serve(
    cfg: &BridgeConfig,
    redis: &mut Redis,
    stats: &Arc<Stats>,
    stop: &watch::Receiver<bool>,
    lease_stop: &watch::Receiver<bool>,
    running: &mut Option<lease::Running>,
    legs: &mut Option<Legs>,
) -> Result<()> {
    let mut first = true;
    loop {
        let mut stop_wait = stop.clone();
        let link = tokio::select! {
            r = attach(cfg, first) => r?,
            _ = stop_wait.wait_for(|s| *s) => return Ok(()),
        };
        if first {
            // Once attached (this bridge holds the instance's `plans` producer side, so no
            // other bridge of it runs): the latency segment and log, for the process's life.
            *legs = Some(Legs::start(cfg, stats.clone())?);
            if let Some(s) = link.failover {
                cfg.check_lease_names().map_err(Error::Config)?;
                let names = lease::Names {
                    instance: cfg.instance.clone(),
                    lease: cfg.lease.clone(),
                    host: cfg.host.clone(),
                };
                let run = lease::start(
                    names,
                    s,
                    redis.target().clone(),
                    stats.clone(),
                    lease_stop.clone(),
                )?;
                tokio::spawn(on_sigusr1(run.handle.clone()));
                *running = Some(run);
            }
        } else if link.failover.is_some() != running.is_some() {
            tracing::warn!(
                failover = running.is_some(),
                "the new daemon's failover setting differs from the first one's; this bridge keeps the first (restart it to follow)"
            );
        }
        first = false;
        let handle = running.as_ref().map(|r| r.handle.clone());
        let legs = legs.as_ref().expect("started at the first attach");
        let Some(session) =
            Session::start(cfg, redis, stats.clone(), link, stop.clone(), handle, legs).await?
        else {
            return Ok(());
        };
        match session.run().await? {
            End::Stop => {
                tracing::info!("stopped");
                return Ok(());
            }
            End::DaemonGone => continue,
        }
    }
}

/// SIGUSR1 (failover only): hands the lease over; the bridge keeps running as a standby.
async fn on_sigusr1(lease: LeaseHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = match signal(SignalKind::from_raw(quantum_ipc::lease::RELEASE_SIGNAL)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGUSR1; a planned release of the lease is not possible");
            return;
        }
    };
    while usr1.recv().await.is_some() {
        tracing::info!("SIGUSR1: handing the lease over");
        lease.release();
    }
}

/// Attaches to the instance's daemon: within the attach timeout the first time; after a
/// daemon went away, for as long as it takes the next one to come.
async fn attach(cfg: &BridgeConfig, first: bool) -> Result<Link> {
    if first {
        return Link::attach(&cfg.instance, cfg.attach_timeout).await;
    }
    loop {
        match Link::attach(&cfg.instance, cfg.attach_timeout).await {
            Ok(l) => return Ok(l),
            Err(e @ Error::Ipc { .. }) => return Err(e),
            Err(e) => tracing::info!("still waiting for a core daemon: {e}"),
        }
    }
}
