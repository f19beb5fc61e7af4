//! GitLab: OpenID Connect at gitlab.com, or a self-managed instance through `issuer`.
super::entry_only!(
    GitLab,
    super::Entry::oidc("gitlab", "GitLab", Some("https://gitlab.com"))
);
