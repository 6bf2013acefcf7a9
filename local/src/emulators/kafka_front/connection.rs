//! One client connection through the front.
//!
//! Kafka answers the requests of a connection in the order they were sent, and clients count on
//! it (the Java client checks each answer's correlation id against the oldest request in flight;
//! librdkafka's idempotent producer keeps up to five in flight). The front answers some requests
//! itself and relays the rest, so it keeps that order explicitly: for each request the reader
//! decides a [`Step`] and queues what the client is owed — an answer of its own, or the broker's
//! next answer with an [`Edit`] to apply — *before* relaying the request; the writer pays what is
//! owed, in order, reading the broker's answers as they come (the broker keeps its own order).
//!
//! A connection starts anonymous: the stack's own clients (the MSK trigger's consumer, the settle
//! barrier, the admin client creating topics) never authenticate and are the operator, relayed
//! unjudged. A successful SaslAuthenticate makes it a function's (see [`super::sasl`]), and from
//! then on Produce, Metadata and InitProducerId are judged by that function's role; everything
//! else is relayed byte for byte.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::frame::{self, Frame, RequestKey, decode_request, encode_response};
use super::judge::{Cluster, Judge};
use super::sasl::{self, ILLEGAL_SASL_STATE, Principal};
use super::{api_versions, metadata, produce, producer_id};
use crate::emulators::iam::authorizer::Authorizer;

/// What every connection shares.
pub struct Front {
    pub iam: Authorizer,
    pub cluster: Arc<Cluster>,
}

/// What the front does with one request.
#[derive(Debug)]
pub enum Step {
    /// Send `frame` to the broker; its answer goes back through `answer` (`None`: the broker
    /// sends none, as for a Produce with `acks=0`).
    Relay { frame: Frame, answer: Option<Edit> },
    /// Answer the client without the broker.
    Answer(Frame),
    /// Answer, then close the connection (a failed authentication).
    AnswerAndClose(Frame),
    /// Close the connection.
    Close,
}

/// What the front does to the broker's answer.
#[derive(Debug)]
pub enum Edit {
    AsIs,
    /// Of an ApiVersions request of this version: the front's versions.
    ApiVersions(i16),
    Metadata(metadata::Described),
    Produce(produce::Refused),
}

impl Edit {
    fn apply(self, frame: Frame) -> Frame {
        let edited = match &self {
            Edit::AsIs => return frame,
            Edit::ApiVersions(version) => api_versions::rewrite(&frame, *version),
            Edit::Metadata(described) => described.apply(&frame),
            Edit::Produce(refused) => refused.apply(&frame),
        };
        edited.unwrap_or_else(|e| {
            tracing::warn!("kafka front: relaying the broker's answer unedited ({self:?}): {e:#}");
            frame
        })
    }
}

/// Who the connection is.
enum Identity {
    /// Never authenticated: the operator.
    Anonymous,
    /// Authenticated with keys the stack did not issue: the operator.
    Operator,
    Function(Judge),
}

/// A connection's state: who it is, and where it is in SASL.
pub struct Connection {
    front: Arc<Front>,
    identity: Identity,
    /// A SaslHandshake was answered and its SaslAuthenticate not yet received.
    handshaken: bool,
}

impl Connection {
    pub fn new(front: Arc<Front>) -> Self {
        Self { front, identity: Identity::Anonymous, handshaken: false }
    }

    /// Decides what to do with one request of the client.
    pub fn step(&mut self, frame: Frame) -> Step {
        let Some(key) = RequestKey::peek(&frame.body()) else { return Step::Close };
        let api = key.api();
        if let (Identity::Function(judge), Some(api @ (ApiKey::Produce | ApiKey::Metadata | ApiKey::InitProducerId))) =
            (&self.identity, api)
        {
            let judged = match api {
                ApiKey::Produce => produce::judge(judge, key, frame),
                ApiKey::Metadata => metadata::judge(judge, key, frame),
                _ => producer_id::judge(judge, key, frame),
            };
            return judged.unwrap_or_else(|e| {
                tracing::warn!(
                    "kafka front: cannot judge {api:?} v{} of {}: {e:#}; closing its connection",
                    key.api_version,
                    judge.function()
                );
                Step::Close
            });
        }
        match api {
            Some(ApiKey::ApiVersions) => Step::Relay { frame, answer: Some(Edit::ApiVersions(key.api_version)) },
            Some(ApiKey::SaslHandshake) => self.handshake(key, &frame),
            Some(ApiKey::SaslAuthenticate) => self.authenticate(key, &frame),
            Some(ApiKey::Produce) if produce::acks(&frame, key) == Some(0) => Step::Relay { frame, answer: None },
            _ => Step::Relay { frame, answer: Some(Edit::AsIs) },
        }
    }

