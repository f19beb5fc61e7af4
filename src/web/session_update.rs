//! `POST /session`: what `next-auth/react`'s `useSession().update(data)` sends, a JSON body
//! `{"csrfToken": "...", "data": ...}`. Auth.js checks the CSRF token and passes `data` to
//! the app's `session` callback; latch has no such callback and owns the session record, so
//! `data` is read past and the answer is `GET /session`'s, extending the session as a read
//! does (per `update_age`, never over a record that has ended).
use super::api;
use super::extract::{Csrf, OptionalSession};
use super::{parse_form, AppState, WebError};
use crate::error::{AuthError, ErrorCode};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{HeaderMap, CONTENT_TYPE};
use axum::response::Response;
use serde::Deserialize;

/// `POST /session`: CSRF-checked (403 `MissingCSRF`), then `GET /session`'s answer.
pub async fn update(
    State(app): State<AppState>,
    csrf: Csrf,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let submitted = submitted_csrf_token(&headers, &body).map_err(WebError::json)?;
    csrf.check(&app, submitted.as_deref(), true)?;
    let signed_in = OptionalSession::load(&app, &headers).await?;
    Ok(api::session(State(app), signed_in).await)
}

/// The body next-auth's client sends. Other fields, `data` among them, are only scanned to
/// their end, never kept.
#[derive(Deserialize)]
struct UpdateBody {
    #[serde(rename = "csrfToken")]
    csrf_token: Option<String>,
}

/// The `csrfToken` of a JSON body (what the client sends), or of a form (Auth.js's server
/// takes both); a body of another type, or JSON that is not an object, is `InvalidRequest`.
fn submitted_csrf_token(headers: &HeaderMap, body: &[u8]) -> Result<Option<String>, AuthError> {
    let refused = |reason: String| AuthError::new(ErrorCode::InvalidRequest, reason);
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some("application/json") => {
            // A struct would also accept a JSON array (serde reads its fields in order).
            if body.trim_ascii_start().first() != Some(&b'{') {
                return Err(refused(
                    "POST /session: the JSON body is not an object".into(),
                ));
            }
            let parsed: UpdateBody = serde_json::from_slice(body)
                .map_err(|e| refused(format!("POST /session: malformed JSON body: {e}")))?;
            Ok(parsed.csrf_token)
        }
        Some("application/x-www-form-urlencoded") => Ok(parse_form(body).remove("csrfToken")),
        other => Err(refused(format!(
            "POST /session takes application/json (next-auth's update()) or a form, not {}",
            other.map_or("a body without Content-Type".into(), |t| {
                crate::error::printable(t, 100)
            })
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn typed(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(t) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
        }
        headers
    }

    fn token(content_type: Option<&str>, body: &str) -> Result<Option<String>, ErrorCode> {
        submitted_csrf_token(&typed(content_type), body.as_bytes()).map_err(|e| e.code)
    }

    #[test]
    fn the_token_comes_from_the_json_the_client_sends_or_from_a_form() {
        let json = Some("application/json");
        assert_eq!(
            token(
                json,
                r#"{"csrfToken":"abc","data":{"user":{"email":"x@y"}}}"#
            ),
            Ok(Some("abc".into()))
        );
        assert_eq!(
            token(
                Some("Application/JSON; charset=utf-8"),
                r#" {"csrfToken":"abc"}"#
            ),
            Ok(Some("abc".into()))
        );
        // next-auth v4's update() without data, and a failed getCsrfToken() (v5 omits it).
        assert_eq!(
            token(json, r#"{"csrfToken":"abc"}"#),
            Ok(Some("abc".into()))
        );
        assert_eq!(token(json, r#"{"data":1}"#), Ok(None));
        assert_eq!(token(json, r#"{"csrfToken":null}"#), Ok(None));
        // `data` is skipped without recursing, so no nesting within the body limit overflows.
        let deep = format!("{{\"data\":{}{}}}", "[".repeat(30_000), "]".repeat(30_000));
        assert_eq!(token(json, &deep), Ok(None));
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(token(form, "csrfToken=abc&data=x"), Ok(Some("abc".into())));
        assert_eq!(token(form, ""), Ok(None));
    }

    #[test]
    fn anything_else_is_an_invalid_request_not_a_panic() {
        let json = Some("application/json");
        for body in [
            "",
            "{",
            "[\"abc\"]",
            "\"abc\"",
            "null",
            r#"{"csrfToken":1}"#,
        ] {
            assert_eq!(token(json, body), Err(ErrorCode::InvalidRequest), "{body}");
        }
        for content_type in [None, Some("text/plain"), Some("multipart/form-data")] {
            assert_eq!(
                token(content_type, r#"{"csrfToken":"abc"}"#),
                Err(ErrorCode::InvalidRequest),
                "{content_type:?}"
            );
        }
    }
}
