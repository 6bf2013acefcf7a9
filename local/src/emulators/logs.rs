//! The functions' logs, kept as CloudWatch Logs keeps them, and searched by the id of a request.
//!
//! **Where.** Every function instance's stdout and stderr go to `<dir>/<LogicalId>.log`
//! (`target/local-logs/` unless a command says otherwise), one file per function shared by its
//! instances, emptied when the stack starts. Each line is one JSON object: what the function wrote,
//! with `"instance": "<LogicalId>#<n>"` first (CloudWatch's `@logStream`), or a plain-text line
//! wrapped (see [`crate::process::function_log_line`]). On the console they appear only with
//! `cargo local up --verbose` (and in `cargo local invoke`); the console otherwise shows one line
//! per API request and the alarms.
//!
//! **Searching.** [`search`] reads the files of the given functions and keeps the lines a
//! [`Filter`] lets through, in time order: the lines *about* a trace id (see [`Filter::mentions`]:
//! the `request_id`/`trace_id` of the line's span or fields, Lambda's own `requestId` and
//! `xrayTraceId`, an EMF document's `request_id`), of one function, since a time. One API request
//! id then finds the order's request, the relay's "event relayed", the notifier's "e-mail sent"
//! (the ids travel with the events, see `shop::trace`). Used by `cargo local logs` (files only:
//! it works on a stopped stack's files too) and `GET /_local/logs?trace=&function=&since=` on the
//! Invoke API port (the tests ask it).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::process::INSTANCE_KEY;

/// The log file of function `logical_id` in `dir`.
pub fn file_of(dir: &Path, logical_id: &str) -> PathBuf {
    dir.join(format!("{logical_id}.log"))
}

/// Which lines to keep; every part that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// An API Gateway request id, a Lambda invocation id or an X-Ray trace id (bare `1-…-…`, or
    /// `Root=1-…-…;…` as in a header).
    pub trace: Option<String>,
    /// A function's logical id (`NotifierFunction`), or an instance (`NotifierFunction#2`).
    pub function: Option<String>,
    /// Lines at or after this time.
    pub since: Option<OffsetDateTime>,
}

/// The keys that hold an id a line is about, in the line itself, its `span` and its `fields`.
const ID_KEYS: &[&str] = &["request_id", "trace_id", "requestId", "xrayTraceId"];

impl Filter {
    fn keeps(&self, entry: &Entry) -> bool {
        let function = self
            .function
            .as_deref()
            .is_none_or(|f| if f.contains('#') { entry.instance == f } else { entry.function == f });
        let since = self.since.is_none_or(|since| entry.timestamp.is_some_and(|t| t >= since));
        let trace = self.trace.as_deref().is_none_or(|id| Self::mentions(&entry.line, id));
        function && since && trace
    }

    /// Whether a log line is about `id`: one of [`ID_KEYS`] at its top level (an EMF document's
    /// `request_id`), in its `span` or in its `fields` equals it, or, for an X-Ray header value
    /// (`Root=1-…;Parent=…`), has it as its root.
    pub fn mentions(line: &Value, id: &str) -> bool {
        let id = normalize(id);
        if id.is_empty() {
            return false;
        }
        let places = [Some(line), line.get("span"), line.get("fields")];
        places.into_iter().flatten().any(|place| {
            ID_KEYS.iter().filter_map(|k| place.get(*k).and_then(Value::as_str)).any(|v| normalize(v) == id)
        })
    }
}

/// An X-Ray header value's root (`Root=1-a-b;Parent=…` → `1-a-b`); anything else as it is.
fn normalize(id: &str) -> &str {
    let id = id.trim();
    match id.split(';').find_map(|p| p.trim().strip_prefix("Root=")) {
        Some(root) => root,
        None => id,
    }
}

/// One line of a function's log.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The logical id of the function.
    pub function: String,
    /// `<LogicalId>#<n>`.
    pub instance: String,
    /// The line's own time: `timestamp` of a JSON log line, `_aws.Timestamp` of an EMF document.
    pub timestamp: Option<OffsetDateTime>,
    /// The whole line.
    pub line: Value,
}

