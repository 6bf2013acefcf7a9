//! Child processes that cannot outlive us, and die only when we say so.
//!
//! Everything the stack starts (DynamoDB Local's JVM, the brokers, every function instance) is
//! built with [`command`] and started with [`spawn`], which arranges three things in the child
//! between `fork` and `exec`:
//!
//! * `PR_SET_PDEATHSIG(SIGKILL)`: the kernel kills the child when we die, however we die
//!   (panic, `kill -9`, a closed terminal). Graceful shutdown is nice; this is the guarantee.
//! * its own process group: Ctrl-C in a terminal signals the whole foreground group; children
//!   would die before us and look like crashes. We catch Ctrl-C and stop them ourselves.
//! * a check that the parent is still the one that forked (else the death signal was missed).
//!
//! The death signal has a catch: it fires when the *thread* that forked exits, not the process
//! (prctl(2)). Tokio's threads come and go — `block_in_place` turns a worker into a blocking-pool
//! thread, and blocking-pool threads retire after 10 s idle — so a child forked from whatever
//! thread happened to run the spawn was killed, with every sibling forked there, the moment that
//! thread retired: instances died mid-invocation with `SIGKILL` and nobody had asked. So every
//! fork happens on one thread of our own that lives as long as the process ([`spawn`] hands the
//! command to it and waits for the child), and the death signal means what it says.
//!
//! [`signal`] then sends SIGSTOP/SIGCONT (the Lambda-like freeze) and SIGKILL to the group.

use std::ffi::OsStr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

pub use libc::{SIGCONT, SIGKILL, SIGSTOP};

/// A `Command` whose child ignores the terminal's Ctrl-C; start it with [`spawn`], which also
/// makes it die with us.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.kill_on_drop(true).stdin(Stdio::null());
    cmd
}

/// Starts `cmd` on the spawner thread (see the module docs): the child dies with this process,
/// and with nothing else.
pub fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let runtime = tokio::runtime::Handle::current();
    let (reply, answer) = std::sync::mpsc::channel();
    spawner().send(SpawnJob { cmd, runtime, reply }).map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("spawner thread is gone"))?
}

struct SpawnJob {
    cmd: Command,
    /// The caller's runtime: the child's pipes and its exit are watched there.
    runtime: tokio::runtime::Handle,
    reply: std::sync::mpsc::Sender<std::io::Result<Child>>,
}

/// The one thread that forks. It never returns: its receiver's sender lives in a static.
fn spawner() -> &'static std::sync::mpsc::Sender<SpawnJob> {
    static SPAWNER: std::sync::OnceLock<std::sync::mpsc::Sender<SpawnJob>> = std::sync::OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("local-spawner".into())
            .spawn(move || {
                for mut job in rx {
                    let _entered = job.runtime.enter();
                    let _ = job.reply.send(job.cmd.spawn());
                }
            })
            .expect("starting the spawner thread");
        tx
    })
}

/// Signals the child's whole process group (it leads one, see [`command`]).
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid just returns ESRCH.
    unsafe {
        libc::kill(-(pid as libc::pid_t), sig);
    }
}

/// Stops a child for good: a stopped process must be continued to act on most signals, but
/// SIGKILL works regardless; SIGCONT first keeps `ps` output sane while it dies.
pub fn kill(child: &Child) {
    if let Some(pid) = child.id() {
        signal(pid, SIGCONT);
        signal(pid, SIGKILL);
    }
}

/// Where a child's output lines go.
#[derive(Clone)]
pub enum Output {
    /// Our stderr, each line prefixed.
    Stderr { prefix: String },
    /// A log file, each line prefixed (the emulators' own logs).
    File { path: std::path::PathBuf, prefix: String },
    /// A function's log file, shared by all its instances: one JSON object per line, see
    /// [`function_log_line`]. With `echo`, each line also goes to our stderr as it came, prefixed
    /// with the instance (`cargo local up --verbose`, `invoke`).
    FunctionLog { path: std::path::PathBuf, instance: String, echo: bool },
}

/// The key [`function_log_line`] adds to every line: which instance (process) wrote it,
/// `<LogicalId>#<n>`, as CloudWatch's `@logStream` tells instances apart.
pub const INSTANCE_KEY: &str = "instance";

