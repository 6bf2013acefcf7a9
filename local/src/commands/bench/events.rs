//! Event latency: how long after an order is placed its event is in Kafka, and its e-mail in the
//! mailbox, through the whole path: the order's transaction writes the outbox item, the table's
//! stream trigger invokes the relay, the relay produces to the broker, the MSK trigger invokes
//! the notifier, the notifier sends through SES (moto).
//!
//! `--events` orders (one unit each, fresh customers, 4 at a time) are placed through the API
//! while
//!
//! - a Kafka consumer of the events topic (assigned every partition at its end before the first
//!   order) notes when each `order.placed` arrives: **commit → Kafka** is that moment minus the
//!   event's `occurred_at` (set just before the transaction, so it includes the commit itself);
//! - the mailbox (moto's sent mail) is read every 50 ms: **placed → mailbox** is the moment the
//!   order's "We received your order" e-mail is first seen minus the moment the API answered the
//!   order (what the buyer sees). Target: p50 ≤ 1 s.
//!
//! Both clocks are this machine's wall clock. Check: every order's event and e-mail arrives, once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use hdrhistogram::Histogram;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

use crate::commands::bench::fixtures::Fixtures;
use crate::commands::bench::report::Row;
use crate::progress::{self, Step};

pub const MAIL_P50_TARGET_MS: f64 = 1000.0;
const SUBJECT: &str = "We received your order";

pub async fn run(fx: &Fixtures<'_>, topic: &str, orders: usize) -> Result<Vec<Row>> {
    let messaging = fx.stack.messaging.as_ref().context("the stack runs no Kafka")?;
    let consumer = at_end(&messaging.kafka.bootstrap, topic)?;
    let product = fx.product("Bench event latency", orders).await?;
    let tokens = fx.customers(orders).await?;
    let in_kafka: Arc<Mutex<HashMap<String, f64>>> = Arc::default();
    let collector = {
        let in_kafka = in_kafka.clone();
        tokio::spawn(async move {
            let mut stream = consumer.stream();
            while let Some(Ok(m)) = stream.next().await {
                let Some(event) = m.payload().and_then(|p| serde_json::from_slice::<Value>(p).ok()) else { continue };
                if event["type"] != "order.placed" {
                    continue;
                }
                let (Some(order), Some(at)) = (event["data"]["order_id"].as_str(), event["occurred_at"].as_str())
                else {
                    continue;
                };
                if let Ok(at) = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339) {
                    let ms = (time::OffsetDateTime::now_utc() - at).as_seconds_f64() * 1000.0;
                    in_kafka.lock().unwrap().entry(order.to_owned()).or_insert(ms);
                }
            }
        })
    };

    let step = Step::start(format!("events: {orders} orders placed, each followed to Kafka and to the mailbox"));
    let result = progress::run(step, async {
        let tokens = &tokens;
        let product = &product;
        let placed: Vec<(String, Instant)> = futures::stream::iter(0..orders)
            .map(|i| async move {
                let placed = fx.placed_order(&tokens[i], product).await?;
                Ok::<_, anyhow::Error>((placed.order["id"].as_str().context("order id")?.to_owned(), Instant::now()))
            })
            .buffer_unordered(4)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let mailed = wait_for_mail(&messaging.ses.endpoint, &placed).await?;
        Ok::<_, anyhow::Error>((placed, mailed))
    })
    .await;
    // The consumer has had the time the mail took: every event is in Kafka by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    collector.abort();
    let (placed, mailed) = result?;
    let in_kafka = in_kafka.lock().unwrap().clone();

    let mut kafka = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for (order, _) in &placed {
        if let Some(ms) = in_kafka.get(order) {
            kafka.record((ms * 1000.0).max(1.0) as u64)?;
        }
    }
    let mut mail = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for d in mailed.values() {
        mail.record(d.as_micros().max(1) as u64)?;
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let p50 = ms(&mail, 0.5);
    Ok(vec![
        Row::figure(
            "events: commit → Kafka p50/p99",
            format!("{:.0} / {:.0} ms ({} events)", ms(&kafka, 0.5), ms(&kafka, 0.99), kafka.len()),
        ),
        Row::target(
            "events: order placed → e-mail in the mailbox p50/p99",
            format!("{p50:.0} / {:.0} ms", ms(&mail, 0.99)),
            format!("p50 ≤ {MAIL_P50_TARGET_MS:.0} ms"),
            p50 <= MAIL_P50_TARGET_MS,
        ),
        Row::check(
            "events: every order's event in Kafka and e-mail in the mailbox",
            format!("{} in Kafka, {} mailed", kafka.len(), mailed.len()),
            format!("{orders}, {orders}"),
            kafka.len() as usize == orders && mailed.len() == orders,
        ),
    ])
}

/// A consumer assigned every partition of `topic` at its current end.
fn at_end(bootstrap: &str, topic: &str) -> Result<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .context("creating the benchmark's Kafka consumer")?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).context("topic metadata")?;
    let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
    if partitions == 0 {
        bail!("topic {topic} has no partitions");
    }
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment.add_partition_offset(topic, p, Offset::End)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Reads the mailbox until every order's e-mail is there (at most a minute): order id → how long
/// after the API answered it was first seen.
async fn wait_for_mail(moto: &str, placed: &[(String, Instant)]) -> Result<HashMap<String, Duration>> {
    let http = reqwest::Client::new();
    let url = format!("{}/moto-api/data.json", moto.trim_end_matches('/'));
    let mut seen: HashMap<String, Duration> = HashMap::new();
    let mut duplicates = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < placed.len() && Instant::now() < deadline {
        let data: Value = http.get(&url).send().await?.json().await?;
        let now = Instant::now();
        let messages = data.pointer("/ses/Message").and_then(Value::as_array).cloned().unwrap_or_default();
        let bodies: Vec<&str> =
            messages.iter().filter(|m| m["subject"] == SUBJECT).filter_map(|m| m["body"].as_str()).collect();
        for (order, answered) in placed {
            let count = bodies.iter().filter(|b| b.contains(order.as_str())).count();
            if count > 1 {
                duplicates.insert(order.clone());
            }
            if count > 0 {
                seen.entry(order.clone()).or_insert_with(|| now.saturating_duration_since(*answered));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !duplicates.is_empty() {
        bail!("{} order e-mail(s) sent twice", duplicates.len());
    }
    Ok(seen)
}
