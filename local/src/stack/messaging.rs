//! Events and e-mail in the local stack: the Kafka broker ([`crate::emulators::kafka`]), the SES and SQS
//! emulator (moto: [`crate::emulators::ses`], [`crate::emulators::sqs`]), the table's stream trigger
//! ([`crate::emulators::streams`], which feeds the outbox relay) and the MSK trigger ([`crate::emulators::msk`], which
//! feeds the notifier), started together and wired into the functions, the Invoke API and the
//! test contract.
//!
//! - functions get `KAFKA_BOOTSTRAP_SERVERS` (if they declare it) and
//!   `KAFKA_AUTH=msk-iam-plaintext` (MSK's IAM tokens, judged by the Kafka front), and every
//!   function `AWS_ENDPOINT_URL_SESV2`, like Lambda would get real endpoints;
//! - the Invoke API gains `POST /_local/kafka/stop|start` and `POST /_local/ses/stop|start`
//!   (outages, see [`crate::emulators::outage`]), `GET /_local/mail` (the mail sent so far; the API port
//!   serves it too, for the storefront; local only, not part of the deployed API) and
//!   `GET /_local/sqs/<queue>` (a queue's messages, e.g. what a trigger gave up on) and
//!   `/_local/ses/refusals` (recipients SES is to refuse, see [`crate::emulators::ses`]) and
//!   `/_local/ses/quota` (the account's sending quota the SES gate enforces: `PUT`, `GET`, `DELETE`) and
//!   `/_local/ses/late` (`SendEmail` answers held back after SES took the e-mail: `PUT`, `DELETE`) and
//!   `POST /_local/events/settle` (returns once everything written so far has gone through the
//!   stream and the MSK triggers, see [`crate::emulators::settle`]);
//! - tests get `SHOP_KAFKA_BOOTSTRAP` and `SHOP_SES_ENDPOINT` (moto itself, to read mail back).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::task::JoinHandle;

use crate::emulators::iam::authorizer::Authorizer;
use crate::emulators::kafka::Kafka;
use crate::emulators::msk::MskTrigger;
use crate::emulators::outage::Outage;
use crate::emulators::runtime_api::Pool;
use crate::emulators::ses::{self, Ses};
use crate::emulators::settle::StreamProgress;
use crate::emulators::sqs::Sqs;
use crate::emulators::streams::StreamTrigger;
use crate::template::Template;

pub struct Messaging {
    pub kafka: Kafka,
    pub ses: Ses,
    pub sqs: Sqs,
    triggers: Vec<MskTrigger>,
    streams: Vec<StreamTrigger>,
    iam: Authorizer,
}

impl Messaging {
    /// Starts the broker (topics from the template's MSK events) and moto (with the sender
    /// identity of whichever function declares `SENDER_EMAIL`), concurrently.
    pub async fn start(template: &Template, logs: &Path, iam: &Authorizer) -> Result<Self> {
        let venv_bin = crate::stack::install::ensure_venv(&crate::stack::install::cache_dir()?).await?;
        let triggers = MskTrigger::all(template);
        let streams = StreamTrigger::all(template)?;
        let mut topics: Vec<String> = triggers.iter().flat_map(|t| t.topics.clone()).collect();
        topics.sort();
        topics.dedup();
        let sender = template.functions.iter().find_map(|f| f.environment.get("SENDER_EMAIL")).cloned();
        let (kafka_log, ses_log) = (logs.join("kafka.log"), logs.join("ses.log"));
        let (kafka, ses) = tokio::join!(
            Kafka::start(&venv_bin, &kafka_log, &topics, iam),
            Ses::start(&venv_bin, &ses_log, sender.as_deref(), iam),
        );
        match (kafka, ses) {
            (Ok(kafka), Ok(ses)) => match Sqs::start(&ses.endpoint, &template.queues, iam).await {
                Ok(sqs) => Ok(Self { kafka, ses, sqs, triggers, streams, iam: iam.clone() }),
                Err(e) => {
                    tokio::join!(kafka.stop(), ses.stop());
                    Err(e)
                }
            },
            (Ok(k), Err(e)) => {
                k.stop().await;
                Err(e)
            }
            (Err(e), Ok(s)) => {
                s.stop().await;
                Err(e)
            }
            (Err(e), Err(_)) => Err(e),
        }
    }