    fn handshake(&mut self, key: RequestKey, frame: &Frame) -> Step {
        let Ok((_, request)) = decode_request::<SaslHandshakeRequest>(frame, key) else { return Step::Close };
        if key.api_version < 1 {
            tracing::warn!("kafka front: SaslHandshake v0 (raw SASL frames) is not spoken; closing the connection");
            return Step::Close;
        }
        let response = sasl::handshake(&request);
        self.handshaken = response.error_code == 0;
        answer(key, &response, false)
    }

    fn authenticate(&mut self, key: RequestKey, frame: &Frame) -> Step {
        let Ok((_, request)) = decode_request::<SaslAuthenticateRequest>(frame, key) else { return Step::Close };
        if !std::mem::take(&mut self.handshaken) {
            return answer(key, &sasl::failed(ILLEGAL_SASL_STATE, "SaslAuthenticate without SaslHandshake"), true);
        }
        let front = &self.front;
        let outcome = sasl::authenticate(&front.iam, &front.cluster, &request.auth_bytes, OffsetDateTime::now_utc());
        let response = sasl::authenticated(&outcome);
        match outcome {
            Ok(session) => {
                self.identity = match session.principal {
                    Principal::Function(function) => {
                        tracing::info!(
                            "kafka: {function} connected with SASL/OAUTHBEARER (MSK IAM, kafka-cluster:Connect allowed); \
                             its requests are judged by its role"
                        );
                        Identity::Function(Judge::new(front.iam.clone(), Arc::clone(&front.cluster), function))
                    }
                    Principal::Operator => Identity::Operator,
                };
                answer(key, &response, false)
            }
            Err(message) => {
                tracing::warn!("kafka: SASL authentication failed: {message}");
                answer(key, &response, true)
            }
        }
    }
}

/// The front's own answer to `key`.
fn answer<T: Encodable + HeaderVersion>(key: RequestKey, response: &T, then_close: bool) -> Step {
    match encode_response(key.correlation_id, key.api_version, response) {
        Ok(frame) if then_close => Step::AnswerAndClose(frame),
        Ok(frame) => Step::Answer(frame),
        Err(e) => {
            tracing::warn!("kafka front: cannot encode an answer: {e:#}");
            Step::Close
        }
    }
}

/// What the client is owed, in order.
enum Owed {
    Answer(Frame),
    Broker(Edit),
}

