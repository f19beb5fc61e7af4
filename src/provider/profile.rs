//! What a sign-in yields whatever the provider: who the user is, the provider's tokens, and
//! what the callback brought besides the code.
use std::collections::HashMap;

/// Who the provider says the user is.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub image: Option<String>,
    /// The provider's session id: the `sid` claim of the ID token (OpenID Front- and
    /// Back-Channel Logout), so a back-channel logout can name the sessions it ends. Only
    /// from the ID token, and only a printable one of at most 255 bytes.
    pub sid: Option<String>,
    /// The groups the provider says the user is in (`provider::groups`), for this sign-in's
    /// session; empty when it says none.
    pub groups: Vec<String>,
}

/// Tokens from a provider's token endpoint.
pub struct TokenSet {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// What the callback brought besides the code and state (Apple's one-time `user` field):
/// its other parameters, for the preset's hooks.
pub struct CallbackExtras<'a> {
    pub params: &'a HashMap<String, String>,
}
