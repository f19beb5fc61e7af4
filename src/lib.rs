//! latch: a self-hosted login broker.
pub mod config;
pub mod store;