/// One line of a function's output as its log file holds it: a JSON object, as the function's
/// logs and EMF documents are, gets `"instance"` as its first key (spliced in, the rest kept byte
/// for byte); anything else (a panic message, a library's plain text) is wrapped as
/// `{"instance", "timestamp" (now), "level": "RAW", "fields": {"message": <the line>}}`, so that
/// every line of the file parses and sorts by time.
pub fn function_log_line(instance: &str, line: &str) -> String {
    let trimmed = line.trim();
    let instance_json = serde_json::Value::from(instance);
    if let Some(rest) = trimmed.strip_prefix('{')
        && trimmed.ends_with('}')
        && serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok()
    {
        let separator = if rest.trim_start().starts_with('}') { "" } else { "," };
        return format!("{{\"{INSTANCE_KEY}\":{instance_json}{separator}{rest}");
    }
    let now =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    serde_json::json!({ INSTANCE_KEY: instance, "timestamp": now, "level": "RAW", "fields": { "message": line } })
        .to_string()
}

/// Forwards stdout and stderr of `child` line by line.
pub fn forward_output(child: &mut Child, output: Output) {
    forward_output_tapped(child, output, None);
}

/// Sees every line of a child's stdout before it is forwarded (the stack reads the functions'
/// metrics out of it); the line goes on either way.
pub type Tap = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// [`forward_output`], with each stdout line shown to `tap` first.
pub fn forward_output_tapped(child: &mut Child, output: Output, tap: Option<Tap>) {
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, output.clone(), tap));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, output, None));
    }
}

async fn pump(stream: impl AsyncRead + Unpin, output: Output, tap: Option<Tap>) {
    use std::io::Write;
    let mut lines = BufReader::new(stream).lines();
    let mut file = match &output {
        Output::File { path, .. } | Output::FunctionLog { path, .. } => {
            std::fs::OpenOptions::new().create(true).append(true).open(path).ok()
        }
        Output::Stderr { .. } => None,
    };
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(tap) = &tap {
            tap(&line);
        }
        match (&output, file.as_mut()) {
            // O_APPEND + one write per line: instances sharing a file never interleave mid-line.
            (Output::File { prefix, .. }, Some(f)) => {
                let _ = f.write_all(format!("{prefix} {line}\n").as_bytes());
            }
            (Output::FunctionLog { instance, echo, .. }, Some(f)) => {
                let _ = f.write_all(format!("{}\n", function_log_line(instance, &line)).as_bytes());
                if *echo {
                    eprintln!("[{instance}] {line}");
                }
            }
            (Output::Stderr { prefix }, _) | (Output::File { prefix, .. }, None) => eprintln!("{prefix} {line}"),
            (Output::FunctionLog { instance, .. }, None) => eprintln!("[{instance}] {line}"),
        }
    }
}

/// A port that was free a moment ago, for programs that must be told a port (the JVM, the broker,
/// moto).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits for a test runner; on Ctrl-C or SIGTERM gives it a moment to finish, then kills it.
pub async fn wait_interruptible(mut child: tokio::process::Child) -> anyhow::Result<std::process::ExitStatus> {
    tokio::select! {
        status = child.wait() => Ok(status?),
        _ = shutdown_signal() => {
            // The test runner got the terminal's Ctrl-C too; give it a moment to finish.
            if tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            anyhow::bail!("interrupted")
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, so both stop the stack cleanly.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_function_log_line_is_one_json_object_with_its_instance_first() {
        let json = r#"{"timestamp":"2026-12-07T12:00:00.1Z","level":"INFO","fields":{"message":"hi"}}"#;
        let line = super::function_log_line("PlaceOrderFunction#2", json);
        assert_eq!(
            line,
            r#"{"instance":"PlaceOrderFunction#2","timestamp":"2026-12-07T12:00:00.1Z","level":"INFO","fields":{"message":"hi"}}"#
        );
        assert_eq!(super::function_log_line("F#1", "{}"), r#"{"instance":"F#1"}"#);
        for text in ["thread 'main' panicked at src/main.rs:3:5:", "{not json}", ""] {
            let v: serde_json::Value = serde_json::from_str(&super::function_log_line("F#1", text)).unwrap();
            assert_eq!(v["instance"], "F#1");
            assert_eq!(v["level"], "RAW");
            assert_eq!(v["fields"]["message"], text);
            assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
        }
    }

    /// The regression behind the module docs: a child asked for by a thread that then exits
    /// (a retiring blocking-pool thread, a worker after `block_in_place`) lives on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_child_outlives_the_thread_that_asked_for_it() {
        let runtime = tokio::runtime::Handle::current();
        let mut child = std::thread::spawn(move || {
            let _entered = runtime.enter();
            let mut cmd = super::command("sleep");
            cmd.arg("30");
            super::spawn(cmd).unwrap()
        })
        .join()
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(child.try_wait().unwrap().is_none(), "the child died with the thread that forked it");
        super::kill(&child);
        assert!(!child.wait().await.unwrap().success());
    }
}
