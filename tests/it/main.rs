//! The one integration-test binary.
mod store_contract;
mod support;
