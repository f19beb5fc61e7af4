//! latch: a self-hosted login broker. Apps send users to `/signin`; latch runs the OAuth 2.0 /
//! OpenID Connect flow with a provider, maps the identity to a local user and keeps a
//! first-party session.
pub mod admin;
pub mod audit;
pub mod backchannel;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod flow;
pub mod identity;
pub mod jws;
pub mod memory;
pub mod policy;
pub mod provider;
pub mod provider_tokens;
pub mod server;
pub mod session;
pub mod signout;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod web;

/// Installs aws-lc as the process's one TLS crypto provider (reqwest and redis use rustls
/// without choosing one). Idempotent; every HTTP client constructor calls it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
