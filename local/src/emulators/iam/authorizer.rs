//! Enforcement: who is calling, may they, and what every role used.
//!
//! **Who.** Lambda hands each function temporary credentials of its execution role
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); the SDK signs every
//! request with them (SigV4), and AWS knows the caller from the credential in the signature. The
//! stack does the same: [`Authorizer::new`] issues fresh credentials per function for this run,
//! and a front (the DynamoDB proxy, the SES gate) names the caller from the request's
//! `Authorization: AWS4-HMAC-SHA256 Credential=<key id>/…` and checks its `X-Amz-Security-Token`
//! — never from a user agent or any header a function chooses freely. A key id the stack never
//! issued is not a function: tools and tests signing with their own keys are the operator, and
//! are not judged. The event source mappings (stream and MSK triggers, their on-failure
//! destinations) act in-process with their function's role, as Lambda's pollers do
//! ([`Authorizer::authorize`] with the function's name).
//!
//! **May they.** Each request is one or more [`Access`]es (a transaction is one per item); every
//! one is judged by the role ([`super::Role::evaluate`]). In [`Mode::Enforce`] the first denied
//! one refuses the whole request, exactly as AWS answers it (the front shapes the error); in
//! [`Mode::Soft`] it is logged and let through; [`Mode::Off`] judges nothing.
//!
//! **What was used.** Every decision is recorded: the accesses each role made, the grants that
//! allowed them, and the denials (each logged once, loudly, with the statement that would allow
//! it). [`Authorizer::report`] turns that into the least-privilege report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::{Decision, Grant, Role, Roles, denial_message};

/// One thing IAM is asked: may the caller do `action` (`service:Operation`) on `resource` (an ARN)?
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub action: String,
    pub resource: String,
}

impl Access {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self { action: action.into(), resource: resource.into() }
    }
}

/// `--iam`: what the stack does with a request the role does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Mode {
    /// Refuse it as AWS would (the default everywhere).
    #[default]
    Enforce,
    /// Log it and the report lists it, but let it through.
    Soft,
    /// Judge nothing (debugging).
    Off,
}

/// The temporary credentials one function runs with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl Credentials {
    /// Fresh, random, shaped like STS's (`ASIA` + 16 characters of base32).
    fn issue() -> Self {
        let random = |n: usize, alphabet: &[u8]| -> String {
            let mut out = String::with_capacity(n);
            while out.len() < n {
                for b in uuid::Uuid::new_v4().as_bytes() {
                    if out.len() < n {
                        out.push(alphabet[*b as usize % alphabet.len()] as char);
                    }
                }
            }
            out
        };
        const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        Self {
            access_key_id: format!("ASIA{}", random(16, BASE32)),
            secret_access_key: random(40, SECRET),
            session_token: random(96, SECRET),
        }
    }

    /// The variables Lambda sets for them.
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_SESSION_TOKEN", self.session_token.clone()),
        ]
    }
}

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A function, by logical id.
    Function(String),
    /// A key id the stack issued, with a session token that is not its own: AWS answers
    /// `UnrecognizedClientException` ("The security token included in the request is invalid").
    BadToken,
    /// Not a function's credential (a test or a tool with its own keys): not judged.
    Operator,
}

/// A request refused: the message AWS would give, for the front to shape into its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub action: String,
    pub resource: String,
    pub message: String,
}

#[derive(Default)]
struct Usage {
    /// function → access → (times denied, AWS's message) while a test's template was put
    /// (see [`super::control`]): expected, reported apart, never a failure.
    denied_under_test_template: BTreeMap<String, BTreeMap<Access, (u64, String)>>,
    /// function → access → times allowed
    used: BTreeMap<String, BTreeMap<Access, u64>>,
    /// function → grants that allowed something
    grants: BTreeMap<String, BTreeSet<Grant>>,
    /// function → access → (times denied, AWS's message)
    denied: BTreeMap<String, BTreeMap<Access, (u64, String)>>,
}

