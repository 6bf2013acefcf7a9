//! IAM, locally: every function runs as its own role, and every call it makes is judged by
//! that role's effective policy from template.yaml, as AWS judges it.
//!
//! On AWS a function that lacks a grant fails only after a deploy; a function granted too much
//! never fails at all. So the stack reads each function's role the way CloudFormation and SAM
//! build it, and judges every request the way IAM does, one concept per module:
//!
//! * [`roles`]: which role each function runs as, and what the template attaches to it;
//! * [`sam`]: what the role SAM generates holds: `Policies`, and what SAM adds by itself (logs,
//!   tracing, VPC, event source pollers, on-failure destinations);
//! * [`policy_templates`] and [`managed`]: SAM's policy templates and AWS's managed policies,
//!   copied from their published sources;
//! * [`policy`]: a policy document, and the refusal of anything the evaluator cannot judge;
//! * [`wildcard`]: how IAM matches `*` and `?` in actions and in ARNs;
//! * [`evaluate`]: explicit deny, then allow, else implicit deny;
//! * [`authorizer`], [`control`], [`report`]: who calls, the decisions, and what they add up to.
//!
//! A template the evaluator cannot judge exactly (a `Condition`, a managed policy or policy
//! template it does not know, a role from outside the template, …) is refused with an error
//! naming the function, the policy and the element: never an allow by guess.

pub mod authorizer;
pub mod control;
mod evaluate;
mod managed;
mod policy;
mod policy_templates;
pub mod report;
mod roles;
mod sam;
mod wildcard;

pub use control::control_router;

use std::collections::BTreeMap;

use anyhow::Result;

use crate::template::ACCOUNT_ID;

/// One statement of one policy of a role, for messages and the report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatementRef {
    /// Where the policy comes from, as a reader of template.yaml finds it: `"Policies[0] (inline)"`,
    /// `"Policies[1] DynamoDBCrudPolicy"`, `"PublishEventsPolicy (AWS::IAM::ManagedPolicy)"`,
    /// `"added by SAM: AWSLambdaBasicExecutionRole"`, `"added by SAM: OutboxInserts OnFailure destination"` …
    pub policy: String,
    /// Index of the statement in that policy.
    pub index: usize,
    /// Its `Sid`, if any.
    pub sid: Option<String>,
}

/// The outcome of one request, as IAM's evaluation logic decides it (identity-based policies
/// only: explicit deny, then allow, else implicit deny).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this statement, through these patterns of it (for the unused-grants report).
    Allowed { statement: StatementRef, action_pattern: String, resource_pattern: String },
    /// A `Deny` statement matched.
    ExplicitDeny { statement: StatementRef },
    /// Nothing allowed it.
    ImplicitDeny,
}

/// One grant of a role: one action pattern × one resource pattern of one `Allow` statement
/// (`NotAction`/`NotResource` statements are listed with the pattern prefixed by `Not:`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub statement: StatementRef,
    pub action_pattern: String,
    pub resource_pattern: String,
}

/// A function's execution role.
#[derive(Debug, Clone)]
pub struct Role {
    /// The function's logical id.
    pub function: String,
    /// The role's name as the local stack names it (`shop-local-<Function>Role`).
    pub role_name: String,
    /// Reasons written in the template for grants the tests never exercise:
    /// `Metadata.UnexercisedGrants` of the function, action pattern → reason.
    pub unexercised_reasons: BTreeMap<String, String>,
    /// Its policies, in the order they are evaluated (the template's own first).
    policies: Vec<policy::Policy>,
}

impl Role {
    /// `arn:aws:sts::123456789012:assumed-role/<role_name>/<function>`: what AWS names the caller.
    pub fn assumed_role_arn(&self) -> String {
        format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/{}/{}", self.role_name, self.function)
    }

    /// Judges one request: `action` like `dynamodb:GetItem` (any case), `resource` an ARN.
    pub fn evaluate(&self, action: &str, resource: &str) -> Decision {
        evaluate::evaluate(&self.policies, action, resource)
    }

    /// Every grant of the role (the report lists those no request used).
    pub fn grants(&self) -> Vec<Grant> {
        evaluate::grants(&self.policies)
    }

    /// Where each of its policies comes from ([`StatementRef::policy`]), in evaluation order.
    #[cfg(test)]
    pub fn policies(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|p| p.label.as_str())
    }
}

/// Every function's role, from the template.
#[derive(Debug, Clone)]
pub struct Roles {
    roles: BTreeMap<String, Role>,
}

impl Roles {
    /// Reads the roles of every `AWS::Serverless::Function` of the template text. A policy
    /// element the evaluator cannot judge is an error naming the function, the policy and the
    /// element: the stack refuses to start rather than allow silently.
    pub fn from_template(text: &str) -> Result<Self> {
        Ok(Self { roles: roles::read(text)? })
    }

    pub fn role(&self, function: &str) -> Option<&Role> {
        self.roles.get(function)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }
}

/// AWS's message for a denied request, e.g. "User: arn:aws:sts::123456789012:assumed-role/R/F is
/// not authorized to perform: dynamodb:BatchGetItem on resource: arn:…:table/T because no
/// identity-based policy allows the dynamodb:BatchGetItem action" (or "… with an explicit deny
/// in an identity-based policy").
///
/// The wording is IAM's ("Troubleshooting access denied error messages": "with an explicit deny
/// in a *type* policy", "because no *type* policy allows the *action* action"), with the caller
/// named by its assumed-role ARN as AWS names a Lambda function's role session.
pub fn denial_message(role: &Role, action: &str, resource: &str, decision: &Decision) -> String {
    let caller = role.assumed_role_arn();
    match decision {
        Decision::ExplicitDeny { .. } => format!(
            "User: {caller} is not authorized to perform: {action} on resource: {resource} with an explicit deny in an \
             identity-based policy"
        ),
        Decision::ImplicitDeny => format!(
            "User: {caller} is not authorized to perform: {action} on resource: {resource} because no identity-based \
             policy allows the {action} action"
        ),
        Decision::Allowed { statement, .. } => format!(
            "User: {caller} is authorized to perform: {action} on resource: {resource} ({} statement {})",
            statement.policy, statement.index
        ),
    }
}
