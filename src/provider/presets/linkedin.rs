//! LinkedIn: OpenID Connect; its token endpoint wants the secret in the form body.
super::entry_only!(
    LinkedIn,
    super::Entry {
        token_auth: crate::config::types::TokenAuth::ClientSecretPost,
        ..super::Entry::oidc("linkedin", "LinkedIn", Some("https://www.linkedin.com/oauth"))
    }
);
