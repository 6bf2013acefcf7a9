//! Where the outbox relay sends events: a port, so the relay's rules (what to send, what to
//! report as failed) are tested without a broker, and only the relay binary links the Kafka
//! client that implements it (`shop-kafka`).

use std::future::Future;

/// One event, ready to send: the partitioning key (the aggregate id, so one order's events stay
/// in order), the event's JSON exactly as the outbox holds it, and the ids of the request that
/// caused it (the event's `trace`), which the sink sends as record headers (see [`crate::trace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing<'a> {
    pub key: &'a str,
    pub payload: &'a [u8],
    pub trace: Option<&'a crate::trace::Trace>,
}

/// Why a send failed. Every failure is worth retrying: the record stays in the stream (or the
/// pending index) until it is delivered or handed to the on-failure destination.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

pub trait EventSink: Send + Sync {
    /// Sends one event and resolves once the broker acknowledged it (or it failed). Sends are
    /// started in the order their futures are first polled: started together, events of one key
    /// keep their order.
    fn send(&self, event: Outgoing<'_>) -> impl Future<Output = Result<(), SinkError>> + Send;
}
