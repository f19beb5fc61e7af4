//! Microsoft Entra ID: OpenID Connect at `login.microsoftonline.com/{tenant}/v2.0`. For the
//! multi-tenant endpoints (`common`, `organizations`, `consumers`) the discovered issuer is a
//! template, `…/{tenantid}/v2.0`, and each token's `iss` must be it filled with the token's
//! own `tid`.
use url::Url;

use super::{Entry, OwnKey, Preset, Table};
use crate::config::types::IssuerRule;

pub struct Entra;

static ENTRY: Entry = Entry::oidc(
    "microsoft-entra-id",
    "Microsoft",
    Some("https://login.microsoftonline.com/common/v2.0"),
);

const MULTI_TENANT: [&str; 3] = ["common", "organizations", "consumers"];

impl Preset for Entra {
    fn entry(&self) -> &'static Entry {
        &ENTRY
    }

    fn own_keys(&self) -> &'static [OwnKey] {
        const KEYS: &[OwnKey] = &[OwnKey::optional("tenant")];
        KEYS
    }

    /// The issuer of `tenant` (default `common`); an `issuer` beside the preset overrides it
    /// (sovereign clouds, fakes), but not both.
    fn issuer(&self, t: &mut Table, written: bool) -> Option<Option<String>> {
        let tenant = match t.string("tenant")? {
            Some(_) if written => {
                t.err(
                    "tenant",
                    "set either `tenant` or `issuer`, not both: the issuer is made from the tenant (https://login.microsoftonline.com/{tenant}/v2.0)",
                );
                return None;
            }
            Some(tenant) if !valid_tenant(&tenant) => {
                t.err(
                    "tenant",
                    format!("\"{tenant}\" is not a tenant: expected \"common\" (the default), \"organizations\", \"consumers\", a tenant id (a GUID) or a domain such as \"contoso.onmicrosoft.com\""),
                );
                return None;
            }
            tenant => tenant,
        };
        Some((!written).then(|| {
            format!(
                "https://login.microsoftonline.com/{}/v2.0",
                tenant.as_deref().unwrap_or("common")
            )
        }))
    }

    fn issuer_rule(&self, issuer: &Url) -> IssuerRule {
        let multi_tenant = issuer
            .path_segments()
            .and_then(|mut s| s.next())
            .is_some_and(|t| MULTI_TENANT.iter().any(|m| t.eq_ignore_ascii_case(m)));
        if multi_tenant {
            IssuerRule::EntraTenantFromTid
        } else {
            IssuerRule::Exact
        }
    }
}

fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 253
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}
