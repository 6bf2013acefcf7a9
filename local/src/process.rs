//! Child processes that cannot outlive us.
//!
//! Everything the stack starts (DynamoDB Local's JVM, every function instance) goes through
//! [`command`], which arranges three things in the child between `fork` and `exec`:
//!
//! * `PR_SET_PDEATHSIG(SIGKILL)`: the kernel kills the child when we die, however we die
//!   (panic, `kill -9`, a closed terminal). Graceful shutdown is nice; this is the guarantee.
//!   The signal fires when the *thread* that forked exits, so spawn only from tokio worker
//!   threads (async code), never from `spawn_blocking`, whose threads retire when idle.
//! * its own process group: Ctrl-C in a terminal signals the whole foreground group; children
//!   would die before us and look like crashes. We catch Ctrl-C and stop them ourselves.
//! * a check that the parent is still the one that forked (else the death signal was missed).
//!
//! [`signal`] then sends SIGSTOP/SIGCONT (the Lambda-like freeze) and SIGKILL to the group.

use std::ffi::OsStr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

pub use libc::{SIGCONT, SIGKILL, SIGSTOP};

/// A `Command` whose child dies with us and ignores the terminal's Ctrl-C.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
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
    cmd.kill_on_drop(true).stdin(Stdio::null());
    cmd
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
    /// Our stderr, each line prefixed (`up`: one interleaved, readable stream).
    Stderr { prefix: String },
    /// A log file shared by all instances of a function (`test`: keeps test output readable).
    File { path: std::path::PathBuf, prefix: String },
}

/// Forwards stdout and stderr of `child` line by line.
pub fn forward_output(child: &mut Child, output: Output) {
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, output.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, output));
    }
}

async fn pump(stream: impl AsyncRead + Unpin, output: Output) {
    use std::io::Write;
    let mut lines = BufReader::new(stream).lines();
    let mut file = match &output {
        Output::File { path, .. } => std::fs::OpenOptions::new().create(true).append(true).open(path).ok(),
        Output::Stderr { .. } => None,
    };
    while let Ok(Some(line)) = lines.next_line().await {
        match (&output, file.as_mut()) {
            // O_APPEND + one write per line: instances sharing a file never interleave mid-line.
            (Output::File { prefix, .. }, Some(f)) => {
                let _ = f.write_all(format!("{prefix} {line}\n").as_bytes());
            }
            (Output::Stderr { prefix }, _) | (Output::File { prefix, .. }, None) => eprintln!("{prefix} {line}"),
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
