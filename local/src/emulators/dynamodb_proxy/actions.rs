//! What IAM checks for one DynamoDB request: the actions and the resources, as AWS authorizes
//! them.
//!
//! A DynamoDB call is not always one permission. The rules, from the DynamoDB developer guide
//! ("Actions, resources, and condition keys for Amazon DynamoDB", and the transaction and
//! batch pages):
//!
//! * a single-item or table call (`GetItem`, `PutItem`, `DescribeTable`, …) is `dynamodb:<Op>` on
//!   the table's ARN;
//! * `Query` and `Scan` with an `IndexName` are authorized on the *index* ARN
//!   (`…:table/T/index/I`), which a grant on the table alone does not cover;
//! * `BatchGetItem` and `BatchWriteItem` are one action each, on every table of `RequestItems`;
//! * `TransactWriteItems` and `TransactGetItems` have no permission of their own: each item is
//!   authorized as the single-item call it stands for — `Put` as `dynamodb:PutItem`, `Update` as
//!   `UpdateItem`, `Delete` as `DeleteItem`, `ConditionCheck` as `ConditionCheckItem`, `Get` as
//!   `GetItem` — on its own table.
//!
//! The mapping is pure (operation name and body in, requests out), so it is tested here against
//! those rules without a stack.

use serde_json::Value;

use crate::emulators::iam::authorizer::Access;
use crate::template::{ACCOUNT_ID, REGION};

/// The local ARN of a table (the table's name is its logical id locally).
pub fn table_arn(table: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table}")
}

/// The requests IAM judges for operation `op` with this JSON body; an error names what the
/// body lacks (DynamoDB would refuse it as a validation error before any authorization).
pub fn accesses(op: &str, body: &[u8]) -> Result<Vec<Access>, String> {
    let request: Value = serde_json::from_slice(body).map_err(|e| format!("{op}: the body is not JSON ({e})"))?;
    let access = |action: &str, resource: String| Access { action: format!("dynamodb:{action}"), resource };
    let table = |v: &Value| -> Result<String, String> {
        v.get("TableName").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("{op}: no TableName"))
    };
    match op {
        "Query" | "Scan" => {
            let table = table(&request)?;
            let resource = match request.get("IndexName").and_then(Value::as_str) {
                Some(index) => format!("{}/index/{index}", table_arn(&table)),
                None => table_arn(&table),
            };
            Ok(vec![access(op, resource)])
        }
        "BatchGetItem" | "BatchWriteItem" => {
            let tables = request
                .get("RequestItems")
                .and_then(Value::as_object)
                .ok_or_else(|| format!("{op}: no RequestItems"))?;
            Ok(tables.keys().map(|t| access(op, table_arn(t))).collect())
        }
        "TransactWriteItems" | "TransactGetItems" => {
            let items = request
                .get("TransactItems")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("{op}: no TransactItems"))?;
            let mut out: Vec<Access> = items
                .iter()
                .map(|item| {
                    let (kind, inner) =
                        item.as_object().and_then(|o| o.iter().next()).ok_or_else(|| format!("{op}: an empty item"))?;
                    let action = match kind.as_str() {
                        "Put" => "PutItem",
                        "Update" => "UpdateItem",
                        "Delete" => "DeleteItem",
                        "ConditionCheck" => "ConditionCheckItem",
                        "Get" => "GetItem",
                        other => return Err(format!("{op}: unknown item kind {other}")),
                    };
                    Ok(access(action, table_arn(&table(inner)?)))
                })
                .collect::<Result<_, String>>()?;
            out.sort();
            out.dedup();
            Ok(out)
        }
        _ => Ok(vec![access(op, table_arn(&table(&request)?))]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(op: &str, body: &str) -> Vec<(String, String)> {
        accesses(op, body.as_bytes()).unwrap().into_iter().map(|a| (a.action, a.resource)).collect()
    }

    const T: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/ShopTable";

    #[test]
    fn a_single_item_call_is_its_own_action_on_the_table() {
        assert_eq!(of("GetItem", r#"{"TableName":"ShopTable","Key":{}}"#), vec![("dynamodb:GetItem".into(), T.into())]);
    }

    #[test]
    fn an_index_query_is_authorized_on_the_index() {
        assert_eq!(
            of("Query", r#"{"TableName":"ShopTable","IndexName":"gsi1"}"#),
            vec![("dynamodb:Query".into(), format!("{T}/index/gsi1"))]
        );
        assert_eq!(of("Query", r#"{"TableName":"ShopTable"}"#), vec![("dynamodb:Query".into(), T.into())]);
    }

    #[test]
    fn a_transaction_is_authorized_item_by_item() {
        let body = r#"{"TransactItems":[
            {"Put":{"TableName":"ShopTable","Item":{}}},
            {"Update":{"TableName":"ShopTable","Key":{}}},
            {"ConditionCheck":{"TableName":"Other","Key":{}}},
            {"Update":{"TableName":"ShopTable","Key":{}}}]}"#;
        assert_eq!(
            of("TransactWriteItems", body),
            vec![
                ("dynamodb:ConditionCheckItem".into(), "arn:aws:dynamodb:us-east-1:123456789012:table/Other".into()),
                ("dynamodb:PutItem".into(), T.into()),
                ("dynamodb:UpdateItem".into(), T.into()),
            ]
        );
        assert_eq!(
            of("TransactGetItems", r#"{"TransactItems":[{"Get":{"TableName":"ShopTable","Key":{}}}]}"#),
            vec![("dynamodb:GetItem".into(), T.into())]
        );
    }

    #[test]
    fn a_batch_is_one_action_on_every_table() {
        assert_eq!(
            of("BatchGetItem", r#"{"RequestItems":{"ShopTable":{"Keys":[]},"B":{"Keys":[]}}}"#),
            vec![
                ("dynamodb:BatchGetItem".into(), "arn:aws:dynamodb:us-east-1:123456789012:table/B".into()),
                ("dynamodb:BatchGetItem".into(), T.into()),
            ]
        );
    }

    #[test]
    fn a_body_without_its_table_is_an_error() {
        assert!(accesses("GetItem", b"{}").is_err());
        assert!(accesses("TransactWriteItems", br#"{"TransactItems":[{"Nope":{}}]}"#).is_err());
        assert!(accesses("GetItem", b"not json").is_err());
    }
}
