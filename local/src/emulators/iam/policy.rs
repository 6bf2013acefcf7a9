//! A policy document: what a role holds, one statement at a time.
//!
//! A statement says `Effect` (`Allow` or `Deny`) for the actions it names (`Action`) or every
//! action but those (`NotAction`), on the resources it names (`Resource`) or every resource but
//! those (`NotResource`); `Sid` only names it. That is the whole of what an identity-based
//! policy can say without a `Condition`, and the whole of what [`super::evaluate`] judges.
//!
//! Anything else is refused here, naming the policy, the statement and the element, so the
//! stack refuses to start rather than judge a policy it cannot read and allow silently:
//!
//! * `Condition`: it narrows a statement by the request's context (tags, source, time,
//!   encryption…), which the stack does not model. Dropping it would widen an `Allow`,
//!   ignoring it would narrow a `Deny` to nothing;
//! * `Principal` / `NotPrincipal`: they belong to resource-based policies; IAM refuses them in a
//!   role's policy ("MalformedPolicyDocument");
//! * policy variables (`${aws:username}`, `${aws:PrincipalTag/…}`) in a resource, and anything
//!   else with `${`: an unresolved `!Sub` variable of the template looks the same;
//! * a resource that is neither `*` nor an ARN (IAM requires one or the other; an unresolved
//!   `!Ref` of something unknown looks like that), or an ARN with a wildcard in its service
//!   segment (IAM's documentation: "You can't use a wildcard in the service segment");
//! * an action without a service prefix (`GetItem`), unknown keys, an `Effect` other than
//!   `Allow`/`Deny`, a `Version` other than `2012-10-17` or `2008-10-17`, an empty list.

use anyhow::{Context, Result, bail};
use serde_json::Value as Json;

/// One policy of a role, its statements in order.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    /// Where it comes from, as a reader of template.yaml finds it (see [`super::StatementRef`]).
    pub label: String,
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
pub(super) struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub actions: Patterns,
    pub resources: Patterns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Allow,
    Deny,
}

/// `Action`/`Resource` (`Listed`) or `NotAction`/`NotResource` (`AllBut`): wildcard patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Patterns {
    Listed(Vec<String>),
    AllBut(Vec<String>),
}

const STATEMENT_KEYS: &[&str] = &["Sid", "Effect", "Action", "NotAction", "Resource", "NotResource"];

impl Policy {
    /// Reads a policy document (`{"Version": …, "Statement": […]}`, already resolved from the
    /// template). `label` names it in errors.
    pub fn parse(label: impl Into<String>, document: &Json) -> Result<Self> {
        let label = label.into();
        let statements =
            parse_document(document).with_context(|| format!("{label}: not a policy IAM can judge here"))?;
        Ok(Self { label, statements })
    }
}

