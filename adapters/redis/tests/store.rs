//! The bridge's writes against a real redis-server, without a daemon: a plan entry written by
//! the writer is read back by the stream's reader, and one batch (its result entry, its
//! acknowledgement and the bridge's state with its marker) lands in one MULTI/EXEC; the same
//! plan's result in a later batch is not written again.

use std::collections::HashMap;

use quantum_core::{Action, Decision, Outcome, Plan, PlanId, PlanResult, SymbolId};
use quantum_local_redis::RedisServer;
use quantum_redis::batch::{self, Batch};
use quantum_redis::legacy::{self, PLAN_STREAM, RESULT_STREAM};
use quantum_redis::plan_entry::{read_plan, Fields};
use quantum_redis::rings::Symbols;
use quantum_redis::state::{self, Saved};
use redis::streams::{StreamPendingReply, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::Commands;

const INSTANCE: &str = "store-test";
const GROUP: &str = "quantum-core";

fn run(c: &mut redis::Connection, b: &Batch, saved: &Saved, marker: &str) -> u64 {
    let reply: redis::Value = b
        .transaction(INSTANCE, saved, marker)
        .query(c)
        .expect("MULTI/EXEC");
    batch::results_already_written(&reply)
}

#[tokio::test]
async fn a_batch_lands_with_its_state_and_a_result_is_written_once() {
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
    let plan = Plan {
        kill_score: "0.539".parse().unwrap(),
        ..Plan::exit(PlanId(0xaa), SymbolId(0), Decision::Hold, Action::None)
    };
    let id: String = c
        .xadd(
            PLAN_STREAM,
            "*",
            &legacy::plan_entry_fields(&plan, "BTCUSDT"),
        )
        .unwrap();

    // The entry as the bridge's consumer reads it.
    let reply: StreamReadReply = c
        .xread_options(
            &[PLAN_STREAM],
            &[">"],
            &StreamReadOptions::default().group(GROUP, "c1").count(10),
        )
        .unwrap();
    let entry = &reply.keys[0].ids[0];
    assert_eq!(entry.id, id);
    let fields: Fields = entry
        .map
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                redis::from_redis_value::<Vec<u8>>(v.clone()).unwrap(),
            )
        })
        .collect();
    let read = read_plan(&id, &fields, &Symbols::new([(0, "BTCUSDT".to_string())])).unwrap();
    let entry_ms: u64 = id.split_once('-').unwrap().0.parse().unwrap();
    assert_eq!(
        read.plan,
        Plan {
            created_at_ms: entry_ms,
            ..plan
        }
    );

    // Its result, its acknowledgement and the state, in one transaction.
    let result = PlanResult {
        plan: plan.id,
        symbol: plan.symbol,
        decision: plan.decision,
        outcome: Outcome::NonExecute,
        wait_ns: 0,
        at_ms: entry_ms,
    };
    let mut b = Batch::new(INSTANCE, 1000, GROUP, 60);
    b.result(&result, "BTCUSDT", None);
    b.ack(id.clone());
    let saved = Saved {
        epoch: state::epoch(1_769_301_008_976, 4242),
        next_seq: 10,
        low_seq: 9,
    };
    assert_eq!(run(&mut c, &b, &saved, "m-1"), 0);
    let h: HashMap<String, String> = c.hgetall(state::state_key(INSTANCE)).unwrap();
    assert_eq!(Saved::from_hash(&h).unwrap(), Some(saved.clone()));
    let mut ac = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert!(batch::landed(&mut ac, INSTANCE, "m-1").await.unwrap());
    assert!(!batch::landed(&mut ac, INSTANCE, "m-2").await.unwrap());
    let pending: StreamPendingReply = c.xpending(PLAN_STREAM, GROUP).unwrap();
    assert_eq!(pending.count(), 0);
    let results: StreamRangeReply = c.xrange_all(RESULT_STREAM).unwrap();
    assert_eq!(results.ids.len(), 1);
    let plan_id: String = results.ids[0].get("plan_id").unwrap();
    assert_eq!(plan_id, plan.id.to_string());

    // The same plan answered again (a restarted daemon): its result is not written twice,
    // the state and the marker still are.
    let mut again = Batch::new(INSTANCE, 1000, GROUP, 60);
    again.result(&result, "BTCUSDT", None);
    let later = Saved {
        next_seq: 12,
        low_seq: 12,
        ..saved
    };
    assert_eq!(run(&mut c, &again, &later, "m-2"), 1);
    let results: StreamRangeReply = c.xrange_all(RESULT_STREAM).unwrap();
    assert_eq!(results.ids.len(), 1);
    assert!(batch::landed(&mut ac, INSTANCE, "m-2").await.unwrap());
    let h: HashMap<String, String> = c.hgetall(state::state_key(INSTANCE)).unwrap();
    assert_eq!(Saved::from_hash(&h).unwrap(), Some(later));
}
