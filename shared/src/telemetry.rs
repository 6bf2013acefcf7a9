//! Structured JSON logs for CloudWatch: one object per line, level from `RUST_LOG`.
//!
//! Call [`init`] first thing in `main`. Field names are documented in the README (`request_id`,
//! `user_id`, `route`, `status`, ...). Nothing secret is ever a field: passwords, tokens and keys
//! are wrapped in `secrecy` types or not logged at all.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Ignore the error of a second init (tests may call it more than once).
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