struct Inner {
    mode: Mode,
    /// template.yaml's roles.
    roles: Arc<Roles>,
    /// A test's template, while one is put.
    replaced: std::sync::RwLock<Option<Arc<Roles>>>,
    credentials: BTreeMap<String, Credentials>,
    by_key: BTreeMap<String, String>,
    usage: Mutex<Usage>,
}

/// The stack's IAM. Cheap to clone.
#[derive(Clone)]
pub struct Authorizer(Arc<Inner>);

impl Authorizer {
    /// Issues credentials for every role of the template.
    pub fn new(roles: Roles, mode: Mode) -> Self {
        let credentials: BTreeMap<String, Credentials> =
            roles.iter().map(|r| (r.function.clone(), Credentials::issue())).collect();
        let by_key = credentials.iter().map(|(f, c)| (c.access_key_id.clone(), f.clone())).collect();
        Self(Arc::new(Inner {
            mode,
            roles: Arc::new(roles),
            replaced: Default::default(),
            credentials,
            by_key,
            usage: Mutex::default(),
        }))
    }

    /// Judges with `roles` from now on (a test's template, see [`super::control`]).
    pub fn replace_roles(&self, roles: Roles) {
        tracing::warn!("IAM: judging with a test's template until DELETE /_local/iam/template");
        *self.0.replaced.write().unwrap() = Some(Arc::new(roles));
    }

    /// Back to template.yaml's roles.
    pub fn restore_roles(&self) {
        *self.0.replaced.write().unwrap() = None;
    }

    /// The functions that have a role.
    pub fn functions(&self) -> Vec<String> {
        self.0.credentials.keys().cloned().collect()
    }

    /// The credentials `function` runs with.
    pub fn credentials(&self, function: &str) -> Option<&Credentials> {
        self.0.credentials.get(function)
    }

    /// The caller of a signed request, from its headers (`Authorization` header or, for a
    /// presigned URL, the `X-Amz-Credential` query parameter of `query`).
    pub fn caller(&self, headers: &http::HeaderMap, query: Option<&str>) -> Caller {
        let key = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(credential_key_id)
            .map(str::to_owned)
            .or_else(|| query.and_then(presigned_key_id));
        let Some(function) = key.and_then(|k| self.0.by_key.get(&k)) else {
            return Caller::Operator;
        };
        let token = headers.get("x-amz-security-token").and_then(|v| v.to_str().ok());
        match self.0.credentials.get(function) {
            Some(c) if token == Some(c.session_token.as_str()) => Caller::Function(function.clone()),
            _ => Caller::BadToken,
        }
    }

    /// Judges every access of one request of `function`; the first one denied refuses it (in
    /// [`Mode::Enforce`]). Every decision is recorded for the report.
    pub fn authorize(&self, function: &str, accesses: &[Access]) -> Result<(), Denied> {
        if self.0.mode == Mode::Off {
            return Ok(());
        }
        let replaced = self.0.replaced.read().unwrap().clone();
        let roles = replaced.as_ref().unwrap_or(&self.0.roles);
        let Some(role) = roles.role(function) else {
            // A function without a role in the template cannot be: the stack runs the template's.
            return Ok(());
        };
        let mut refused = None;
        for access in accesses {
            let decision = role.evaluate(&access.action, &access.resource);
            let denied = self.record(role, access, &decision, replaced.is_some());
            if let (Some(message), None) = (denied, &refused) {
                refused = Some(Denied { action: access.action.clone(), resource: access.resource.clone(), message });
            }
        }
        match (refused, self.0.mode) {
            (Some(denied), Mode::Enforce) => Err(denied),
            _ => Ok(()),
        }
    }

