//! Provider logos: small hand-drawn SVG marks compiled in and served as `data:` URIs, so the
//! sign-in page needs no extra requests and the CSP only has to allow `img-src data:`.
//!
//! The marks are drawn inside `<img>`, where `currentColor` and the page's colour scheme do not
//! reach them, so monochrome marks use a grey or a coloured backing that reads on light and dark.
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// `(id, svg)`; the id is the provider id used in `providers.toml`.
const LOGOS: &[(&str, &str)] = &[
    ("apple", include_str!("apple.svg")),
    ("auth0", include_str!("auth0.svg")),
    ("discord", include_str!("discord.svg")),
    ("facebook", include_str!("facebook.svg")),
    ("github", include_str!("github.svg")),
    ("gitlab", include_str!("gitlab.svg")),
    ("google", include_str!("google.svg")),
    ("keycloak", include_str!("keycloak.svg")),
    ("linkedin", include_str!("linkedin.svg")),
    ("microsoft-entra-id", include_str!("microsoft-entra-id.svg")),
    ("okta", include_str!("okta.svg")),
    ("slack", include_str!("slack.svg")),
    ("twitch", include_str!("twitch.svg")),
];

/// The logo for a provider id as a `data:image/svg+xml;base64,...` URI, or `None` if there is
/// no logo for that id.
pub fn data_uri(id: &str) -> Option<String> {
    LOGOS
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, svg)| format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that every tag is closed in order; enough to catch a truncated or mangled file.
    fn tags_balance(svg: &str) -> Result<(), String> {
        let mut open: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = rest[start..]
                .find('>')
                .ok_or_else(|| "unterminated tag".to_string())?
                + start;
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                match open.pop() {
                    Some(top) if top == name.trim() => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or_default();
                open.push(name);
            }
            rest = &rest[end + 1..];
        }
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {open:?}"))
        }
    }

    #[test]
    fn every_logo_is_a_small_safe_svg() {
        for (id, svg) in LOGOS {
            let svg = svg.trim();
            assert!(svg.starts_with("<svg "), "{id}: must start with <svg");
            assert!(svg.ends_with("</svg>"), "{id}: must end with </svg>");
            assert!(
                svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#),
                "{id}: an SVG image needs the SVG namespace"
            );
            assert!(svg.contains("viewBox=\""), "{id}: needs a viewBox");
            let lower = svg.to_ascii_lowercase();
            for banned in [
                "<script",
                "style=",
                "<style",
                "href=",
                "url(",
                "<foreignobject",
                " on",
            ] {
                assert!(!lower.contains(banned), "{id}: contains {banned:?}");
            }
            assert!(svg.len() < 2048, "{id}: {} bytes", svg.len());
            if let Err(e) = tags_balance(svg) {
                panic!("{id}: {e}");
            }
        }
    }

    #[test]
    fn ids_are_unique() {
        for (i, (id, _)) in LOGOS.iter().enumerate() {
            assert!(
                LOGOS[i + 1..].iter().all(|(other, _)| other != id),
                "{id} listed twice"
            );
        }
    }

    #[test]
    fn known_ids_give_a_data_uri() {
        let uri = data_uri("github").expect("github has a logo");
        let b64 = uri
            .strip_prefix("data:image/svg+xml;base64,")
            .expect("data URI prefix");
        let svg = STANDARD.decode(b64).expect("valid base64");
        assert!(svg.starts_with(b"<svg "));
        for (id, _) in LOGOS {
            assert!(data_uri(id).is_some(), "{id}");
        }
    }

    #[test]
    fn unknown_ids_give_none() {
        for id in ["", "dev", "GitHub", "github.svg", "../mod", "unknown"] {
            assert_eq!(data_uri(id), None, "{id:?}");
        }
    }
}
