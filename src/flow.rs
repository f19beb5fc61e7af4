//! The sign-in flow: start (state, PKCE, nonce, browser binding) and callback (every check
//! of SPEC §3, then the user and a fresh session).
use crate::crypto::{constant_time_eq, random_token, sha256_b64url, sha256_hex};
use crate::error::{AuthError, ErrorCode};
use crate::identity::{SignInError, User, Users};
use crate::provider::{CallbackExtras, Provider};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a started sign-in may take.
pub const FLOW_TTL: Duration = Duration::from_secs(600);

/// What the callback needs to finish a flow; stored under the hash of `state`.
#[derive(Serialize, Deserialize)]
struct FlowRecord {
    provider: String,
    pkce_verifier: String,
    nonce: String,
    callback_url: String,
    /// Hash of the browser-binding cookie of the browser that started the flow.
    binding: String,
}

fn flow_key(state: &str) -> String {
    format!("flow:{}", sha256_hex(state))
}

/// A started flow: where to send the browser and the binding cookie value to set.
pub struct Started {
    pub authorization_url: String,
}

/// Starts a sign-in at `provider` for the browser holding `binding`.
pub async fn start(
    store: &dyn Store,
    provider: &Provider,
    callback_url: &str,
    binding: &str,
) -> Result<Started, AuthError> {
    let state = random_token(32);
    let nonce = random_token(32);
    let pkce_verifier = random_token(32);
    let url = provider
        .authorization_url(&state, &nonce, &sha256_b64url(pkce_verifier.as_bytes()))
        .await?;
    let record = FlowRecord {
        provider: provider.id().to_string(),
        pkce_verifier,
        nonce,
        callback_url: callback_url.to_string(),
        binding: sha256_hex(binding),
    };
    let bytes = serde_json::to_vec(&record).expect("flow records serialize");
    store.put(&flow_key(&state), &bytes, Some(FLOW_TTL)).await?;
    Ok(Started {
        authorization_url: url.to_string(),
    })
}

/// The parameters a provider sends back (query string, or form body for `form_post`).
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
    /// Apple sends the user's name once, as JSON in a `user` form field.
    pub user: Option<String>,
}

/// A finished sign-in: who signed in and where they wanted to go.
pub struct Finished {
    pub user: User,
    pub callback_url: String,
}

/// Completes a sign-in. Every refusal carries its own code and a precise log reason.
pub async fn finish(
    store: &dyn Store,
    users: &Users,
    provider: &Provider,
    params: CallbackParams,
    binding: Option<&str>,
    current_user: Option<&str>,
    provider_name: impl Fn(&str) -> String,
) -> Result<Finished, AuthError> {
    let state = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| {
            AuthError::new(
                ErrorCode::InvalidState,
                "callback without a state parameter",
            )
        })?;
    // Taking the record makes the state single-use, even under concurrent replays.
    let record = store.take(&flow_key(state)).await?.ok_or_else(|| {
        AuthError::new(
            ErrorCode::InvalidState,
            "state unknown, expired (10 min) or already used",
        )
    })?;
    let record: FlowRecord = serde_json::from_slice(&record).map_err(|e| {
        AuthError::new(
            ErrorCode::InvalidState,
            format!("unreadable flow record: {e}"),
        )
    })?;
    let bound = binding.is_some_and(|b| constant_time_eq(&sha256_hex(b), &record.binding));
    if !bound {
        return Err(AuthError::new(
            ErrorCode::InvalidState,
            if binding.is_none() {
                "flow binding cookie missing: the callback arrived in a browser that did not start this sign-in (or cookies are blocked)"
            } else {
                "flow binding cookie does not match: the callback arrived in a browser that did not start this sign-in"
            },
        ));
    }
    if record.provider != provider.id() {
        return Err(AuthError::new(
            ErrorCode::InvalidState,
            format!(
                "state was issued for provider {:?}, callback is for {:?}",
                record.provider,
                provider.id()
            ),
        ));
    }

    // RFC 9207: the authorization response names its issuer; a mismatch is a mix-up attack.
    provider
        .check_callback_issuer(params.iss.as_deref())
        .await?;

    if let Some(error) = params.error.as_deref() {
        let description = params.error_description.as_deref().unwrap_or("");
        let reason = format!(
            "provider returned error={:?} {:?}",
            printable(error),
            printable(description)
        );
        let code = match error {
            "access_denied" => ErrorCode::AccessDenied,
            "unauthorized_client"
            | "invalid_client"
            | "invalid_scope"
            | "unsupported_response_type"
            | "invalid_request" => ErrorCode::Configuration,
            _ => ErrorCode::OAuthCallbackError,
        };
        return Err(AuthError::new(code, reason));
    }
    let code = params
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| AuthError::new(ErrorCode::OAuthCallbackError, "callback without a code"))?;

    let extras = CallbackExtras {
        apple_user: params.user.as_deref(),
    };
    let (profile, tokens) = provider
        .authenticate(code, &record.pkce_verifier, &record.nonce, extras)
        .await?;
    // Access rules run before anything is created for the user.
    provider.check_access(&profile, &tokens).await?;
    let signed_in = users
        .sign_in(
            provider.id(),
            &profile,
            current_user,
            provider.config.link_by_email,
        )
        .await;
    let user = match signed_in {
        Ok(user) => user,
        Err(SignInError::Store(e)) => return Err(e.into()),
        Err(SignInError::NotLinked {
            reason,
            existing_user,
        }) => {
            // Tell the user which provider their account uses.
            let names: Vec<String> = users
                .providers_of(&existing_user)
                .await?
                .iter()
                .map(|id| provider_name(id))
                .collect();
            let error = AuthError::new(ErrorCode::OAuthAccountNotLinked, reason);
            return Err(if names.is_empty() {
                error
            } else {
                error.with_hint(format!(
                    "Sign in with {}, as you did before.",
                    names.join(" or ")
                ))
            });
        }
    };
    // Kept (sealed) only for providers with `expose_tokens`.
    crate::provider_tokens::remember(store, provider, &profile.subject, &tokens).await?;
    Ok(Finished {
        user,
        callback_url: record.callback_url,
    })
}

/// Provider-supplied text, shortened and stripped of control characters for the log.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}