fn parse_document(document: &Json) -> Result<Vec<Statement>> {
    let Some(fields) = document.as_object() else { bail!("a policy document is a map, not {document}") };
    for key in fields.keys() {
        if !["Version", "Id", "Statement"].contains(&key.as_str()) {
            bail!("unknown policy element {key}");
        }
    }
    match fields.get("Version") {
        None => {}
        Some(Json::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
        Some(other) => bail!("Version {other}: IAM knows 2012-10-17 and 2008-10-17"),
    }
    let statements = match fields.get("Statement") {
        Some(Json::Array(items)) => items.iter().collect(),
        Some(one @ Json::Object(_)) => vec![one],
        Some(other) => bail!("Statement is a list of statements, not {other}"),
        None => bail!("no Statement"),
    };
    statements
        .into_iter()
        .enumerate()
        .map(|(i, s)| parse_statement(s).with_context(|| format!("statement {i}")))
        .collect()
}

fn parse_statement(statement: &Json) -> Result<Statement> {
    let Some(fields) = statement.as_object() else { bail!("a statement is a map, not {statement}") };
    for key in fields.keys() {
        match key.as_str() {
            "Condition" => bail!(
                "Condition is not evaluated by the local stack (it depends on the request's context): \
                 grant without it, or keep it out of the template the stack reads"
            ),
            "Principal" | "NotPrincipal" => {
                bail!("{key} belongs in a resource-based policy; IAM refuses it in a role's policy")
            }
            known if STATEMENT_KEYS.contains(&known) => {}
            unknown => bail!("unknown statement element {unknown}"),
        }
    }
    let sid = match fields.get("Sid") {
        None => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => bail!("Sid must be a string, not {other}"),
    };
    let effect = match fields.get("Effect").and_then(Json::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => bail!("Effect must be Allow or Deny, not {}", fields.get("Effect").unwrap_or(&Json::Null)),
    };
    let actions = patterns(fields, "Action", "NotAction", check_action)?;
    let resources = patterns(fields, "Resource", "NotResource", check_resource)?;
    Ok(Statement { sid, effect, actions, resources })
}

/// Exactly one of `listed`/`all_but`, a string or a non-empty list of strings, each checked.
fn patterns(
    fields: &serde_json::Map<String, Json>,
    listed: &str,
    all_but: &str,
    check: fn(&str) -> Result<()>,
) -> Result<Patterns> {
    let (key, value) = match (fields.get(listed), fields.get(all_but)) {
        (Some(v), None) => (listed, v),
        (None, Some(v)) => (all_but, v),
        (Some(_), Some(_)) => bail!("a statement has {listed} or {all_but}, not both"),
        (None, None) => bail!("a statement needs {listed} or {all_but}"),
    };
    let values: Vec<String> = match value {
        Json::String(s) => vec![s.clone()],
        Json::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("{key}: {i} is not a string (an unresolved intrinsic?)"))
            })
            .collect::<Result<_>>()?,
        other => bail!("{key} must be a string or a list of strings, not {other} (an unresolved intrinsic?)"),
    };
    if values.is_empty() {
        bail!("{key} is empty");
    }
    for v in &values {
        check(v).with_context(|| format!("{key} {v:?}"))?;
    }
    Ok(if key == listed { Patterns::Listed(values) } else { Patterns::AllBut(values) })
}

/// `*`, or `service:Action` (wildcards allowed).
fn check_action(action: &str) -> Result<()> {
    match action.split_once(':') {
        _ if action == "*" => Ok(()),
        Some((service, name)) if !service.is_empty() && !name.is_empty() => Ok(()),
        _ => bail!("an action is `service:Action` (or `*`)"),
    }
}

/// `*`, or an ARN whose service segment is literal, without `${`.
fn check_resource(resource: &str) -> Result<()> {
    if resource.contains("${") {
        bail!(
            "policy variables (and unresolved `!Sub` variables) are not evaluated by the local stack: \
             write the resource's ARN"
        );
    }
    if resource == "*" {
        return Ok(());
    }
    let mut segments = resource.split(':');
    if segments.next() != Some("arn") {
        bail!("a resource is an ARN or `*` (an unresolved `!Ref` or `!GetAtt`?)");
    }
    match segments.nth(1) {
        Some(service) if !service.is_empty() && !service.contains(['*', '?']) => Ok(()),
        _ => bail!("an ARN's service segment must be written out: IAM takes no wildcard there"),
    }
}

impl Patterns {
    /// The patterns as the report lists them: each listed one, or one `Not:a,b` for `Not…`.
    pub fn labels(&self) -> Vec<String> {
        match self {
            Self::Listed(patterns) => patterns.clone(),
            Self::AllBut(patterns) => vec![format!("Not:{}", patterns.join(","))],
        }
    }

