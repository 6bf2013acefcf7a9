//! Amazon DynamoDB Local: the official emulator (a JVM), started per stack on a free port.
//!
//! `-inMemory` makes every stack start empty, so runs never leak state into each other;
//! `-sharedDb` makes all credentials and regions see one database (DynamoDB Local otherwise keys
//! its data by access key and region, and a test with other credentials would see no tables).
//!
//! Tables are created from the template's `AWS::DynamoDB::Table` resources: key schema,
//! attribute definitions, GSIs/LSIs, the stream and TTL come from `template.yaml`, never from code
//! here. (DynamoDB Local accepts the TTL setting but never deletes an expired item.)

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use serde_json::Value;
use tokio::process::Child;

use crate::process::{self, Output};
use crate::template::{REGION, Table};

pub struct DynamoDbLocal {
    child: Child,
    pub endpoint: String,
}

impl DynamoDbLocal {
    /// Starts the JVM and waits until it answers `ListTables`.
    pub async fn start(jar_dir: &Path, port: u16, log: &Path) -> Result<Self> {
        let mut cmd = process::command("java");
        cmd.arg(format!("-Djava.library.path={}", jar_dir.join("DynamoDBLocal_lib").display()))
            .arg("-jar")
            .arg(jar_dir.join("DynamoDBLocal.jar"))
            .args(["-inMemory", "-sharedDb", "-port", &port.to_string()])
            .current_dir(jar_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process::spawn(cmd).context("starting DynamoDB Local (java)")?;
        process::forward_output(&mut child, Output::File { path: log.to_owned(), prefix: "[dynamodb-local]".into() });
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut ddb = Self { child, endpoint };
        ddb.wait_ready(Duration::from_secs(60)).await.with_context(|| format!("see {}", log.display()))?;
        Ok(ddb)
    }

    pub fn client(&self) -> Client {
        client(&self.endpoint)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let client = self.client();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("DynamoDB Local exited during start-up ({status})");
            }
            let attempt = tokio::time::timeout(Duration::from_secs(2), client.list_tables().send()).await;
            if matches!(attempt, Ok(Ok(_))) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("DynamoDB Local did not answer ListTables within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(mut self) {
        process::kill(&self.child);
        let _ = self.child.wait().await;
    }
}

/// A client for DynamoDB Local: fixed dummy credentials and the stack's region.
pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(shop::aws::behavior_version())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("local", "local", None, None, "local"))
        .http_client(shop::aws::https_client(shop::aws::TrustRoots::System))
        .build();
    Client::from_conf(config)
}

/// Creates one table from its resolved template `Properties`.
pub async fn create_table(client: &Client, table: &Table) -> Result<()> {
    let p = &table.properties;
    let ctx = || format!("table {}", table.name);
    let mut req = client
        .create_table()
        .table_name(&table.name)
        .set_attribute_definitions(Some(attribute_definitions(p.get("AttributeDefinitions")).with_context(ctx)?))
        .set_key_schema(Some(key_schema(p.get("KeySchema")).with_context(ctx)?));
    let billing = p.get("BillingMode").and_then(Value::as_str).unwrap_or("PROVISIONED");
    if billing == "PAY_PER_REQUEST" {
        req = req.billing_mode(BillingMode::PayPerRequest);
    } else {
        // DynamoDB Local ignores throughput, but PROVISIONED requires a value.
        req = req.billing_mode(BillingMode::Provisioned).provisioned_throughput(throughput()?);
    }
    for gsi in p.get("GlobalSecondaryIndexes").and_then(Value::as_array).into_iter().flatten() {
        let mut b = GlobalSecondaryIndex::builder()
            .index_name(str_field(gsi, "IndexName")?)
            .set_key_schema(Some(key_schema(gsi.get("KeySchema"))?))
            .projection(projection(gsi.get("Projection")));
        if billing != "PAY_PER_REQUEST" {
            b = b.provisioned_throughput(throughput()?);
        }
        req = req.global_secondary_indexes(b.build()?);
    }
    for lsi in p.get("LocalSecondaryIndexes").and_then(Value::as_array).into_iter().flatten() {
        req = req.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(str_field(lsi, "IndexName")?)
                .set_key_schema(Some(key_schema(lsi.get("KeySchema"))?))
                .projection(projection(lsi.get("Projection")))
                .build()?,
        );
    }
    if let Some(stream) = p.get("StreamSpecification") {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(str_field(stream, "StreamViewType")?))
                .build()?,
        );
    }
    req.send().await.map_err(aws_sdk_dynamodb::Error::from).with_context(|| format!("CreateTable {}", table.name))?;

    if let Some(ttl) = p.get("TimeToLiveSpecification")
        && ttl.get("Enabled").and_then(Value::as_bool) == Some(true)
    {
        client
            .update_time_to_live()
            .table_name(&table.name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(str_field(ttl, "AttributeName")?)
                    .build()?,
            )
            .send()
            .await
            .map_err(aws_sdk_dynamodb::Error::from)
            .with_context(|| format!("UpdateTimeToLive {}", table.name))?;
    }
    Ok(())
}

fn throughput() -> Result<aws_sdk_dynamodb::types::ProvisionedThroughput> {
    Ok(aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
        .read_capacity_units(5)
        .write_capacity_units(5)
        .build()?)
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v.get(key).and_then(Value::as_str).with_context(|| format!("missing {key}"))
}

fn attribute_definitions(v: Option<&Value>) -> Result<Vec<AttributeDefinition>> {
    let items = v.and_then(Value::as_array).context("missing AttributeDefinitions")?;
    items
        .iter()
        .map(|a| {
            Ok(AttributeDefinition::builder()
                .attribute_name(str_field(a, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(str_field(a, "AttributeType")?))
                .build()?)
        })
        .collect()
}

fn key_schema(v: Option<&Value>) -> Result<Vec<KeySchemaElement>> {
    let items = v.and_then(Value::as_array).context("missing KeySchema")?;
    items
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(str_field(k, "AttributeName")?)
                .key_type(KeyType::from(str_field(k, "KeyType")?))
                .build()?)
        })
        .collect()
}

fn projection(v: Option<&Value>) -> Projection {
    let kind = v.and_then(|p| p.get("ProjectionType")).and_then(Value::as_str).unwrap_or("ALL");
    let attrs = v
        .and_then(|p| p.get("NonKeyAttributes"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
    Projection::builder().projection_type(ProjectionType::from(kind)).set_non_key_attributes(attrs).build()
}
