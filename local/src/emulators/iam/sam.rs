//! The execution role SAM generates for a function: its `Policies`, and what SAM adds by itself.
//!
//! Read from SAM's own code (aws/serverless-application-model,
//! `samtranslator/model/sam_resources.py` `_construct_role`,
//! `samtranslator/model/role_utils/role_constructor.py`, `samtranslator/model/eventsources/pull.py`,
//! `samtranslator/model/iam.py`):
//!
//! * each `Policies` entry is an inline policy document (`{Statement: …}`), a policy template
//!   (`{DynamoDBCrudPolicy: {TableName: …}}`, see [`super::policy_templates`]) or a managed
//!   policy by name or ARN (`AWSLambdaKinesisExecutionRole`, `!Ref MyManagedPolicy`);
//! * `AWSLambdaBasicExecutionRole` always (logs);
//! * `AWSXrayWriteOnlyAccess` when `Tracing` (the function's, else `Globals`) is set and not
//!   `Disabled`;
//! * `AWSLambdaVPCAccessExecutionRole` when there is a `VpcConfig` (after `!If`: a `VpcConfig`
//!   resolved to `AWS::NoValue` is none);
//! * for a `DeadLetterQueue`, `sqs:SendMessage` (SQS) or `sns:Publish` (SNS) on its `TargetArn`;
//! * per event source mapping (`PullEventSource.get_policy_arn`): `AWSLambdaDynamoDBExecutionRole`
//!   for a `DynamoDB` event, `AWSLambdaKinesisExecutionRole` for `Kinesis`,
//!   `AWSLambdaSQSQueueExecutionRole` for `SQS`, `AWSLambdaMSKExecutionRole` for `MSK` (plus
//!   `secretsmanager:GetSecretValue` on a `CLIENT_CERTIFICATE_TLS_AUTH` secret); and for a
//!   `DestinationConfig.OnFailure` with a `Type`, `sqs:SendMessage` on an SQS destination,
//!   `sns:publish` on an SNS one, `s3:PutObject` on `<bucket>/*` and `s3:ListBucket` on an S3 one
//!   (nothing for `Kafka`, nor without `Type`: then the function's own policies must allow it).
//!
//! Push events (`HttpApi`, `Schedule`, …) give the *service* a resource-based permission on the
//! function, nothing on the role. What SAM would add that is not written here (`MQ`,
//! `SelfManagedKafka`, `DocumentDB` events, an MSK `SchemaRegistryConfig`, `EventInvokeConfig`
//! destinations, a durable function's policy) and what changes how a role is judged
//! (`PermissionsBoundary`) is refused by name.
//!
//! The function's own `Policies` come first: an allowed request is credited to the first
//! statement that allows it, so a grant the template writes is not reported unused because SAM
//! happens to grant the same.

use anyhow::{Context, Result, bail};
use serde_json::{Value as Json, json};

use super::managed::{
    BASIC_EXECUTION, DYNAMODB_EXECUTION, KINESIS_EXECUTION, MSK_EXECUTION, SQS_QUEUE_EXECUTION, VPC_ACCESS_EXECUTION,
    XRAY_WRITE_ONLY,
};
use super::policy_templates;
use super::roles::{RolePolicies, list};
use crate::template::Resolved;

/// How the policies SAM adds are labelled (the report lists them apart, by this prefix).
const ADDED_BY_SAM: &str = "added by SAM:";

/// Events whose mapping or permission SAM creates without touching the role.
const PUSH_EVENTS: &[&str] = &[
    "Api",
    "HttpApi",
    "Schedule",
    "ScheduleV2",
    "CloudWatchEvent",
    "EventBridgeRule",
    "SNS",
    "S3",
    "CloudWatchLogs",
    "IoTRule",
    "AlexaSkill",
    "Cognito",
];

/// Adds the policies of the role SAM generates for the function with these (resolved) `props`.
pub(super) fn execution_role(role: &mut RolePolicies, resolved: &Resolved, props: &Json) -> Result<()> {
    // A function's own setting wins over Globals, as in SAM.
    let setting = |key: &str| props.get(key).or_else(|| resolved.globals.get(key)).filter(|v| truthy(v));
    refuse_unjudged(&setting)?;
    for (i, entry) in list(props.get("Policies")).iter().enumerate() {
        policies_entry(role, resolved, i, entry).with_context(|| format!("Policies[{i}]"))?;
    }
    role.managed(resolved, ADDED_BY_SAM, BASIC_EXECUTION)?;
    if setting("Tracing").is_some_and(|t| t != "Disabled") {
        role.managed(resolved, ADDED_BY_SAM, XRAY_WRITE_ONLY)?;
    }
    if setting("VpcConfig").is_some() {
        role.managed(resolved, ADDED_BY_SAM, VPC_ACCESS_EXECUTION)?;
    }
    if let Some(dlq) = setting("DeadLetterQueue") {
        dead_letter_queue(role, dlq).context("DeadLetterQueue")?;
    }
    for (name, event) in props.get("Events").and_then(Json::as_object).into_iter().flatten() {
        event_source(role, resolved, name, event).with_context(|| format!("event {name}"))?;
    }
    Ok(())
}

