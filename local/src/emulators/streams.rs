//! The DynamoDB Streams event source mapping: what Lambda does between a table's stream and a
//! function, played against DynamoDB Local's own Streams API (`DescribeStream`,
//! `GetShardIterator`, `GetRecords`).
//!
//! For every `Type: DynamoDB` event in template.yaml, like Lambda's stream poller:
//!
//! 1. **shards**: `DescribeStream` every second; each shard is read by a task of its own, a child
//!    only once its parent is read to the end (so one item's records stay in order across a
//!    split). `StartingPosition` `TRIM_HORIZON` reads a shard from its start, `LATEST` from now;
//! 2. **reads** with `GetRecords` (polled every 100 ms while idle) and **filters** with the
//!    event's `FilterCriteria` (see [`Pattern`]): records no pattern matches are passed over;
//! 3. **batches**: with `ParallelizationFactor` N, the records are spread over N lanes by
//!    partition key; each lane invokes one batch at a time, of what it holds: up to `BatchSize`
//!    records (default 100), waiting up to `MaximumBatchingWindowInSeconds` (default 0) for more.
//!    The lanes run concurrently while the shard is read on (records of one key stay in order,
//!    and a full lane holds the reader back);
//! 4. **invokes the real function** through its instance pool with the event Lambda sends:
//!    `{"Records": [<the GetRecords record> + "eventSourceARN"]}`;
//! 5. **handles the outcome**: with `FunctionResponseTypes: [ReportBatchItemFailures]` a response
//!    `{"batchItemFailures": [{"itemIdentifier": "<sequence number>"}]}` checkpoints before the
//!    lowest failed sequence number and retries from there (a missing, empty or unknown identifier
//!    fails the whole batch); a function error, timeout or crash fails the whole batch, which with
//!    `BisectBatchOnFunctionError` is split in two halves, retried separately (a split does not
//!    count as a retry). Retries back off from 0.2 s, doubling, to 2 s;
//! 6. **gives up** after `MaximumRetryAttempts` (default -1: never) or once the oldest record is
//!    older than `MaximumRecordAgeInSeconds`, and then sends Lambda's `DDBStreamBatchInfo` record
//!    (shard, first and last sequence number, batch size; not the records) to the on-failure
//!    destination (`DestinationConfig.OnFailure`, an SQS queue of the template, see [`crate::emulators::sqs`])
//!    and moves on: the shard is never blocked for longer than that.
//!
//! Each trigger keeps its [`Progress`]: how far every shard has been read and which records are
//! still with the function. That is what [`crate::emulators::settle`] waits on when a test asks whether
//! everything written so far has gone through.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::emulators::iam::authorizer::{Access, Authorizer};
use crate::emulators::runtime_api::{Outcome, Pool};
use crate::emulators::settle::{SequenceNumber, StreamProgress as Progress};
use crate::emulators::sqs::Sqs;
use crate::template::{ACCOUNT_ID, REGION, Template};

/// How often an idle shard is read again (Lambda polls a stream's shards about four times a second).
const IDLE_POLL: Duration = Duration::from_millis(100);
const SHARD_SCAN: Duration = Duration::from_secs(1);
/// `GetRecords`' `Limit`.
const RECORDS_PER_POLL: usize = 1000;

/// One `DynamoDB` event of a function.
#[derive(Debug, Clone)]
pub struct StreamTrigger {
    pub function: String,
    pub table: String,
    pub batch_size: usize,
    pub window: Duration,
    pub parallelization: usize,
    pub report_item_failures: bool,
    pub bisect: bool,
    /// `None`: retry until the record expires.
    pub max_retries: Option<u32>,
    pub max_age: Option<Duration>,
    pub from_start: bool,
    pub filters: Vec<Pattern>,
    /// The on-failure queue's name.
    pub on_failure: Option<String>,
    /// How far the running trigger has come (shared by its clones).
    pub progress: Arc<Progress>,
}

