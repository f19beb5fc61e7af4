//! GitHub (and GitHub Enterprise Server) done right: plain OAuth 2.0 whose email is the
//! primary *verified* address from `/user/emails` (next-auth takes the first address without
//! looking), with organisation membership (`allowed_orgs`) checked at
//! `/user/memberships/orgs/{org}`; `base_url` and `api_url` point it at an Enterprise host.
use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

use super::{Call, Endpoints, Entry, Orgs, OwnKey, Preset, SignIn, StaticProfile, Table};
use crate::config::types::Own;
use crate::config::urls::parse_endpoint;
use crate::error::{AuthError, ErrorCode};
use crate::provider::http::{call_error, send, Budget, CallError};
use crate::provider::profile::Profile;

pub struct GitHub;

static ENTRY: Entry = Entry::oauth2(
    "github",
    "GitHub",
    [
        "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token",
        "https://api.github.com/user",
    ],
    StaticProfile::new("id", None, None, Some("name"), Some("avatar_url")),
    Some("https://github.com/login/oauth"),
    &["read:user", "user:email"],
);

static ORGS: Orgs = Orgs {
    scope: "read:org",
    check: check_org,
};

/// What `base_url` and `api_url` made, for the hooks.
#[derive(Debug)]
pub struct Settings {
    /// `{api}/user/emails`.
    pub emails_url: Url,
    /// The API root (organisation membership checks).
    pub api_url: Url,
}

#[async_trait]
impl Preset for GitHub {
    fn entry(&self) -> &'static Entry {
        &ENTRY
    }

    fn own_keys(&self) -> &'static [OwnKey] {
        const KEYS: &[OwnKey] = &[OwnKey::optional("base_url"), OwnKey::optional("api_url")];
        KEYS
    }

    fn orgs(&self) -> Option<&'static Orgs> {
        Some(&ORGS)
    }

    /// The endpoints of `base_url` (github.com by default) and its API root `api_url`
    /// (`{base_url}/api/v3` for GitHub Enterprise Server).
    fn endpoints(&self, t: &mut Table) -> Option<Option<Endpoints>> {
        let base = match t.string("base_url")? {
            None => "https://github.com".to_string(),
            Some(b) => match parse_endpoint(&b) {
                Ok(u) if u.query().is_some() => {
                    t.err(
                        "base_url",
                        format!("\"{b}\": base_url has no query; expected e.g. \"https://github.example.com\""),
                    );
                    return None;
                }
                Ok(u) => u.as_str().trim_end_matches('/').to_string(),
                Err(e) => {
                    t.err("base_url", e);
                    return None;
                }
            },
        };
        let (api, api_at) = match t.string("api_url")? {
            Some(a) => (a, "api_url"),
            None if base == "https://github.com" => ("https://api.github.com".to_string(), "base_url"),
            None => (format!("{base}/api/v3"), "base_url"),
        };
        let api = match parse_endpoint(&api) {
            Ok(u) if u.query().is_none() => u.as_str().trim_end_matches('/').to_string(),
            Ok(_) => {
                t.err(api_at, format!("\"{api}\": the API root has no query"));
                return None;
            }
            Err(e) => {
                t.err(api_at, e);
                return None;
            }
        };
        let settings = Settings {
            emails_url: parse_endpoint(&format!("{api}/user/emails")).ok()?,
            api_url: parse_endpoint(&api).ok()?,
        };
        Some(Some(Endpoints {
            authorization_url: (format!("{base}/login/oauth/authorize"), "base_url"),
            token_url: (format!("{base}/login/oauth/access_token"), "base_url"),
            userinfo_url: (format!("{api}/user"), api_at),
            issuer: Some(format!("{base}/login/oauth")),
            own: Own::new(settings),
        }))
    }

    /// GitHub's public `email` may be unverified: only `/user/emails` says. The name falls back
    /// to the login.
    async fn profile(&self, profile: &mut Profile, sign_in: &SignIn<'_>) -> Result<(), AuthError> {
        let call = &sign_in.call;
        profile.email = None;
        profile.email_verified = false;
        if let Some(settings) = call.own.get::<Settings>() {
            let email = primary_verified_email(
                call.http,
                &settings.emails_url,
                &call.tokens.access_token,
                call.budget,
            )
            .await
            .map_err(call_error)?;
            profile.email_verified = email.is_some();
            profile.email = email;
        }
        // Groups (SPEC §6): the user's organisations and teams, when the token may read them.
        let granted = call.tokens.scope.as_deref().unwrap_or("");
        if granted.split([',', ' ']).any(|s| s == "read:org") {
            if let Some(settings) = call.own.get::<Settings>() {
                match groups(call.http, &settings.api_url, &call.tokens.access_token, call.budget)
                    .await
                {
                    Ok(groups) => profile.groups = groups,
                    // Fewer groups can only let the user into less: sign-in goes on.
                    Err(e) => tracing::warn!(error = %e, "GitHub organisations and teams not read: no groups for this sign-in"),
                }
            }
        }
        if profile.name.is_none() {
            profile.name = sign_in
                .userinfo
                .and_then(|info| info.get("login"))
                .and_then(|l| l.as_str())
                .map(str::to_string);
        }
        Ok(())
    }

    async fn check_orgs(&self, orgs: &[String], call: &Call<'_>) -> Result<(), AuthError> {
        let Some(settings) = call.own.get::<Settings>() else {
            return Err(AuthError::new(
                ErrorCode::Configuration,
                "allowed_orgs needs the github preset",
            ));
        };
        for org in orgs {
            let member = is_member(
                call.http,
                &settings.api_url,
                org,
                &call.tokens.access_token,
                call.budget,
            )
            .await
            .map_err(call_error)?;
            if member {
                return Ok(());
            }
        }
        Err(AuthError::new(
            ErrorCode::AccessDenied,
            format!(
                "not an active member of any allowed GitHub organisation ({})",
                orgs.join(", ")
            ),
        ))
    }
}

