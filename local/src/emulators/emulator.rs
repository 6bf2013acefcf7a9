//! An emulator process (the Kafka broker, the SES emulator): spawned so it cannot outlive us
//! (see [`crate::process`]), its output in `target/local-logs/<name>.log`, and ready once its port
//! accepts connections.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::process::{self, Output};

pub struct Emulator {
    /// Where it listens (loopback).
    pub addr: SocketAddr,
    child: Child,
}

impl Emulator {
    /// Spawns `cmd` (built with [`process::command`], started with [`process::spawn`]) and waits until `port` accepts.
    pub async fn spawn(name: &'static str, mut cmd: Command, port: u16, log: &Path) -> Result<Self> {
        let _ = std::fs::remove_file(log);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = process::spawn(cmd).with_context(|| format!("starting {name}"))?;
        process::forward_output(&mut child, Output::File { path: log.to_owned(), prefix: format!("[{name}]") });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited during start-up ({status}); see {}", log.display());
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(Self { addr, child });
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("{name} did not listen on {addr} within 60 s; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        process::kill(&self.child);
        let _ = self.child.wait().await;
    }
}
