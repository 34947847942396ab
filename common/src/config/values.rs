//! Parsing of single values: sizes, numbers, booleans.

/// Parses a size in megabytes as the reference does: `500M`, `2G`, `100MB`, ` 1g `, or a bare
/// number of megabytes.
pub fn parse_size_mb(s: &str) -> Result<u64, String> {
    let upper = s.trim().to_ascii_uppercase();
    let upper = upper.strip_suffix('B').unwrap_or(&upper);
    let (digits, factor) = if let Some(n) = upper.strip_suffix('G') {
        (n, 1024)
    } else if let Some(n) = upper.strip_suffix('M') {
        (n, 1)
    } else {
        (upper, 1)
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| "expected a size like 500M or 2G".to_string())
}

pub fn parse_number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse::<T>()
        .map_err(|_| "expected a whole number".to_string())
}

pub fn parse_positive(s: &str) -> Result<u32, String> {
    match parse_number::<u32>(s)? {
        0 => Err("must be at least 1".to_string()),
        n => Ok(n),
    }
}

pub fn parse_float(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => Ok(f),
        _ => Err("expected a non-negative number".to_string()),
    }
}

/// The reference treats exactly `true` (any case) as true and everything else as false;
/// we are stricter and refuse values that are neither.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" | "" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mb("500M"), Ok(500));
        assert_eq!(parse_size_mb("2G"), Ok(2048));
        assert_eq!(parse_size_mb("  1g  "), Ok(1024));
        assert_eq!(parse_size_mb("100MB"), Ok(100));
        assert_eq!(parse_size_mb("256"), Ok(256));
        assert!(parse_size_mb("lots").is_err());
        assert!(parse_size_mb("-1M").is_err());
        assert!(parse_size_mb("").is_err());
        assert!(parse_size_mb("99999999999999999999G").is_err());
    }

    #[test]
    fn bools_and_numbers() {
        assert_eq!(parse_bool("True"), Ok(true));
        assert_eq!(parse_bool("false"), Ok(false));
        assert!(parse_bool("maybe").is_err());
        assert_eq!(parse_positive("60"), Ok(60));
        assert!(parse_positive("0").is_err());
        assert!(parse_number::<u32>("ten").is_err());
        assert!(parse_float("nan").is_err());
        assert_eq!(parse_float("5"), Ok(5.0));
    }
}
