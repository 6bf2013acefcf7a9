//! IAM's policy evaluation logic, for a role's identity-based policies in its own account.
//!
//! The IAM User Guide ("Policy evaluation logic", "Determining whether a request is allowed or
//! denied within an account") decides a request in this order, and so does [`evaluate`]:
//!
//! 1. every request starts **denied**;
//! 2. a matching `Deny` statement, in any policy, is an **explicit deny**, and nothing overrides
//!    it;
//! 3. otherwise a matching `Allow` statement **allows** it;
//! 4. otherwise it stays denied: an **implicit deny** ("no identity-based policy allows …").
//!
//! A statement matches a request when its actions match the action and its resources the
//! resource (see [`super::wildcard`]): for `Action`/`Resource` one of the listed patterns must
//! match, for `NotAction`/`NotResource` none may — so an `Allow` with `NotAction` allows every
//! action but those, on its resources, and a `Deny` with `NotResource` denies its actions on
//! every resource but those.
//!
//! The other policy types AWS evaluates (SCPs, resource-based policies, permissions
//! boundaries, session policies) do not exist in this stack: the template declares none that
//! applies to a function's calls, and [`super::roles`] refuses the ones it could declare.

use super::policy::{Effect, Policy, Statement};
use super::wildcard::{action_matches, resource_matches};
use super::{Decision, Grant, StatementRef};

/// Judges `action` on `resource` against a role's policies.
pub(super) fn evaluate(policies: &[Policy], action: &str, resource: &str) -> Decision {
    let mut allowed = None;
    for (statement, at) in statements(policies) {
        let Some((action_pattern, resource_pattern)) = matching(statement, action, resource) else { continue };
        match statement.effect {
            Effect::Deny => return Decision::ExplicitDeny { statement: at },
            // The first allowing statement is credited (the role's own policies come first).
            Effect::Allow => {
                allowed.get_or_insert(Decision::Allowed { statement: at, action_pattern, resource_pattern });
            }
        }
    }
    allowed.unwrap_or(Decision::ImplicitDeny)
}

/// Every (action pattern × resource pattern) of every `Allow` statement.
pub(super) fn grants(policies: &[Policy]) -> Vec<Grant> {
    let mut out = Vec::new();
    for (statement, at) in statements(policies).filter(|(s, _)| s.effect == Effect::Allow) {
        for action_pattern in statement.actions.labels() {
            for resource_pattern in statement.resources.labels() {
                out.push(Grant { statement: at.clone(), action_pattern: action_pattern.clone(), resource_pattern });
            }
        }
    }
    out
}

/// The patterns through which `statement` matches the request, if it does.
fn matching(statement: &Statement, action: &str, resource: &str) -> Option<(String, String)> {
    let action_pattern = statement.actions.matching(action, action_matches)?;
    let resource_pattern = statement.resources.matching(resource, resource_matches)?;
    Some((action_pattern, resource_pattern))
}

