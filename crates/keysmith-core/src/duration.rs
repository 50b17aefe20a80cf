//! Durations written the way Kubernetes and CEL write them (`5m`, `1h30m`, `300ms`, `1.5h`), so that
//! what the CRD's CEL rules accept is what the controller understands.

use std::time::Duration;

/// Parses a Go-style duration. Returns `None` for anything else (the CRD schema rejects those first).
pub fn parse(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, seconds) = ["ms", "h", "m", "s"]
            .iter()
            .find(|u| rest.starts_with(**u))
            .map(|u| {
                (
                    *u,
                    match *u {
                        "ms" => 0.001,
                        "h" => 3600.0,
                        "m" => 60.0,
                        _ => 1.0,
                    },
                )
            })?;
        total += number * seconds;
        rest = &rest[unit.len()..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_cel_accepts() {
        assert_eq!(parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse("720h"), Some(Duration::from_secs(720 * 3600)));
    }

    #[test]
    fn rejects_what_cel_rejects() {
        for bad in ["", "5", "5d", "m", "5 m", "-5m", "1h-1m"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
