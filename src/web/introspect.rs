//! `POST /introspect` (RFC 7662) for latch access tokens: an API that would rather ask than
//! verify offline learns whether a token is good *now* — signature, `exp`, an audience latch
//! mints, and a live session behind `sid` — so a sign-out takes effect there at once.
//!
//! Callers authenticate with HTTP Basic as one of `[tokens] introspection_clients`; with
//! none configured the route refuses every caller.
use super::{parse_form, AppState, WebError};
use crate::error::{AuthError, ErrorCode};
use crate::tokens::access::Accepted;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE,
};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

/// Claims copied into an active answer (RFC 7662 §2.2 names, plus latch's own).
const ANSWERED_CLAIMS: [&str; 10] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "jti",
    "sid",
    "email",
    "email_verified",
    "name",
];

pub async fn introspect(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let client = match authenticated_client(&app.config.tokens.introspection_clients, &headers) {
        Ok(client) => client,
        Err(why) => {
            let mut response =
                WebError::json(AuthError::new(ErrorCode::InvalidClient, why)).into_response();
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"latch introspection\""),
            );
            return response;
        }
    };
    let form = parse_form(&body);
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return WebError::json(AuthError::new(
            ErrorCode::InvalidRequest,
            "no `token` form field",
        ))
        .into_response();
    };
    let verdict = match app
        .tokens
        .verify(token, Accepted::Mintable, &app.sessions)
        .await
    {
        Ok(verdict) => verdict,
        Err(e) => return WebError::json(e.into()).into_response(),
    };
    let answer = match verdict {
        Ok(claims) => {
            let mut out = serde_json::Map::new();
            out.insert("active".into(), Value::Bool(true));
            out.insert("token_type".into(), json!("Bearer"));
            for name in ANSWERED_CLAIMS {
                if !claims[name].is_null() {
                    out.insert(name.into(), claims[name].clone());
                }
            }
            Value::Object(out)
        }
        Err(why) => {
            tracing::info!(client = %client, reason = %why, "introspection: token inactive");
            json!({"active": false})
        }
    };
    let mut response = Json(answer).into_response();
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The client id of valid HTTP Basic credentials, or why there are none (for the log).
fn authenticated_client(
    clients: &[(String, crate::config::Secret)],
    headers: &HeaderMap,
) -> Result<String, String> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or("no Authorization header (HTTP Basic client credentials)")?
        .to_str()
        .map_err(|_| "Authorization header is not ASCII")?;
    let (scheme, encoded) = value
        .split_once(' ')
        .ok_or("Authorization header is not `Basic <credentials>`")?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("Authorization scheme is not Basic".into());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "Basic credentials are not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "Basic credentials are not UTF-8")?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or("Basic credentials have no ':'")?;
    // RFC 6749 §2.3.1: both halves are form-urlencoded.
    let id = form_decode(id);
    let secret = form_decode(secret);
    let Some((_, expected)) = clients.iter().find(|(known, _)| *known == id) else {
        return Err(format!(
            "no introspection client {:?}",
            id.chars().take(64).collect::<String>()
        ));
    };
    if bool::from(secret.as_bytes().ct_eq(expected.expose())) {
        Ok(id)
    } else {
        Err(format!("wrong secret for introspection client {id:?}"))
    }
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(user_pass);
        h.insert(AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        h
    }

    #[test]
    fn only_a_configured_client_with_its_secret_passes() {
        let clients = vec![("api".to_string(), Secret::new(b"s3cret+/x".to_vec()))];
        // The secret is form-urlencoded in the header (RFC 6749 §2.3.1).
        assert_eq!(
            authenticated_client(&clients, &basic("api:s3cret%2B%2Fx")).unwrap(),
            "api"
        );
        assert!(authenticated_client(&clients, &basic("api:s3cret+/y")).is_err());
        assert!(authenticated_client(&clients, &basic("api:s3cret")).is_err());
        assert!(authenticated_client(&clients, &basic("other:s3cret%2B%2Fx")).is_err());
        assert!(authenticated_client(&clients, &basic("api")).is_err());
        assert!(authenticated_client(&clients, &HeaderMap::new()).is_err());
        assert!(authenticated_client(&[], &basic("api:s3cret%2B%2Fx")).is_err());
        let mut bearer = HeaderMap::new();
        bearer.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(authenticated_client(&clients, &bearer).is_err());
    }
}
