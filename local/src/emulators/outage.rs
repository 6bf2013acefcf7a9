//! A loopback TCP relay with an off switch: how tests take Kafka or SES "down" without losing
//! the emulator's state.
//!
//! Functions (and the MSK trigger) reach the broker and the SES emulator through one of these.
//! While it is *up*, bytes flow both ways untouched. Switched *down*, every open connection is
//! cut, and new ones are either **refused** ([`Outage::start`], SES's: the relay stops listening,
//! which is what an endpoint nobody answers looks like — the AWS SDK gets a connect error, so the
//! notifier knows an e-mail did not go out) or **closed on accept**
//! ([`Outage::serving`], Kafka's: librdkafka keeps reconnecting until its message timeout either
//! way). A request cut mid-flight is what it is in the real world: the client cannot know whether
//! the other side took it. Switched up again, clients reconnect and find the broker's topics,
//! offsets and the sent mail exactly as they were — a restart of the in-memory emulators would
//! have wiped them.
//!
//! A refusing relay listens on a port *below* the system's ephemeral range (Linux's
//! `ip_local_port_range`): while it is down nothing listens there, and an outgoing connection
//! could otherwise be given that port as its own and keep the relay from listening again.
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
    /// Refuses new connections while down (else closes them on accept).
    refuse: bool,
    /// Whether the relay is listening (always, for one that closes on accept).
    listening: watch::Sender<bool>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Outage {
    /// Relays a loopback port to `upstream`, refusing connections while down; up at start.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        Self::run(reserved_listener().await?, upstream, copy, true)
    }

    /// Relays an already bound listener (its port was needed before the upstream started),
    /// closing new connections on accept while down; each connection's bytes are moved by
    /// `serve(client, upstream)`; it returns when either side is done. Switched down, `serve`
    /// is dropped mid-flight and both sockets with it, exactly as the plain copy is.
    pub fn serving<F, Fut>(listener: TcpListener, upstream: SocketAddr, serve: F) -> Result<Self>
    where
        F: Fn(TcpStream, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::run(listener, upstream, serve, false)
    }

    fn run<F, Fut>(listener: TcpListener, upstream: SocketAddr, serve: F, refuse: bool) -> Result<Self>
    where
        F: Fn(TcpStream, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        let (up, _) = watch::channel(true);
        let (listening, _) = watch::channel(true);
        let switch = up.clone();
        let listens = listening.clone();
        let serve = Arc::new(serve);
        let task = tokio::spawn(async move {
            let mut held = Some(listener);
            loop {
                let listener = match held.take() {
                    Some(l) => l,
                    None => {
                        // Down and refusing: nothing listens until it is up again.
                        if switch.subscribe().wait_for(|up| *up).await.is_err() {
                            return;
                        }
                        let l = listen_again(addr).await;
                        listens.send_replace(true);
                        l
                    }
                };
                let mut down = switch.subscribe();
                let accepted = tokio::select! {
                    accepted = listener.accept() => Some(accepted),
                    _ = down.wait_for(|up| !*up), if refuse => None,
                };
                let Some(accepted) = accepted else {
                    drop(listener); // new connections are refused from here
                    listens.send_replace(false);
                    continue;
                };
                held = Some(listener);
                let client = match accepted {
                    Ok((client, _)) => client,
                    Err(e) => {
                        // Out of file descriptors, a connection aborted before it was accepted:
                        // the relay keeps serving.
                        tracing::warn!("relay {addr}: accepting a connection failed ({e})");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                if !*switch.borrow() {
                    continue; // dropped: the client sees the connection closed
                }
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
        Ok(Self { addr, up, refuse, listening, task: Arc::new(Mutex::new(Some(task))) })
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    /// [`Outage::set_up`], returning once a refusing relay has stopped or started listening, so
    /// that the next connection meets the new state.
    pub async fn switch(&self, up: bool) {
        self.set_up(up);
        if self.refuse {
            let mut listening = self.listening.subscribe();
            let followed =
                tokio::time::timeout(std::time::Duration::from_secs(5), listening.wait_for(|l| *l == up)).await;
            if !matches!(followed, Ok(Ok(_))) {
                tracing::warn!(
                    "relay {}: still {} after 5 s",
                    self.addr,
                    if up { "not listening" } else { "listening" }
                );
            }
        }
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

async fn copy(mut client: TcpStream, mut server: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// The lowest port of the system's ephemeral range (Linux; elsewhere IANA's 49152).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(49152)
}

/// A loopback listener on a free port below the ephemeral range (see the module docs); any free
/// port if none of a few tries is.
async fn reserved_listener() -> Result<TcpListener> {
    let low = ephemeral_low();
    let from = low.saturating_sub(8000).max(10000);
    if from < low {
        for _ in 0..64 {
            let port = rand::random_range(from..low);
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
                return Ok(l);
            }
        }
    }
    TcpListener::bind(("127.0.0.1", 0)).await.context("binding a relay port")
}

/// Listens on `addr` again after an outage, waiting for the port if something holds it.
async fn listen_again(addr: SocketAddr) -> TcpListener {
    let mut complained = false;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                if !complained {
                    tracing::warn!("relay {addr} cannot listen again yet ({e}); trying until it can");
                    complained = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}
