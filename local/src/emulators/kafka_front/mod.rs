//! The Kafka front: what Amazon MSK's IAM access control does, in front of tansu.
//!
//! On AWS the outbox relay connects to MSK's IAM listener with SASL/OAUTHBEARER, its token a
//! `kafka-cluster:Connect` URL presigned with the function's credentials, and MSK judges the
//! connection and then every request by the function's role: `Connect` on the cluster,
//! `DescribeTopic` for metadata, `WriteData` on the topic, `WriteDataIdempotently` on the cluster
//! for an idempotent producer. A role missing one of them fails only there, after a deploy — so
//! the local stack judges the relay's Kafka traffic as it judges the functions' DynamoDB and SES
//! calls ([`crate::emulators::iam`]). tansu speaks no SASL and authorizes nothing, hence a front
//! that reads the Kafka protocol between the clients and the broker:
//!
//! - [`frame`]: the framing and the request header, the little the front reads of every request;
//! - [`api_versions`]: the broker's version list, with the SASL APIs the front answers put in;
//! - [`sasl`]: SaslHandshake and SaslAuthenticate, answered by the front: the token names the
//!   function ([`crate::emulators::iam::authorizer::Authorizer::caller`]), `Connect` is judged;
//! - [`produce`], [`metadata`], [`producer_id`]: the requests judged on a function's connection,
//!   refused with the error codes MSK answers with;
//! - [`judge`]: the actions and ARNs IAM is asked about;
//! - [`connection`]: one connection, its answers kept in request order.
//!
//! Everything else — the MSK trigger's consumer, the settle barrier, the admin client, any
//! connection that never authenticates — is relayed byte for byte and not judged: that is the
//! operator, as the stack's in-process pollers are (they are judged where they act, see
//! [`crate::emulators::msk`]).
//!
//! The front is the [`Outage`] relay of Kafka (the broker advertises the front's port, so every
//! client goes through it): switched down, it cuts connections and refuses new ones exactly as
//! the plain relay does.

pub mod api_versions;
pub mod connection;
pub mod frame;
pub mod judge;
pub mod metadata;
pub mod produce;
pub mod producer_id;
pub mod sasl;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::TcpListener;

use self::connection::Front;
use self::judge::Cluster;
use crate::emulators::iam::authorizer::Authorizer;
use crate::emulators::outage::Outage;

/// Serves `listener` in front of the broker at `broker`, judging functions with `iam`.
pub fn start(listener: TcpListener, broker: SocketAddr, iam: Authorizer) -> Result<Outage> {
    let front = Arc::new(Front { iam, cluster: Arc::new(Cluster::local()) });
    Outage::serving(listener, broker, move |client, server| connection::serve(Arc::clone(&front), client, server))
}
