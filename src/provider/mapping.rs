//! Profile mapping for plain OAuth 2.0 providers: dotted JSON paths from the userinfo answer
//! to the profile fields. Missing or mis-typed fields are errors the flow can name.
use super::profile::Profile;
use crate::config::types::ProfileMapping;
use serde_json::Value;

/// The value at a dotted path (`picture.data.url`); array indices are allowed (`emails.0`).
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A string field; numbers are accepted and written in decimal (GitHub's ids are numbers).
fn text(value: &Value, path: &str) -> Result<Option<String>, String> {
    match lookup(value, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!(
            "field {path:?} is {}, expected a string",
            kind(other)
        )),
    }
}

fn flag(value: &Value, path: &str) -> Result<bool, String> {
    match lookup(value, path) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(format!(
            "field {path:?} is {}, expected a boolean",
            kind(other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Applies the mapping. The id must be present; everything else is optional.
pub fn profile(userinfo: &Value, mapping: &ProfileMapping) -> Result<Profile, String> {
    if !userinfo.is_object() {
        return Err(format!(
            "userinfo answer is {}, expected an object",
            kind(userinfo)
        ));
    }
    let subject = text(userinfo, &mapping.id)?.ok_or_else(|| {
        format!(
            "userinfo answer has no {:?} field (the profile id)",
            mapping.id
        )
    })?;
    let field = |path: &Option<String>| match path {
        Some(p) => text(userinfo, p),
        None => Ok(None),
    };
    let email = field(&mapping.email)?;
    let email_verified = match &mapping.email_verified {
        Some(p) => flag(userinfo, p)?,
        None => false,
    };
    Ok(Profile {
        subject,
        email_verified: email_verified && email.is_some(),
        email,
        name: field(&mapping.name)?,
        image: field(&mapping.image)?,
        sid: None,
        groups: Vec::new(),
    })
}

/// Is a provider's profile image URL fit to keep (and show on latch's pages and hand to
/// apps)? Only `https:`, or `http:` on a loopback host (a provider under test), with a host,
/// no credentials and at most 2048 bytes; `javascript:`, `data:`, plain http and the like are
/// dropped at sign-in.
pub fn acceptable_image(url: &str) -> bool {
    if url.len() > 2048 {
        return false;
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let scheme_ok = match parsed.scheme() {
        "https" => parsed.host().is_some(),
        "http" => super::http::is_loopback(&parsed),
        _ => false,
    };
    scheme_ok && parsed.username().is_empty() && parsed.password().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_https_images_are_kept() {
        for good in [
            "https://cdn.example/a.png",
            "https://lh3.googleusercontent.com/a/x=s96-c",
            "http://127.0.0.1:4444/avatar.png",
            "http://localhost/a.png",
        ] {
            assert!(acceptable_image(good), "{good}");
        }
        for bad in [
            "http://cdn.example/a.png",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "//cdn.example/a.png",
            "/avatar.png",
            "ftp://cdn.example/a.png",
            "https://user:pw@cdn.example/a.png",
            "",
        ] {
            assert!(!acceptable_image(bad), "{bad}");
        }
        let long = format!("https://cdn.example/{}", "a".repeat(2048));
        assert!(!acceptable_image(&long));
    }

    fn mapping() -> ProfileMapping {
        ProfileMapping {
            id: "data.user.id".into(),
            email: Some("data.user.contact.email".into()),
            email_verified: Some("data.user.contact.verified".into()),
            name: Some("data.user.name".into()),
            image: Some("data.user.avatars.0".into()),
        }
    }

    #[test]
    fn dotted_paths_and_numeric_ids() {
        let info = json!({"data": {"user": {"id": 42, "name": "Kim", "contact": {"email": "k@x.test", "verified": "true"}, "avatars": ["https://x.test/a.png"]}}});
        let p = profile(&info, &mapping()).unwrap();
        assert_eq!(p.subject, "42");
        assert_eq!(p.email.as_deref(), Some("k@x.test"));
        assert!(p.email_verified);
        assert_eq!(p.image.as_deref(), Some("https://x.test/a.png"));
    }

    #[test]
    fn missing_id_and_wrong_types_are_named() {
        let err = profile(&json!({"data": {}}), &mapping()).unwrap_err();
        assert!(err.contains("data.user.id"), "{err}");
        let err = profile(
            &json!({"data": {"user": {"id": "1", "name": {"first": "x"}}}}),
            &mapping(),
        )
        .unwrap_err();
        assert!(
            err.contains("data.user.name") && err.contains("an object"),
            "{err}"
        );
        let err = profile(&json!([1]), &mapping()).unwrap_err();
        assert!(err.contains("an array"), "{err}");
    }
}
