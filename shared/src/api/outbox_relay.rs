//! The outbox relay (DynamoDB Streams trigger): the one function that produces to Kafka.
//!
//! Every state change writes its event as an outbox item in its own transaction (see
//! `store::dynamo::outbox`). The table's stream (new images) carries each insert here, through an
//! event source mapping whose filter lets through only pending outbox items (`sk = EVENT`,
//! `gsi1pk` beginning with `OUTBOX`): the insert itself, or a redrive by the sweeper. Stream records of one item
//! come exactly once and in order; a batch is the records of one shard, in order.
//!
//! Per batch:
//! 1. decode each record's new image (`id`, `aggregate_id`, `payload`): an image without them can
//!    never be produced and is reported failed, so after the mapping's bounded retries it goes to
//!    the on-failure queue (a human looks) instead of blocking its shard;
//! 2. send every event to the [`EventSink`] at once, in record order (Kafka: idempotent, `acks=all`,
//!    key = aggregate id, so one order's events stay in order; the event's `trace`, the ids of the
//!    request that caused it, as record headers) and **await every acknowledgement** before
//!    returning: Lambda freezes the process afterwards. Each event's outcome is logged under a
//!    `trace` span with those ids (`crate::trace`), so the request's id finds the relay's line;
//! 3. mark each delivered event published (out of the pending index), at most
//!    `RELAY_CONCURRENCY` at a time; a mark that fails is only logged: the event was delivered,
//!    and if the sweeper redrives it later the notifier ignores the second copy;
//! 4. answer with the failed records (`ReportBatchItemFailures`): Lambda retries from the lowest
//!    failed sequence number, so nothing after a failure is skipped (what was delivered after it is
//!    delivered again, harmless). A record without a sequence number cannot be reported alone,
//!    so then the whole invocation fails.
//!
//! API functions publish nothing: the buyer's request never waits for a broker, and only this
//! function connects to MSK (one small pool of IAM/TLS connections instead of one per API
//! instance; MSK caps new connections per broker per second).

use crate::events::sink::{EventSink, Outgoing};
use crate::store::OutboxStore;
use crate::trace::Trace;
use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;
use serde::Deserialize;
use uuid::Uuid;

pub const DEFAULT_CONCURRENCY: usize = 16;

/// What the relay reads of an outbox item's image.
#[derive(Debug, Deserialize)]
struct OutboxImage {
    id: Uuid,
    aggregate_id: String,
    payload: String,
}

/// One record, decoded or not.
struct Record<'a> {
    sequence: Option<&'a str>,
    image: Result<OutboxImage, String>,
    /// The event's `trace`, when it has one.
    trace: Option<Trace>,
}

fn decode(record: &EventRecord) -> Record<'_> {
    let mut trace = None;
    let image = serde_dynamo::from_item::<_, OutboxImage>(record.change.new_image.clone())
        .map_err(|e| format!("not an outbox item: {e}"))
        .and_then(|i| {
            let payload = serde_json::from_str::<serde_json::Value>(&i.payload)
                .map_err(|e| format!("payload is not JSON: {e}"))?;
            // A malformed trace is no reason to hold the event back: it goes without one.
            trace = payload.get("trace").and_then(|t| Trace::deserialize(t).ok());
            Ok(i)
        });
    Record { sequence: record.change.sequence_number.as_deref(), image, trace }
}

#[derive(Debug, thiserror::Error)]
#[error("{failed} record(s) failed and at least one has no sequence number: the whole batch is retried")]
pub struct RelayError {
    pub failed: usize,
}

impl From<RelayError> for lambda_http::lambda_runtime::Diagnostic {
    fn from(e: RelayError) -> Self {
        Self { error_type: "RelayError".into(), error_message: e.to_string() }
    }
}

pub struct OutboxRelay<S, K> {
    pub outbox: S,
    pub sink: K,
    pub concurrency: usize,
}

