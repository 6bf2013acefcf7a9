//! The local stand-in for Amazon SESv2: moto's server mode, and reading back what was "sent".
//!
//! `moto_server` (PyPI `moto[server]`, in the stack's venv) answers the SESv2 API and keeps every
//! message it accepts; like SES it refuses a From address that is not a verified identity, so the
//! stack creates the notifier's `SENDER_EMAIL` identity at start. Functions reach it through an
//! [`Outage`] relay (`AWS_ENDPOINT_URL_SESV2`), so `POST /_local/ses/stop` makes SES unreachable
//! while the sent mail survives; tests read mail straight from moto (`SHOP_SES_ENDPOINT`,
//! `GET /moto-api/data.json` → `ses.Message[]`: `{id, source, destinations.ToAddresses, subject, body}`).
//!
//! Between the relay and moto sits a small **gate** that refuses what real SES refuses and moto
//! accepts: a recipient whose local part is not 7-bit ASCII (`400 BadRequestException`: SES has no
//! SMTPUTF8), and any recipient put on its refusal list (`400 MessageRejected`, "Email address is
//! not verified", what an account still in the SES sandbox answers for an unverified recipient).
//! `POST /_local/ses/refusals` `{"address": "…"}` adds one, `GET` lists them, `DELETE` clears them
//! (on the Invoke API). The gate is also where IAM is checked: the caller is the function whose
//! credentials signed the request ([`crate::emulators::iam::authorizer`]), and `SendEmail` is
//! authorized as SES authorizes it — `ses:SendEmail` on the sending identity (the From address's
//! own identity when it is verified, else its domain's) and on the configuration set when one is
//! named —; a denial is SES's `403 AccessDeniedException` with AWS's message. Everything else
//! passes through untouched.
//!
//! For people: `GET /_local/mail` on the Invoke API lists the sent mail as JSON, and
//! `cargo local mail` prints it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::{ACCOUNT_ID, REGION};

use crate::emulators::emulator::Emulator;
use crate::emulators::iam::authorizer::{Access, Authorizer, Caller};
use crate::emulators::outage::Outage;

pub struct Ses {
    /// moto itself: tests and `/_local/mail` read mail here.
    pub endpoint: String,
    /// What functions get as `AWS_ENDPOINT_URL_SESV2` (through the relay).
    pub functions_endpoint: String,
    pub relay: Outage,
    /// Recipients the gate refuses as an SES sandbox would.
    pub refusals: Refusals,
    moto: Emulator,
}

/// Recipients SES is to refuse, lower-case.
#[derive(Clone, Default)]
pub struct Refusals(std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>);

impl Refusals {
    pub fn add(&self, address: &str) {
        self.0.lock().unwrap().insert(address.trim().to_lowercase());
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().cloned().collect()
    }

    fn refuses(&self, address: &str) -> bool {
        self.0.lock().unwrap().contains(&address.trim().to_lowercase())
    }
}

/// What SES answers a `SendEmail` to these recipients, if it refuses it.
fn refusal(recipients: &[&str], refusals: &Refusals) -> Option<(&'static str, String)> {
    if let Some(bad) = recipients.iter().find(|a| !a.split('@').next().unwrap_or_default().is_ascii()) {
        return Some(("BadRequestException", format!("Local address contains non-ASCII characters: {bad}")));
    }
    let refused: Vec<&str> = recipients.iter().copied().filter(|a| refusals.refuses(a)).collect();
    (!refused.is_empty()).then(|| {
        (
            "MessageRejected",
            format!(
                "Email address is not verified. The following identities failed the check in region US-EAST-1: {}",
                refused.join(", ")
            ),
        )
    })
}

