//! `${NAME}` expansion from the environment.

/// Why a string could not be expanded. Messages never include the value itself
/// (it may be a secret), only the variable name.
#[derive(Debug, PartialEq, Eq)]
pub enum ExpandError {
    Unset(String),
    Unterminated,
    BadName(String),
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Unset(name) => write!(f, "environment variable {name} is not set"),
            ExpandError::Unterminated => write!(
                f,
                "unterminated \"${{\": write \"${{NAME}}\" to insert an environment variable, or \"$${{\" for a literal \"${{\""
            ),
            ExpandError::BadName(name) => write!(
                f,
                "invalid environment variable name \"{name}\" in \"${{...}}\": use letters, digits and '_', not starting with a digit"
            ),
        }
    }
}

/// Replace every `${NAME}` in `s` with `env(NAME)`; `$${` is a literal `${`.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or(ExpandError::Unterminated)?;
            let name = &tail[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ExpandError::BadName(name.to_string()));
            }
            match env(name) {
                Some(v) => out.push_str(&v),
                None => return Err(ExpandError::Unset(name.to_string())),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "B_2" => Some("${A}".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands() {
        assert_eq!(expand("plain", &env).unwrap(), "plain");
        assert_eq!(expand("${A}", &env).unwrap(), "alpha");
        assert_eq!(expand("x${A}y${A}z", &env).unwrap(), "xalphayalphaz");
        assert_eq!(expand("[${EMPTY}]", &env).unwrap(), "[]");
        // values are not expanded again
        assert_eq!(expand("${B_2}", &env).unwrap(), "${A}");
        // lone dollars are literal
        assert_eq!(expand("a$b$$c$", &env).unwrap(), "a$b$$c$");
    }

    #[test]
    fn escaped() {
        assert_eq!(expand("$${A}", &env).unwrap(), "${A}");
        assert_eq!(expand("x$${A}${A}", &env).unwrap(), "x${A}alpha");
        assert_eq!(expand("$${", &env).unwrap(), "${");
    }

    #[test]
    fn errors() {
        assert_eq!(
            expand("${NOPE}", &env),
            Err(ExpandError::Unset("NOPE".into()))
        );
        assert_eq!(expand("abc${A", &env), Err(ExpandError::Unterminated));
        assert_eq!(
            expand("${}", &env),
            Err(ExpandError::BadName(String::new()))
        );
        assert_eq!(
            expand("${1A}", &env),
            Err(ExpandError::BadName("1A".into()))
        );
        assert!(ExpandError::Unset("NOPE".into())
            .to_string()
            .contains("NOPE"));
    }
}
