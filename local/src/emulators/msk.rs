//! The MSK event source mapping: what Lambda does between a Kafka topic and a function.
//!
//! For every `Type: MSK` event in template.yaml, a consumer in the function's own consumer group
//! (named after the function, as Lambda names it after the mapping) subscribes to the event's
//! `Topics` and, like Lambda's poller:
//!
//! 1. **batches**: waits for a first record, then collects until `BatchSize` records (default
//!    100) or until `MaximumBatchingWindowInSeconds` (default 0.5 s) has passed;
//! 2. **builds the same event Lambda sends**: `{"eventSource": "aws:kafka", "eventSourceArn",
//!    "bootstrapServers", "records": {"<topic>-<partition>": [{topic, partition, offset,
//!    timestamp, timestampType, key, value, headers}]}}`, key and value base64-encoded, headers
//!    as `[{"name": [bytes...]}]`;
//! 3. **invokes the real function** through its instance pool, synchronously;
//! 4. **commits offsets only after success** (offset of the last record + 1 per partition). On
//!    a function error, a timeout or a crash the *same batch* is invoked again, with backoff: the
//!    partition does not move past a failed batch, as on Lambda. With `MaximumRetryAttempts` the
//!    retries end after that many, and Lambda's on-failure record (`KafkaBatchInfo`: topic,
//!    partition, first and last offset, batch size; not the records) goes to the
//!    `DestinationConfig.OnFailure` SQS queue of the template ([`crate::emulators::sqs`]); then the offsets
//!    are committed and the partition moves on. A commit the broker refuses is tried again a few
//!    times, then carried into the next batch's commit, so the group's committed offsets (what
//!    [`crate::emulators::settle`] reads) catch up as soon as the broker takes them.
//!
//! `StartingPosition: TRIM_HORIZON` reads a new group from the beginning, `LATEST` from the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::emulators::iam::authorizer::{Access, Authorizer};
use crate::emulators::runtime_api::{Outcome, Pool};
use crate::emulators::sqs::Sqs;
use crate::template::{ACCOUNT_ID, Function, REGION, Template};

/// One `MSK` event of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct MskTrigger {
    pub function: String,
    pub topics: Vec<String>,
    pub stream_arn: String,
    pub batch_size: usize,
    pub window: Duration,
    pub from_beginning: bool,
    /// `None`: retry a failing batch until it succeeds.
    pub max_retries: Option<u32>,
    /// The on-failure queue's name.
    pub on_failure: Option<String>,
}

impl MskTrigger {
    /// Every `MSK` event in the template.
    pub fn all(template: &Template) -> Vec<Self> {
        template.functions.iter().flat_map(Self::of).collect()
    }

