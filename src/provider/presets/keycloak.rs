//! Keycloak: OpenID Connect at one realm of your server (`issuer` required).
super::entry_only!(
    Keycloak,
    super::Entry::issuer_required("keycloak", "Keycloak", "https://sso.example.com/realms/main")
);
