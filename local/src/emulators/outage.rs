//! A loopback TCP relay with an off switch: how tests take Kafka or SES "down" without losing
//! the emulator's state.
//!
//! Functions (and the MSK trigger) reach the broker and the SES emulator through one of these.
//! While it is *up*, bytes flow both ways untouched. Switched *down*, every open connection is
//! cut and new ones are closed on accept, which is what an unreachable service looks like to a
//! client: librdkafka keeps reconnecting until its message timeout, the AWS SDK gets a dispatch
//! failure. Switched up again, clients reconnect and find the broker's topics, offsets and the
//! sent mail exactly as they were — a restart of the in-memory emulators would have wiped them.
//!
//! A relay that must read what it carries (Kafka's, which answers SASL and judges requests, see
//! [`crate::emulators::kafka_front`]) passes its own per-connection loop to [`Outage::serving`]:
//! the switch, and what switching does to open and new connections, stay here, in one place.
//!
//! Served on the Invoke API by [`crate::stack::messaging`]: `POST /_local/kafka/stop|start`,
//! `POST /_local/ses/stop|start`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone)]
pub struct Outage {
    /// Where clients connect.
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Outage {
    /// Relays a random loopback port to `upstream`; up at start.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        Self::on(TcpListener::bind(("127.0.0.1", 0)).await.context("binding a relay port")?, upstream)
    }

    /// Relays an already bound listener (its port was needed before the upstream started).
    pub fn on(listener: TcpListener, upstream: SocketAddr) -> Result<Self> {
        Self::serving(listener, upstream, |mut client, mut server| async move {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        })
    }

    /// Like [`Outage::on`], but each connection's bytes are moved by `serve(client, upstream)`
    /// instead of copied untouched; it returns when either side is done. Switched down, `serve`
    /// is dropped mid-flight and both sockets with it, exactly as the plain copy is.
    pub fn serving<F, Fut>(listener: TcpListener, upstream: SocketAddr, serve: F) -> Result<Self>
    where
        F: Fn(TcpStream, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        let (up, _) = watch::channel(true);
        let switch = up.clone();
        let serve = Arc::new(serve);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*switch.borrow() {
                    continue; // dropped: the client sees the connection closed
                }
                let mut down = switch.subscribe();
                let serve = Arc::clone(&serve);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    tokio::select! {
                        _ = serve(client, server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Ok(Self { addr, up, task: Arc::new(Mutex::new(Some(task))) })
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    pub fn stop(&self) {
        self.set_up(false);
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}