impl StreamTrigger {
    /// Every `DynamoDB` event in the template.
    pub fn all(template: &Template) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for f in &template.functions {
            for (name, e) in &f.events {
                if e.get("Type").and_then(Value::as_str) != Some("DynamoDB") {
                    continue;
                }
                let p = e.get("Properties").cloned().unwrap_or(json!({}));
                out.push(Self::of(&f.logical_id, &p).with_context(|| format!("{}: event {name}", f.logical_id))?);
            }
        }
        Ok(out)
    }

    fn of(function: &str, p: &Value) -> Result<Self> {
        let number = |k: &str| p.get(k).and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()));
        let stream = p.get("Stream").and_then(Value::as_str).context("Stream is required")?;
        let table = stream
            .split("table/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .context("Stream is not a table stream ARN")?
            .to_owned();
        let filters = p
            .pointer("/FilterCriteria/Filters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|f| {
                let text = f.get("Pattern").and_then(Value::as_str).context("a filter without Pattern")?;
                Pattern::parse(text)
            })
            .collect::<Result<Vec<_>>>()?;
        let on_failure = match p.pointer("/DestinationConfig/OnFailure/Destination").and_then(Value::as_str) {
            None => None,
            Some(arn) => Some(
                crate::emulators::sqs::queue_name(arn)
                    .with_context(|| format!("on-failure destination {arn} is not a queue of the template"))?
                    .to_owned(),
            ),
        };
        Ok(Self {
            function: function.to_owned(),
            table,
            batch_size: number("BatchSize").map_or(100, |n| n as usize).max(1),
            window: Duration::from_secs_f64(number("MaximumBatchingWindowInSeconds").unwrap_or(0.0).max(0.0)),
            parallelization: number("ParallelizationFactor").map_or(1, |n| n as usize).clamp(1, 10),
            report_item_failures: p
                .get("FunctionResponseTypes")
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|t| t == "ReportBatchItemFailures")),
            bisect: p.get("BisectBatchOnFunctionError").and_then(Value::as_bool).unwrap_or(false),
            max_retries: number("MaximumRetryAttempts").filter(|n| *n >= 0.0).map(|n| n as u32),
            max_age: number("MaximumRecordAgeInSeconds").filter(|n| *n >= 0.0).map(Duration::from_secs_f64),
            from_start: p.get("StartingPosition").and_then(Value::as_str) != Some("LATEST"),
            filters,
            on_failure,
            progress: Arc::default(),
        })
    }

    /// Starts polling the table's stream; runs until the task is aborted.
    pub fn start(self, dynamodb: &str, pool: Arc<Pool>, sqs: Option<Sqs>, iam: Authorizer) -> JoinHandle<()> {
        let role = Role { iam, function: self.function.clone(), stream: stream_arn(&self.table) };
        let ctx = Arc::new(Ctx { api: StreamsApi::new(dynamodb, role), trigger: self, pool, sqs });
        tokio::spawn(async move { ctx.run().await })
    }

    fn matches(&self, record: &Value) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|p| p.matches(record))
    }
}

/// One `FilterCriteria` pattern, Lambda's (EventBridge's) syntax: an object's keys must all
/// match; a leaf is a list of allowed values, each a literal (string, number, bool, null) or an
/// operator: `{"prefix": "…"}`, `{"exists": bool}`, `{"anything-but": [...]}` and
/// `{"numeric": [">", 1, "<=", 5]}`.
#[derive(Debug, Clone)]
pub struct Pattern(Value);

impl Pattern {
    pub fn parse(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).with_context(|| format!("filter pattern is not JSON: {text}"))?;
        if !v.is_object() {
            bail!("a filter pattern must be a JSON object: {text}");
        }
        Ok(Self(v))
    }

    pub fn matches(&self, record: &Value) -> bool {
        object_matches(&self.0, Some(record))
    }
}

fn object_matches(pattern: &Value, value: Option<&Value>) -> bool {
    let Some(fields) = pattern.as_object() else { return false };
    fields.iter().all(|(key, rule)| {
        let field = value.and_then(|v| v.get(key));
        match rule {
            Value::Object(_) => object_matches(rule, field),
            Value::Array(allowed) => allowed.iter().any(|a| leaf_matches(a, field)),
            _ => false,
        }
    })
}

