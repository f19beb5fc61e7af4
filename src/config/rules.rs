//! Who may sign in and what is asked for: a provider's access rules, scopes and extra
//! authorization parameters.

use super::ctx::Ctx;
use super::raw::RawProvider;
use super::source::KeyPath;
use super::types::AccessRules;
use crate::provider::presets::Orgs;

/// `scopes`, else `defaults`; an OpenID Connect provider's must have `openid`, and with
/// `allowed_orgs` set they need `org_scope`.
pub(super) fn scopes(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    defaults: &[&str],
    needs_openid: bool,
    org_scope: Option<&str>,
) -> Option<Vec<String>> {
    let scopes_path = path.key("scopes");
    let written = ctx.strings(&scopes_path, raw.scopes.as_deref())?;
    let explicit = written.is_some();
    let mut scopes = match written {
        Some(s) => s,
        None => defaults.iter().map(|s| s.to_string()).collect(),
    };
    let mut good = true;
    for (i, s) in scopes.iter().enumerate() {
        if s.is_empty() || s.contains(char::is_whitespace) {
            ctx.err(
                &scopes_path.index(i),
                format!("invalid scope \"{s}\": a scope is one word without spaces"),
            );
            good = false;
        }
    }
    if needs_openid && !scopes.iter().any(|s| s == "openid") {
        ctx.err(
            &scopes_path,
            "must contain \"openid\" for an OpenID Connect provider, e.g. [\"openid\", \"email\", \"profile\"]",
        );
        good = false;
    }
    if let Some(org_scope) = org_scope.filter(|o| !scopes.iter().any(|s| s == o)) {
        if explicit {
            ctx.err(
                &scopes_path,
                format!("must contain \"{org_scope}\" when allowed_orgs is set: latch needs it to check organisation membership"),
            );
            good = false;
        } else {
            scopes.push(org_scope.to_string());
        }
    }
    good.then_some(scopes)
}

/// `allowed_email_domains`, `allowed_emails`, and `allowed_orgs` for a preset with `orgs`.
pub(super) fn access_rules(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    orgs: Option<&Orgs>,
) -> Option<AccessRules> {
    let p = path.key("allowed_email_domains");
    let domains = each(ctx, &p, raw.allowed_email_domains.as_deref(), |d| {
        let lower = d.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix('@').unwrap_or(&lower);
        if is_domain_name(bare) {
            Ok(bare.to_string())
        } else {
            Err(format!(
                "\"{d}\" is not a domain name; expected e.g. \"example.com\""
            ))
        }
    });

    let p = path.key("allowed_emails");
    let emails = each(ctx, &p, raw.allowed_emails.as_deref(), |e| {
        let lower = e.trim().to_lowercase();
        let valid = lower
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && is_domain_name(domain))
            && !lower.contains(char::is_whitespace);
        if valid {
            Ok(lower)
        } else {
            Err(format!(
                "\"{e}\" is not an email address; expected e.g. \"alice@example.com\""
            ))
        }
    });

    let p = path.key("allowed_orgs");
    let allowed_orgs = match orgs {
        Some(rules) => each(ctx, &p, raw.allowed_orgs.as_deref(), |o| {
            (rules.check)(o).map(|()| o.to_string())
        }),
        None => Some(Vec::new()),
    };

    Some(AccessRules {
        allowed_email_domains: domains?,
        allowed_emails: emails?,
        allowed_orgs: allowed_orgs?,
    })
}

/// Every element of a list key, as `check` normalises it (or refuses it, saying why).
fn each(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: Option<&[String]>,
    check: impl Fn(&str) -> Result<String, String>,
) -> Option<Vec<String>> {
    let list = ctx.strings(path, raw)?.unwrap_or_default();
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    for (i, s) in list.iter().enumerate() {
        match check(s) {
            Ok(v) => out.push(v),
            Err(e) => {
                ctx.err(&path.index(i), e);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn is_domain_name(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Query parameters latch sets itself on the authorization request.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

/// The preset's `defaults`, then `authorization_params` (overriding them by name).
pub(super) fn authorization_params(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    defaults: &[(&str, &str)],
) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let Some(written) = &raw.authorization_params else {
        return Some(out);
    };
    let p = path.key("authorization_params");
    let mut ok = true;
    for (k, v) in written {
        let kp = p.key(k);
        if k.is_empty() {
            ctx.err(&kp, "a parameter name must not be empty");
            ok = false;
            continue;
        }
        if RESERVED_PARAMS.contains(&k.as_str()) {
            let hint = match k.as_str() {
                "scope" => " (set `scopes` instead)",
                "response_mode" => " (set the provider's `response_mode` key instead)",
                "client_id" => " (set `client_id` instead)",
                _ => "",
            };
            ctx.err(
                &kp,
                format!(
                    "\"{k}\" is set by latch and cannot be overridden{hint}; reserved: {}",
                    RESERVED_PARAMS.join(", ")
                ),
            );
            ok = false;
            continue;
        }
        let Some(v) = ctx.string(&kp, v) else {
            ok = false;
            continue;
        };
        match out.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k.clone(), v)),
        }
    }
    ok.then_some(out)
}
