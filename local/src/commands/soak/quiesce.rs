//! After the traffic: every fault off, then the stack is run to rest before anything is counted.
//!
//! A round is: the event barrier (`POST /_local/events/settle`: everything written so far has gone
//! through the stream, the relay, Kafka and the notifier), the sweeper as if the reservation window
//! and the outbox redrive delay had passed (every order still awaiting payment expires, every event
//! the stream gave up on goes again), the gateway's webhook redelivery as if hours had passed
//! (every delayed, late or failed webhook is delivered), the refund worker until it has nothing
//! left, and the barrier again. Rounds repeat until one finds nothing to do (each step can make
//! work for the others: a late payment after an expiry asks for a refund, a refund sends an
//! e-mail), at most [`ROUNDS`].

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use super::faults::Injector;

const ROUNDS: usize = 6;

/// Runs the stack to rest; returns whether it got there (else what was still moving).
pub async fn quiesce(inj: &Injector) -> Result<std::result::Result<usize, String>> {
    inj.clear().await?;
    let mut last = String::new();
    for round in 1..=ROUNDS {
        let mut work = 0usize;
        settle(inj).await;
        let now = time::OffsetDateTime::now_utc();
        // Past the reservation window and the redrive delay (5 minutes) of everything written so far.
        let sweep_at = now + inj.expire_after + Duration::from_secs(6 * 60);
        let sweep = inj.scheduled("SweeperFunction", sweep_at).await.unwrap_or_else(|e| failed_run(&e));
        work +=
            n(&sweep, "/expired") + n(&sweep, "/failed") + n(&sweep, "/outbox/redriven") + n(&sweep, "/outbox/failed");
        // Deliveries come one page per run; a failed one is due again later (from the real clock).
        for _ in 0..20 {
            let at = time::OffsetDateTime::now_utc() + Duration::from_secs(3 * 3600);
            let d = inj.scheduled("MockGatewayDeliveriesFunction", at).await.unwrap_or_else(|e| failed_run(&e));
            let moved = n(&d, "/delivered") + n(&d, "/failed");
            work += moved;
            if moved == 0 {
                break;
            }
        }
        settle(inj).await;
        for _ in 0..20 {
            let r = inj
                .scheduled("RefundsFunction", time::OffsetDateTime::now_utc())
                .await
                .unwrap_or_else(|e| failed_run(&e));
            let moved = n(&r, "/refunded") + n(&r, "/failed") + n(&r, "/retry_later");
            work += moved;
            if moved == 0 {
                break;
            }
        }
        settle(inj).await;
        last = format!("round {round}: sweep {sweep}, {work} things done");
        inj.note(format!("  quiesce {last}"));
        if work == 0 {
            return Ok(Ok(round));
        }
    }
    Ok(Err(last))
}

/// The barrier; a timeout is noted and the quiesce goes on (the next round waits again).
async fn settle(inj: &Injector) {
    if let Err(e) = inj.post("/_local/events/settle", None).await {
        inj.note(format!("  the event barrier did not settle: {e:#}"));
    }
}

fn n(report: &Value, pointer: &str) -> usize {
    report.pointer(pointer).and_then(Value::as_u64).unwrap_or(0) as usize
}

/// A run that failed counts as work left: `{"failed": 1}`.
fn failed_run(e: &anyhow::Error) -> Value {
    tracing::warn!("soak: a scheduled run failed during the quiesce: {e:#}");
    serde_json::json!({ "failed": 1 })
}
