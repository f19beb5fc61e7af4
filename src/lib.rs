//! latch: a self-hosted login broker. Apps send users to `/signin`; latch runs the OAuth 2.0 /
//! OpenID Connect flow with a provider, maps the identity to a local user and keeps a
//! first-party session.
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod flow;
pub mod identity;
pub mod jws;
pub mod provider;
pub mod server;
pub mod session;
pub mod store;
pub mod web;
