//! Control socket: the daemon's server side and the CLI's client side.

pub mod client;
pub mod protocol;
pub mod server;
