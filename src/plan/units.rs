//! Durations (`5s`, `5m`, `1h30m`, `500ms`), sizes (`1GB`, `512MB`) and `schema.table` globs.

use std::time::Duration;

/// `500ms`, `30s`, `5m`, `1h`, `1h30m`, `2d`. A bare number is refused: the unit is never guessed.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty".to_string());
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{t:?} has no unit (write {t}s or {t}m)"));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("{t:?} is not a duration"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{t:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            "" => return Err(format!("{t:?}: a number without a unit")),
            other => {
                return Err(format!(
                    "{t:?}: unknown unit {other:?} (use ms, s, m, h, d)"
                ))
            }
        };
        total = total.saturating_add(d);
    }
    Ok(total)
}

/// `1GB`, `512MB`, `10kB`, `2TB`, `1GiB`, `100B`, 1024-based as PostgreSQL counts.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(format!("{t:?} is not a size"));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("{t:?}: number too large"))?;
    let unit = t[digits..].trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "b" | "bytes" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "" => return Err(format!("{t:?} has no unit (write {n}MB or {n}GB)")),
        other => {
            return Err(format!(
                "{t:?}: unknown unit {other:?} (use kB, MB, GB, TB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{t:?} is too large"))
}

/// `*` matches any run of characters, `?` one character; everything else itself.
pub fn glob_match(glob: &str, text: &str) -> bool {
    let g: Vec<char> = glob.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut gi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ti;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while gi < g.len() && g[gi] == '*' {
        gi += 1;
    }
    gi == g.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172800)));
        for bad in ["", "300", "5x", "m5", "5 m", "-5s", "5.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("300").expect_err("no unit").contains("300s"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_size("10kB"), Ok(10 << 10));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("1 gb"), Ok(1 << 30));
        for bad in [
            "",
            "GB",
            "1",
            "1XB",
            "99999999999999999999GB",
            "999999999999TB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("public.tmp_*", "public.tmp_orders"));
        assert!(glob_match("public.tmp_*", "public.tmp_"));
        assert!(!glob_match("public.tmp_*", "public.orders"));
        assert!(glob_match("audit.*", "audit.log"));
        assert!(glob_match("*.log?", "x.log1"));
        assert!(!glob_match("*.log?", "x.log"));
        assert!(glob_match("*", "anything.at_all"));
        assert!(glob_match("a*b*c", "a.xx.b.yy.c"));
        assert!(!glob_match("a*b*c", "a.xx.c.yy.b"));
    }
}
