//! The token endpoint: exchanging an authorization code, with the client authentication the
//! provider wants, and reading its answer (including errors sent with HTTP 200).
use super::http::{excerpt, send, Budget, CallError};
use super::profile::TokenSet;
use crate::config::types::TokenAuth;
use serde::Deserialize;
use url::Url;

/// A client at one token endpoint, with the client authentication the provider wants.
pub struct TokenClient<'a> {
    pub http: &'a reqwest::Client,
    pub endpoint: Url,
    pub client_id: &'a str,
    pub auth: TokenAuth,
    /// The secret (or Apple's minted JWT); unused with `TokenAuth::None`.
    pub client_secret: Option<String>,
    pub budget: Budget,
}

impl TokenClient<'_> {
    /// The authorization-code grant, with the PKCE verifier.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenSet, ExchangeError> {
        self.post(vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", verifier.to_string()),
        ])
        .await
    }

    /// The refresh-token grant (RFC 6749 section 6).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, ExchangeError> {
        self.post(vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.to_string()),
        ])
        .await
    }

    /// POSTs `form` with the client authentication and reads the answer.
    async fn post(&self, mut form: Vec<(&'static str, String)>) -> Result<TokenSet, ExchangeError> {
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        match (self.auth, self.client_secret.as_deref()) {
            (TokenAuth::ClientSecretBasic, Some(secret)) => {
                // RFC 6749 2.3.1: both parts form-urlencoded before base64.
                request =
                    request.basic_auth(form_encode(self.client_id), Some(form_encode(secret)));
            }
            (TokenAuth::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", self.client_id.to_string()));
                form.push(("client_secret", secret.to_string()));
            }
            _ => form.push(("client_id", self.client_id.to_string())),
        }
        let (status, body) = send("token", request.form(&form), self.budget).await?;
        parse_token_response(status, &body)
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Why the code exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The token endpoint answered with an OAuth error (RFC 6749 5.2).
    #[error("token endpoint refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    OAuth {
        error: String,
        description: Option<String>,
    },
    #[error(transparent)]
    Call(#[from] CallError),
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: ErrorField,
    #[serde(default)]
    error_description: Option<String>,
}

/// RFC 6749's `"error": "code"`, or Facebook Graph's `"error": {"type", "message"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Code(String),
    Graph {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
}

/// Reads a token endpoint answer: OAuth error JSON (even in a 200, as GitHub sends it),
/// a token set, or something unusable.
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<TokenSet, ExchangeError> {
    if let Ok(err) = serde_json::from_slice::<OAuthErrorBody>(body) {
        if status < 500 {
            let (error, description) = match err.error {
                ErrorField::Code(code) => (code, err.error_description),
                ErrorField::Graph { kind, message } => {
                    (kind.unwrap_or_else(|| "invalid_request".into()), message)
                }
            };
            return Err(ExchangeError::OAuth { error, description });
        }
    }
    if !(200..300).contains(&status) {
        return Err(CallError::Status {
            endpoint: "token",
            status,
            detail: format!(": {}", excerpt(body)),
        }
        .into());
    }
    let parsed: TokenBody = serde_json::from_slice(body).map_err(|e| CallError::Malformed {
        endpoint: "token",
        // serde's message names the field, never the value.
        reason: e.to_string(),
    })?;
    if let Some(kind) = &parsed.token_type {
        if !kind.eq_ignore_ascii_case("bearer") && !kind.eq_ignore_ascii_case("dpop") {
            return Err(CallError::Malformed {
                endpoint: "token",
                reason: format!("token_type {kind:?} is not Bearer"),
            }
            .into());
        }
    }
    let expires_in = parsed.expires_in.and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    });
    Ok(TokenSet {
        access_token: parsed.access_token,
        id_token: parsed.id_token,
        refresh_token: parsed.refresh_token,
        expires_in,
        scope: parsed.scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_are_oauth_errors_even_in_200() {
        let err = parse_token_response(200, br#"{"error":"bad_verification_code"}"#).unwrap_err();
        assert!(
            matches!(err, ExchangeError::OAuth { ref error, .. } if error == "bad_verification_code")
        );
        let err = parse_token_response(400, br#"{"error":"invalid_grant"}"#).unwrap_err();
        assert!(matches!(err, ExchangeError::OAuth { .. }));
        let err = parse_token_response(500, b"<html>oops</html>").unwrap_err();
        assert!(matches!(
            err,
            ExchangeError::Call(CallError::Status { status: 500, .. })
        ));
        let err = parse_token_response(200, b"{}").unwrap_err();
        assert!(matches!(
            err,
            ExchangeError::Call(CallError::Malformed { .. })
        ));
        let ok = parse_token_response(
            200,
            br#"{"access_token":"a","token_type":"Bearer","expires_in":"60"}"#,
        )
        .unwrap();
        assert_eq!(ok.expires_in, Some(60));
    }
}
