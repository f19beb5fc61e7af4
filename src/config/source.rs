//! The parsed document with byte spans, used to put a line number on every error.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path such as `providers.corp.issuer` or `server.trusted_origins[1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn new(keys: &[&str]) -> Self {
        KeyPath(keys.iter().map(|k| Seg::Key(k.to_string())).collect())
    }
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

fn is_bare(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare(k) {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

pub(crate) struct Source<'i> {
    text: &'i str,
    root: DeTable<'i>,
}

impl<'i> Source<'i> {
    pub fn new(text: &'i str, root: DeTable<'i>) -> Self {
        Self { text, root }
    }

    pub fn root(&self) -> &DeTable<'i> {
        &self.root
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    /// Line of the deepest part of `path` present in the file: the key itself
    /// when it is there, else the table (or array element) that should hold it.
    pub fn locate(&self, path: &KeyPath) -> Option<usize> {
        let mut best: Option<Range<usize>> = None;
        let mut table = Some(&self.root);
        let mut array: Option<&[Spanned<DeValue<'i>>]> = None;
        for seg in &path.0 {
            let next: &Spanned<DeValue<'i>> = match (seg, table, array) {
                (Seg::Key(k), Some(t), _) => match t.iter().find(|(key, _)| key.get_ref() == k) {
                    Some((key, value)) => {
                        best = Some(key.span());
                        value
                    }
                    None => break,
                },
                (Seg::Index(i), _, Some(a)) => match a.get(*i) {
                    Some(v) => {
                        best = Some(v.span());
                        v
                    }
                    None => break,
                },
                _ => break,
            };
            table = next.get_ref().as_table();
            array = next.get_ref().as_array().map(|a| &a[..]);
        }
        best.map(|r| self.line_of(r.start))
    }

    /// The key path whose key or value contains `offset` (deepest match).
    pub fn key_at(&self, offset: usize) -> KeyPath {
        let mut path = KeyPath::default();
        dfs_table(&self.root, offset, &mut path);
        path
    }
}

fn dfs_table(t: &DeTable<'_>, offset: usize, path: &mut KeyPath) -> bool {
    for (k, v) in t.iter() {
        path.0.push(Seg::Key(k.get_ref().to_string()));
        if dfs_value(v.get_ref(), offset, path)
            || contains(&k.span(), offset)
            || contains(&v.span(), offset)
        {
            return true;
        }
        path.0.pop();
    }
    false
}

fn dfs_value(v: &DeValue<'_>, offset: usize, path: &mut KeyPath) -> bool {
    match v {
        DeValue::Table(t) => dfs_table(t, offset, path),
        DeValue::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                path.0.push(Seg::Index(i));
                if dfs_value(e.get_ref(), offset, path) || contains(&e.span(), offset) {
                    return true;
                }
                path.0.pop();
            }
            false
        }
        _ => false,
    }
}

pub(crate) fn contains(r: &Range<usize>, offset: usize) -> bool {
    r.start <= offset && offset < r.end.max(r.start + 1)
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
