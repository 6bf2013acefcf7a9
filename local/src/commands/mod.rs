//! The subcommands of `cargo local`, one module each, every one with a `run`: what a person types.
//!
//! Commands sit on top: they start a [`crate::stack`] and talk to it over HTTP like any client;
//! nothing below imports them.

pub mod bench;
pub mod browser_test;
pub mod invoke;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod seed;
pub mod soak;
pub mod test;
pub mod up;
