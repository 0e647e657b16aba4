//! The bridge process: one Redis client, and one session per core daemon it serves in turn.
//!
//! A session ends when its daemon goes away (stopped, restarted, killed); the bridge then waits
//! for the next daemon of the instance and starts a new session, so a restarted core is served
//! again without restarting the bridge. Plan entries the old daemon never answered are still
//! in the pending list and are delivered to the new one.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::BridgeConfig;
use crate::conn::Redis;
use crate::error::{Error, Result};
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
    let mut first = true;
    loop {
        let mut stop_wait = stop.clone();
        let link = tokio::select! {
            r = attach(&cfg, first) => r?,
            _ = stop_wait.wait_for(|s| *s) => return Ok(()),
        };
        first = false;
        let Some(session) =
            Session::start(&cfg, &mut redis, stats.clone(), link, stop.clone()).await?
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
