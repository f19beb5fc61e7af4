//! Slack: OpenID Connect ("Sign in with Slack").
super::entry_only!(
    Slack,
    super::Entry::oidc("slack", "Slack", Some("https://slack.com"))
);