/// Starts the gate in front of moto; returns its address.
async fn gate(
    moto: std::net::SocketAddr,
    refusals: Refusals,
    iam: Authorizer,
    verified: Vec<String>,
) -> Result<std::net::SocketAddr> {
    use axum::body::{Body, Bytes};
    use axum::extract::{Request, State};
    use axum::response::{IntoResponse, Response};
    type Gate = (reqwest::Client, String, Refusals, Authorizer, std::sync::Arc<Vec<String>>);
    async fn pass(State((http, upstream, refusals, iam, verified)): State<Gate>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(body): Result<Bytes, _> = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
            return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let error = |status: axum::http::StatusCode, code: &'static str, message: String| {
            let mut r = (status, axum::Json(serde_json::json!({ "__type": code, "message": message }))).into_response();
            r.headers_mut().insert("x-amzn-errortype", axum::http::HeaderValue::from_static(code));
            r
        };
        if parts.method == axum::http::Method::POST && parts.uri.path() == "/v2/email/outbound-emails" {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match iam.caller(&parts.headers, parts.uri.query()) {
                Caller::BadToken => {
                    return error(
                        axum::http::StatusCode::FORBIDDEN,
                        "UnrecognizedClientException",
                        "The security token included in the request is invalid.".into(),
                    );
                }
                Caller::Function(function) => {
                    if let Err(denied) = iam.authorize(&function, &send_email_accesses(&v, &verified)) {
                        return error(axum::http::StatusCode::FORBIDDEN, "AccessDeniedException", denied.message);
                    }
                }
                Caller::Operator => {}
            }
            let recipients: Vec<&str> = ["ToAddresses", "CcAddresses", "BccAddresses"]
                .iter()
                .filter_map(|k| v.pointer(&format!("/Destination/{k}")).and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if let Some((code, message)) = refusal(&recipients, &refusals) {
                return error(axum::http::StatusCode::BAD_REQUEST, code, message);
            }
        }
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut forward = http.request(parts.method, format!("{upstream}{path}")).body(body);
        for (name, value) in &parts.headers {
            if name != "host" && name != "content-length" {
                forward = forward.header(name, value);
            }
        }
        match forward.send().await {
            Ok(answer) => {
                let status = answer.status();
                let headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap_or_default();
                let mut response = Response::new(Body::from(bytes));
                *response.status_mut() = status;
                for (name, value) in &headers {
                    if name != "transfer-encoding" && name != "content-length" && name != "connection" {
                        response.headers_mut().append(name, value.clone());
                    }
                }
                response
            }
            Err(e) => (axum::http::StatusCode::BAD_GATEWAY, format!("moto unreachable: {e}")).into_response(),
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("binding the SES gate")?;
    let addr = listener.local_addr()?;
    let state = (reqwest::Client::new(), format!("http://{moto}"), refusals, iam, std::sync::Arc::new(verified));
    let app = axum::Router::new().fallback(pass).with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("SES gate on {addr} stopped: {e}");
        }
    });
    Ok(addr)
}

/// What IAM judges for one `SendEmail`: `ses:SendEmail` on the identity SES sends as (the From
/// address's identity if it is verified, else its domain's) and on the configuration set, if any.
fn send_email_accesses(request: &Value, verified: &[String]) -> Vec<Access> {
    let arn = |kind: &str, name: &str| format!("arn:aws:ses:{REGION}:{ACCOUNT_ID}:{kind}/{name}");
    let from = request.get("FromEmailAddress").and_then(Value::as_str).unwrap_or_default();
    // `Name <address>` or a bare address.
    let address = from.rsplit_once('<').map_or(from, |(_, rest)| rest.trim_end_matches('>')).trim().to_lowercase();
    let identity = match address.split_once('@') {
        Some((_, domain)) if !verified.contains(&address) => arn("identity", domain),
        _ => arn("identity", &address),
    };
    let mut out = vec![Access::new("ses:SendEmail", identity)];
    if let Some(set) = request.get("ConfigurationSetName").and_then(Value::as_str) {
        out.push(Access::new("ses:SendEmail", arn("configuration-set", set)));
    }
    out
}

/// One sent e-mail as moto recorded it (moto keeps the HTML body when there is one, else the text).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentMail {
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// A SigV4-shaped header: moto routes REST calls to a service by the credential scope.
const SES_AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=0";

