//! Shared test fixtures.
pub mod redis;
