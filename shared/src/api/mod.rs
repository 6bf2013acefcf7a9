//! One module per Lambda function: the request handling each `functions/<name>/src/main.rs` hands
//! over to. Handlers are generic over the store ports, so the rules here hold no AWS types.

pub mod account;
pub mod cart;
pub mod login;
pub mod mock_gateway;
pub mod mock_gateway_deliveries;
pub mod notifier;
pub mod orders;
pub mod outbox_relay;
pub mod payment_webhook;
pub mod payments;
pub mod place_order;
pub mod products;
pub mod refunds;
pub mod signup;
pub mod sweeper;