fn leaf_matches(rule: &Value, field: Option<&Value>) -> bool {
    match rule {
        Value::Object(op) => {
            if let Some(prefix) = op.get("prefix").and_then(Value::as_str) {
                return field.and_then(Value::as_str).is_some_and(|s| s.starts_with(prefix));
            }
            if let Some(exists) = op.get("exists").and_then(Value::as_bool) {
                return field.is_some() == exists;
            }
            if let Some(but) = op.get("anything-but") {
                let excluded: Vec<&Value> = match but {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                return field.is_some_and(|f| !excluded.contains(&f));
            }
            if let Some(Value::Array(conditions)) = op.get("numeric") {
                let Some(n) = field.and_then(|f| f.as_f64().or_else(|| f.as_str()?.parse().ok())) else { return false };
                return conditions.chunks(2).all(|c| {
                    match (c.first().and_then(Value::as_str), c.get(1).and_then(Value::as_f64)) {
                        (Some("="), Some(x)) => n == x,
                        (Some("<"), Some(x)) => n < x,
                        (Some("<="), Some(x)) => n <= x,
                        (Some(">"), Some(x)) => n > x,
                        (Some(">="), Some(x)) => n >= x,
                        _ => false,
                    }
                });
            }
            false
        }
        Value::Null => field.is_none_or(Value::is_null),
        literal => field == Some(literal),
    }
}

/// The stream's ARN as the template names it (`!GetAtt T.StreamArn`, see [`crate::template`]).
fn stream_arn(table: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table}/stream/local")
}

/// Who reads: the poller acts with its function's role, as Lambda's does.
struct Role {
    iam: Authorizer,
    function: String,
    stream: String,
}

/// The Streams API of DynamoDB Local, over its JSON protocol, each stream call authorized as
/// the function's role (`dynamodb:DescribeStream`, `GetShardIterator`, `GetRecords` on the
/// stream's ARN): a denied one fails like any error of the call, and the poller retries it.
struct StreamsApi(crate::emulators::aws_json::Client, Role);

impl StreamsApi {
    fn new(endpoint: &str, role: Role) -> Self {
        Self(crate::emulators::aws_json::Client::new(endpoint, "dynamodb"), role)
    }

    async fn call(&self, target: &str, body: Value) -> Result<Value> {
        if let Some(op) = target.strip_prefix("DynamoDBStreams_20120810.") {
            let access = Access::new(format!("dynamodb:{op}"), self.1.stream.clone());
            if let Err(denied) = self.1.iam.authorize(&self.1.function, &[access]) {
                anyhow::bail!("AccessDeniedException: {}", denied.message);
            }
        }
        self.0.call(target, &body).await
    }

    async fn stream_arn(&self, table: &str) -> Result<String> {
        let out = self.call("DynamoDB_20120810.DescribeTable", json!({ "TableName": table })).await?;
        out.pointer("/Table/LatestStreamArn")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("table {table} has no stream (StreamSpecification)"))
    }

    async fn shards(&self, stream: &str) -> Result<Vec<Value>> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let mut body = json!({ "StreamArn": stream });
            if let Some(s) = &start {
                body["ExclusiveStartShardId"] = json!(s);
            }
            let out = self.call("DynamoDBStreams_20120810.DescribeStream", body).await?;
            let page = out.pointer("/StreamDescription/Shards").and_then(Value::as_array).cloned().unwrap_or_default();
            shards.extend(page);
            match out.pointer("/StreamDescription/LastEvaluatedShardId").and_then(Value::as_str) {
                Some(last) => start = Some(last.to_owned()),
                None => return Ok(shards),
            }
        }
    }

    async fn iterator(&self, stream: &str, shard: &str, from_start: bool) -> Result<Option<String>> {
        let kind = if from_start { "TRIM_HORIZON" } else { "LATEST" };
        let out = self
            .call(
                "DynamoDBStreams_20120810.GetShardIterator",
                json!({ "StreamArn": stream, "ShardId": shard, "ShardIteratorType": kind }),
            )
            .await?;
        Ok(out.get("ShardIterator").and_then(Value::as_str).map(str::to_owned))
    }

    /// Records and the next iterator (`None`: the shard is closed and read to its end).
    async fn records(&self, iterator: &str) -> Result<(Vec<Value>, Option<String>)> {
        let out = self
            .call(
                "DynamoDBStreams_20120810.GetRecords",
                json!({ "ShardIterator": iterator, "Limit": RECORDS_PER_POLL }),
            )
            .await?;
        let records = out.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok((records, out.get("NextShardIterator").and_then(Value::as_str).map(str::to_owned)))
    }
}

