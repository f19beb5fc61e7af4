//! `[[policies]]`: which signed-in users `/verify` lets through, per forwarded host and path
//! (SPEC §6). Checked here; applied by `crate::policy`.
use super::ctx::{entry, Ctx};
use super::source::KeyPath;
use super::types::PolicyConfig;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    hosts: Option<Vec<String>>,
    paths: Option<Vec<String>>,
    allowed_groups: Option<Vec<String>>,
    allowed_emails: Option<Vec<String>>,
    allowed_email_domains: Option<Vec<String>>,
    allowed_providers: Option<Vec<String>>,
}

/// Every `[[policies]]` entry, in the order of the file (the first match applies), each key
/// checked with its file:line:key. `providers` are the configured provider ids.
pub(crate) fn policies(ctx: &mut Ctx, providers: &[String]) -> Option<Vec<PolicyConfig>> {
    let path = KeyPath::new(&["policies"]);
    let src = ctx.src;
    let Some(value) = entry(src.root(), "policies") else {
        return Some(Vec::new());
    };
    let Some(items) = value.get_ref().as_array() else {
        ctx.err(&path, "`policies` must be an array of tables: [[policies]]");
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        if !item.get_ref().is_table() {
            ctx.err(&p, "must be a table: [[policies]]");
            ok = false;
            continue;
        }
        match ctx
            .lenient::<RawPolicy>(item, &p)
            .and_then(|raw| policy(ctx, &p, raw, providers, i))
        {
            Some(policy) => out.push(policy),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn policy(
    ctx: &mut Ctx,
    p: &KeyPath,
    raw: RawPolicy,
    providers: &[String],
    index: usize,
) -> Option<PolicyConfig> {
    let before = ctx.errors.len();
    let present: Vec<&'static str> = [
        ("allowed_groups", raw.allowed_groups.is_some()),
        ("allowed_emails", raw.allowed_emails.is_some()),
        ("allowed_email_domains", raw.allowed_email_domains.is_some()),
        ("allowed_providers", raw.allowed_providers.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let list = |ctx: &mut Ctx, key: &str, raw: Option<Vec<String>>| {
        ctx.strings(&p.key(key), raw.as_deref())
            .map(Option::unwrap_or_default)
    };
    let hosts = list(ctx, "hosts", raw.hosts);
    let paths = list(ctx, "paths", raw.paths);
    let groups = list(ctx, "allowed_groups", raw.allowed_groups);
    let emails = list(ctx, "allowed_emails", raw.allowed_emails);
    let domains = list(ctx, "allowed_email_domains", raw.allowed_email_domains);
    let provider_ids = list(ctx, "allowed_providers", raw.allowed_providers);
    let (hosts, paths, groups, emails, domains, provider_ids) =
        (hosts?, paths?, groups?, emails?, domains?, provider_ids?);

    if hosts.is_empty() {
        ctx.err(
            &p.key("hosts"),
            "a policy needs `hosts`: the forwarded host names it applies to, e.g. [\"app.example.com\", \"*.example.com\"]",
        );
    }
    let hosts: Vec<String> = hosts
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for (i, host) in hosts.iter().enumerate() {
        if host == "*" {
            continue; // every host: a catch-all (last) policy
        }
        let name = host.strip_prefix("*.").unwrap_or(host);
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            ctx.err(
                &p.key("hosts").index(i),
                format!(
                    "{host:?} is not a host name or `*.domain` pattern (no scheme, port or path)"
                ),
            );
        }
    }
    for (i, path) in paths.iter().enumerate() {
        // Requests are matched decoded and normalised, so a pattern must be too.
        let problem = if !path.starts_with('/') {
            Some("must start with `/` (a path prefix, or a pattern with `*`)")
        } else if path.contains(['?', '#', '%', '\\']) {
            Some("is matched against the decoded path without the query: write it without `?`, `#`, `%` escapes or `\\`")
        } else if path.contains("//") || path.split('/').any(|s| s == "." || s == "..") {
            Some("is matched against the normalised path: no `//`, `.` or `..` segments")
        } else {
            None
        };
        if let Some(problem) = problem {
            ctx.err(&p.key("paths").index(i), format!("{path:?} {problem}"));
        }
    }
    // An empty list would mean "no restriction of this kind": say so instead of allowing all.
    for (key, list) in [
        ("allowed_groups", &groups),
        ("allowed_emails", &emails),
        ("allowed_email_domains", &domains),
        ("allowed_providers", &provider_ids),
    ] {
        if list.is_empty() && present.contains(&key) {
            ctx.err(
                &p.key(key),
                "an empty list would allow everyone: leave the key out for no restriction of this kind",
            );
        }
    }
    for (i, group) in groups.iter().enumerate() {
        if !crate::provider::groups::acceptable(group) {
            ctx.err(
                &p.key("allowed_groups").index(i),
                format!("{group:?} can never match: group names are 1 to 255 bytes, without commas or control characters"),
            );
        }
    }
    let emails: Vec<String> = emails.iter().map(|e| e.trim().to_lowercase()).collect();
    for (i, email) in emails.iter().enumerate() {
        if email.split('@').count() != 2 || email.starts_with('@') || email.ends_with('@') {
            ctx.err(
                &p.key("allowed_emails").index(i),
                format!("{email:?} is not an email address"),
            );
        }
    }
    let domains: Vec<String> = domains
        .iter()
        .map(|d| d.trim().trim_start_matches('@').to_lowercase())
        .collect();
    for (i, domain) in domains.iter().enumerate() {
        if domain.is_empty() || domain.contains(['@', '/', '*']) {
            ctx.err(
                &p.key("allowed_email_domains").index(i),
                format!("{domain:?} is not a domain (e.g. \"example.com\")"),
            );
        }
    }
    for (i, id) in provider_ids.iter().enumerate() {
        if !providers.contains(id) {
            ctx.err(
                &p.key("allowed_providers").index(i),
                format!(
                    "no provider {id:?} is configured; configured: {}",
                    providers.join(", ")
                ),
            );
        }
    }
    (ctx.errors.len() == before).then_some(PolicyConfig {
        index,
        hosts,
        paths,
        allowed_groups: groups,
        allowed_emails: emails,
        allowed_email_domains: domains,
        allowed_providers: provider_ids,
    })
}
