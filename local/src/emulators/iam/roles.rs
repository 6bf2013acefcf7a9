//! Every function's role, read from the template as CloudFormation and SAM would build it.
//!
//! A function's role is one of two:
//!
//! * **the role SAM generates** (no `Role` property): `<Function>Role`, named
//!   `shop-local-<Function>Role` here (`<stack>-<Function>Role-<random>` on AWS), holding the
//!   function's `Policies` and what SAM adds by itself — see [`super::sam`];
//! * **an `AWS::IAM::Role` of the template** (`Role: !GetAtt R.Arn`): its `Policies[]` and
//!   `ManagedPolicyArns`, nothing from SAM (SAM adds its policies only to a role it generates).
//!   A role from outside the template is refused: its policies cannot be known here.
//!
//! Either role also holds the policies of the template that attach themselves to it
//! (`AWS::IAM::Policy` and `AWS::IAM::ManagedPolicy` with `Roles: [!Ref <Role>]`,
//! `AWS::IAM::RolePolicy` with `RoleName`). `Metadata.UnexercisedGrants` of the function (action
//! pattern → why no test uses it) goes with the role, for the report.
//!
//! The template is resolved for this with the local parameter values
//! ([`crate::template::LOCAL_PARAMETER_OVERRIDES`]); a function whose `Condition` is then false
//! has no role, as it would have no function.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use serde_json::{Value as Json, json};

use super::policy::Policy;
use super::{Role, managed, sam};
use crate::template::{Resolved, ResolvedResource, STACK_NAME, managed_policy_arn, role_arn};

/// The roles of every `AWS::Serverless::Function` of `text`, by function.
pub(super) fn read(text: &str) -> Result<BTreeMap<String, Role>> {
    let resolved = Resolved::parse(text)?;
    if let Some((id, _)) = resolved.of_type("AWS::Serverless::Connector").next() {
        bail!("{id}: SAM connectors add policies to roles, which the local stack does not read; write the statements");
    }
    let mut roles = BTreeMap::new();
    for (id, function) in resolved.of_type("AWS::Serverless::Function") {
        let role = function_role(&resolved, id, function).with_context(|| format!("{id}'s role"))?;
        roles.insert(id.to_owned(), role);
    }
    Ok(roles)
}

fn function_role(resolved: &Resolved, function: &str, resource: &ResolvedResource) -> Result<Role> {
    let props = &resource.properties;
    let mut policies = RolePolicies::default();
    let (role_id, role_name) = match props.get("Role").filter(|r| !r.is_null()) {
        None => {
            sam::execution_role(&mut policies, resolved, props)?;
            let role_id = format!("{function}Role");
            let name = format!("{STACK_NAME}-{role_id}");
            (role_id, name)
        }
        Some(role) => {
            if props.get("Policies").is_some() {
                bail!("it has both Role and Policies: SAM ignores Policies when Role is given; keep one");
            }
            let (role_id, role) = template_role(resolved, role)?;
            explicit_role(&mut policies, resolved, role_id, role)?;
            let name = role.properties.get("RoleName").and_then(Json::as_str).map(str::to_owned);
            let name = name.unwrap_or_else(|| format!("{STACK_NAME}-{role_id}"));
            (role_id.to_owned(), name)
        }
    };
    attached(&mut policies, resolved, &role_id)?;
    Ok(Role {
        function: function.to_owned(),
        role_name,
        unexercised_reasons: unexercised_reasons(&resource.metadata)?,
        policies: policies.policies,
    })
}

/// The `AWS::IAM::Role` of the template that `Role` (its ARN, `!GetAtt R.Arn`) names.
fn template_role<'a>(resolved: &'a Resolved, role: &Json) -> Result<(&'a str, &'a ResolvedResource)> {
    let found = role.as_str().and_then(|arn| arn.strip_prefix(&role_arn(""))).and_then(|id| {
        let (id, r) = resolved.resources.get_key_value(id)?;
        (r.kind == "AWS::IAM::Role").then_some((id.as_str(), r))
    });
    match found {
        Some(found) => Ok(found),
        None => bail!(
            "Role {role} is not an AWS::IAM::Role of the template (`!GetAtt <Role>.Arn`): the local stack \
             cannot know what a role from elsewhere holds; declare it in the template, or use Policies"
        ),
    }
}