fn statements(policies: &[Policy]) -> impl Iterator<Item = (&Statement, StatementRef)> {
    policies.iter().flat_map(|p| {
        p.statements
            .iter()
            .enumerate()
            .map(|(index, s)| (s, StatementRef { policy: p.label.clone(), index, sid: s.sid.clone() }))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::*;

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/ShopTable";

    fn policy(label: &str, statements: Json) -> Policy {
        Policy::parse(label, &json!({ "Version": "2012-10-17", "Statement": statements })).unwrap()
    }

    fn allow(action: Json, resource: Json) -> Json {
        json!({ "Effect": "Allow", "Action": action, "Resource": resource })
    }

    fn allowed(policies: &[Policy], action: &str, resource: &str) -> bool {
        matches!(evaluate(policies, action, resource), Decision::Allowed { .. })
    }

    #[test]
    fn an_allow_allows_what_it_names_and_nothing_else() {
        let p = [policy(
            "Policies[0] (inline)",
            json!([allow(json!(["dynamodb:GetItem", "dynamodb:PutItem"]), json!(TABLE))]),
        )];
        assert_eq!(
            evaluate(&p, "dynamodb:PutItem", TABLE),
            Decision::Allowed {
                statement: StatementRef { policy: "Policies[0] (inline)".into(), index: 0, sid: None },
                action_pattern: "dynamodb:PutItem".into(),
                resource_pattern: TABLE.into(),
            }
        );
        assert_eq!(evaluate(&p, "dynamodb:BatchGetItem", TABLE), Decision::ImplicitDeny);
        assert_eq!(
            evaluate(&p, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/Other"),
            Decision::ImplicitDeny
        );
        assert_eq!(evaluate(&[], "dynamodb:GetItem", TABLE), Decision::ImplicitDeny);
    }

    #[test]
    fn actions_are_case_insensitive_resources_are_not() {
        let p = [policy("p", json!([allow(json!("DynamoDB:getitem"), json!(TABLE))]))];
        assert!(allowed(&p, "dynamodb:GetItem", TABLE));
        assert!(!allowed(&p, "dynamodb:GetItem", &TABLE.to_lowercase()));
    }

    #[test]
    fn an_explicit_deny_wins_over_any_allow() {
        // The IAM User Guide's example: allow everything in DynamoDB, deny deleting the table.
        let p = [
            policy("Policies[0] (inline)", json!([allow(json!("dynamodb:*"), json!("*"))])),
            policy(
                "Policies[1] (inline)",
                json!([{ "Sid": "NoDelete", "Effect": "Deny", "Action": "dynamodb:DeleteTable", "Resource": TABLE }]),
            ),
        ];
        assert!(allowed(&p, "dynamodb:GetItem", TABLE));
        assert_eq!(
            evaluate(&p, "dynamodb:DeleteTable", TABLE),
            Decision::ExplicitDeny {
                statement: StatementRef {
                    policy: "Policies[1] (inline)".into(),
                    index: 0,
                    sid: Some("NoDelete".into())
                }
            }
        );
    }

    #[test]
    fn not_action_with_allow_allows_every_other_action_on_its_resources() {
        // IAM JSON policy elements: NotAction — everything in S3 but deleting a bucket.
        let p =
            [policy("p", json!([{ "Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::*" }]))];
        assert!(allowed(&p, "s3:GetObject", "arn:aws:s3:::bucket/key"));
        assert!(!allowed(&p, "s3:DeleteBucket", "arn:aws:s3:::bucket"));
        // "This policy also does not allow actions in other services" on other resources, nor
        // ListAllMyBuckets, whose resource is `*`.
        assert!(!allowed(&p, "dynamodb:GetItem", TABLE));
        assert!(!allowed(&p, "s3:ListAllMyBuckets", "*"));
        match evaluate(&p, "s3:GetObject", "arn:aws:s3:::bucket/key") {
            Decision::Allowed { action_pattern, .. } => assert_eq!(action_pattern, "Not:s3:DeleteBucket"),
            other => panic!("{other:?}"),
        }
        // Everything but IAM.
        let everything_but_iam = [policy("p", json!([{ "Effect": "Allow", "NotAction": "iam:*", "Resource": "*" }]))];
        assert!(allowed(&everything_but_iam, "dynamodb:GetItem", TABLE));
        assert!(!allowed(&everything_but_iam, "IAM:CreateUser", "arn:aws:iam::123456789012:user/Bob"));
    }

    #[test]
    fn not_action_with_deny_denies_every_other_action() {
        let p = [
            policy("a", json!([allow(json!("*"), json!("*"))])),
            policy("d", json!([{ "Effect": "Deny", "NotAction": "iam:*", "Resource": "*" }])),
        ];
        assert!(matches!(evaluate(&p, "s3:GetObject", "arn:aws:s3:::b/k"), Decision::ExplicitDeny { .. }));
        assert!(allowed(&p, "iam:GetUser", "arn:aws:iam::123456789012:user/Bob"));
    }

    #[test]
    fn not_resource_with_deny_denies_every_other_resource() {
        // IAM JSON policy elements: NotResource — HRPayroll may touch nothing in S3 but Payroll.
        let p = [
            policy("a", json!([allow(json!("s3:*"), json!("*"))])),
            policy(
                "d",
                json!([{ "Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"] }]),
            ),
        ];
        assert!(allowed(&p, "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/march.pdf"));
        assert!(matches!(evaluate(&p, "s3:GetObject", "arn:aws:s3:::HRBucket/Other/x"), Decision::ExplicitDeny { .. }));
        // The deny does not grant: without the allow, Payroll is implicitly denied.
        assert_eq!(
            evaluate(&p[1..], "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/march.pdf"),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn not_resource_with_allow_allows_every_other_resource() {
        let p = [policy("p", json!([{ "Effect": "Allow", "Action": "dynamodb:GetItem", "NotResource": TABLE }]))];
        assert!(allowed(&p, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/Other"));
        assert!(!allowed(&p, "dynamodb:GetItem", TABLE));
    }

    #[test]
    fn wildcard_actions_and_resources() {
        let p = [policy(
            "p",
            json!([allow(json!("dynamodb:Get*"), json!("arn:aws:dynamodb:us-east-1:123456789012:table/*"))]),
        )];
        assert!(allowed(&p, "dynamodb:GetItem", TABLE));
        assert!(allowed(&p, "dynamodb:GetRecords", &format!("{TABLE}/stream/2015-05-11T21:21:33.291")));
        assert!(!allowed(&p, "dynamodb:Query", TABLE));
        assert!(!allowed(&p, "dynamodb:GetItem", "arn:aws:dynamodb:us-west-2:123456789012:table/ShopTable"));
    }

    #[test]
    fn dynamodb_indexes_and_streams_are_resources_of_their_own() {
        let index = format!("{TABLE}/index/gsi1");
        let stream = format!("{TABLE}/stream/local");
        let table_only = [policy("p", json!([allow(json!(["dynamodb:Query", "dynamodb:GetRecords"]), json!(TABLE))]))];
        assert!(allowed(&table_only, "dynamodb:Query", TABLE));
        assert!(!allowed(&table_only, "dynamodb:Query", &index));
        assert!(!allowed(&table_only, "dynamodb:GetRecords", &stream));
        let indexes = [policy("p", json!([allow(json!("dynamodb:Query"), json!(format!("{TABLE}/index/*")))]))];
        assert!(allowed(&indexes, "dynamodb:Query", &index));
        assert!(!allowed(&indexes, "dynamodb:Query", TABLE));
        let streams = [policy("p", json!([allow(json!("dynamodb:GetRecords"), json!(format!("{TABLE}/stream/*")))]))];
        assert!(allowed(&streams, "dynamodb:GetRecords", &stream));
    }

    #[test]
    fn the_first_allowing_statement_is_credited() {
        let p = [
            policy(
                "Policies[0] (inline)",
                json!([allow(json!("dynamodb:GetRecords"), json!(format!("{TABLE}/stream/*")))]),
            ),
            policy(
                "added by SAM: AWSLambdaDynamoDBExecutionRole",
                json!([allow(json!("dynamodb:GetRecords"), json!("*"))]),
            ),
        ];
        match evaluate(&p, "dynamodb:GetRecords", &format!("{TABLE}/stream/local")) {
            Decision::Allowed { statement, .. } => assert_eq!(statement.policy, "Policies[0] (inline)"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn grants_are_action_by_resource_of_allow_statements() {
        let p = [policy(
            "p",
            json!([
                allow(json!(["a:X", "a:Y"]), json!(["arn:aws:a:::1", "arn:aws:a:::2"])),
                { "Effect": "Deny", "Action": "a:Z", "Resource": "*" },
                { "Effect": "Allow", "NotAction": ["iam:*", "sts:*"], "NotResource": "arn:aws:a:::3" }
            ]),
        )];
        let grants: Vec<(usize, String, String)> =
            grants(&p).into_iter().map(|g| (g.statement.index, g.action_pattern, g.resource_pattern)).collect();
        let expected = [
            (0, "a:X", "arn:aws:a:::1"),
            (0, "a:X", "arn:aws:a:::2"),
            (0, "a:Y", "arn:aws:a:::1"),
            (0, "a:Y", "arn:aws:a:::2"),
            (2, "Not:iam:*,sts:*", "Not:arn:aws:a:::3"),
        ]
        .map(|(i, a, r)| (i, a.to_owned(), r.to_owned()));
        assert_eq!(grants, expected);
        // An allowed request names one of the grants, so the report can tell the unused ones.
        let Decision::Allowed { statement, action_pattern, resource_pattern } =
            evaluate(&p, "s3:GetObject", "arn:aws:s3:::b")
        else {
            panic!()
        };
        assert!(super::grants(&p).contains(&Grant { statement, action_pattern, resource_pattern }));
    }
}
