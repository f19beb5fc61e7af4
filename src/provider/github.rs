//! GitHub done right: the email kept is the primary *verified* one from `/user/emails`
//! (next-auth takes the first address without looking), and organisation membership is
//! checked with `/user/memberships/orgs/{org}`.
use super::http::{send, Budget, CallError};
use serde::Deserialize;
use url::Url;

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
pub async fn primary_verified_email(
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
pub async fn is_member(
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