    fn of(f: &Function) -> Vec<Self> {
        f.events
            .values()
            .filter(|e| e.get("Type").and_then(Value::as_str) == Some("MSK"))
            .map(|e| {
                let p = e.get("Properties").cloned().unwrap_or(json!({}));
                let number = |k: &str| p.get(k).and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()));
                Self {
                    function: f.logical_id.clone(),
                    topics: p
                        .get("Topics")
                        .and_then(Value::as_array)
                        .map(|t| t.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                    stream_arn: p.get("Stream").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    batch_size: number("BatchSize").map_or(100, |n| n as usize).max(1),
                    window: Duration::from_secs_f64(number("MaximumBatchingWindowInSeconds").unwrap_or(0.5)),
                    from_beginning: p.get("StartingPosition").and_then(Value::as_str) != Some("LATEST"),
                    max_retries: number("MaximumRetryAttempts").filter(|n| *n >= 0.0).map(|n| n as u32),
                    on_failure: p
                        .pointer("/DestinationConfig/OnFailure/Destination")
                        .and_then(Value::as_str)
                        .and_then(crate::emulators::sqs::queue_name)
                        .map(str::to_owned),
                }
            })
            .collect()
    }

    /// What Lambda's poller asks of the function's role (Lambda developer guide, "Amazon MSK
    /// event source mapping permissions"): to find the brokers, `kafka:DescribeClusterV2` and
    /// `kafka:GetBootstrapBrokers` on the cluster; to reach them from the cluster's VPC, the ENI
    /// actions on `*`; to consume with IAM access control, `kafka-cluster:Connect` and
    /// `DescribeClusterDynamicConfiguration` on the cluster, `DescribeTopic` and `ReadData` on
    /// each topic, `DescribeGroup` and `AlterGroup` on the consumer group (ARNs as MSK forms them
    /// from the cluster's: `…:cluster/<name>/<uuid>` → `…:topic/<name>/<uuid>/<topic>`,
    /// `…:group/…/<group>`).
    pub fn accesses(&self) -> Vec<Access> {
        let sibling =
            |kind: &str, name: &str| self.stream_arn.replacen(":cluster/", &format!(":{kind}/"), 1) + "/" + name;
        let on_cluster = [
            "kafka:DescribeClusterV2",
            "kafka:GetBootstrapBrokers",
            "kafka-cluster:Connect",
            "kafka-cluster:DescribeClusterDynamicConfiguration",
        ];
        let on_any = [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeVpcs",
            "ec2:DeleteNetworkInterface",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
        ];
        let mut out: Vec<Access> = on_cluster.iter().map(|a| Access::new(*a, self.stream_arn.clone())).collect();
        out.extend(on_any.iter().map(|a| Access::new(*a, "*")));
        for topic in &self.topics {
            out.push(Access::new("kafka-cluster:DescribeTopic", sibling("topic", topic)));
            out.push(Access::new("kafka-cluster:ReadData", sibling("topic", topic)));
        }
        out.push(Access::new("kafka-cluster:DescribeGroup", sibling("group", &self.function)));
        out.push(Access::new("kafka-cluster:AlterGroup", sibling("group", &self.function)));
        out
    }

    /// Starts polling for this trigger; runs until the task is aborted. A role that may not
    /// consume leaves the trigger idle, as a mapping whose role is short polls nothing: the
    /// denial is logged (once) and reported.
    pub fn start(self, bootstrap: &str, pool: Arc<Pool>, sqs: Option<Sqs>, iam: &Authorizer) -> Result<JoinHandle<()>> {
        if let Err(denied) = iam.authorize(&self.function, &self.accesses()) {
            tracing::error!("MSK trigger of {} cannot poll: {}", self.function, denied.message);
            return Ok(tokio::spawn(std::future::pending()));
        }
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", &self.function)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", if self.from_beginning { "earliest" } else { "latest" })
            .set("fetch.wait.max.ms", "100")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Back within a second of the broker returning (librdkafka's default backs off to 10 s).
            .set("reconnect.backoff.max.ms", "1000")
            .create()
            .context("creating the MSK trigger's consumer")?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).context("subscribing")?;
        let bootstrap = bootstrap.to_owned();
        Ok(tokio::spawn(async move { self.poll(consumer, &bootstrap, pool, sqs).await }))
    }

    async fn poll(self, consumer: StreamConsumer, bootstrap: &str, pool: Arc<Pool>, sqs: Option<Sqs>) {
        // Offsets done with but not yet committed (a commit that failed goes with the next one).
        let mut uncommitted: BTreeMap<(String, i32), i64> = BTreeMap::new();
        loop {
            let (event, offsets) = match self.next_batch(&consumer, bootstrap).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!("MSK trigger of {}: {e:#}", self.function);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let payload = bytes::Bytes::from(event.to_string());
            let mut backoff = Duration::from_millis(500);
            let mut retries = 0;
            loop {
                let error = match pool.invoke(payload.clone()).await {
                    Outcome::Success(_) => break,
                    Outcome::FunctionError(body) => String::from_utf8_lossy(&body).into_owned(),
                    Outcome::Failed { error_type, message } => format!("{error_type}: {message}"),
                };
                if self.max_retries.is_some_and(|max| retries >= max) {
                    self.give_up(&event, retries, sqs.as_ref()).await;
                    break;
                }
                tracing::warn!("{} failed a Kafka batch, retrying in {backoff:?}: {error}", self.function);
                retries += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            uncommitted.extend(offsets);
            if self.commit(&consumer, &uncommitted).await {
                uncommitted.clear();
            }
        }
    }

    /// Commits `offsets`, retrying a few times (the broker may be coming back). `false` if it
    /// still failed: the offsets then go with the next batch's commit. Not fatal meanwhile: after
    /// a rebalance the batch is delivered again, and the function is idempotent.
    async fn commit(&self, consumer: &StreamConsumer, offsets: &BTreeMap<(String, i32), i64>) -> bool {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in offsets {
            if let Err(e) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
                tracing::warn!("MSK trigger of {}: offset of {topic}-{partition}: {e}", self.function);
            }
        }
        let mut backoff = Duration::from_millis(200);
        for _ in 0..5 {
            // A synchronous commit waits for the broker: not on an async worker's time.
            match tokio::task::block_in_place(|| consumer.commit(&list, CommitMode::Sync)) {
                Ok(()) => return true,
                Err(e) => tracing::warn!("MSK trigger of {}: committing offsets: {e}", self.function),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        false
    }

    /// Lambda's on-failure record for a Kafka batch, to the destination queue (or the log).
    async fn give_up(&self, event: &Value, retries: u32, sqs: Option<&Sqs>) {
        let records: Vec<&Value> = event["records"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|v| v.as_array())
            .flatten()
            .collect();
        let offsets: Vec<i64> = records.iter().filter_map(|r| r["offset"].as_i64()).collect();
        let first = records.first();
        let info = json!({
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}", self.function),
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": retries + 1,
            },
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "version": "1.0",
            "timestamp": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "KafkaBatchInfo": {
                "batchSize": records.len(),
                "bootstrapServers": event["bootstrapServers"],
                "consumerGroupId": self.function,
                "topic": first.map(|r| r["topic"].clone()),
                "partition": first.map(|r| r["partition"].clone()),
                "firstOffset": offsets.iter().min(),
                "lastOffset": offsets.iter().max(),
            },
        });
        tracing::error!(
            "{}: gave up on a Kafka batch of {} record(s) after {retries} retries",
            self.function,
            records.len()
        );
        match (&self.on_failure, sqs) {
            (Some(queue), Some(sqs)) => {
                if let Err(e) = sqs.send(&self.function, queue, &info).await {
                    tracing::error!("{}: on-failure destination {queue}: {e:#}", self.function);
                }
            }
            _ => tracing::error!("{}: no on-failure destination; discarded: {info}", self.function),
        }
    }

    /// Waits for a first record, then fills the batch until it is full, the window closes or the
    /// consumer reports an error (the batch then goes as it is: its records are consumed).
    /// Returns the event and the offsets to commit once it is done with.
    async fn next_batch(
        &self,
        consumer: &StreamConsumer,
        bootstrap: &str,
    ) -> Result<(Value, BTreeMap<(String, i32), i64>)> {
        let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let first = consumer.recv().await?;
        let deadline = tokio::time::Instant::now() + self.window;
        let mut add = |m: &BorrowedMessage<'_>| {
            records.entry(format!("{}-{}", m.topic(), m.partition())).or_default().push(record_json(m));
            next.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
        };
        add(&first);
        drop(first);
        let mut count = 1;
        while count < self.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_) => break,
                Ok(Ok(message)) => {
                    add(&message);
                    count += 1;
                }
                Ok(Err(e)) => {
                    tracing::warn!("MSK trigger of {}: {e}; invoking the {count} record(s) read so far", self.function);
                    break;
                }
            }
        }
        Ok((self.event(bootstrap, records), next))
    }

    /// The event Lambda sends: `records` grouped by `"<topic>-<partition>"`, each from [`record`].
    pub fn event(&self, bootstrap: &str, records: BTreeMap<String, Vec<Value>>) -> Value {
        json!({
            "eventSource": "aws:kafka",
            "eventSourceArn": self.stream_arn,
            "bootstrapServers": bootstrap,
            "records": records,
        })
    }
}

/// One record as Lambda puts it in the event.
fn record_json(m: &BorrowedMessage<'_>) -> Value {
    let headers: Vec<Value> = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| json!({ h.key: h.value.unwrap_or_default().iter().map(|b| *b as i8).collect::<Vec<i8>>() }))
                .collect()
        })
        .unwrap_or_default();
    let timestamp = m.timestamp().to_millis().unwrap_or_default();
    record(m.topic(), m.partition(), m.offset(), timestamp, m.key(), m.payload(), headers)
}

/// One record as Lambda puts it in the event: key and value base64-encoded, `headers` as
/// `[{"name": [bytes...]}]`.
pub fn record(
    topic: &str,
    partition: i32,
    offset: i64,
    timestamp_ms: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: Vec<Value>,
) -> Value {
    json!({
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp_ms,
        "timestampType": "CREATE_TIME",
        "key": key.map(|k| STANDARD.encode(k)),
        "value": value.map(|v| STANDARD.encode(v)),
        "headers": headers,
    })
}
