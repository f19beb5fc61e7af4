//! Google: OpenID Connect at `https://accounts.google.com`.
super::entry_only!(
    Google,
    super::Entry::oidc("google", "Google", Some("https://accounts.google.com"))
);