struct Ctx {
    trigger: StreamTrigger,
    api: StreamsApi,
    pool: Arc<Pool>,
    sqs: Option<Sqs>,
}

/// A batch on its way: the records and how often it was retried.
struct Batch {
    records: Vec<Value>,
    retries: u32,
}

fn sequence(record: &Value) -> Option<&str> {
    record.pointer("/dynamodb/SequenceNumber").and_then(Value::as_str)
}

/// When the record was written, in epoch seconds.
fn created(record: &Value) -> f64 {
    record.pointer("/dynamodb/ApproximateCreationDateTime").and_then(Value::as_f64).unwrap_or(0.0)
}

fn now_secs() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

fn rfc3339(epoch: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos((epoch * 1e9) as i128)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

impl Ctx {
    async fn run(self: Arc<Self>) {
        let t = &self.trigger;
        let stream = loop {
            match self.api.stream_arn(&t.table).await {
                Ok(arn) => break arn,
                Err(e) => {
                    tracing::warn!("stream trigger of {}: {e:#}", t.function);
                    tokio::time::sleep(SHARD_SCAN).await;
                }
            }
        };
        let mut started: HashSet<String> = HashSet::new();
        let finished: Arc<tokio::sync::Mutex<HashSet<String>>> = Arc::default();
        let mut initial = true;
        loop {
            let scan = std::time::Instant::now();
            match self.api.shards(&stream).await {
                Ok(shards) => {
                    let ids = shards.iter().filter_map(|s| s.get("ShardId").and_then(Value::as_str));
                    t.progress.scanned(scan, ids.map(str::to_owned));
                    let done = finished.lock().await.clone();
                    for shard in shards {
                        let Some(id) = shard.get("ShardId").and_then(Value::as_str).map(str::to_owned) else {
                            continue;
                        };
                        if started.contains(&id) {
                            continue;
                        }
                        let parent = shard.get("ParentShardId").and_then(Value::as_str);
                        // A child waits for its parent, if we are reading the parent.
                        if parent.is_some_and(|p| started.contains(p) && !done.contains(p)) {
                            continue;
                        }
                        started.insert(id.clone());
                        // Shards that appear later are new: read them whole, whatever the position.
                        let from_start = t.from_start || !initial;
                        let (ctx, stream, finished) = (self.clone(), stream.clone(), finished.clone());
                        tokio::spawn(async move {
                            ctx.read_shard(&stream, &id, from_start).await;
                            ctx.trigger.progress.finished(&id);
                            finished.lock().await.insert(id);
                        });
                    }
                    initial = false;
                }
                Err(e) => tracing::warn!("stream trigger of {}: {e:#}", t.function),
            }
            tokio::time::sleep(SHARD_SCAN).await;
        }
    }

    /// Reads one shard to its end (never, for an open one), handing its records to the lanes.
    async fn read_shard(self: &Arc<Self>, stream: &str, shard: &str, from_start: bool) {
        let t = &self.trigger;
        let mut iterator = loop {
            match self.api.iterator(stream, shard, from_start).await {
                Ok(Some(it)) => break it,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("stream trigger of {}: shard {shard}: {e:#}", t.function);
                    tokio::time::sleep(SHARD_SCAN).await;
                }
            }
        };
        // One lane per ParallelizationFactor: a task with its own queue, invoking one batch at a
        // time; a key always goes to the same lane, so its records stay in order.
        let (lanes, workers): (Vec<_>, Vec<_>) = (0..t.parallelization)
            .map(|_| {
                let (tx, rx) = tokio::sync::mpsc::channel::<Value>(t.batch_size * 4);
                let (ctx, shard, stream) = (self.clone(), shard.to_owned(), stream.to_owned());
                (tx, tokio::spawn(async move { ctx.lane(rx, &shard, &stream).await }))
            })
            .unzip();
        let arn = stream_arn(&t.table);
        let mut read_up_to: Option<SequenceNumber> = None;
        loop {
            let polled = std::time::Instant::now();
            let (records, next) = match self.api.records(&iterator).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("stream trigger of {}: shard {shard}: {e:#}", t.function);
                    tokio::time::sleep(SHARD_SCAN).await;
                    continue;
                }
            };
            let read = records.len();
            for mut record in records {
                let number = sequence(&record).map(SequenceNumber::parse);
                if number > read_up_to {
                    read_up_to.clone_from(&number);
                }
                if !t.matches(&record) {
                    continue;
                }
                if let Some(number) = number {
                    t.progress.handed(shard, number);
                }
                record["eventSourceARN"] = json!(arn);
                let mut h = std::collections::hash_map::DefaultHasher::new();
                record.pointer("/dynamodb/Keys").map(Value::to_string).hash(&mut h);
                // Waits while the lane is full: the poller reads no faster than the function keeps up.
                let _ = lanes[(h.finish() % lanes.len() as u64) as usize].send(record).await;
            }
            // Only an empty answer says the shard has nothing more (a short one may not).
            if read == 0 {
                t.progress.caught_up(shard, polled, read_up_to.clone());
            }
            match next {
                Some(n) => iterator = n,
                None => break,
            }
            if read == 0 {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
        // A closed shard: its lanes finish what they hold before a child shard may start.
        drop(lanes);
        futures::future::join_all(workers).await;
    }

    /// One lane: a batch of what is queued (up to `BatchSize`, waiting up to the batching window
    /// for more), handed to the function, then the next.
    async fn lane(&self, mut queue: tokio::sync::mpsc::Receiver<Value>, shard: &str, stream: &str) {
        let t = &self.trigger;
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + t.window;
            while batch.len() < t.batch_size {
                match queue.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(deadline, queue.recv()).await {
                            Ok(Some(r)) => batch.push(r),
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
            let numbers: Vec<SequenceNumber> = batch.iter().filter_map(sequence).map(SequenceNumber::parse).collect();
            self.process(shard, stream, batch).await;
            t.progress.done(shard, &numbers);
        }
    }

    /// One batch until it succeeds or is given up on.
    async fn process(&self, shard: &str, stream: &str, records: Vec<Value>) {
        let t = &self.trigger;
        let mut work = vec![Batch { records, retries: 0 }];
        while let Some(mut batch) = work.pop() {
            loop {
                if batch.records.is_empty() {
                    break;
                }
                if let Some(max_age) = t.max_age
                    && now_secs() - created(&batch.records[0]) > max_age.as_secs_f64()
                {
                    self.give_up(shard, stream, &batch, "RecordAgeExceeded", None).await;
                    break;
                }
                let event = json!({ "Records": batch.records });
                let outcome = self.pool.invoke(bytes::Bytes::from(event.to_string())).await;
                let failed_from = match &outcome {
                    Outcome::Success(body) if t.report_item_failures => checkpoint(&batch.records, body),
                    Outcome::Success(_) => Ok(None),
                    Outcome::FunctionError(_) | Outcome::Failed { .. } => Err(()),
                };
                match failed_from {
                    Ok(None) => break,
                    Ok(Some(from)) => {
                        tracing::warn!(
                            "{} reported {} of {} records failed; retrying from there",
                            t.function,
                            batch.records.len() - from,
                            batch.records.len()
                        );
                        batch.records.drain(..from);
                    }
                    Err(()) if t.bisect && batch.records.len() > 1 => {
                        // Split without counting a retry; the second half waits for the first.
                        let second = batch.records.split_off(batch.records.len() / 2);
                        tracing::warn!(
                            "{} failed a batch; bisecting it ({} + {})",
                            t.function,
                            batch.records.len(),
                            second.len()
                        );
                        work.push(Batch { records: second, retries: batch.retries });
                        continue;
                    }
                    Err(()) => {
                        let why = match &outcome {
                            Outcome::FunctionError(body) => String::from_utf8_lossy(body).into_owned(),
                            Outcome::Failed { error_type, message } => format!("{error_type}: {message}"),
                            Outcome::Success(_) => String::new(),
                        };
                        tracing::warn!("{} failed a stream batch: {why}", t.function);
                    }
                }
                if t.max_retries.is_some_and(|max| batch.retries >= max) {
                    let error = matches!(outcome, Outcome::FunctionError(_) | Outcome::Failed { .. });
                    self.give_up(shard, stream, &batch, "RetryAttemptsExhausted", error.then_some("Unhandled")).await;
                    break;
                }
                let backoff = Duration::from_millis(200 * 2u64.pow(batch.retries.min(4))).min(Duration::from_secs(2));
                batch.retries += 1;
                tokio::time::sleep(backoff).await;
            }
        }
    }

    /// Lambda's on-failure record for a stream batch, to the destination queue (or the log).
    async fn give_up(&self, shard: &str, stream: &str, batch: &Batch, condition: &str, function_error: Option<&str>) {
        let t = &self.trigger;
        let (first, last) = (batch.records.first(), batch.records.last());
        let mut response_context = json!({ "statusCode": 200, "executedVersion": "$LATEST" });
        if let Some(e) = function_error {
            response_context["functionError"] = json!(e);
        }
        let info = json!({
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}", t.function),
                "condition": condition,
                "approximateInvokeCount": batch.retries + 1,
            },
            "responseContext": response_context,
            "version": "1.0",
            "timestamp": rfc3339(now_secs()),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": first.and_then(sequence),
                "endSequenceNumber": last.and_then(sequence),
                "approximateArrivalOfFirstRecord": first.map(|r| rfc3339(created(r))),
                "approximateArrivalOfLastRecord": last.map(|r| rfc3339(created(r))),
                "batchSize": batch.records.len(),
                "streamArn": stream,
            },
        });
        tracing::error!("{}: gave up on {} stream record(s) ({condition})", t.function, batch.records.len());
        match (&t.on_failure, &self.sqs) {
            (Some(queue), Some(sqs)) => {
                if let Err(e) = sqs.send(&t.function, queue, &info).await {
                    tracing::error!("{}: on-failure destination {queue}: {e:#}", t.function);
                }
            }
            _ => tracing::error!("{}: no on-failure destination; discarded: {info}", t.function),
        }
    }
}

