//! Domain events and the transactional outbox (see [`event`]).

pub mod event;