impl Ses {
    pub async fn start(venv_bin: &Path, log: &Path, sender: Option<&str>, iam: &Authorizer) -> Result<Self> {
        let port = crate::process::free_port()?;
        let mut cmd = crate::process::command(venv_bin.join("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let moto = Emulator::spawn("moto", cmd, port, log).await?;
        let refusals = Refusals::default();
        let verified: Vec<String> = sender.into_iter().map(str::to_lowercase).collect();
        let gate = match gate(moto.addr, refusals.clone(), iam.clone(), verified).await {
            Ok(g) => g,
            Err(e) => {
                moto.stop().await;
                return Err(e);
            }
        };
        let relay = Outage::start(gate).await?;
        let ses = Self {
            endpoint: format!("http://{}", moto.addr),
            functions_endpoint: format!("http://{}", relay.addr),
            relay,
            refusals,
            moto,
        };
        if let Some(sender) = sender
            && let Err(e) = ses.create_identity(sender).await
        {
            ses.stop().await;
            return Err(e);
        }
        Ok(ses)
    }

    /// SESv2 `CreateEmailIdentity`: moto marks it verified at once.
    async fn create_identity(&self, email: &str) -> Result<()> {
        let url = format!("{}/v2/email/identities", self.endpoint);
        let response = reqwest::Client::new()
            .post(&url)
            .header("authorization", SES_AUTH)
            .json(&serde_json::json!({ "EmailIdentity": email }))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !response.status().is_success() {
            bail!("creating SES identity {email}: {}", response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    pub async fn stop(self) {
        self.relay.stop();
        self.moto.stop().await;
    }
}

/// Every e-mail moto accepted, oldest first.
pub async fn sent_mail(moto_endpoint: &str) -> Result<Vec<SentMail>> {
    let url = format!("{}/moto-api/data.json", moto_endpoint.trim_end_matches('/'));
    let data: Value = reqwest::get(&url).await.with_context(|| format!("GET {url}"))?.json().await?;
    let messages = data.pointer("/ses/Message").and_then(Value::as_array).cloned().unwrap_or_default();
    let text = |m: &Value, k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(messages
        .iter()
        .map(|m| SentMail {
            id: text(m, "id"),
            from: text(m, "source"),
            to: m
                .pointer("/destinations/ToAddresses")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            subject: text(m, "subject"),
            body: text(m, "body"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gate_refuses_what_ses_refuses() {
        let r = super::Refusals::default();
        assert_eq!(super::refusal(&["ann@example.com"], &r), None);
        assert_eq!(super::refusal(&["josé@example.com"], &r).map(|x| x.0), Some("BadRequestException"));
        r.add("Sandboxed@Example.com");
        let (code, message) = super::refusal(&["ok@example.com", "sandboxed@example.com"], &r).unwrap();
        assert_eq!(code, "MessageRejected");
        assert!(message.contains("not verified") && message.contains("sandboxed@example.com"), "{message}");
        r.clear();
        assert_eq!(super::refusal(&["sandboxed@example.com"], &r), None);
    }

    #[test]
    fn send_email_is_authorized_on_the_sending_identity_and_the_configuration_set() {
        let verified = vec!["no-reply@shop.example.com".to_owned()];
        let of = |v: serde_json::Value| {
            super::send_email_accesses(&v, &verified).into_iter().map(|a| a.resource).collect::<Vec<_>>()
        };
        assert_eq!(
            of(serde_json::json!({ "FromEmailAddress": "Shop <No-Reply@shop.example.com>" })),
            vec!["arn:aws:ses:us-east-1:123456789012:identity/no-reply@shop.example.com"]
        );
        assert_eq!(
            of(serde_json::json!({ "FromEmailAddress": "other@shop.example.com", "ConfigurationSetName": "cs" })),
            vec![
                "arn:aws:ses:us-east-1:123456789012:identity/shop.example.com",
                "arn:aws:ses:us-east-1:123456789012:configuration-set/cs"
            ]
        );
    }
}