/// A partial batch response: `Ok(None)` all succeeded, `Ok(Some(i))` retry from record `i`,
/// `Err` the whole batch failed (an identifier that is missing, empty or not in the batch).
fn checkpoint(records: &[Value], body: &[u8]) -> Result<Option<usize>, ()> {
    let response: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let failures = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(f)) => f,
        Some(_) => return Err(()),
    };
    let mut lowest: Option<usize> = None;
    for f in failures {
        let id = f.get("itemIdentifier").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(())?;
        let at = records.iter().position(|r| sequence(r) == Some(id)).ok_or(())?;
        lowest = Some(lowest.map_or(at, |l| l.min(at)));
    }
    Ok(lowest)
}

/// The triggers whose function runs, started.
pub fn start(
    triggers: &[StreamTrigger],
    dynamodb: &str,
    pools: &BTreeMap<String, Arc<Pool>>,
    sqs: Option<&Sqs>,
    iam: &Authorizer,
) -> Vec<JoinHandle<()>> {
    triggers
        .iter()
        .filter_map(|t| {
            pools.get(&t.function).map(|pool| t.clone().start(dynamodb, pool.clone(), sqs.cloned(), iam.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox_insert(gsi1pk: Option<&str>) -> Value {
        let mut image = json!({ "pk": {"S": "EVENT#1"}, "sk": {"S": "EVENT"} });
        if let Some(v) = gsi1pk {
            image["gsi1pk"] = json!({ "S": v });
        }
        json!({ "eventName": "INSERT", "dynamodb": { "NewImage": image, "SequenceNumber": "1" } })
    }

    #[test]
    fn the_templates_filter_passes_pending_outbox_items_only() {
        let p = Pattern::parse(r#"{"dynamodb": {"NewImage": {"sk": {"S": ["EVENT"]}, "gsi1pk": {"S": ["OUTBOX"]}}}}"#)
            .unwrap();
        assert!(p.matches(&outbox_insert(Some("OUTBOX"))));
        assert!(!p.matches(&outbox_insert(None)), "published (index attribute removed)");
        assert!(!p.matches(&outbox_insert(Some("CATALOG"))));
        assert!(!p.matches(&json!({ "eventName": "REMOVE", "dynamodb": { "Keys": {} } })));
    }

    #[test]
    fn operators() {
        let r =
            json!({ "eventName": "MODIFY", "dynamodb": { "NewImage": { "n": {"N": "5"}, "s": {"S": "ORDER#1"} } } });
        let m = |p: &str| Pattern::parse(p).unwrap().matches(&r);
        assert!(m(r#"{"eventName": ["INSERT", "MODIFY"]}"#));
        assert!(!m(r#"{"eventName": ["INSERT"]}"#));
        assert!(m(r#"{"dynamodb": {"NewImage": {"s": {"S": [{"prefix": "ORDER#"}]}}}}"#));
        assert!(m(r#"{"dynamodb": {"NewImage": {"x": [{"exists": false}]}}}"#));
        assert!(!m(r#"{"dynamodb": {"NewImage": {"s": [{"exists": false}]}}}"#));
        assert!(m(r#"{"eventName": [{"anything-but": ["REMOVE"]}]}"#));
        assert!(m(r#"{"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 1, "<=", 5]}]}}}}"#));
        assert!(!m(r#"{"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 5]}]}}}}"#));
        assert!(Pattern::parse("[1]").is_err());
    }

    fn trigger() -> StreamTrigger {
        StreamTrigger::of(
            "F",
            &json!({ "Stream": "arn:aws:dynamodb:us-east-1:123456789012:table/ShopTable/stream/local",
                     "StartingPosition": "TRIM_HORIZON", "BatchSize": 10, "ParallelizationFactor": 2,
                     "FunctionResponseTypes": ["ReportBatchItemFailures"], "BisectBatchOnFunctionError": true,
                     "MaximumRetryAttempts": 3, "MaximumRecordAgeInSeconds": 60,
                     "DestinationConfig": { "OnFailure": { "Type": "SQS",
                         "Destination": "arn:aws:sqs:us-east-1:123456789012:DeadLetters" } } }),
        )
        .unwrap()
    }

    #[test]
    fn partial_batch_responses_checkpoint_at_the_lowest_failure() {
        let records: Vec<Value> = (1..=4).map(|i| json!({ "dynamodb": { "SequenceNumber": i.to_string() } })).collect();
        let r = |body: Value| checkpoint(&records, body.to_string().as_bytes());
        assert_eq!(r(json!({ "batchItemFailures": [] })), Ok(None));
        assert_eq!(r(json!(null)), Ok(None));
        assert_eq!(r(json!({ "batchItemFailures": [{"itemIdentifier": "4"}, {"itemIdentifier": "2"}] })), Ok(Some(1)));
        assert_eq!(r(json!({ "batchItemFailures": [{"itemIdentifier": ""}] })), Err(()));
        assert_eq!(r(json!({ "batchItemFailures": [{"itemIdentifier": null}] })), Err(()));
        assert_eq!(r(json!({ "batchItemFailures": [{"itemIdentifier": "9"}] })), Err(()));
    }

    #[test]
    fn reads_the_event_definition() {
        let t = trigger();
        assert_eq!(t.table, "ShopTable");
        assert_eq!((t.batch_size, t.parallelization, t.max_retries), (10, 2, Some(3)));
        assert!(t.report_item_failures && t.bisect && t.from_start);
        assert_eq!(t.on_failure.as_deref(), Some("DeadLetters"));
        assert_eq!(t.max_age, Some(Duration::from_secs(60)));
    }
}