    /// Adds what the functions need to reach the broker and SES. A producer authenticates as on
    /// MSK, with IAM tokens signed with its role's credentials, over plaintext (the local front
    /// has no TLS): the front judges its connection and requests by its role.
    pub fn function_env(&self, mut env: BTreeMap<String, String>) -> BTreeMap<String, String> {
        if env.contains_key("KAFKA_BOOTSTRAP_SERVERS") {
            env.insert("KAFKA_BOOTSTRAP_SERVERS".into(), self.kafka.bootstrap.clone());
            env.insert("KAFKA_AUTH".into(), "msk-iam-plaintext".into());
        }
        env.insert("AWS_ENDPOINT_URL_SESV2".into(), self.ses.functions_endpoint.clone());
        env
    }

    /// Starts polling for every MSK and stream trigger whose function runs (and forgets the
    /// others, so that settling waits on none of them); streams are read from DynamoDB Local
    /// itself (`dynamodb`), as Lambda's poller reads them from the service.
    pub fn start_triggers(
        &mut self,
        pools: &BTreeMap<String, Arc<Pool>>,
        dynamodb: &str,
    ) -> Result<Vec<JoinHandle<()>>> {
        self.triggers.retain(|t| pools.contains_key(&t.function));
        self.streams.retain(|t| pools.contains_key(&t.function));
        let mut handles: Vec<JoinHandle<()>> = self
            .triggers
            .iter()
            .map(|t| {
                t.clone().start(&self.kafka.bootstrap, pools[&t.function].clone(), Some(self.sqs.clone()), &self.iam)
            })
            .collect::<Result<_>>()?;
        handles.extend(crate::emulators::streams::start(&self.streams, dynamodb, pools, Some(&self.sqs), &self.iam));
        Ok(handles)
    }

    pub fn contract_env(&self) -> Vec<(String, String)> {
        vec![
            ("SHOP_KAFKA_BOOTSTRAP".into(), self.kafka.bootstrap.clone()),
            ("SHOP_SES_ENDPOINT".into(), self.ses.endpoint.clone()),
        ]
    }

    /// `/_local/{kafka,ses}/{stop,start}` and `/_local/mail`, for the Invoke API.
    pub fn control_router(&self) -> Router {
        let switches = Arc::new(Switches { kafka: self.kafka.relay.clone(), ses: self.ses.relay.clone() });
        Router::new()
            .route("/_local/{service}/{action}", post(switch))
            .with_state(switches)
            .route("/_local/sqs/{queue}", get(queue).with_state(self.sqs.clone()))
            .route(
                "/_local/ses/refusals",
                get(refusals_list).post(refusals_add).delete(refusals_clear).with_state(self.ses.refusals.clone()),
            )
            .route(
                "/_local/ses/quota",
                get(quota_get).put(quota_set).delete(quota_reset).with_state(self.ses.quota.clone()),
            )
            .route(
                "/_local/ses/late",
                axum::routing::put(late_set).delete(late_clear).with_state(self.ses.late.clone()),
            )
            .route("/_local/events/settle", post(settle).with_state(Arc::new(self.pipeline())))
            .merge(self.mail_router())
    }

    /// What [`crate::emulators::settle`] waits on: every trigger that runs.
    fn pipeline(&self) -> Pipeline {
        Pipeline {
            streams: self.streams.iter().map(|t| (t.function.clone(), t.progress.clone())).collect(),
            msk: self.triggers.clone(),
            bootstrap: self.kafka.bootstrap.clone(),
        }
    }