impl Entry {
    fn parse(function: &str, text: &str) -> Option<Self> {
        let line: Value = serde_json::from_str(text).ok()?;
        let instance = line.get(INSTANCE_KEY).and_then(Value::as_str).unwrap_or(function).to_owned();
        let timestamp = line
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .or_else(|| {
                let ms = line.pointer("/_aws/Timestamp").and_then(Value::as_i64)?;
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
            });
        Some(Self { function: function.to_owned(), instance, timestamp, line })
    }

    /// One readable line, the function first: `instance  time  LEVEL  message  key=value …  [span
    /// key=value …]`. EMF documents show their metric names.
    pub fn display(&self) -> String {
        let time = self
            .timestamp
            .map(|t| {
                let t = t.to_offset(time::UtcOffset::UTC);
                format!("{:02}:{:02}:{:02}.{:03}", t.hour(), t.minute(), t.second(), t.millisecond())
            })
            .unwrap_or_else(|| "--:--:--.---".into());
        let level = self.line.get("level").and_then(Value::as_str).unwrap_or("");
        let mut text = format!("{:<28} {time}  {level:<5}", self.instance);
        if let Some(metrics) = self.line.pointer("/_aws/CloudWatchMetrics/0/Metrics").and_then(Value::as_array) {
            let names: Vec<&str> = metrics.iter().filter_map(|m| m.get("Name").and_then(Value::as_str)).collect();
            text.push_str(&format!(" EMF {}", names.join(",")));
            return text;
        }
        let fields = self.line.get("fields").and_then(Value::as_object);
        if let Some(message) = fields.and_then(|f| f.get("message")).and_then(Value::as_str) {
            text.push_str(&format!(" {message}"));
        }
        for (k, v) in fields.into_iter().flatten().filter(|(k, _)| *k != "message") {
            text.push_str(&format!("  {k}={}", shown(v)));
        }
        if let Some(span) = self.line.get("span").and_then(Value::as_object) {
            let name = span.get("name").and_then(Value::as_str).unwrap_or("span");
            let pairs: Vec<String> =
                span.iter().filter(|(k, _)| *k != "name").map(|(k, v)| format!("{k}={}", shown(v))).collect();
            text.push_str(&format!("  [{name} {}]", pairs.join(" ")));
        }
        text
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The kept lines of the `functions`' log files in `dir`, in time order (a line without a time
/// keeps its place after the line before it in its file). A missing file is a function that
/// logged nothing.
pub fn search(dir: &Path, functions: &[String], filter: &Filter) -> Result<Vec<Entry>> {
    let mut kept: Vec<(OffsetDateTime, usize, Entry)> = Vec::new();
    for function in functions {
        let path = file_of(dir, function);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut last = OffsetDateTime::UNIX_EPOCH;
        for (n, entry) in text.lines().filter_map(|l| Entry::parse(function, l)).enumerate() {
            last = entry.timestamp.unwrap_or(last);
            if filter.keeps(&entry) {
                kept.push((last, n, entry));
            }
        }
    }
    kept.sort_by(|a, b| (a.0, &a.2.function, a.1).cmp(&(b.0, &b.2.function, b.1)));
    Ok(kept.into_iter().map(|(_, _, e)| e).collect())
}

/// `--since`: a duration back from `now` (`90s`, `15m`, `2h`, `1d`) or an RFC 3339 time.
pub fn parse_since(raw: &str, now: OffsetDateTime) -> Result<OffsetDateTime> {
    let raw = raw.trim();
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t);
    }
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let Ok(n) = number.parse::<i64>() else {
        bail!("--since {raw:?}: give a duration (90s, 15m, 2h, 1d) or an RFC 3339 time (2026-12-07T12:00:00Z)")
    };
    let back = match unit {
        "s" | "" => time::Duration::seconds(n),
        "m" | "min" => time::Duration::minutes(n),
        "h" => time::Duration::hours(n),
        "d" => time::Duration::days(n),
        other => bail!("--since {raw:?}: unknown unit {other:?} (s, m, h or d)"),
    };
    Ok(now - back)
}

