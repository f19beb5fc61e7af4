//! Shared test fixtures.
#![allow(dead_code)]
pub mod browser;
pub mod dev;
pub mod fakes;
pub mod flows;
pub mod hostile;
pub mod latch;
pub mod latch_bin;
pub mod nginx;
pub mod oidc_provider;
pub mod redis;
pub mod refusal;
pub mod stub;