    /// The label of what matches `value` (its first matching pattern, or the `Not:` label when
    /// none of the excluded ones does), if anything does.
    pub fn matching(&self, value: &str, matches: fn(&str, &str) -> bool) -> Option<String> {
        match self {
            Self::Listed(patterns) => patterns.iter().find(|p| matches(p, value)).cloned(),
            Self::AllBut(patterns) => (!patterns.iter().any(|p| matches(p, value))).then(|| self.labels().remove(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refusal(document: Json) -> String {
        format!("{:#}", Policy::parse("Policies[0] (inline)", &document).unwrap_err())
    }

    #[test]
    fn reads_the_elements_it_judges() {
        let p = Policy::parse(
            "Policies[0] (inline)",
            &json!({
                "Version": "2012-10-17",
                "Statement": [
                    { "Sid": "Read", "Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/T" },
                    { "Effect": "Deny", "NotAction": ["iam:*"], "NotResource": "*" }
                ]
            }),
        )
        .unwrap();
        assert_eq!(p.statements.len(), 2);
        assert_eq!(p.statements[0].sid.as_deref(), Some("Read"));
        assert_eq!(p.statements[0].effect, Effect::Allow);
        assert_eq!(p.statements[1].actions, Patterns::AllBut(vec!["iam:*".into()]));
        assert_eq!(p.statements[1].resources.labels(), vec!["Not:*"]);
        // One statement, not in a list; no Version (IAM's default, 2008-10-17).
        let one =
            Policy::parse("x", &json!({ "Statement": { "Effect": "Allow", "Action": "*", "Resource": "*" } })).unwrap();
        assert_eq!(one.statements.len(), 1);
    }

    #[test]
    fn refuses_what_it_cannot_judge_and_names_it() {
        let statement = |extra: Json| {
            let mut s = json!({ "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*" });
            s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            json!({ "Version": "2012-10-17", "Statement": [s] })
        };
        let condition = refusal(statement(json!({ "Condition": { "Bool": { "aws:SecureTransport": "true" } } })));
        assert!(condition.contains("Policies[0] (inline)") && condition.contains("statement 0"), "{condition}");
        assert!(condition.contains("Condition"), "{condition}");
        assert!(refusal(statement(json!({ "Principal": "*" }))).contains("Principal"));
        assert!(refusal(statement(json!({ "NotPrincipal": { "AWS": "*" } }))).contains("NotPrincipal"));
        assert!(refusal(statement(json!({ "Resources": "*" }))).contains("unknown statement element Resources"));
        assert!(refusal(statement(json!({ "Effect": "allow" }))).contains("Effect"));
        assert!(refusal(statement(json!({ "Effect": "Maybe" }))).contains("Effect"));
        assert!(refusal(statement(json!({ "NotAction": "s3:PutObject" }))).contains("not both"));
        let variable = refusal(statement(json!({ "Resource": "arn:aws:s3:::b/${aws:username}/*" })));
        assert!(variable.contains("policy variables"), "{variable}");
        assert!(refusal(statement(json!({ "Resource": "ShopTable.Arn" }))).contains("ARN"));
        assert!(
            refusal(statement(json!({ "Resource": "arn:aws:*:us-east-1:123456789012:*" }))).contains("service segment")
        );
        assert!(
            refusal(statement(json!({ "Resource": { "Fn::If": ["C", "a", "b"] } }))).contains("unresolved intrinsic")
        );
        assert!(refusal(statement(json!({ "Action": [] }))).contains("empty"));
        assert!(refusal(statement(json!({ "Action": "GetObject" }))).contains("service:Action"));
        assert!(refusal(json!({ "Version": "2012-10-18", "Statement": [] })).contains("Version"));
        assert!(refusal(json!({ "Statement": [], "Extra": 1 })).contains("unknown policy element Extra"));
        let missing = refusal(json!({ "Statement": [{ "Effect": "Allow", "Action": "s3:GetObject" }] }));
        assert!(missing.contains("Resource or NotResource"), "{missing}");
    }

    #[test]
    fn not_patterns_match_everything_but_theirs() {
        let not = Patterns::AllBut(vec!["iam:*".into(), "sts:*".into()]);
        let m = super::super::wildcard::action_matches;
        assert_eq!(not.matching("s3:GetObject", m).as_deref(), Some("Not:iam:*,sts:*"));
        assert_eq!(not.matching("IAM:PassRole", m), None);
        let listed = Patterns::Listed(vec!["s3:Put*".into(), "s3:Get*".into()]);
        assert_eq!(listed.matching("s3:GetObject", m).as_deref(), Some("s3:Get*"));
    }
}
