//! Turning raw sections into validated config, collecting every error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::ctx::{entry, ConfigError, Ctx};
use super::origin::OriginPattern;
use super::raw::{RawAudit, RawLimits, RawServer, RawSession, RawStore, RawTokens};
use super::source::KeyPath;
use super::types::{
    AuditTarget, Config, Secret, ServerConfig, SessionConfig, StoreConfig, TokensConfig,
};
use super::{keys, provider};

const SECTIONS: &[&str] = &[
    "server",
    "store",
    "session",
    "tokens",
    "limits",
    "audit",
    "providers",
    "policies",
];
pub(crate) const STORE_SCHEMES: &[&str] = &[
    "sqlite",
    "redis",
    "rediss",
    "redis+sentinel",
    "redis+cluster",
    "rediss+cluster",
    "memory",
];
const MIN_SECRET_LEN: usize = 32;

/// Validate the whole document.
pub(crate) fn validate(ctx: &mut Ctx, path: &Path, base_dir: PathBuf) -> Option<Config> {
    for (k, _) in ctx.src.root().iter() {
        let k = k.get_ref();
        if !SECTIONS.contains(&k.as_ref()) {
            ctx.err(
                &KeyPath::new(&[k]),
                format!(
                    "unknown key `{k}` at the top level, expected one of the tables {}",
                    SECTIONS
                        .iter()
                        .map(|s| if *s == "policies" {
                            "`[[policies]]`".to_string()
                        } else {
                            format!("`[{s}]`")
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }

    let server = ctx
        .section::<RawServer>("server")
        .and_then(|raw| server(ctx, raw, &base_dir));
    let public_url = server.as_ref().map(|s| s.public_url.clone());
    let store = ctx
        .section::<RawStore>("store")
        .and_then(|raw| store(ctx, raw, base_dir.clone()));
    let session = ctx
        .section::<RawSession>("session")
        .and_then(|raw| session(ctx, raw, public_url.as_ref()));
    let tokens = ctx
        .section::<RawTokens>("tokens")
        .and_then(|raw| tokens(ctx, raw));
    let limits = ctx
        .section::<RawLimits>("limits")
        .and_then(|raw| super::limits::limits(ctx, raw));
    let audit = ctx
        .section::<RawAudit>("audit")
        .and_then(|raw| audit(ctx, raw, &base_dir));
    let providers = providers(ctx, public_url.as_ref(), &base_dir);
    let provider_ids: Vec<String> = providers.iter().flatten().map(|p| p.id.clone()).collect();
    let policies = super::policies::policies(ctx, &provider_ids);

    if !ctx.errors.is_empty() {
        return None;
    }
    Some(Config {
        path: path.to_path_buf(),
        server: server?,
        store: store?,
        session: session?,
        tokens: tokens?,
        limits: limits?,
        audit: audit?,
        providers: providers?,
        policies: policies?,
    })
}

fn server(ctx: &mut Ctx, raw: RawServer, base_dir: &Path) -> Option<ServerConfig> {
    let p = KeyPath::new(&["server"]);

    let listen_path = p.key("listen");
    let listen = match (ctx.env)("LATCH_LISTEN").filter(|v| !v.is_empty()) {
        Some(v) => match v.parse::<SocketAddr>() {
            Ok(_) => Some(v),
            Err(_) => {
                ctx.errors.push(ConfigError {
                    file: ctx.file.clone(),
                    line: None,
                    key: listen_path.to_string(),
                    message: format!(
                        "LATCH_LISTEN=\"{v}\" (which overrides server.listen) is not a socket address: expected IP:port, e.g. \"127.0.0.1:3000\" or \"[::]:3000\""
                    ),
                });
                None
            }
        },
        None => ctx
            .opt_string(&listen_path, raw.listen.as_deref())
            .map(|v| v.unwrap_or_else(|| "127.0.0.1:3000".to_string()))
            .and_then(|v| match v.parse::<SocketAddr>() {
                Ok(_) => Some(v),
                Err(_) => {
                    ctx.err(
                        &listen_path,
                        format!(
                            "\"{v}\" is not a socket address: expected IP:port, e.g. \"127.0.0.1:3000\" or \"[::]:3000\""
                        ),
                    );
                    None
                }
            }),
    };

    let url_path = p.key("public_url");
    let public_url = ctx
        .opt_string(&url_path, raw.public_url.as_deref())
        .map(|v| v.unwrap_or_else(|| "http://localhost:3000".to_string()))
        .and_then(|v| match parse_public_url(&v) {
            Ok(u) => Some(u),
            Err(e) => {
                ctx.err(&url_path, e);
                None
            }
        });

    let bp_path = p.key("base_path");
    let base_path = ctx
        .opt_string(&bp_path, raw.base_path.as_deref())
        .map(Option::unwrap_or_default)
        .and_then(|v| match check_base_path(&v) {
            Ok(()) => Some(v),
            Err(e) => {
                ctx.err(&bp_path, e);
                None
            }
        });

    let secret_path = p.key("secret");
    let secret = match &raw.secret {
        None => {
            ctx.err(
                &secret_path,
                "is required: a random string of at least 32 bytes, e.g. secret = \"${LATCH_SECRET}\" (generate one with `openssl rand -base64 48`)",
            );
            None
        }
        Some(s) => secret_value(ctx, &secret_path, &s.0),
    };

    let prev_path = p.key("previous_secrets");
    let previous_secrets = match &raw.previous_secrets {
        None => Some(Vec::new()),
        Some(list) => {
            let mut out = Vec::with_capacity(list.0.len());
            let mut ok = true;
            for (i, s) in list.0.iter().enumerate() {
                match secret_value(ctx, &prev_path.index(i), &s.0) {
                    Some(secret) => out.push(secret),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
    };

    let to_path = p.key("trusted_origins");
    let trusted_origins = ctx
        .strings(&to_path, raw.trusted_origins.as_deref())
        .and_then(|list| {
            let mut out = Vec::new();
            let mut ok = true;
            for (i, s) in list.unwrap_or_default().iter().enumerate() {
                match OriginPattern::parse(s) {
                    Ok(o) => out.push(o),
                    Err(e) => {
                        ctx.err(&to_path.index(i), e);
                        ok = false;
                    }
                }
            }
            ok.then_some(out)
        });

    let trusted_proxies = super::limits::trusted_proxies(
        ctx,
        &p.key("trusted_proxies"),
        raw.trusted_proxies.as_deref(),
    );

    let tpl_path = p.key("templates");
    let templates = ctx
        .opt_string(&tpl_path, raw.templates.as_deref())
        .and_then(|v| match v {
            None => Some(None),
            Some(v) if v.is_empty() => Some(None),
            Some(v) => {
                let dir = base_dir.join(&v);
                if dir.is_dir() {
                    Some(Some(dir))
                } else {
                    let why = if dir.exists() {
                        "is not a directory"
                    } else {
                        "does not exist"
                    };
                    ctx.err(
                        &tpl_path,
                        format!(
                            "template directory \"{}\" {why} (relative paths are resolved against the config file's directory)",
                            dir.display()
                        ),
                    );
                    None
                }
            }
        });

    let connections = super::connections::connections(ctx, &p, &raw);
    let metrics_listen = super::connections::metrics_listen(
        ctx,
        &p.key("metrics_listen"),
        raw.metrics_listen.as_deref(),
        listen.as_deref(),
    );
    let eu_path = p.key("error_url");
    let error_url = ctx
        .opt_string(&eu_path, raw.error_url.as_deref())
        .and_then(|v| match (v, &public_url, &trusted_origins) {
            (None, _, _) => Some(None),
            (Some(v), Some(public), Some(trusted)) => {
                match super::origin::check_error_url(&v, public, trusted) {
                    Ok(url) => Some(Some(url)),
                    Err(e) => {
                        ctx.err(&eu_path, e);
                        None
                    }
                }
            }
            // public_url or trusted_origins is wrong: reported on its own.
            (Some(_), _, _) => None,
        });

    Some(ServerConfig {
        listen: listen?,
        public_url: public_url?,
        base_path: base_path?,
        secret: secret?,
        previous_secrets: previous_secrets?,
        trusted_origins: trusted_origins?,
        trusted_proxies: trusted_proxies?,
        templates: templates?,
        connections: connections?,
        metrics_listen: metrics_listen?,
        error_url: error_url?,
    })
}

/// A secret after `${ENV}` expansion; at least [`MIN_SECRET_LEN`] bytes. Errors never quote it.
fn secret_value(ctx: &mut Ctx, path: &KeyPath, raw: &str) -> Option<Secret> {
    let s = ctx.string(path, raw)?;
    if s.len() < MIN_SECRET_LEN {
        ctx.err(
            path,
            format!(
                "is too short: it must be at least {MIN_SECRET_LEN} bytes after expansion (generate one with `openssl rand -base64 48`)"
            ),
        );
        return None;
    }
    Some(Secret::new(s.into_bytes()))
}

fn parse_public_url(s: &str) -> Result<Url, String> {
    const EXAMPLE: &str = "e.g. \"https://login.example.com\" or \"http://localhost:3000\"";
    let url = Url::parse(s)
        .map_err(|e| format!("\"{s}\" is not a valid URL ({e}); expected an origin, {EXAMPLE}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("public_url must not contain a user name or password".to_string());
    }
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "\"{s}\": scheme must be http or https, not \"{}\"",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("\"{s}\" has no host; {EXAMPLE}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("\"{s}\" must not have a query or fragment"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(format!(
            "\"{s}\" must be an origin without a path; put a path prefix in server.base_path instead"
        ));
    }
    Url::parse(&format!("{}/", url.origin().ascii_serialization()))
        .map_err(|e| format!("\"{s}\": {e}"))
}

fn check_base_path(s: &str) -> Result<(), String> {
    const HELP: &str = "expected \"\" or a path like \"/api/auth\": starting with '/', no trailing '/', letters, digits and / _ - . only";
    if s.is_empty() {
        return Ok(());
    }
    if !s.starts_with('/') {
        return Err(format!("\"{s}\" must start with '/'; {HELP}"));
    }
    if s.ends_with('/') {
        let hint = if s == "/" {
            " (use \"\" to serve at the root)"
        } else {
            ""
        };
        return Err(format!("\"{s}\" must not end with '/'{hint}; {HELP}"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.')))
    {
        return Err(format!("\"{s}\" contains {c:?}; {HELP}"));
    }
    if s[1..]
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!(
            "\"{s}\" has an empty, \".\" or \"..\" segment; {HELP}"
        ));
    }
    Ok(())
}

fn store(ctx: &mut Ctx, raw: RawStore, base_dir: PathBuf) -> Option<StoreConfig> {
    let path = KeyPath::new(&["store", "url"]);
    let url = ctx
        .opt_string(&path, raw.url.as_deref())?
        .unwrap_or_else(|| "sqlite://latch.db".to_string());
    let schemes = STORE_SCHEMES
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some((scheme, rest)) = url.split_once("://") else {
        ctx.err(
            &path,
            format!("not a store URL: expected one of {schemes} (e.g. \"sqlite://latch.db\" or \"redis://127.0.0.1:6379\")"),
        );
        return None;
    };
    if !STORE_SCHEMES.contains(&scheme) {
        ctx.err(
            &path,
            format!("unsupported scheme \"{scheme}\"; expected one of {schemes}"),
        );
        return None;
    }
    if scheme == "sqlite" && rest.split('?').next().unwrap_or("").is_empty() {
        ctx.err(
            &path,
            "sqlite:// needs a file path, e.g. \"sqlite://latch.db\" (relative to the config file) or \"sqlite:///var/lib/latch/latch.db\"",
        );
        return None;
    }
    if scheme != "sqlite" && scheme != "memory" {
        // The parser the store opens it with (Url::parse refuses multi-host forms).
        if let Err(e) = crate::store::check_redis_url(&url) {
            ctx.err(&path, format!("not a valid {scheme}:// URL: {e}"));
            return None;
        }
    }
    let session_cache = match raw.session_cache {
        None => DEFAULT_SESSION_CACHE,
        Some(n) if (0..=MAX_SESSION_CACHE).contains(&n) => n as usize,
        Some(n) => {
            ctx.err(
                &KeyPath::new(&["store", "session_cache"]),
                format!("must be a whole number from 0 (off) to {MAX_SESSION_CACHE} (got {n})"),
            );
            return None;
        }
    };
    Some(StoreConfig {
        url,
        base_dir,
        session_cache,
    })
}

/// Session records a `redis://` instance keeps in memory by default (about 300 bytes each).
const DEFAULT_SESSION_CACHE: usize = 10_000;
const MAX_SESSION_CACHE: i64 = 1_000_000;

/// `[audit] file`: `"stderr"`, or a file path (relative to the config file's directory).
fn audit(ctx: &mut Ctx, raw: RawAudit, base_dir: &Path) -> Option<Option<AuditTarget>> {
    let path = KeyPath::new(&["audit", "file"]);
    let Some(file) = ctx.opt_string(&path, raw.file.as_deref())? else {
        return Some(None);
    };
    let file = file.trim();
    if file.is_empty() {
        ctx.err(
            &path,
            "empty; give a file path (e.g. \"/var/log/latch/audit.log\") or \"stderr\", or leave [audit] out for no audit log",
        );
        return None;
    }
    if file == "stderr" {
        return Some(Some(AuditTarget::Stderr));
    }
    if file.contains('\0') {
        ctx.err(&path, "a file path cannot contain a NUL character");
        return None;
    }
    let full = base_dir.join(file);
    if full.is_dir() {
        ctx.err(
            &path,
            format!(
                "{} is a directory; name a file in it (e.g. \"{}/audit.log\")",
                full.display(),
                file.trim_end_matches('/')
            ),
        );
        return None;
    }
    Some(Some(AuditTarget::File(full)))
}

fn session(ctx: &mut Ctx, raw: RawSession, public_url: Option<&Url>) -> Option<SessionConfig> {
    let p = KeyPath::new(&["session"]);
    let day = Duration::from_secs(86_400);
    let max_age = ctx.duration(&p.key("max_age"), raw.max_age.as_ref(), 30 * day);
    let idle_timeout = ctx.duration(&p.key("idle_timeout"), raw.idle_timeout.as_ref(), 7 * day);
    let update_age = ctx.duration(&p.key("update_age"), raw.update_age.as_ref(), day);
    if let (Some(max), Some(idle)) = (max_age, idle_timeout) {
        if idle > max {
            ctx.err(
                &p.key("idle_timeout"),
                "must not be longer than session.max_age",
            );
        }
    }
    if let (Some(idle), Some(update)) = (idle_timeout, update_age) {
        if update >= idle {
            ctx.err(
                &p.key("update_age"),
                "must be shorter than session.idle_timeout, or activity would never keep a session alive",
            );
        }
    }

    let cd_path = p.key("cookie_domain");
    let cookie_domain = match ctx.opt_string(&cd_path, raw.cookie_domain.as_deref()) {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) if d.is_empty() => Some(None),
        Some(Some(d)) => match check_cookie_domain(&d, public_url) {
            Ok(d) => Some(Some(d)),
            Err(e) => {
                ctx.err(&cd_path, e);
                None
            }
        },
    };

    let max_age = max_age?;
    let idle_timeout = idle_timeout?;
    let update_age = update_age?;
    if idle_timeout > max_age || update_age >= idle_timeout {
        return None;
    }
    Some(SessionConfig {
        max_age,
        idle_timeout,
        update_age,
        cookie_domain: cookie_domain?,
    })
}

fn check_cookie_domain(d: &str, public_url: Option<&Url>) -> Result<String, String> {
    let lower = d.to_ascii_lowercase();
    let bare = lower.strip_prefix('.').unwrap_or(&lower);
    let valid = !bare.is_empty()
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(format!(
            "\"{d}\" is not a domain name; expected \"\" (host-only cookie) or e.g. \".example.com\""
        ));
    }
    if let Some(url) = public_url {
        match url.domain() {
            Some(host) if host == bare || host.ends_with(&format!(".{bare}")) => {}
            Some(host) => {
                return Err(format!(
                    "\"{d}\" does not contain server.public_url's host \"{host}\"; the browser would refuse the cookie"
                ))
            }
            None => {
                return Err(format!(
                    "server.public_url's host is an IP address, which cannot share cookies with a domain; set cookie_domain = \"\" (got \"{d}\")"
                ))
            }
        }
    }
    Ok(lower)
}

fn tokens(ctx: &mut Ctx, raw: RawTokens) -> Option<TokensConfig> {
    let p = KeyPath::new(&["tokens"]);
    let access_ttl = ctx.duration(
        &p.key("access_ttl"),
        raw.access_ttl.as_ref(),
        Duration::from_secs(600),
    );
    let refresh_ttl = ctx.duration(
        &p.key("refresh_ttl"),
        raw.refresh_ttl.as_ref(),
        Duration::from_secs(30 * 86_400),
    );
    let key_rotation = ctx.duration(
        &p.key("key_rotation"),
        raw.key_rotation.as_ref(),
        Duration::from_secs(30 * 86_400),
    );
    let refresh_grace = ctx.duration(
        &p.key("refresh_grace"),
        raw.refresh_grace.as_ref(),
        Duration::from_secs(10),
    );
    let aud_path = p.key("audience");
    let audience = ctx
        .strings(&aud_path, raw.audience.as_deref())
        .and_then(|a| {
            let a = a.unwrap_or_else(|| vec!["api".to_string()]);
            if a.is_empty() {
                ctx.err(&aud_path, "must name at least one audience, e.g. [\"api\"]");
                return None;
            }
            let mut ok = true;
            for (i, s) in a.iter().enumerate() {
                if s.trim().is_empty() {
                    ctx.err(&aud_path.index(i), "an audience must not be empty");
                    ok = false;
                }
            }
            ok.then_some(a)
        });
    let pta_path = p.key("provider_token_audience");
    let provider_token_audience = match raw.provider_token_audience.as_deref() {
        None => Some("latch:provider-token".to_string()),
        Some(r) => ctx.string(&pta_path, r).and_then(|a| {
            if a.trim().is_empty() {
                ctx.err(&pta_path, "must not be empty (default \"latch:provider-token\")");
                None
            } else if audience.as_ref().is_some_and(|list| list.contains(&a)) {
                ctx.err(
                    &pta_path,
                    format!("{a:?} is also in tokens.audience; it must be an audience of its own, so API tokens cannot fetch provider tokens"),
                );
                None
            } else {
                Some(a)
            }
        }),
    };
    let clients_path = p.key("introspection_clients");
    let mut introspection_clients = Some(Vec::new());
    for (id, secret) in raw.introspection_clients.iter().flatten() {
        let path = clients_path.key(id);
        let valid_id = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_id {
            ctx.err(
                &path,
                "a client id must be letters, digits, '-', '_' or '.' (it is the HTTP Basic user name)",
            );
            introspection_clients = None;
            continue;
        }
        match secret_value(ctx, &path, secret) {
            Some(secret) => {
                if let Some(list) = introspection_clients.as_mut() {
                    list.push((id.clone(), secret));
                }
            }
            None => introspection_clients = None,
        }
    }
    Some(TokensConfig {
        access_ttl: access_ttl?,
        refresh_ttl: refresh_ttl?,
        audience: audience?,
        key_rotation: key_rotation?,
        refresh_grace: refresh_grace?,
        provider_token_audience: provider_token_audience?,
        introspection_clients: introspection_clients?,
    })
}

fn providers(
    ctx: &mut Ctx,
    public_url: Option<&Url>,
    base_dir: &Path,
) -> Option<Vec<crate::config::ProviderConfig>> {
    let path = KeyPath::new(&["providers"]);
    let src = ctx.src;
    let Some(value) = entry(src.root(), "providers") else {
        return Some(Vec::new());
    };
    let Some(table) = value.get_ref().as_table() else {
        ctx.err(
            &path,
            "`providers` must be a table of tables: [providers.<id>]",
        );
        return None;
    };
    // In the order of the file, whatever the map's own order.
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);

    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in entries {
        let id = k.get_ref().to_string();
        let p = path.key(&id);
        if !v.get_ref().is_table() {
            ctx.err(&p, format!("must be a table: [providers.{id}]"));
            ok = false;
            continue;
        }
        let Some(table) = keys::read(ctx, v, &p) else {
            ok = false;
            continue;
        };
        match provider::provider(ctx, &id, table, public_url, base_dir) {
            Some(pc) => out.push(pc),
            None => ok = false,
        }
    }
    ok.then_some(out)
}