/// An organisation login: letters, digits and `-`, as in `https://github.com/my-org`.
fn check_org(o: &str) -> Result<(), String> {
    let valid = !o.is_empty()
        && o.len() <= 39
        && !o.starts_with('-')
        && !o.ends_with('-')
        && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!("\"{o}\" is not a GitHub organisation login: letters, digits and '-', e.g. \"my-org\" (as in https://github.com/my-org)"))
    }
}

#[derive(Deserialize)]
struct EmailEntry {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

fn get(http: &reqwest::Client, url: Url, token: &str) -> reqwest::RequestBuilder {
    http.get(url)
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
}

/// The primary verified email, if the user has one. `None` when the primary is unverified:
/// an unverified address is never presented as the user's email.
async fn primary_verified_email(
    http: &reqwest::Client,
    emails_url: &Url,
    token: &str,
    budget: Budget,
) -> Result<Option<String>, CallError> {
    let (status, body) = send(
        "github emails",
        get(http, emails_url.clone(), token),
        budget,
    )
    .await?;
    if status == 403 || status == 404 {
        // The user:email scope was not granted: no email rather than a failed sign-in.
        return Ok(None);
    }
    if status != 200 {
        return Err(CallError::Status {
            endpoint: "github emails",
            status,
            detail: String::new(),
        });
    }
    let emails: Vec<EmailEntry> =
        serde_json::from_slice(&body).map_err(|e| CallError::Malformed {
            endpoint: "github emails",
            reason: e.to_string(),
        })?;
    Ok(emails
        .into_iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email))
}

#[derive(Deserialize)]
struct Membership {
    state: String,
}

/// Is the user an active member of `org`? Needs the `read:org` scope.
#[derive(Deserialize)]
struct OrgEntry {
    login: String,
}

#[derive(Deserialize)]
struct TeamEntry {
    slug: String,
    organization: OrgEntry,
}

/// `org` for each of the user's organisations and `org/team` for each team, from the first
/// page (100) of `/user/orgs` and `/user/teams`; the provider's `allowed_orgs`, if any, keeps
/// only theirs (`Provider::authenticate`), so a user in 300 organisations sends no 300 groups.
async fn groups(
    http: &reqwest::Client,
    api_url: &Url,
    token: &str,
    budget: Budget,
) -> Result<Vec<String>, CallError> {
    let page = |path: &str| {
        let mut url = api_url.clone();
        url.set_path(&format!("{}{path}", api_url.path().trim_end_matches('/')));
        url.set_query(Some("per_page=100"));
        url
    };
    let read = |endpoint: &'static str, status: u16, body: &[u8]| -> Result<Option<Vec<u8>>, CallError> {
        match status {
            200 => Ok(Some(body.to_vec())),
            // The scope was not granted after all (or SSO hides the organisation).
            403 | 404 => Ok(None),
            _ => Err(CallError::Status { endpoint, status, detail: String::new() }),
        }
    };
    let mut groups = Vec::new();
    let (status, body) = send("github orgs", get(http, page("/user/orgs"), token), budget).await?;
    if let Some(body) = read("github orgs", status, &body)? {
        let orgs: Vec<OrgEntry> = serde_json::from_slice(&body).map_err(|e| CallError::Malformed {
            endpoint: "github orgs",
            reason: e.to_string(),
        })?;
        groups.extend(orgs.into_iter().map(|o| o.login));
    }
    let (status, body) = send("github teams", get(http, page("/user/teams"), token), budget).await?;
    if let Some(body) = read("github teams", status, &body)? {
        let teams: Vec<TeamEntry> = serde_json::from_slice(&body).map_err(|e| CallError::Malformed {
            endpoint: "github teams",
            reason: e.to_string(),
        })?;
        groups.extend(teams.into_iter().map(|t| format!("{}/{}", t.organization.login, t.slug)));
    }
    let mut seen = std::collections::HashSet::new();
    groups.retain(|g| crate::provider::groups::acceptable(g) && seen.insert(g.clone()));
    groups.truncate(crate::provider::groups::MAX_GROUPS);
    Ok(groups)
}

async fn is_member(
    http: &reqwest::Client,
    api_url: &Url,
    org: &str,
    token: &str,
    budget: Budget,
) -> Result<bool, CallError> {
    let mut url = api_url.clone();
    let path = format!(
        "{}/user/memberships/orgs/{}",
        url.path().trim_end_matches('/'),
        url::form_urlencoded::byte_serialize(org.as_bytes()).collect::<String>()
    );
    url.set_path(&path);
    let (status, body) = send("github org membership", get(http, url, token), budget).await?;
    match status {
        200 => {
            let m: Membership =
                serde_json::from_slice(&body).map_err(|e| CallError::Malformed {
                    endpoint: "github org membership",
                    reason: e.to_string(),
                })?;
            Ok(m.state == "active")
        }
        403 | 404 => Ok(false),
        _ => Err(CallError::Status {
            endpoint: "github org membership",
            status,
            detail: String::new(),
        }),
    }
}