    /// `GET /_local/mail` alone: the API port serves it too (for the storefront's mailbox,
    /// same-origin), while the outage switches stay on the Invoke API.
    pub fn mail_router(&self) -> Router {
        Router::new().route("/_local/mail", get(mail)).with_state(Arc::new(self.ses.endpoint.clone()))
    }

    pub async fn stop(self) {
        tokio::join!(self.kafka.stop(), self.ses.stop());
    }
}

struct Pipeline {
    streams: Vec<(String, Arc<StreamProgress>)>,
    msk: Vec<MskTrigger>,
    bootstrap: String,
}

async fn settle(State(p): State<Arc<Pipeline>>) -> Response {
    let waited =
        tokio::task::spawn_blocking(move || crate::emulators::settle::settle(&p.streams, &p.msk, &p.bootstrap)).await;
    match waited.unwrap_or_else(|e| Err(format!("the barrier failed: {e}"))) {
        Ok(took) => axum::Json(serde_json::json!({ "settled_in_ms": took.as_millis() as u64 })).into_response(),
        Err(what) => (StatusCode::GATEWAY_TIMEOUT, axum::Json(serde_json::json!({ "error": what }))).into_response(),
    }
}

struct Switches {
    kafka: Outage,
    ses: Outage,
}

async fn switch(State(s): State<Arc<Switches>>, UrlPath((service, action)): UrlPath<(String, String)>) -> Response {
    let relay = match service.as_str() {
        "kafka" => &s.kafka,
        "ses" => &s.ses,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match action.as_str() {
        "stop" => relay.switch(false).await,
        "start" => relay.switch(true).await,
        _ => return StatusCode::NOT_FOUND.into_response(),
    }
    tracing::info!("{service} is now {}", if relay.is_up() { "reachable" } else { "unreachable" });
    axum::Json(serde_json::json!({ "service": service, "up": relay.is_up() })).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Refusal {
    address: String,
}

async fn refusals_list(State(r): State<ses::Refusals>) -> Response {
    axum::Json(r.list()).into_response()
}

async fn refusals_add(State(r): State<ses::Refusals>, axum::Json(refusal): axum::Json<Refusal>) -> Response {
    r.add(&refusal.address);
    axum::Json(r.list()).into_response()
}

async fn refusals_clear(State(r): State<ses::Refusals>) -> Response {
    r.clear();
    axum::Json(r.list()).into_response()
}

async fn quota_get(State(q): State<ses::SendQuota>) -> Response {
    axum::Json(q.stats()).into_response()
}

async fn quota_set(State(q): State<ses::SendQuota>, axum::Json(config): axum::Json<ses::QuotaConfig>) -> Response {
    match q.set(config) {
        Ok(()) => {
            tracing::info!(
                "SES sending quota: {} e-mails a second, {} a day",
                config.max_send_rate,
                config.max_24_hour_send
            );
            axum::Json(q.stats()).into_response()
        }
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

async fn quota_reset(State(q): State<ses::SendQuota>) -> Response {
    q.reset();
    axum::Json(q.stats()).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Lateness {
    ms: u64,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

async fn late_set(State(l): State<ses::Late>, axum::Json(late): axum::Json<Lateness>) -> Response {
    if late.ms > 600_000 {
        return (StatusCode::BAD_REQUEST, "ms: at most 600000").into_response();
    }
    l.set(late.ms, late.count);
    axum::Json(l.left()).into_response()
}

async fn late_clear(State(l): State<ses::Late>) -> Response {
    l.set(0, 0);
    axum::Json(l.left()).into_response()
}

async fn queue(State(sqs): State<Sqs>, UrlPath(name): UrlPath<String>) -> Response {
    match sqs.peek(&name).await {
        Ok(messages) => axum::Json(messages).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
    }
}

async fn mail(State(moto): State<Arc<String>>) -> Response {
    match ses::sent_mail(&moto).await {
        Ok(mail) => axum::Json(mail).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
    }
}
