//! The sign-in flow: start (state, PKCE, nonce, browser binding) and callback (every check
//! of SPEC §3, then the user and a fresh session).
use crate::crypto::{constant_time_eq, random_token, sha256_b64url, sha256_hex};
use crate::error::{printable, AuthError, ErrorCode};
use crate::identity::{SignInError, User, Users};
use crate::provider::{CallbackExtras, Provider};
use crate::session::Sessions;
use crate::store::{keys, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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
    /// Who was signed in when the flow started (user id, session store id). Linking and
    /// session rotation use this, never the cookie sent with the callback: a `form_post`
    /// callback carries no Lax cookie, and a flow planted in another browser must not reach
    /// that browser's session. Absent in records written before it existed: signed out.
    #[serde(default)]
    started_by: Option<SignedIn>,
}

/// A signed-in browser: its user and the store id of its session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub user_id: String,
    pub session_id: String,
}

fn flow_key(state: &str) -> String {
    keys::flow(&sha256_hex(state))
}

/// The set of flows (state hashes) started with one binding cookie, so the callback can
/// tell whether the cookie is still needed by another tab's flow.
fn binding_key(binding: &str) -> String {
    keys::flow_binding(&sha256_hex(binding))
}

/// Past this many pending flows of one browser, the cookie is simply kept without looking
/// at each (it expires with them). Whether the bound is `>`, `>=` or `==` shows only when
/// that many flows expired unfinished, which no test can wait for: equivalent mutants.
const MAX_PENDING_CHECKED: usize = 16;

/// A started flow: where to send the browser and the binding cookie value to set.
pub struct Started {
    pub authorization_url: String,
}

/// Starts a sign-in at `provider` for the browser holding `binding`, signed in as
/// `started_by` (if at all).
pub async fn start(
    store: &dyn Store,
    provider: &Provider,
    callback_url: &str,
    binding: &str,
    started_by: Option<SignedIn>,
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
        started_by,
    };
    let bytes = serde_json::to_vec(&record).expect("flow records serialize");
    store.put(&flow_key(&state), &bytes, Some(FLOW_TTL)).await?;
    store
        .set_add(&binding_key(binding), &sha256_hex(&state), Some(FLOW_TTL))
        .await?;
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
    /// Every other parameter, for the provider's preset (Apple's one-time `user` field).
    #[serde(flatten)]
    pub extra: HashMap<String, String>,
}

/// A finished sign-in: who signed in and where they wanted to go.
pub struct Finished {
    pub user: User,
    pub callback_url: String,
    /// The session the flow was started from (if any): it ends now, since a sign-in always
    /// gets a fresh session id, even when its cookie did not come with the callback.
    pub started_session: Option<String>,
    /// The provider's session id (the ID token's `sid`), to remember on the new session.
    pub provider_sid: Option<String>,
    /// The ID token, only for a provider with `federated_signout` (its sign-out names it).
    pub id_token: Option<String>,
    /// The groups the provider said the user is in, for the new session.
    pub groups: Vec<String>,
}

