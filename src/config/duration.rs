//! Duration strings: an integer followed by a unit, e.g. `"90s"`, `"10m"`, `"24h"`, `"30d"`.

use std::time::Duration;

const UNITS_HELP: &str =
    "expected an integer followed by a unit: ms, s, m, h, d (e.g. \"90s\", \"10m\", \"24h\", \"30d\")";

/// Parse a duration such as `"500ms"`, `"90s"`, `"10m"`, `"24h"` or `"30d"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    if num.is_empty() || unit.is_empty() {
        return Err(format!("invalid duration \"{s}\": {UNITS_HELP}"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration \"{s}\": number too large"))?;
    let millis_per_unit: u64 = match unit.trim_start() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "invalid duration \"{s}\": unknown unit \"{other}\"; {UNITS_HELP}"
            ))
        }
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration \"{s}\": too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 5 m "), Ok(Duration::from_secs(300)));
    }

    #[test]
    fn errors_list_units() {
        for bad in ["", "10", "s", "1.5h", "-1s", "10 minutes", "1w", "h10"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("ms, s, m, h, d"), "{bad}: {e}");
        }
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("999999999999999999d").is_err());
    }
}
