//! DynamoDB Streams trigger: produces every new outbox event to Kafka, the only function that
//! does. See `shop::api::outbox_relay` and `shop_kafka`.

use shop::api::outbox_relay::{OutboxRelay, concurrency_from_env, serve};
use shop::cold_start::ColdStart;
use shop_kafka::Producer;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let sink = Producer::from_env()?;
    serve(OutboxRelay { outbox: cold.store, sink, concurrency: concurrency_from_env()? }).await
}
