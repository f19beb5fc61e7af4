//! The validation context: the parsed file, the environment, and every error found so far,
//! each with its file, line and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

use super::duration::parse_duration;
use super::expand::expand;
use super::raw::RawDuration;
use super::source::{contains, KeyPath, Source};

/// Every error found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One error: `providers.toml:12: providers.corp.issuer: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Dotted key path (`providers.corp.issuer`, `server.trusted_origins[1]`);
    /// empty for errors about the whole file (unreadable, TOML syntax).
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) struct Ctx<'a, 'i> {
    pub src: &'a Source<'i>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl<'a, 'i> Ctx<'a, 'i> {
    pub fn new(src: &'a Source<'i>, env: &'a dyn Fn(&str) -> Option<String>, file: &Path) -> Self {
        Self {
            src,
            env,
            file: file.to_path_buf(),
            errors: Vec::new(),
        }
    }

    /// Record an error on `path`, with the line of the key (or its table).
    pub fn err(&mut self, path: &KeyPath, message: impl Into<String>) {
        let line = self.src.locate(path);
        self.push(ConfigError {
            file: self.file.clone(),
            line,
            key: path.to_string(),
            message: message.into(),
        });
    }

    /// Record an error unless one was already reported for this key or a key
    /// inside it (a follow-on error there would only be noise).
    fn push(&mut self, e: ConfigError) {
        let covered = self.errors.iter().any(|old| {
            old.key == e.key
                || (!e.key.is_empty()
                    && old
                        .key
                        .strip_prefix(e.key.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '['])))
        });
        if !covered {
            self.errors.push(e);
        }
    }

    fn de_error(&mut self, e: toml::de::Error, fallback: &KeyPath) {
        let (line, key) = match e.span() {
            Some(span) => {
                let key = self.src.key_at(span.start);
                let key = if key.0.is_empty() {
                    fallback.clone()
                } else {
                    key
                };
                (Some(self.src.line_of(span.start)), key)
            }
            None => (self.src.locate(fallback), fallback.clone()),
        };
        self.push(ConfigError {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: e.message().trim().to_string(),
        });
    }

    /// Expand `${NAME}` in a value; `None` after reporting an error.
    pub fn string(&mut self, path: &KeyPath, raw: &str) -> Option<String> {
        match expand(raw, self.env) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(path, e.to_string());
                None
            }
        }
    }

    /// Like [`Ctx::string`] for an optional key: `Some(None)` when absent.
    pub fn opt_string(&mut self, path: &KeyPath, raw: Option<&str>) -> Option<Option<String>> {
        match raw {
            None => Some(None),
            Some(r) => self.string(path, r).map(Some),
        }
    }

    /// Expand every element of an optional array of strings.
    pub fn strings(
        &mut self,
        path: &KeyPath,
        raw: Option<&[String]>,
    ) -> Option<Option<Vec<String>>> {
        let Some(raw) = raw else { return Some(None) };
        let mut out = Vec::with_capacity(raw.len());
        let mut ok = true;
        for (i, r) in raw.iter().enumerate() {
            match self.string(&path.index(i), r) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(Some(out))
    }

    /// An optional duration key, defaulting to `default`; must be positive.
    pub fn duration(
        &mut self,
        path: &KeyPath,
        raw: Option<&RawDuration>,
        default: Duration,
    ) -> Option<Duration> {
        let Some(raw) = raw else { return Some(default) };
        let s = self.string(path, &raw.0)?;
        match parse_duration(&s) {
            Ok(d) if d.is_zero() => {
                self.err(path, "must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    /// Deserialize one top-level section; a missing section gives the defaults.
    pub fn section<T: for<'de> Deserialize<'de> + Default>(&mut self, name: &str) -> Option<T> {
        let path = KeyPath::new(&[name]);
        let src = self.src;
        let Some(value) = entry(src.root(), name) else {
            return Some(T::default());
        };
        if !value.get_ref().is_table() {
            self.err(&path, format!("`{name}` must be a table ([{name}])"));
            return None;
        }
        self.lenient(value, &path)
    }

    /// Deserialize a table, reporting every key serde refuses: after each error
    /// the offending key is dropped and the rest deserialized again, so the
    /// remaining keys are still validated (the config is refused in the end).
    pub fn lenient<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: &Spanned<DeValue<'i>>,
        path: &KeyPath,
    ) -> Option<T> {
        let mut value = value.clone();
        loop {
            let err = match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            let start = err.span().map(|s| s.start);
            self.de_error(err, path);
            let (Some(start), DeValue::Table(table)) = (start, value.get_mut()) else {
                return None;
            };
            let key = table
                .iter()
                .find(|(k, v)| contains(&k.span(), start) || contains(&v.span(), start))
                .map(|(k, _)| k.get_ref().to_string())?;
            table.remove(key.as_str());
        }
    }
}

pub(crate) fn entry<'t, 'i>(
    table: &'t toml::de::DeTable<'i>,
    name: &str,
) -> Option<&'t Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == name)
        .map(|(_, v)| v)
}