/// Completes a sign-in. Every refusal carries its own code and a precise log reason.
///
/// `binding` is the browser-binding cookie sent with the callback; `presented` is the live
/// session whose cookie came with it (none for a cross-site `form_post`). Linking uses the
/// user recorded at the start; `presented` only serves to refuse a callback that would give
/// a browser signed in as one user another user's account or link (a planted flow).
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    store: &dyn Store,
    users: &Users,
    sessions: &Sessions,
    provider: &Provider,
    params: CallbackParams,
    binding: Option<&str>,
    presented: Option<&SignedIn>,
    provider_name: impl Fn(&str) -> String,
) -> Result<Finished, AuthError> {
    let state = params
        .state
        .as_deref()
        // Empty or oversized states are refused before any lookup; either would also find
        // no flow (so `||` here is an equivalent mutant, caught only by the log reason).
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| {
            AuthError::new(
                ErrorCode::InvalidState,
                "callback without a state parameter",
            )
        })?;
    let key = flow_key(state);
    let unknown = || {
        AuthError::new(
            ErrorCode::InvalidState,
            "state unknown, expired (10 min) or already used",
        )
    };
    // Read first and check the browser binding before consuming anything: whoever holds a
    // callback URL (a log, a shared screen, another browser) cannot burn the victim's flow.
    let stored = store.get(&key).await?.ok_or_else(unknown)?;
    let record = parse_record(&stored)?;
    let bound = binding.is_some_and(|b| constant_time_eq(&sha256_hex(b), &record.binding));
    if !bound {
        return Err(AuthError::new(
            ErrorCode::InvalidState,
            if binding.is_none() {
                "flow binding cookie missing: the callback arrived in a browser that did not start this sign-in (or cookies are blocked); the flow stays usable by its own browser"
            } else {
                "flow binding cookie does not match: the callback arrived in a browser that did not start this sign-in; the flow stays usable by its own browser"
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
    // Taking the record makes the state single-use, even under concurrent replays: of two
    // callbacks that both passed the checks above, only one gets it.
    let taken = store.take(&key).await?.ok_or_else(unknown)?;
    let record = parse_record(&taken)?;
    // No longer pending; `has_pending` may skip its check past `MAX_PENDING_CHECKED`.
    if let Some(b) = binding {
        store
            .set_remove(&binding_key(b), &sha256_hex(state))
            .await?;
    }

    // Link to whoever started the flow, and only while that session is still live (a
    // sign-out meanwhile means nobody is signed in any more).
    let started_by = match record.started_by {
        Some(s) if sessions.is_live(&s.session_id).await? => Some(s),
        _ => None,
    };
    let starter = started_by.as_ref().map(|s| s.user_id.as_str());
    // A browser signed in as someone else than whoever started the flow: the flow was
    // planted (login CSRF). Linking the account the provider returns to the starter would
    // hand it to them; refuse before anything is linked.
    if let (Some(starter), Some(presented)) = (starter, presented) {
        if starter != presented.user_id {
            return Err(AuthError::new(
                ErrorCode::InvalidState,
                format!(
                    "the flow was started by user {starter}, but the callback's browser is signed in as user {}: refused, nothing linked",
                    presented.user_id
                ),
            ));
        }
    }

    // RFC 9207: the authorization response names its issuer; a mismatch is a mix-up attack.
    provider
        .check_callback_issuer(params.iss.as_deref())
        .await?;

    if let Some(error) = params.error.as_deref() {
        let description = params.error_description.as_deref().unwrap_or("");
        let reason = format!(
            "provider returned error={:?} {:?}",
            printable(error, 200),
            printable(description, 200)
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
        params: &params.extra,
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
            starter,
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
            let ids = users.providers_of(&existing_user).await?;
            let error = AuthError::new(ErrorCode::OAuthAccountNotLinked, reason);
            return Err(match use_instead_hint(&ids, provider_name) {
                Some(hint) => AuthError {
                    providers: ids,
                    ..error.with_hint(hint)
                },
                None => error,
            });
        }
    };
    // Started signed out, but this browser is now signed in as another user: another tab
    // signed in meanwhile, or a sign-in was planted here. Do not switch accounts silently.
    if let Some(presented) = presented.filter(|p| p.user_id != user.id) {
        return Err(AuthError::new(
            ErrorCode::InvalidState,
            format!(
                "the flow was started signed out and signs in user {}, but the callback's browser is signed in as user {}: refused, the browser's session is kept",
                user.id, presented.user_id
            ),
        ));
    }
    // Kept (sealed) only for providers with `expose_tokens`.
    crate::provider_tokens::remember(store, provider, &profile.subject, &tokens).await?;
    Ok(Finished {
        user,
        callback_url: record.callback_url,
        started_session: started_by.map(|s| s.session_id),
        provider_sid: profile.sid,
        groups: profile.groups,
        id_token: tokens
            .id_token
            .filter(|_| provider.config.federated_signout),
    })
}

fn parse_record(bytes: &[u8]) -> Result<FlowRecord, AuthError> {
    serde_json::from_slice(bytes).map_err(|e| {
        AuthError::new(
            ErrorCode::InvalidState,
            format!("unreadable flow record: {e}"),
        )
    })
}

/// Does the browser holding `binding` have another sign-in in progress (another tab)? Then
/// its binding cookie must stay; otherwise the callback clears it.
pub async fn has_pending(store: &dyn Store, binding: &str) -> Result<bool, StoreError> {
    let set = binding_key(binding);
    let members = store.set_members(&set).await?;
    if members.len() > MAX_PENDING_CHECKED {
        return Ok(true);
    }
    for state_hash in members {
        if store.get(&keys::flow(&state_hash)).await?.is_some() {
            return Ok(true);
        }
        // Expired (or used elsewhere): forget it.
        store.set_remove(&set, &state_hash).await?;
    }
    Ok(false)
}

/// "Sign in with X or Y, as you did before." for the providers `ids`, if any.
pub fn use_instead_hint(ids: &[String], provider_name: impl Fn(&str) -> String) -> Option<String> {
    if ids.is_empty() {
        return None;
    }
    let names: Vec<String> = ids.iter().map(|id| provider_name(id)).collect();
    Some(format!(
        "Sign in with {}, as you did before.",
        names.join(" or ")
    ))
}