impl<S: OutboxStore, K: EventSink> OutboxRelay<S, K> {
    pub async fn handle(&self, batch: &StreamEvent) -> Result<DynamoDbEventResponse, RelayError> {
        let records: Vec<Record<'_>> = batch.records.iter().map(decode).collect();
        // All sends start together (in record order), then every acknowledgement is awaited.
        let sends = records.iter().map(|r| async move {
            match &r.image {
                Ok(image) => {
                    let outgoing = Outgoing {
                        key: &image.aggregate_id,
                        payload: image.payload.as_bytes(),
                        trace: r.trace.as_ref(),
                    };
                    let sent = self.sink.send(outgoing).await;
                    sent.map(|()| image.id).map_err(|e| e.to_string())
                }
                Err(why) => Err(why.clone()),
            }
        });
        let results = futures::future::join_all(sends).await;

        let mut failures = Vec::new();
        let mut delivered = Vec::new();
        for (record, result) in records.iter().zip(results) {
            let _trace = Trace::span(record.trace.as_ref()).entered();
            match result {
                Ok(id) => {
                    tracing::info!(event_id = %id, sequence = record.sequence, "event relayed");
                    delivered.push(id);
                }
                Err(why) => {
                    tracing::warn!(sequence = record.sequence, why, "outbox record not relayed");
                    failures.push(record.sequence);
                }
            }
        }
        let now = time::OffsetDateTime::now_utc();
        let marked: Vec<bool> = futures::stream::iter(&delivered)
            .map(|id| async move {
                match self.outbox.mark_published(*id, now).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(event_id = %id, error = %e, "delivered but not marked published");
                        false
                    }
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        crate::metrics::record(crate::metrics::names::BATCH_SIZE, records.len());
        crate::metrics::count(crate::metrics::names::EVENTS_RELAYED, delivered.len());
        crate::metrics::count(crate::metrics::names::EVENTS_FAILED, failures.len());
        tracing::info!(
            records = records.len(),
            delivered = delivered.len(),
            unmarked = marked.iter().filter(|m| !**m).count(),
            failed = failures.len(),
            "batch relayed"
        );
        if failures.iter().any(Option::is_none) {
            return Err(RelayError { failed: failures.len() });
        }
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .flatten()
            .map(|sequence| {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(sequence.to_owned());
                failure
            })
            .collect();
        Ok(response)
    }
}

/// `RELAY_CONCURRENCY` (default 16): outbox marks in flight at once.
pub fn concurrency_from_env() -> Result<usize, crate::config::ConfigError> {
    crate::config::bounded_from_env("RELAY_CONCURRENCY", DEFAULT_CONCURRENCY, 1..=64)
}

/// Runs the Lambda loop for DynamoDB stream batches.
pub async fn serve<S, K>(relay: OutboxRelay<S, K>) -> Result<(), lambda_http::Error>
where
    S: OutboxStore + 'static,
    K: EventSink + 'static,
{
    use lambda_http::lambda_runtime::{LambdaEvent, run, service_fn};
    let relay = std::sync::Arc::new(relay);
    run(service_fn(move |event: LambdaEvent<StreamEvent>| {
        let relay = relay.clone();
        async move {
            let result = relay.handle(&event.payload).await;
            crate::metrics::flush(&event.context.request_id);
            result
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::sink::SinkError;
    use crate::store::StoreError;
    use std::sync::Mutex;

    /// A broker that refuses the keys it is told to, and remembers what it acknowledged.
    #[derive(Default)]
    struct Broker {
        refuse: Vec<String>,
        acked: Mutex<Vec<(String, String)>>,
        /// The trace each acknowledged record was sent with (its headers).
        traces: Mutex<Vec<Option<Trace>>>,
    }

    impl EventSink for Broker {
        async fn send(&self, event: Outgoing<'_>) -> Result<(), SinkError> {
            if self.refuse.iter().any(|k| k == event.key) {
                return Err(SinkError("broker down".into()));
            }
            let payload = String::from_utf8(event.payload.to_vec()).unwrap();
            self.acked.lock().unwrap().push((event.key.to_owned(), payload));
            self.traces.lock().unwrap().push(event.trace.cloned());
            Ok(())
        }
    }

    #[derive(Default)]
    struct Marks(Mutex<Vec<Uuid>>);

    impl OutboxStore for Marks {
        async fn mark_published(&self, id: Uuid, _: time::OffsetDateTime) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(id);
            Ok(())
        }
        async fn pending_events(
            &self,
            _: time::OffsetDateTime,
            _: Option<Uuid>,
            _: u32,
        ) -> Result<Vec<Uuid>, StoreError> {
            Ok(vec![])
        }
        async fn redrive(&self, _: Uuid, _: time::OffsetDateTime) -> Result<bool, StoreError> {
            Ok(true)
        }
    }

    fn record(seq: &str, image: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "eventID": seq, "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": { "SequenceNumber": seq, "SizeBytes": 1, "StreamViewType": "NEW_IMAGE",
                          "Keys": {}, "NewImage": image }
        })
    }

    fn outbox(id: Uuid, key: &str) -> serde_json::Value {
        serde_json::json!({
            "pk": {"S": format!("EVENT#{id}")}, "sk": {"S": "EVENT"}, "gsi1pk": {"S": "OUTBOX"},
            "id": {"S": id.to_string()}, "aggregate_id": {"S": key},
            "payload": {"S": format!("{{\"id\":\"{id}\"}}")}
        })
    }

    fn batch(records: Vec<serde_json::Value>) -> StreamEvent {
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    #[tokio::test]
    async fn every_record_is_sent_in_order_and_marked() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let relay = OutboxRelay { outbox: Marks::default(), sink: Broker::default(), concurrency: 4 };
        let r = relay.handle(&batch(vec![record("1", outbox(a, "o1")), record("2", outbox(b, "o1"))])).await.unwrap();
        assert!(r.batch_item_failures.is_empty());
        let acked = relay.sink.acked.lock().unwrap().clone();
        assert_eq!(acked.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["o1", "o1"]);
        assert!(acked[0].1.contains(&a.to_string()) && acked[1].1.contains(&b.to_string()));
        let mut marked = relay.outbox.0.lock().unwrap().clone();
        marked.sort();
        assert_eq!(marked, [a, b]);
    }

    #[tokio::test]
    async fn the_events_trace_goes_with_it_and_an_event_without_one_is_sent_too() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let traced = serde_json::json!({
            "pk": {"S": format!("EVENT#{a}")}, "sk": {"S": "EVENT"}, "gsi1pk": {"S": "OUTBOX"},
            "id": {"S": a.to_string()}, "aggregate_id": {"S": "o1"},
            "payload": {"S": format!(r#"{{"id":"{a}","trace":{{"request_id":"AbCdEfGhIjKlMg=","trace_id":"1-a-b"}}}}"#)}
        });
        let relay = OutboxRelay { outbox: Marks::default(), sink: Broker::default(), concurrency: 4 };
        let r = relay.handle(&batch(vec![record("1", traced), record("2", outbox(b, "o1"))])).await.unwrap();
        assert!(r.batch_item_failures.is_empty());
        let expected = Trace { request_id: "AbCdEfGhIjKlMg=".into(), trace_id: Some("1-a-b".into()) };
        assert_eq!(*relay.sink.traces.lock().unwrap(), [Some(expected), None]);
    }

    #[tokio::test]
    async fn failed_and_undecodable_records_are_reported_and_not_marked() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let poison = serde_json::json!({ "pk": {"S": "EVENT#x"}, "gsi1pk": {"S": "OUTBOX"}, "payload": {"S": "{"} });
        let relay = OutboxRelay {
            outbox: Marks::default(),
            sink: Broker { refuse: vec!["down".into()], ..Broker::default() },
            concurrency: 4,
        };
        let r = relay
            .handle(&batch(vec![record("1", outbox(a, "up")), record("2", poison), record("3", outbox(b, "down"))]))
            .await
            .unwrap();
        let failed: Vec<_> = r.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap()).collect();
        assert_eq!(failed, ["2", "3"]);
        assert_eq!(*relay.outbox.0.lock().unwrap(), [a]);
    }
}
