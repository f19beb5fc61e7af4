//! The groups a provider says the user is in (SPEC §6): from the `groups_claim` of the ID
//! token, else of userinfo. Each ends up in a header (`X-Auth-Request-Groups`, comma-joined),
//! a token and a session record, so only well-formed names are kept, and at most
//! [`MAX_GROUPS`] of them.
use serde_json::Value;

/// More than this many groups are cut (and logged): a header and a session stay small.
pub const MAX_GROUPS: usize = 100;
/// Longer names are dropped.
const MAX_NAME: usize = 255;

/// The groups under `claim` in the ID token's claims, or in userinfo when the ID token has
/// none: an array of strings (Keycloak, Okta, Entra, GitLab), or one string. Names that are
/// empty, too long, or hold a comma or control character are dropped; duplicates are dropped;
/// the provider's order is kept.
pub fn from_claims(claim: &str, id_claims: &Value, userinfo: Option<&Value>) -> Vec<String> {
    let value = id_claims
        .get(claim)
        .filter(|v| !v.is_null())
        .or_else(|| userinfo.and_then(|u| u.get(claim)).filter(|v| !v.is_null()));
    let names: Vec<&str> = match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => return Vec::new(),
    };
    let mut groups: Vec<String> = Vec::new();
    let mut dropped = 0;
    for name in names {
        if !acceptable(name) {
            dropped += 1;
        } else if !groups.iter().any(|g| g == name) {
            groups.push(name.to_string());
        }
    }
    if dropped > 0 {
        tracing::info!(
            claim,
            dropped,
            "group names dropped: empty, over 255 bytes, or with a comma or control character"
        );
    }
    if groups.len() > MAX_GROUPS {
        tracing::warn!(
            claim,
            groups = groups.len(),
            "more than {MAX_GROUPS} groups: the rest are dropped"
        );
        groups.truncate(MAX_GROUPS);
    }
    groups
}

/// A name that fits in a comma-joined header value.
pub fn acceptable(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.chars().any(|c| c == ',' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_come_from_the_id_token_then_userinfo_in_every_shape() {
        // Keycloak (paths), Okta (names), Entra (GUIDs): arrays in the ID token.
        let keycloak = json!({"groups": ["/staff", "/staff/admins"]});
        assert_eq!(
            from_claims("groups", &keycloak, None),
            ["/staff", "/staff/admins"]
        );
        let entra = json!({"groups": ["8a6f3c2e-0c52-4f5a-9d3e-1b2c3d4e5f60"]});
        assert_eq!(from_claims("groups", &entra, None).len(), 1);
        // GitLab: in userinfo only.
        let gitlab = json!({"sub": "1", "groups": ["acme", "acme/web"]});
        assert_eq!(
            from_claims("groups", &json!({}), Some(&gitlab)),
            ["acme", "acme/web"]
        );
        // The ID token speaks first; a custom claim name; a single string.
        assert_eq!(
            from_claims(
                "groups",
                &json!({"groups": ["a"]}),
                Some(&json!({"groups": ["b"]}))
            ),
            ["a"]
        );
        assert_eq!(
            from_claims("roles", &json!({"roles": "admin"}), None),
            ["admin"]
        );
        assert!(from_claims("groups", &json!({"groups": 7}), None).is_empty());
        assert!(from_claims("groups", &json!({}), None).is_empty());
    }

    #[test]
    fn only_names_that_fit_a_header_are_kept_and_at_most_a_hundred() {
        let claims =
            json!({"groups": ["ok", "", "a,b", "new\nline", "x".repeat(256), "ok", 5, "ünïcode"]});
        assert_eq!(from_claims("groups", &claims, None), ["ok", "ünïcode"]);
        let many: Vec<String> = (0..150).map(|i| format!("g{i}")).collect();
        let groups = from_claims("groups", &json!({ "groups": many }), None);
        assert_eq!(groups.len(), MAX_GROUPS);
        assert_eq!(groups[0], "g0");
    }
}
