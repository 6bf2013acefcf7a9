//! SAM policy templates: `- DynamoDBCrudPolicy: { TableName: !Ref ShopTable }` in a function's
//! `Policies`.
//!
//! SAM expands a template into an inline policy: its `Definition` with each `{"Ref": <Parameter>}`
//! replaced by the value given (`samtranslator/policy_template_processor/template.py`,
//! `to_statement`: every parameter must have a value, extra values are ignored, only `Ref`s to
//! the template's own parameters are replaced), and CloudFormation then resolves the rest
//! (`Fn::Sub` with `${AWS::Partition}`, `${AWS::Region}`, `${AWS::AccountId}`).
//!
//! `policy_templates.json` beside this file holds the templates the local stack implements,
//! copied unchanged (`Parameters` and `Definition`) from SAM's
//! `samtranslator/policy_templates_data/policy_templates.json` (aws/serverless-application-model,
//! commit 7000d0a3b0e5e0d9fca014ce135850718aad1290, templates version 0.0.1). A template not in
//! it is refused by name: add it there, copied the same way.

use std::sync::LazyLock;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value as Json};

use crate::template::Resolved;

static TEMPLATES: LazyLock<Map<String, Json>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("policy_templates.json")).expect("policy_templates.json is a JSON object")
});

/// The policy document template `name` expands to with `values` (already resolved from the
/// template), its remaining intrinsics resolved as the template's are.
pub(super) fn expand(resolved: &Resolved, name: &str, values: &Json) -> Result<Json> {
    let Some(template) = TEMPLATES.get(name) else {
        bail!(
            "{name} is not a SAM policy template the local stack implements ({}): copy it from SAM's \
             policy_templates.json into emulators/iam/policy_templates.json, or write its statements",
            TEMPLATES.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    let parameters = template["Parameters"].as_object().context("a template's Parameters")?;
    let Some(values) = values.as_object() else { bail!("{name} takes a map of parameter values, not {values}") };
    let missing: Vec<&String> = parameters.keys().filter(|p| !values.contains_key(*p)).collect();
    if !missing.is_empty() {
        bail!("{name}: parameters without a value: {missing:?}");
    }
    if let Some((p, v)) = values.iter().find(|(p, v)| parameters.contains_key(*p) && !v.is_string()) {
        bail!("{name}: {p} is {v}, not a string (an intrinsic the local stack cannot resolve?)");
    }
    let definition = replace_refs(&template["Definition"], parameters, values);
    Ok(resolved.resolve_json(&definition))
}

/// `{"Ref": P}` → the value of `P`, for the template's parameters only.
fn replace_refs(node: &Json, parameters: &Map<String, Json>, values: &Map<String, Json>) -> Json {
    match node {
        Json::Object(m) => {
            if let (1, Some(Json::String(p))) = (m.len(), m.get("Ref"))
                && parameters.contains_key(p)
            {
                return values[p].clone();
            }
            Json::Object(m.iter().map(|(k, v)| (k.clone(), replace_refs(v, parameters, values))).collect())
        }
        Json::Array(items) => Json::Array(items.iter().map(|i| replace_refs(i, parameters, values)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn resolved() -> Resolved {
        Resolved::parse("Resources: {}").unwrap()
    }

    #[test]
    fn the_required_templates_are_implemented() {
        for name in [
            "DynamoDBCrudPolicy",
            "DynamoDBReadPolicy",
            "DynamoDBWritePolicy",
            "SESCrudPolicy",
            "SQSSendMessagePolicy",
            "SQSPollerPolicy",
        ] {
            assert!(TEMPLATES.contains_key(name), "{name}");
        }
    }

    #[test]
    fn dynamodb_crud_covers_the_table_and_its_indexes() {
        let doc = expand(&resolved(), "DynamoDBCrudPolicy", &json!({ "TableName": "ShopTable" })).unwrap();
        let statement = &doc["Statement"][0];
        assert_eq!(
            statement["Resource"],
            json!([
                "arn:aws:dynamodb:us-east-1:123456789012:table/ShopTable",
                "arn:aws:dynamodb:us-east-1:123456789012:table/ShopTable/index/*"
            ])
        );
        assert_eq!(statement["Action"].as_array().unwrap().len(), 10);
        assert_eq!(statement["Effect"], "Allow");
    }

    #[test]
    fn ses_and_sqs_templates_name_their_resource() {
        let ses =
            expand(&resolved(), "SESCrudPolicy", &json!({ "IdentityName": "no-reply@shop.example.com" })).unwrap();
        assert_eq!(
            ses["Statement"][0]["Resource"],
            "arn:aws:ses:us-east-1:123456789012:identity/no-reply@shop.example.com"
        );
        let send = expand(&resolved(), "SQSSendMessagePolicy", &json!({ "QueueName": "Q" })).unwrap();
        assert_eq!(send["Statement"][0]["Action"], json!(["sqs:SendMessage*"]));
        assert_eq!(send["Statement"][0]["Resource"], "arn:aws:sqs:us-east-1:123456789012:Q");
    }

    #[test]
    fn refuses_unknown_templates_and_missing_parameters_by_name() {
        let e = expand(&resolved(), "S3CrudPolicy", &json!({ "BucketName": "b" })).unwrap_err().to_string();
        assert!(e.contains("S3CrudPolicy") && e.contains("DynamoDBCrudPolicy"), "{e}");
        let e = expand(&resolved(), "DynamoDBReadPolicy", &json!({ "Table": "T" })).unwrap_err().to_string();
        assert!(e.contains("TableName"), "{e}");
        // Extra values are ignored, as SAM ignores them.
        assert!(expand(&resolved(), "CloudWatchPutMetricPolicy", &json!({ "Extra": 1 })).is_ok());
    }
}
