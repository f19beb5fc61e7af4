//! Configuration: load `providers.toml`, expand `${ENV}`, validate.
//!
//! Every mistake in the file is reported at once, each with the file, line and key
//! and what would be valid ([`ConfigErrors`]).

mod connections;
pub(crate) mod ctx;
mod duration;
mod endpoints;
mod expand;
mod keys;
mod limits;
mod origin;
mod policies;
mod provider;
pub(crate) mod raw;
mod rules;
pub(crate) mod source;
pub(crate) mod types;
pub(crate) mod urls;
mod validate;

use std::path::Path;

pub use connections::ConnectionLimits;
pub use ctx::{ConfigError, ConfigErrors};
pub use duration::parse_duration;
pub use keys::{presets, PresetInfo};
pub use limits::{IpNet, LimitsConfig, Rate};
pub use origin::OriginPattern;
pub use types::{
    AccessRules, AuditTarget, Config, IssuerRule, OAuth2Endpoints, Own, OwnSettings, PolicyConfig,
    ProfileMapping, ProviderConfig, ProviderKind, ResponseMode, Secret, ServerConfig,
    SessionConfig, StoreConfig, TokenAuth, TokensConfig,
};

use source::Source;

/// Read and validate the config file at `path`, taking `${NAME}` values (and
/// `LATCH_LISTEN`) from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    load_str(path, &text, &|name| std::env::var(name).ok())
}

/// Validate config `text` as if read from `path_for_messages` (which also anchors
/// relative paths), taking environment variables from `env`.
pub fn load_str(
    path_for_messages: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let file = path_for_messages;
    let (root, syntax) = toml::de::DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let errors = syntax
            .into_iter()
            .map(|e| ConfigError {
                file: file.to_path_buf(),
                line: e.span().map(|s| source::line_of(text, s.start)),
                key: String::new(),
                message: format!("TOML syntax error: {}", e.message().trim()),
            })
            .collect();
        return Err(ConfigErrors(errors));
    }
    let src = Source::new(text, root.into_inner());
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let base_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut ctx = ctx::Ctx::new(&src, env, file);
    match validate::validate(&mut ctx, file, base_dir) {
        Some(config) if ctx.errors.is_empty() => Ok(config),
        _ => {
            let mut errors = ctx.errors;
            if errors.is_empty() {
                // Every rejection reports its reason; this only guards against a bug.
                errors.push(ConfigError {
                    file: file.to_path_buf(),
                    line: None,
                    key: String::new(),
                    message: "the configuration was rejected without a reason (a bug in latch)"
                        .to_string(),
                });
            }
            errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
            Err(ConfigErrors(errors))
        }
    }
}

#[cfg(test)]
mod preset_tests;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