#[derive(Deserialize)]
struct LogsQuery {
    trace: Option<String>,
    function: Option<String>,
    since: Option<String>,
}

struct Files {
    dir: PathBuf,
    functions: Vec<String>,
}

/// `GET /_local/logs?trace=<id>&function=<LogicalId>&since=<duration or RFC 3339>`: the kept
/// lines, in time order, as `{"dir", "lines": [{"function", "instance", "line"}]}`.
pub fn router(dir: PathBuf, functions: Vec<String>) -> Router {
    Router::new().route("/_local/logs", get(logs)).with_state(std::sync::Arc::new(Files { dir, functions }))
}

async fn logs(State(files): State<std::sync::Arc<Files>>, Query(q): Query<LogsQuery>) -> Response {
    let since = match q.since.as_deref().map(|s| parse_since(s, OffsetDateTime::now_utc())).transpose() {
        Ok(since) => since,
        Err(e) => return (StatusCode::BAD_REQUEST, axum::Json(json!({ "message": format!("{e:#}") }))).into_response(),
    };
    let filter = Filter { trace: q.trace, function: q.function, since };
    let (dir, functions) = (files.dir.clone(), files.functions.clone());
    match tokio::task::spawn_blocking(move || search(&dir, &functions, &filter)).await {
        Ok(Ok(entries)) => {
            let lines: Vec<Value> = entries
                .into_iter()
                .map(|e| json!({ "function": e.function, "instance": e.instance, "line": e.line }))
                .collect();
            axum::Json(json!({ "dir": files.dir, "lines": lines })).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::function_log_line;

    const PLACE: &str = r#"{"timestamp":"2026-12-07T12:00:00.200Z","level":"INFO","fields":{"message":"order placed","order_id":"o1"},"span":{"request_id":"AbCdEfGhIjKlMg=","trace_id":"1-6751a2b3-aaa","route":"POST /orders","name":"request"}}"#;
    const OTHER: &str = r#"{"timestamp":"2026-12-07T12:00:00.100Z","level":"INFO","fields":{"message":"request done","status":200},"span":{"request_id":"Zzzzzzzzzzzzzz=","name":"request"}}"#;
    const RELAYED: &str = r#"{"timestamp":"2026-12-07T12:00:00.300Z","level":"INFO","fields":{"message":"event relayed","event_id":"e1"},"span":{"request_id":"AbCdEfGhIjKlMg=","name":"trace"}}"#;
    const SENT: &str = r#"{"timestamp":"2026-12-07T12:00:00.900Z","level":"INFO","fields":{"message":"e-mail sent","event_id":"e1"},"span":{"request_id":"AbCdEfGhIjKlMg=","trace_id":"1-6751a2b3-aaa","name":"trace"}}"#;
    const EMF: &str = r#"{"_aws":{"Timestamp":1796644800250,"CloudWatchMetrics":[{"Namespace":"Shop","Dimensions":[["Service"]],"Metrics":[{"Name":"OrdersPlaced"}]}]},"Service":"shop","OrdersPlaced":1,"request_id":"AbCdEfGhIjKlMg="}"#;

    /// A log directory as the stack writes it, in a fresh temporary directory.
    fn logs_dir(files: &[(&str, &[&str])]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("local-logs-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        for (function, lines) in files {
            let text: String = lines.iter().map(|l| function_log_line(&format!("{function}#1"), l) + "\n").collect();
            std::fs::write(file_of(&dir, function), text).unwrap();
        }
        dir
    }

    fn functions() -> Vec<String> {
        ["PlaceOrderFunction", "OutboxRelayFunction", "NotifierFunction", "Silent"].map(String::from).to_vec()
    }

    fn messages(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                let m = e.line.pointer("/fields/message").and_then(Value::as_str).unwrap_or("EMF");
                format!("{}: {m}", e.function)
            })
            .collect()
    }

    #[test]
    fn one_id_finds_the_whole_path_in_time_order_across_the_files() {
        let dir = logs_dir(&[
            ("NotifierFunction", &[SENT]),
            ("PlaceOrderFunction", &[OTHER, PLACE, EMF, "thread 'main' panicked"]),
            ("OutboxRelayFunction", &[RELAYED]),
        ]);
        let by = |trace: &str| Filter { trace: Some(trace.into()), ..Filter::default() };
        let found = search(&dir, &functions(), &by("AbCdEfGhIjKlMg=")).unwrap();
        assert_eq!(
            messages(&found),
            [
                "PlaceOrderFunction: order placed",
                "PlaceOrderFunction: EMF",
                "OutboxRelayFunction: event relayed",
                "NotifierFunction: e-mail sent"
            ]
        );
        assert_eq!(found[0].instance, "PlaceOrderFunction#1");
        // The X-Ray id, bare or as a header, finds the lines that carry it.
        let xray = search(&dir, &functions(), &by("Root=1-6751a2b3-aaa;Parent=1;Sampled=1")).unwrap();
        assert_eq!(messages(&xray), ["PlaceOrderFunction: order placed", "NotifierFunction: e-mail sent"]);
        assert!(search(&dir, &functions(), &by("nothing")).unwrap().is_empty());
        // Every line, unfiltered: the raw panic line too.
        assert_eq!(search(&dir, &functions(), &Filter::default()).unwrap().len(), 6);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn function_and_since_narrow_it_down() {
        let dir = logs_dir(&[("PlaceOrderFunction", &[OTHER, PLACE]), ("NotifierFunction", &[SENT])]);
        let only = |f: &str| Filter { function: Some(f.into()), ..Filter::default() };
        assert_eq!(
            messages(&search(&dir, &functions(), &only("NotifierFunction")).unwrap()),
            ["NotifierFunction: e-mail sent"]
        );
        assert_eq!(search(&dir, &functions(), &only("NotifierFunction#1")).unwrap().len(), 1);
        assert!(search(&dir, &functions(), &only("NotifierFunction#2")).unwrap().is_empty());
        let since = Filter { since: Some(time::macros::datetime!(2026-12-07 12:00:00.150 UTC)), ..Filter::default() };
        assert_eq!(
            messages(&search(&dir, &functions(), &since).unwrap()),
            ["PlaceOrderFunction: order placed", "NotifierFunction: e-mail sent"]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let now = time::macros::datetime!(2026-12-07 12:00:00 UTC);
        assert_eq!(parse_since("90s", now).unwrap(), time::macros::datetime!(2026-12-07 11:58:30 UTC));
        assert_eq!(parse_since("15m", now).unwrap(), time::macros::datetime!(2026-12-07 11:45:00 UTC));
        assert_eq!(parse_since("2h", now).unwrap(), time::macros::datetime!(2026-12-07 10:00:00 UTC));
        assert_eq!(parse_since("1d", now).unwrap(), time::macros::datetime!(2026-12-06 12:00:00 UTC));
        let at = parse_since("2026-12-07T11:30:00Z", now).unwrap();
        assert_eq!(at, time::macros::datetime!(2026-12-07 11:30:00 UTC));
        assert!(parse_since("soon", now).is_err());
        assert!(parse_since("5w", now).is_err());
    }

    #[test]
    fn a_line_is_shown_function_first_with_its_fields_and_span() {
        let entry = Entry::parse("PlaceOrderFunction", &function_log_line("PlaceOrderFunction#3", PLACE)).unwrap();
        assert_eq!(
            entry.display(),
            "PlaceOrderFunction#3         12:00:00.200  INFO  order placed  order_id=o1  \
             [request request_id=AbCdEfGhIjKlMg= route=POST /orders trace_id=1-6751a2b3-aaa]"
        );
        let emf = Entry::parse("PlaceOrderFunction", &function_log_line("PlaceOrderFunction#3", EMF)).unwrap();
        assert!(emf.display().ends_with("EMF OrdersPlaced"), "{}", emf.display());
    }
}
