//! IAM's endpoints on the Invoke API.
//!
//! * `GET /_local/iam/report`: the least-privilege report so far, as JSON (see [`super::report`]);
//! * `PUT /_local/iam/template` (body: a whole template, YAML): judge from now on with *its*
//!   roles — how a test shows what a missing grant does without editing template.yaml (read it,
//!   remove one grant, put it). Denials under a put template are reported apart and never fail
//!   the run; `DELETE /_local/iam/template` goes back to template.yaml's roles. A template the
//!   evaluator cannot judge is refused with 400 and the reason, and changes nothing.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::Roles;
use super::authorizer::Authorizer;

pub fn control_router(iam: &Authorizer) -> Router {
    Router::new()
        .route("/_local/iam/report", get(report))
        .route("/_local/iam/template", axum::routing::put(put_template).delete(restore_template))
        .with_state(iam.clone())
}

async fn report(State(iam): State<Authorizer>) -> Response {
    axum::Json(iam.report().to_json()).into_response()
}

async fn put_template(State(iam): State<Authorizer>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match Roles::from_template(&text) {
        Ok(roles) => {
            iam.replace_roles(roles);
            axum::Json(json!({ "roles": "from the template put", "functions": iam.functions() })).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": format!("{e:#}") }))).into_response(),
    }
}

async fn restore_template(State(iam): State<Authorizer>) -> Response {
    iam.restore_roles();
    axum::Json(json!({ "roles": "template.yaml" })).into_response()
}
