//! The one integration-test binary: every extra binary costs a link.
mod support;

mod access_and_oauth2;
mod callback_url;
mod cli;
mod flow_refusals;
mod linking_and_verify;
mod oidc_provider;
mod presets;
mod provider_tokens;
mod redis_sessions;
mod routes;
mod signin_dev;
mod store_contract;
mod tokens;