    /// Records one decision; a denial's message when it is one.
    fn record(&self, role: &Role, access: &Access, decision: &Decision, test_template: bool) -> Option<String> {
        let mut usage = self.0.usage.lock().unwrap();
        match decision {
            Decision::Allowed { statement, action_pattern, resource_pattern } => {
                *usage.used.entry(role.function.clone()).or_default().entry(access.clone()).or_default() += 1;
                usage.grants.entry(role.function.clone()).or_default().insert(Grant {
                    statement: statement.clone(),
                    action_pattern: action_pattern.clone(),
                    resource_pattern: resource_pattern.clone(),
                });
                None
            }
            Decision::ExplicitDeny { .. } | Decision::ImplicitDeny => {
                let message = denial_message(role, &access.action, &access.resource, decision);
                let denied = if test_template { &mut usage.denied_under_test_template } else { &mut usage.denied };
                let entry = denied.entry(role.function.clone()).or_default().entry(access.clone()).or_default();
                entry.0 += 1;
                if entry.0 == 1 {
                    entry.1 = message.clone();
                    let verb =
                        if self.0.mode == Mode::Soft { "would be DENIED (--iam soft: allowed)" } else { "DENIED" };
                    tracing::error!(
                        "IAM: {} {verb}: {} on {}\n  {message}\n  to allow it, add to {}'s Policies in template.yaml:\n{}",
                        role.function,
                        access.action,
                        access.resource,
                        role.function,
                        allowing_statement(access, decision)
                    );
                }
                Some(message)
            }
        }
    }

    /// The least-privilege report of everything recorded so far.
    pub fn report(&self) -> super::report::Report {
        let usage = self.0.usage.lock().unwrap();
        let flat = |denied: &BTreeMap<String, BTreeMap<Access, (u64, String)>>| {
            denied
                .iter()
                .map(|(f, d)| (f.clone(), d.iter().map(|(a, (n, m))| (a.clone(), *n, m.clone())).collect()))
                .collect()
        };
        super::report::Report::build(
            self.0.mode,
            &self.0.roles,
            &usage.used,
            &usage.grants,
            flat(&usage.denied),
            flat(&usage.denied_under_test_template),
        )
    }
}

/// The statement a reader would add to allow `access` (for an explicit deny: the deny to remove).
fn allowing_statement(access: &Access, decision: &Decision) -> String {
    match decision {
        Decision::ExplicitDeny { statement } => format!(
            "    (nothing: it is denied explicitly by {} statement {}; remove or narrow that Deny)",
            statement.policy, statement.index
        ),
        _ => format!(
            "    - Statement:\n        - Effect: Allow\n          Action: [{}]\n          Resource: {}",
            access.action, access.resource
        ),
    }
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, …` → `AKID`.
fn credential_key_id(authorization: &str) -> Option<&str> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest.split(',').find_map(|part| part.trim().strip_prefix("Credential="))?;
    credential.split('/').next().filter(|k| !k.is_empty())
}

/// `…&X-Amz-Credential=AKID%2F20260101%2F…` → `AKID`.
fn presigned_key_id(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("X-Amz-Credential"))
        .and_then(|(_, v)| v.split('/').next().map(str::to_owned))
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_id_comes_from_the_signature() {
        assert_eq!(
            credential_key_id(
                "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20260101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc"
            ),
            Some("ASIAEXAMPLE")
        );
        assert_eq!(credential_key_id("Bearer ASIAEXAMPLE"), None);
        assert_eq!(
            presigned_key_id(
                "Action=kafka-cluster%3AConnect&X-Amz-Credential=ASIAX%2F20260101%2Fus-east-1%2Fkafka-cluster%2Faws4_request"
            ),
            Some("ASIAX".to_owned())
        );
    }

    #[test]
    fn issued_credentials_look_like_sts_ones_and_differ() {
        let (a, b) = (Credentials::issue(), Credentials::issue());
        assert_eq!(a.access_key_id.len(), 20);
        assert!(a.access_key_id.starts_with("ASIA"));
        assert_eq!(a.secret_access_key.len(), 40);
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.session_token, b.session_token);
    }
}