/// Serves one connection until either side closes it or the front closes it.
pub async fn serve(front: Arc<Front>, client: TcpStream, broker: TcpStream) {
    let (client_in, mut client_out) = client.into_split();
    let (broker_in, mut broker_out) = broker.into_split();
    let (owed, mut owing) = mpsc::unbounded_channel::<Owed>();
    let mut connection = Connection::new(front);

    // Dropping `owed` when this ends lets the writer pay what is owed, then close.
    let requests = async move {
        let mut client_in = BufReader::new(client_in);
        while let Ok(Some(frame)) = frame::read(&mut client_in).await {
            let (debt, relay, last) = match connection.step(frame) {
                Step::Relay { frame, answer } => (answer.map(Owed::Broker), Some(frame), false),
                Step::Answer(frame) => (Some(Owed::Answer(frame)), None, false),
                Step::AnswerAndClose(frame) => (Some(Owed::Answer(frame)), None, true),
                Step::Close => (None, None, true),
            };
            if let Some(debt) = debt
                && owed.send(debt).is_err()
            {
                break;
            }
            if let Some(frame) = relay
                && broker_out.write_all(frame.as_bytes()).await.is_err()
            {
                break;
            }
            if last {
                break;
            }
        }
    };
    let answers = async move {
        let mut broker_in = BufReader::new(broker_in);
        loop {
            let debt = tokio::select! {
                biased;
                debt = owing.recv() => match debt {
                    Some(debt) => debt,
                    None => return,
                },
                // Nothing owed and the broker speaks: it closed, or answered what needs no answer.
                _ = broker_in.fill_buf() => match frame::read(&mut broker_in).await {
                    Ok(Some(_)) => {
                        tracing::debug!("kafka front: dropped an answer the broker owed nobody");
                        continue;
                    }
                    _ => return,
                },
            };
            let frame = match debt {
                Owed::Answer(frame) => frame,
                Owed::Broker(edit) => match frame::read(&mut broker_in).await {
                    Ok(Some(frame)) => edit.apply(frame),
                    _ => return,
                },
            };
            if client_out.write_all(frame.as_bytes()).await.is_err() {
                return;
            }
        }
    };
    // The writer ends the connection: after the reader is done (and all is paid), or as soon as
    // the client or the broker is gone.
    tokio::select! {
        _ = answers => {}
        _ = async { requests.await; std::future::pending::<()>().await } => {}
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{
        ApiVersionsResponse, ProduceResponse, SaslAuthenticateResponse, SaslHandshakeResponse,
    };
    use tokio::net::TcpListener;
    use tokio::sync::Mutex;

    use super::super::frame::decode_response;
    use super::super::frame::tests::b;
    use super::super::sasl::tests::{CLUSTER, authorizer, message, token_at};
    use super::*;
    use crate::emulators::outage::Outage;

    /// A broker that records the API keys it is sent, lists Produce and Metadata in ApiVersions,
    /// and answers every Produce v7 with one partition of `allowed` written.
    async fn broker() -> (std::net::SocketAddr, Arc<Mutex<Vec<i16>>>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let (r, mut w) = socket.into_split();
                    let mut r = BufReader::new(r);
                    while let Ok(Some(frame)) = frame::read(&mut r).await {
                        let key = RequestKey::peek(&frame.body()).unwrap();
                        log.lock().await.push(key.api_key);
                        let answer = match key.api() {
                            Some(ApiKey::ApiVersions) => {
                                let api =
                                    |k: ApiKey, max| ApiVersion::default().with_api_key(k as i16).with_max_version(max);
                                let versions = ApiVersionsResponse::default()
                                    .with_api_keys(vec![api(ApiKey::Produce, 9), api(ApiKey::Metadata, 12)]);
                                encode_response(key.correlation_id, key.api_version, &versions).unwrap()
                            }
                            Some(ApiKey::Produce) => b()
                                .i32(key.correlation_id)
                                .i32(1)
                                .string(Some("allowed"))
                                .i32(1)
                                .i32(0)
                                .i16(0)
                                .i64(10)
                                .i64(-1)
                                .i64(-1)
                                .i32(0)
                                .frame(),
                            _ => continue,
                        };
                        w.write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        (addr, seen)
    }

    struct Client {
        r: BufReader<tokio::net::tcp::OwnedReadHalf>,
        w: tokio::net::tcp::OwnedWriteHalf,
        correlation: i32,
    }

    impl Client {
        async fn connect(addr: std::net::SocketAddr) -> Self {
            let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
            Self { r: BufReader::new(r), w, correlation: 0 }
        }

        /// Sends `body` under a v1 header; the answer (`None`: the connection closed).
        async fn call(&mut self, api: ApiKey, version: i16, body: &[u8]) -> Option<Frame> {
            self.correlation += 1;
            let header = b().i16(api as i16).i16(version).i32(self.correlation).string(Some("test"));
            let header = if api.request_header_version(version) >= 2 { header.no_tags() } else { header };
            self.w.write_all(header.raw(body).frame().as_bytes()).await.ok()?;
            let answer = frame::read(&mut self.r).await.ok()??;
            assert_eq!(i32::from_be_bytes(answer.body()[..4].try_into().unwrap()), self.correlation);
            Some(answer)
        }

        async fn sasl(&mut self, message: &[u8]) -> Option<SaslAuthenticateResponse> {
            let handshake = self.call(ApiKey::SaslHandshake, 1, &b().string(Some("OAUTHBEARER")).0).await?;
            assert_eq!(decode_response::<SaslHandshakeResponse>(&handshake, 1).unwrap().1.error_code, 0);
            let body = b().i32(message.len() as i32).raw(message).0;
            let answer = self.call(ApiKey::SaslAuthenticate, 1, &body).await?;
            Some(decode_response::<SaslAuthenticateResponse>(&answer, 1).unwrap().1)
        }

        async fn produce(&mut self, topic: &str) -> Option<i16> {
            let body = b().string(None).i16(-1).i32(5000).i32(1).string(Some(topic)).i32(1).i32(0).i32(-1).0;
            let answer = self.call(ApiKey::Produce, 7, &body).await?;
            Some(
                decode_response::<ProduceResponse>(&answer, 7).unwrap().1.responses[0].partition_responses[0]
                    .error_code,
            )
        }
    }

    /// `function`'s initial response, signed now.
    fn fresh_message(iam: &Authorizer, function: &str) -> Vec<u8> {
        let c = iam.credentials(function).unwrap();
        message(&token_at(&c.access_key_id, &c.session_token, OffsetDateTime::now_utc()))
    }

    async fn front() -> (Outage, Arc<Mutex<Vec<i16>>>, Authorizer) {
        let (broker, seen) = broker().await;
        let iam = authorizer();
        let front = Arc::new(Front { iam: iam.clone(), cluster: Arc::new(Cluster::new(CLUSTER)) });
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let outage =
            Outage::serving(listener, broker, move |client, server| serve(Arc::clone(&front), client, server)).unwrap();
        (outage, seen, iam)
    }

    #[tokio::test]
    async fn a_function_authenticates_and_its_produce_is_judged() {
        let (outage, seen, iam) = front().await;
        let mut relay = Client::connect(outage.addr).await;

        let versions = relay.call(ApiKey::ApiVersions, 0, &[]).await.unwrap();
        let (_, versions) = decode_response::<ApiVersionsResponse>(&versions, 0).unwrap();
        let listed: Vec<_> = versions.api_keys.iter().map(|a| (a.api_key, a.min_version, a.max_version)).collect();
        assert_eq!(listed, [(0, 3, 9), (3, 0, 12), (17, 1, 1), (36, 0, 2)]);

        // The session lasts until the token expires, 900 s after it was signed.
        let token = fresh_message(&iam, "Relay");
        let ok = relay.sasl(&token).await.unwrap();
        assert_eq!(ok.error_code, 0);
        assert!(ok.session_lifetime_ms > 890_000, "{}", ok.session_lifetime_ms);

        assert_eq!(relay.produce("allowed").await, Some(0));
        assert_eq!(relay.produce("secret").await, Some(29));
        assert_eq!(*seen.lock().await, [18, 0], "the SASL requests and the refused Produce never reach the broker");

        // An anonymous connection (the stack's own clients) is relayed unjudged.
        let mut operator = Client::connect(outage.addr).await;
        assert_eq!(operator.produce("secret").await, Some(0));

        // Switched down, open connections are cut and new ones closed, as with the plain relay.
        outage.set_up(false);
        assert!(matches!(frame::read(&mut relay.r).await, Ok(None) | Err(_)), "cut");
        assert_eq!(Client::connect(outage.addr).await.produce("allowed").await, None);
        outage.stop();
    }

    #[tokio::test]
    async fn a_refused_authentication_is_answered_58_and_closed() {
        let (outage, seen, iam) = front().await;
        let mut stranger = Client::connect(outage.addr).await;
        let refused = stranger.sasl(&fresh_message(&iam, "Stranger")).await.unwrap();
        assert_eq!(refused.error_code, 58);
        let message = refused.error_message.unwrap();
        assert!(message.contains("is not authorized to perform: kafka-cluster:Connect on resource"), "{message}");
        assert_eq!(stranger.produce("allowed").await, None, "closed after the refusal");
        assert!(seen.lock().await.is_empty());
        outage.stop();
    }
}
