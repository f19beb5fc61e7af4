//! The one integration-test binary: every extra binary costs a link.
mod support;

mod access_and_oauth2;
mod admin_cli;
mod bound_tokens;
mod browser;
mod callback_url;
mod cli;
mod compose;
mod connections;
mod container;
mod flow_refusals;
mod limits;
mod linking_and_verify;
mod nextauth;
mod observability;
mod oidc_provider;
mod presets;
mod provider_tokens;
mod redis_sessions;
mod revocation;
mod routes;
mod signin_dev;
mod spa_example;
mod store_contract;
mod tokens;
