//! IAM as AWS enforces it: each function runs as its own role from template.yaml, and a call
//! its role does not allow is refused the way AWS refuses it.
//!
//! The whole suite runs with enforcement on, so every other test already proves that the
//! template grants what the code calls (`cargo local test` fails on any denial). These tests
//! show the other side: a template with one grant removed makes the request fail as it would in
//! AWS — the API's usual 500 JSON, nothing internal in it — and the stack's report names the
//! missing action.
//!
//! Exclusive (see `.config/nextest.toml`): while a test's template is in force, every request
//! of that function is judged by it.

use reqwest::{Method, StatusCode};
use shop_tests::*;

/// template.yaml with `action` taken out of `function`'s inline statements.
fn template_without(function: &str, action: &str) -> String {
    let path = stack().workspace.join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml");
    let start = text.find(&format!("\n  {function}:\n")).unwrap_or_else(|| panic!("{function} in template.yaml"));
    // The function's block ends where the next resource (two-space indent) begins.
    let mut end = text.len();
    let mut at = start + 1;
    while let Some(i) = text[at..].find("\n  ") {
        at += i + 1;
        let rest = &text[at + 2..];
        if !rest.starts_with(' ') && !rest.starts_with('#') && !rest.starts_with('\n') {
            end = at - 1;
            break;
        }
    }
    let block = &text[start..end];
    let without = block.replace(&format!("{action}, "), "").replace(&format!(", {action}]"), "]");
    assert_ne!(block, without, "{function} grants {action} inline in template.yaml (`[..., {action}, ...]`)");
    format!("{}{without}{}", &text[..start], &text[end..])
}

#[tokio::test]
async fn a_missing_grant_fails_the_request_like_aws_and_the_report_names_it() {
    let admin = admin_token().await;
    let product = new_product_in_buckets(&admin, "iam-test", 1000, 8, 4).await;
    let id = product["id"].as_str().unwrap().to_owned();
    let before = call(Method::GET, &format!("/products/{id}"), None, None).await;
    assert_eq!(before.status, StatusCode::OK, "{:?}", before.body);

    let restored = judge_with_template(&template_without("ProductsFunction", "dynamodb:BatchGetItem")).await;
    // A bucketed product's stock is read across its buckets with BatchGetItem.
    let denied = call(Method::GET, &format!("/products/{id}"), None, None).await;
    assert_eq!(denied.status, StatusCode::INTERNAL_SERVER_ERROR, "{:?}", denied.body);
    assert_eq!(denied.error_code(), "internal");
    let shown = denied.body.to_string();
    for internal in ["AccessDenied", "arn:aws", "dynamodb", "BatchGetItem", "assumed-role"] {
        assert!(!shown.contains(internal), "the client sees `{internal}`: {shown}");
    }

    let report = iam_report().await;
    let products = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == "ProductsFunction")
        .expect("ProductsFunction in the report")
        .clone();
    let denial = products["denied_under_test_template"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["action"] == "dynamodb:BatchGetItem")
        .unwrap_or_else(|| panic!("the report names the missing action: {products}"))
        .clone();
    let message = denial["message"].as_str().unwrap();
    assert!(
        message.starts_with("User: arn:aws:sts::123456789012:assumed-role/")
            && message.contains(
                "/ProductsFunction is not authorized to perform: dynamodb:BatchGetItem on resource: arn:aws:dynamodb:"
            )
            && message.ends_with("because no identity-based policy allows the dynamodb:BatchGetItem action"),
        "AWS's message: {message}"
    );

    drop(restored);
    let after = call(Method::GET, &format!("/products/{id}"), None, None).await;
    assert_eq!(after.status, StatusCode::OK, "template.yaml's grants are back: {:?}", after.body);
    assert_eq!(after.body["stock"]["available"], 8);
}

#[tokio::test]
async fn a_template_the_evaluator_cannot_judge_is_refused_and_changes_nothing() {
    let path = stack().workspace.join("template.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let conditioned = text.replacen(
        "Action: [dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem]",
        "Action: [dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem]\n              Condition: { Bool: { aws:SecureTransport: true } }",
        1,
    );
    assert_ne!(text, conditioned);
    let url = format!("{}/_local/iam/template", stack().invoke);
    let r = client().put(url).body(conditioned).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Condition"), "names the element: {body}");
}
