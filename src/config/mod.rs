//! Configuration: load `providers.toml`, expand `${ENV}`, validate.