/// An `AWS::IAM::Role`'s own policies: `Policies[].PolicyDocument` and `ManagedPolicyArns`.
fn explicit_role(policies: &mut RolePolicies, resolved: &Resolved, id: &str, role: &ResolvedResource) -> Result<()> {
    let props = &role.properties;
    if props.get("PermissionsBoundary").is_some() {
        bail!("{id} has a PermissionsBoundary, which the local stack does not evaluate");
    }
    for (i, p) in list(props.get("Policies")).iter().enumerate() {
        let name = p.get("PolicyName").and_then(Json::as_str).unwrap_or_default();
        let document = p.get("PolicyDocument").with_context(|| format!("{id}.Policies[{i}]: no PolicyDocument"))?;
        policies.document(format!("{id}.Policies[{i}] {name}"), document)?;
    }
    for (i, arn) in list(props.get("ManagedPolicyArns")).iter().enumerate() {
        let at = format!("{id}.ManagedPolicyArns[{i}]");
        let arn = arn.as_str().with_context(|| format!("{at}: {arn} is not an ARN"))?;
        policies.managed(resolved, &at, arn).with_context(|| at.clone())?;
    }
    Ok(())
}

/// The template's policies that attach themselves to role `role_id`.
fn attached(policies: &mut RolePolicies, resolved: &Resolved, role_id: &str) -> Result<()> {
    let names_role = |roles: Option<&Json>| list(roles).iter().any(|r| r.as_str() == Some(role_id));
    for (id, r) in &resolved.resources {
        let props = &r.properties;
        match r.kind.as_str() {
            "AWS::IAM::Policy" if names_role(props.get("Roles")) => {
                let document = props.get("PolicyDocument").with_context(|| format!("{id}: no PolicyDocument"))?;
                policies.document(format!("{id} (AWS::IAM::Policy)"), document)?;
            }
            "AWS::IAM::RolePolicy" if props.get("RoleName").and_then(Json::as_str) == Some(role_id) => {
                let document = props.get("PolicyDocument").with_context(|| format!("{id}: no PolicyDocument"))?;
                policies.document(format!("{id} (AWS::IAM::RolePolicy)"), document)?;
            }
            "AWS::IAM::ManagedPolicy" if names_role(props.get("Roles")) => {
                policies.managed(resolved, id, &managed_policy_arn(id))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `Metadata.UnexercisedGrants`: action pattern → reason.
fn unexercised_reasons(metadata: &Json) -> Result<BTreeMap<String, String>> {
    let Some(reasons) = metadata.get("UnexercisedGrants").filter(|r| !r.is_null()) else { return Ok(BTreeMap::new()) };
    let Some(reasons) = reasons.as_object() else {
        bail!("Metadata.UnexercisedGrants is a map of action pattern → reason, not {reasons}")
    };
    reasons
        .iter()
        .map(|(action, reason)| match reason.as_str() {
            Some(reason) => Ok((action.clone(), reason.to_owned())),
            None => bail!("Metadata.UnexercisedGrants.{action}: the reason is a string, not {reason}"),
        })
        .collect()
}

/// A value that may be one item or a list of them (absent: none).
pub(super) fn list(value: Option<&Json>) -> Vec<Json> {
    match value {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items.clone(),
        Some(one) => vec![one.clone()],
    }
}

/// The policies of a role as it is built, in the order they are attached: each managed policy
/// once, as IAM attaches a policy once (SAM de-duplicates its `ManagedPolicyArns` the same way).
#[derive(Default)]
pub(super) struct RolePolicies {
    policies: Vec<Policy>,
    managed: BTreeSet<String>,
}

impl RolePolicies {
    /// An inline policy (or a template's, or one SAM writes).
    pub fn document(&mut self, label: impl Into<String>, document: &Json) -> Result<()> {
        self.policies.push(Policy::parse(label, document)?);
        Ok(())
    }

    /// Statements SAM writes, as one inline policy.
    pub fn statements(&mut self, label: impl Into<String>, statements: Vec<Json>) -> Result<()> {
        self.document(label, &json!({ "Statement": statements }))
    }

    /// A managed policy, by name or ARN: one of the template (`!Ref P`, its local ARN), labelled
    /// `P (AWS::IAM::ManagedPolicy)`; else an AWS managed one, labelled `<at> <Name>`.
    pub fn managed(&mut self, resolved: &Resolved, at: &str, name_or_arn: &str) -> Result<()> {
        if let Some(id) = name_or_arn.strip_prefix(&managed_policy_arn("")) {
            if let Some(condition) = resolved.absent.get(id) {
                bail!("the managed policy {id} is not in the stack: its Condition {condition} is false");
            }
            if let Some(r) = resolved.resources.get(id).filter(|r| r.kind == "AWS::IAM::ManagedPolicy") {
                if self.managed.insert(name_or_arn.to_owned()) {
                    let document =
                        r.properties.get("PolicyDocument").with_context(|| format!("{id}: no PolicyDocument"))?;
                    self.document(format!("{id} (AWS::IAM::ManagedPolicy)"), document)?;
                }
                return Ok(());
            }
        }
        let policy = managed::find(name_or_arn)?;
        if self.managed.insert(policy.arn()) {
            self.document(format!("{at} {}", policy.name), &policy.document())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Decision, Roles, denial_message};
    use super::*;

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/ShopTable";

    fn allowed_by(roles: &Roles, function: &str, action: &str, resource: &str) -> Option<String> {
        match roles.role(function).unwrap().evaluate(action, resource) {
            Decision::Allowed { statement, .. } => Some(statement.policy),
            _ => None,
        }
    }

    #[test]
    fn the_real_templates_roles_load() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
        let roles = Roles::from_template(&text).unwrap();
        // Every function runs locally, the Kafka ones and the mock gateway's included.
        for f in [
            "SignupFunction",
            "OutboxRelayFunction",
            "NotifierFunction",
            "MockGatewayFunction",
            "MockGatewayDeliveriesFunction",
        ] {
            assert!(roles.role(f).is_some(), "{f}");
        }
        let relay = roles.role("OutboxRelayFunction").unwrap();
        assert_eq!(relay.role_name, "shop-local-OutboxRelayFunctionRole");
        assert_eq!(
            relay.assumed_role_arn(),
            "arn:aws:sts::123456789012:assumed-role/shop-local-OutboxRelayFunctionRole/OutboxRelayFunction"
        );

        // The relay reads the table's stream through what SAM adds for a DynamoDB event …
        let stream = format!("{TABLE}/stream/local");
        assert_eq!(
            allowed_by(&roles, "OutboxRelayFunction", "dynamodb:GetRecords", &stream).as_deref(),
            Some("added by SAM: AWSLambdaDynamoDBExecutionRole")
        );
        // … sends what the stream gives up on to its queue (SAM, for the OnFailure destination) …
        assert_eq!(
            allowed_by(
                &roles,
                "OutboxRelayFunction",
                "sqs:SendMessage",
                "arn:aws:sqs:us-east-1:123456789012:OutboxRelayDeadLetters"
            )
            .as_deref(),
            Some("added by SAM: OutboxInserts OnFailure destination")
        );
        // … produces to the topic through the template's managed policy, and logs.
        let topic =
            "arn:aws:kafka:us-east-1:123456789012:topic/shop-local/00000000-0000-0000-0000-000000000000-1/shop-events";
        assert_eq!(
            allowed_by(&roles, "OutboxRelayFunction", "kafka-cluster:WriteData", topic).as_deref(),
            Some("PublishEventsPolicy (AWS::IAM::ManagedPolicy)")
        );
        assert!(allowed_by(&roles, "OutboxRelayFunction", "logs:PutLogEvents", "*").is_some());
        // Not in a VPC locally (no SubnetIds): no ENI permissions from SAM.
        assert_eq!(allowed_by(&roles, "OutboxRelayFunction", "ec2:CreateNetworkInterface", "*"), None);

        // Products may read items (one at a time or in batches: a bucketed product's stock), but
        // never scan the table.
        let products = roles.role("ProductsFunction").unwrap();
        assert!(allowed_by(&roles, "ProductsFunction", "dynamodb:BatchGetItem", TABLE).is_some());
        let decision = products.evaluate("dynamodb:Scan", TABLE);
        assert_eq!(decision, Decision::ImplicitDeny);
        assert_eq!(
            denial_message(products, "dynamodb:Scan", TABLE, &decision),
            "User: arn:aws:sts::123456789012:assumed-role/shop-local-ProductsFunctionRole/ProductsFunction is not \
             authorized to perform: dynamodb:Scan on resource: arn:aws:dynamodb:us-east-1:123456789012:table/ShopTable \
             because no identity-based policy allows the dynamodb:Scan action"
        );
        // Nobody scans the table (every access is by key or by index), nor deletes it.
        for role in roles.iter() {
            for action in ["dynamodb:Scan", "dynamodb:DeleteTable"] {
                assert_eq!(role.evaluate(action, TABLE), Decision::ImplicitDeny, "{} {action}", role.function);
            }
        }
        // Its Query grant is on the catalog index gsi3, not on the table nor the other indexes.
        assert!(allowed_by(&roles, "ProductsFunction", "dynamodb:Query", &format!("{TABLE}/index/gsi3")).is_some());
        assert_eq!(allowed_by(&roles, "ProductsFunction", "dynamodb:Query", TABLE), None);
        for other in ["gsi1", "gsi2"] {
            assert_eq!(
                allowed_by(&roles, "ProductsFunction", "dynamodb:Query", &format!("{TABLE}/index/{other}")),
                None
            );
        }

        // The notifier sends from its identity, and reads the topic.
        let identity = "arn:aws:ses:us-east-1:123456789012:identity/no-reply@shop.example.com";
        assert_eq!(
            allowed_by(&roles, "NotifierFunction", "ses:SendEmail", identity).as_deref(),
            Some("Policies[0] (inline)")
        );
        assert_eq!(
            allowed_by(
                &roles,
                "NotifierFunction",
                "ses:SendEmail",
                "arn:aws:ses:us-east-1:123456789012:identity/other.example.com"
            ),
            None
        );
        assert!(allowed_by(&roles, "NotifierFunction", "kafka-cluster:ReadData", topic).is_some());
        assert_eq!(
            allowed_by(
                &roles,
                "NotifierFunction",
                "sqs:SendMessage",
                "arn:aws:sqs:us-east-1:123456789012:NotifierDeadLetters"
            )
            .as_deref(),
            Some("added by SAM: DomainEvents OnFailure destination")
        );
        assert_eq!(
            allowed_by(
                &roles,
                "NotifierFunction",
                "kafka:DescribeClusterV2",
                "arn:aws:kafka:us-east-1:123456789012:cluster/x/y"
            )
            .as_deref(),
            Some("added by SAM: AWSLambdaMSKExecutionRole")
        );
        // Nobody else may send e-mail or touch Kafka.
        assert_eq!(allowed_by(&roles, "OrdersFunction", "ses:SendEmail", identity), None);
    }

    fn with_resources(resources: &str) -> Result<Roles> {
        Roles::from_template(&format!(
            "Resources:\n  Table:\n    Type: AWS::DynamoDB::Table\n  Queue:\n    Type: AWS::SQS::Queue\n{resources}"
        ))
    }

    #[test]
    fn sam_adds_tracing_vpc_and_event_source_policies() {
        let roles = with_resources(
            r#"
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Tracing: Active
      VpcConfig: { SubnetIds: [s], SecurityGroupIds: [g] }
      Policies:
        - DynamoDBReadPolicy: { TableName: !Ref Table }
        - AWSLambdaBasicExecutionRole
      Events:
        Queue:
          Type: SQS
          Properties: { Queue: !GetAtt Queue.Arn }
        Stream:
          Type: Kinesis
          Properties:
            Stream: arn:aws:kinesis:us-east-1:123456789012:stream/s
            StartingPosition: LATEST
            DestinationConfig: { OnFailure: { Type: SNS, Destination: "arn:aws:sns:us-east-1:123456789012:t" } }
"#,
        )
        .unwrap();
        let role = roles.role("Fn").unwrap();
        let labels: Vec<&str> = role.policies().collect();
        assert_eq!(
            labels,
            [
                "Policies[0] DynamoDBReadPolicy",
                "Policies[1] AWSLambdaBasicExecutionRole",
                "added by SAM: AWSXrayWriteOnlyAccess",
                "added by SAM: AWSLambdaVPCAccessExecutionRole",
                "added by SAM: AWSLambdaSQSQueueExecutionRole",
                "added by SAM: AWSLambdaKinesisExecutionRole",
                "added by SAM: Stream OnFailure destination",
            ]
        );
        let table = "arn:aws:dynamodb:us-east-1:123456789012:table/Table";
        assert!(allowed_by(&roles, "Fn", "dynamodb:Query", &format!("{table}/index/anything")).is_some());
        assert!(allowed_by(&roles, "Fn", "dynamodb:GetItem", table).is_some());
        assert_eq!(allowed_by(&roles, "Fn", "dynamodb:PutItem", table), None);
        assert!(allowed_by(&roles, "Fn", "SNS:Publish", "arn:aws:sns:us-east-1:123456789012:t").is_some());
        assert!(allowed_by(&roles, "Fn", "xray:PutTraceSegments", "*").is_some());
    }

    #[test]
    fn globals_tracing_and_a_disabled_one() {
        let text = |tracing: &str| {
            format!(
                "Globals:\n  Function:\n    Tracing: Active\nResources:\n  A:\n    Type: AWS::Serverless::Function\n  \
                 B:\n    Type: AWS::Serverless::Function\n    Properties:\n      Tracing: {tracing}\n"
            )
        };
        let roles = Roles::from_template(&text("Disabled")).unwrap();
        assert!(allowed_by(&roles, "A", "xray:PutTraceSegments", "*").is_some());
        assert_eq!(allowed_by(&roles, "B", "xray:PutTraceSegments", "*"), None);
    }

    #[test]
    fn a_template_role_holds_its_policies_and_nothing_from_sam() {
        let roles = with_resources(
            r#"
  R:
    Type: AWS::IAM::Role
    Properties:
      RoleName: my-role
      ManagedPolicyArns: [arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole, !Ref P]
      Policies:
        - PolicyName: read
          PolicyDocument:
            Statement: [{ Effect: Allow, Action: dynamodb:GetItem, Resource: !GetAtt Table.Arn }]
  P:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Statement: [{ Effect: Allow, Action: sqs:SendMessage, Resource: !GetAtt Queue.Arn }]
  Extra:
    Type: AWS::IAM::Policy
    Properties:
      Roles: [!Ref R]
      PolicyDocument:
        Statement: [{ Effect: Deny, Action: dynamodb:GetItem, Resource: "*" }]
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Role: !GetAtt R.Arn
      Events:
        S:
          Type: DynamoDB
          Properties: { Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST }
"#,
        )
        .unwrap();
        let role = roles.role("Fn").unwrap();
        assert_eq!(role.role_name, "my-role");
        let labels: Vec<&str> = role.policies().collect();
        assert_eq!(
            labels,
            [
                "R.Policies[0] read",
                "R.ManagedPolicyArns[0] AWSLambdaBasicExecutionRole",
                "P (AWS::IAM::ManagedPolicy)",
                "Extra (AWS::IAM::Policy)"
            ]
        );
        assert!(allowed_by(&roles, "Fn", "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:Queue").is_some());
        // The attached Deny wins over the role's own Allow.
        assert!(matches!(role.evaluate("dynamodb:GetItem", TABLE), Decision::ExplicitDeny { .. }));
        // SAM adds nothing to a role it did not generate: no stream read.
        assert_eq!(allowed_by(&roles, "Fn", "dynamodb:GetRecords", &format!("{TABLE}/stream/local")), None);
    }

    #[test]
    fn refuses_what_it_cannot_know_by_name() {
        let refusal = |function: &str| format!("{:#}", with_resources(function).unwrap_err());
        let outside = refusal(
            "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Role: arn:aws:iam::123456789012:role/elsewhere\n",
        );
        assert!(
            outside.contains("Fn's role") && outside.contains("arn:aws:iam::123456789012:role/elsewhere"),
            "{outside}"
        );
        let template = refusal(
            "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Policies: [S3CrudPolicy: { BucketName: b }]\n",
        );
        assert!(template.contains("Policies[0]") && template.contains("S3CrudPolicy"), "{template}");
        let aws = refusal(
            "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Policies: [AmazonS3FullAccess]\n",
        );
        assert!(aws.contains("AmazonS3FullAccess"), "{aws}");
        let condition = refusal(
            "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Policies:\n        - Statement:\n            \
             - { Effect: Allow, Action: s3:GetObject, Resource: '*', Condition: { Bool: { aws:SecureTransport: 'true' } } }\n",
        );
        assert!(condition.contains("Policies[0] (inline)") && condition.contains("Condition"), "{condition}");
        let boundary = refusal(
            "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      PermissionsBoundary: arn:aws:iam::123456789012:policy/b\n",
        );
        assert!(boundary.contains("PermissionsBoundary"), "{boundary}");
        let mq = refusal(
            "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        B: { Type: MQ, Properties: { Broker: b } }\n",
        );
        assert!(mq.contains("event B") && mq.contains("MQ"), "{mq}");
        let both = refusal(
            "  R:\n    Type: AWS::IAM::Role\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Role: !GetAtt R.Arn\n      Policies: [AWSLambdaBasicExecutionRole]\n",
        );
        assert!(both.contains("Role and Policies"), "{both}");
    }

    #[test]
    fn unexercised_grants_come_from_the_functions_metadata() {
        let roles = with_resources(
            "  Fn:\n    Type: AWS::Serverless::Function\n    Metadata:\n      UnexercisedGrants:\n        \
             dynamodb:DeleteItem: only the admin console deletes\n",
        )
        .unwrap();
        let role = roles.role("Fn").unwrap();
        assert_eq!(role.unexercised_reasons["dynamodb:DeleteItem"], "only the admin console deletes");
        assert!(
            with_resources("  Fn:\n    Type: AWS::Serverless::Function\n    Metadata: { UnexercisedGrants: [a] }\n")
                .is_err()
        );
    }
}
