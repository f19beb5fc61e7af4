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
pub mod node;
pub mod oidc_provider;
pub mod redis;
pub mod refusal;
pub mod stub;

/// A loopback port that was free a moment ago (bound to `:0`, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}
