//! One spinner per set-up step, so a first run that installs emulators is never a silent wait.
//!
//! `Step::start("installing X")` shows a spinner; `done()` replaces it with `✓ installing X (2.1s)`.
//! When stderr is not a terminal (CI logs), indicatif draws nothing, so the start and end lines are
//! printed plainly instead.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Step {
    bar: ProgressBar,
    message: String,
    started: Instant,
}

impl Step {
    pub fn start(message: impl Into<String>) -> Self {
        let message = message.into();
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
        bar.set_message(format!("{message}…"));
        bar.enable_steady_tick(Duration::from_millis(100));
        if !std::io::stderr().is_terminal() {
            eprintln!("… {message}");
        }
        Self { bar, message, started: Instant::now() }
    }

    /// Shows a detail (e.g. the crate cargo is compiling) next to the step's message.
    pub fn detail(&self, detail: &str) {
        self.bar.set_message(format!("{}… {detail}", self.message));
    }

    pub fn done(self) {
        let message = self.message.clone();
        self.done_with(message);
    }

    pub fn done_with(self, message: impl AsRef<str>) {
        self.bar.finish_and_clear();
        eprintln!("✓ {} ({:.1}s)", message.as_ref(), self.started.elapsed().as_secs_f64());
    }

    pub fn fail(self) {
        self.bar.finish_and_clear();
        eprintln!("✗ {} ({:.1}s)", self.message, self.started.elapsed().as_secs_f64());
    }
}

/// Runs `f`, finishing `step` as done or failed according to its result.
pub async fn run<T>(step: Step, f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match f.await {
        Ok(v) => {
            step.done();
            Ok(v)
        }
        Err(e) => {
            step.fail();
            Err(e)
        }
    }
}
