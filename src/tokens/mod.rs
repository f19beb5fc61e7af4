//! Tokens latch issues to apps (SPEC §4): short-lived ES256 access tokens signed with keys
//! shared by every instance through the store ([`keys`]), and opaque refresh tokens rotated
//! on every use, in families that catch the reuse of a stolen token ([`refresh`]).
//!
//! Store layout (every record has a TTL; nothing here lives forever):
//!
//! | key | value |
//! |---|---|
//! | `signing_key:<period_ms>:<slot>` | JSON [`keys::KeyRecord`]: kid, validity, public JWK, private key sealed with the server secret |
//! | `signing_keys` | set of the `signing_key:*` keys (the JWKS index) |
//! | `refresh_family:<family id>` | JSON family record: session, user, current token hash (and the token itself, sealed), previous hash, rotation time, end |
//! | `refresh_token:<sha256 hex>` | the family id the token belongs to (only hashes are keys) |
//! | `session_refresh:<session id>` | set of the family ids a session owns |
//! | `refresh_lock:<family id>` | per-family rotation lock (`put_new`, 5 s TTL) |
pub mod access;
pub mod keys;
pub mod refresh;