fn refuse_unjudged<'a>(setting: &impl Fn(&str) -> Option<&'a Json>) -> Result<()> {
    if setting("PermissionsBoundary").is_some() {
        bail!(
            "a PermissionsBoundary limits what the role's policies allow, and the local stack does not evaluate boundaries"
        );
    }
    if setting("DurableConfig").is_some() {
        bail!(
            "SAM gives a durable function AWSLambdaBasicDurableExecutionRolePolicy, which the local stack does not know"
        );
    }
    if setting("EventInvokeConfig").is_some_and(|c| c.get("DestinationConfig").is_some_and(truthy)) {
        bail!(
            "EventInvokeConfig.DestinationConfig: SAM adds statements for its destinations, which the local stack does not write"
        );
    }
    Ok(())
}

/// One `Policies` entry.
fn policies_entry(role: &mut RolePolicies, resolved: &Resolved, i: usize, entry: &Json) -> Result<()> {
    let at = format!("Policies[{i}]");
    match entry {
        Json::String(name_or_arn) => role.managed(resolved, &at, name_or_arn),
        Json::Object(m) if m.contains_key("Statement") => role.document(format!("{at} (inline)"), entry),
        Json::Object(m) if m.len() == 1 => {
            let (name, values) = m.iter().next().expect("one entry");
            if name.starts_with("Fn::") {
                bail!("{name}: an intrinsic the local stack cannot resolve here");
            }
            let document = policy_templates::expand(resolved, name, values)?;
            role.document(format!("{at} {name}"), &document)
        }
        other => bail!("{other} is neither a managed policy, a policy document nor a policy template"),
    }
}

fn dead_letter_queue(role: &mut RolePolicies, dlq: &Json) -> Result<()> {
    let action = match dlq.get("Type").and_then(Json::as_str) {
        Some("SQS") => "sqs:SendMessage",
        Some("SNS") => "sns:Publish",
        other => bail!("Type {other:?}: SAM knows SQS and SNS"),
    };
    let target = dlq.get("TargetArn").and_then(Json::as_str).context("no TargetArn")?;
    role.statements(
        format!("{ADDED_BY_SAM} DeadLetterQueuePolicy"),
        vec![json!({ "Action": action, "Resource": target, "Effect": "Allow" })],
    )
}

fn event_source(role: &mut RolePolicies, resolved: &Resolved, name: &str, event: &Json) -> Result<()> {
    let kind = event.get("Type").and_then(Json::as_str).context("no Type")?;
    let properties = event.get("Properties").unwrap_or(&Json::Null);
    let managed = match kind {
        "DynamoDB" => DYNAMODB_EXECUTION,
        "Kinesis" => KINESIS_EXECUTION,
        "SQS" => SQS_QUEUE_EXECUTION,
        "MSK" => {
            msk_statements(role, properties)?;
            MSK_EXECUTION
        }
        "MQ" | "SelfManagedKafka" | "DocumentDB" => bail!(
            "SAM adds statements for a {kind} event (its secret, its broker or cluster) that the local stack \
             does not write"
        ),
        push if PUSH_EVENTS.contains(&push) => return Ok(()),
        other => bail!("an event of Type {other}: the local stack does not know what SAM adds to the role for it"),
    };
    role.managed(resolved, ADDED_BY_SAM, managed)?;
    on_failure_destination(role, name, properties)
}

/// An MSK event's `MSKExecutionRolePolicy`: the client certificate's secret.
fn msk_statements(role: &mut RolePolicies, properties: &Json) -> Result<()> {
    if properties.get("SchemaRegistryConfig").is_some_and(truthy) {
        bail!("SchemaRegistryConfig: SAM adds Glue and secret statements for it that the local stack does not write");
    }
    let statements: Vec<Json> = list(properties.get("SourceAccessConfigurations"))
        .iter()
        .filter(|c| c.get("Type").and_then(Json::as_str) == Some("CLIENT_CERTIFICATE_TLS_AUTH"))
        .filter_map(|c| c.get("URI"))
        .map(|uri| json!({ "Action": ["secretsmanager:GetSecretValue"], "Effect": "Allow", "Resource": uri }))
        .collect();
    if statements.is_empty() {
        return Ok(());
    }
    role.statements(format!("{ADDED_BY_SAM} MSKExecutionRolePolicy"), statements)
}

/// What SAM grants for `DestinationConfig.OnFailure` of a stream or queue event.
fn on_failure_destination(role: &mut RolePolicies, event: &str, properties: &Json) -> Result<()> {
    let Some(on_failure) = properties.pointer("/DestinationConfig/OnFailure").filter(|o| !o.is_null()) else {
        return Ok(());
    };
    let Some(kind) = on_failure.get("Type").and_then(Json::as_str) else { return Ok(()) };
    let destination = || {
        on_failure.get("Destination").and_then(Json::as_str).context("DestinationConfig.OnFailure: no Destination ARN")
    };
    let statements = match kind {
        "SQS" => vec![json!({ "Action": "sqs:SendMessage", "Effect": "Allow", "Resource": destination()? })],
        "SNS" => vec![json!({ "Action": "sns:publish", "Effect": "Allow", "Resource": destination()? })],
        "S3" => vec![
            json!({ "Action": "s3:PutObject", "Effect": "Allow", "Resource": format!("{}/*", destination()?) }),
            json!({ "Action": "s3:ListBucket", "Effect": "Allow", "Resource": destination()? }),
        ],
        "Kafka" => return Ok(()),
        other => bail!("DestinationConfig.OnFailure.Type {other}: SAM knows SQS, SNS, S3 and Kafka"),
    };
    role.statements(format!("{ADDED_BY_SAM} {event} OnFailure destination"), statements)
}

/// Python's truth, as SAM tests a property (`if self.VpcConfig:`).
fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
        Json::Number(n) => n.as_f64() != Some(0.0),
    }
}
