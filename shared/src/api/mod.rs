//! One module per Lambda function: the request handling each `functions/<name>/src/main.rs` hands
//! over to. Handlers are generic over the store ports, so the rules here hold no AWS types.

pub mod login;
pub mod products;
pub mod signup;
