//! Staying under the published weight, backing off after 429, stopping after 418.

use std::sync::atomic::Ordering;
use std::time::Duration;

use quantum_binance::{Error, RejectReason};
use quantum_binance_sim::{Limits, SimConfig};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn the_client_stays_under_the_published_weight() {
    let mut cfg = SimConfig::ephemeral();
    cfg.limits = Limits {
        weight_per_minute: 12,
        ..Limits::default()
    };
    let env = start_with(cfg).await;
    let mut held = 0;
    for _ in 0..20 {
        match env.client.sync_time().await {
            Ok(_) => {}
            Err(Error::RateLimited { .. }) => held += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    let stats = env.client.http().stats();
    assert!(held > 0, "the limiter never held a request back");
    assert_eq!(stats.answers_429.load(Ordering::Relaxed), 0);
    assert!(stats.sent.load(Ordering::Relaxed) <= 12);
}

#[tokio::test]
async fn after_429_nothing_is_sent_until_the_back_off_passes() {
    let env = start().await;
    env.control("/sim/faults", json!({"force429": true})).await;
    let e = env.client.sync_time().await.unwrap_err();
    assert_eq!(e.reject_reason(), RejectReason::TooManyRequests);
    let sent = env.client.http().stats().sent.load(Ordering::Relaxed);
    for _ in 0..5 {
        assert!(matches!(
            env.client.sync_time().await,
            Err(Error::RateLimited { .. })
        ));
    }
    assert_eq!(env.client.http().stats().sent.load(Ordering::Relaxed), sent);
    env.control("/sim/faults", json!({"force429": false})).await;
    // The test caps Retry-After (60 s) at 300 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    env.client.sync_time().await.unwrap();
}

#[tokio::test]
async fn after_418_nothing_is_sent_until_the_ban_ends() {
    let env = start().await;
    env.control("/sim/faults", json!({"force418": true})).await;
    let e = env.client.sync_time().await.unwrap_err();
    assert_eq!(e.reject_reason(), RejectReason::IpBanned);
    let sent = env.client.http().stats().sent.load(Ordering::Relaxed);
    let e = env.client.sync_time().await.unwrap_err();
    assert!(matches!(e, Error::Banned { .. }), "{e}");
    assert_eq!(e.reject_reason(), RejectReason::IpBanned);
    assert_eq!(env.client.http().stats().sent.load(Ordering::Relaxed), sent);
    env.control("/sim/faults", json!({"force418": false})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    env.client.sync_time().await.unwrap();
}

#[tokio::test]
async fn a_real_limit_hit_backs_off_instead_of_earning_a_ban() {
    let env = start().await;
    // The client believes 2400/min (from exchangeInfo); the exchange now allows 5.
    env.control("/sim/limits", json!({"weightPerMinute": 5}))
        .await;
    let mut answers = Vec::new();
    for _ in 0..15 {
        answers.push(env.client.sync_time().await);
    }
    let stats = env.client.http().stats();
    assert_eq!(stats.answers_429.load(Ordering::Relaxed), 1);
    assert_eq!(stats.answers_418.load(Ordering::Relaxed), 0, "{answers:?}");
}
