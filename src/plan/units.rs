//! Durations (`5s`, `5m`, `1h30m`, `500ms`), sizes (`1GB`, `512MB`) and `schema.table` globs.
//!
//! Both parsers refuse a bare number: the unit is never guessed, because `downtime: 300` could
//! mean seconds or minutes and `split_tables_larger_than: 1024` bytes or megabytes.

use std::fmt;
use std::time::Duration;

/// Why a duration or size did not parse, and how to write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitError {
    /// What is wrong with the text.
    pub problem: String,
    /// How to write it instead.
    pub hint: String,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.problem, self.hint)
    }
}

impl std::error::Error for UnitError {}

const DURATION_HINT: &str = "write a number with a unit: 500ms, 30s, 5m, 1h, 1h30m, 2d";
const SIZE_HINT: &str =
    "write a number with a unit (1024-based, as PostgreSQL counts): 512MB, 1GB, 1.5GB, 2TB, 100kB";

fn duration_error(problem: String) -> UnitError {
    UnitError {
        problem,
        hint: DURATION_HINT.to_string(),
    }
}

/// The unit words a duration accepts, with their length in milliseconds.
fn duration_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    })
}

/// `500ms`, `30s`, `5m`, `1h`, `1h30m`, `1h 30m`, `2d`. Units are lowercase (`M` could be
/// months); a bare number, a fraction, a sign or an overflow is refused.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(duration_error("an empty duration".to_string()));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let hint = match t.parse::<u64>() {
            Ok(n) if n >= 60 && (n / 60) * 60 == n => format!("write {}m or {n}s", n / 60),
            Ok(n) => format!("write {n}s or {n}m"),
            Err(_) => DURATION_HINT.to_string(),
        };
        return Err(UnitError {
            problem: format!("`{t}` has no unit"),
            hint,
        });
    }
    if t.starts_with('-') {
        return Err(duration_error(format!("`{t}` is negative")));
    }
    let mut total_ms: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(duration_error(format!("`{t}` is not a duration")));
        }
        let (number, after) = rest.split_at(digits);
        if after.starts_with(['.', ',']) {
            return Err(UnitError {
                problem: format!("`{t}` has a fraction"),
                hint: "write whole numbers of a smaller unit: 90s instead of 1.5m, 1h30m instead of 1.5h".to_string(),
            });
        }
        let n: u64 = number
            .parse()
            .map_err(|_| duration_error(format!("`{t}` is too large")))?;
        let after = after.trim_start();
        let unit_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let (unit, tail) = after.split_at(unit_len);
        let ms = match duration_unit(unit) {
            Some(ms) => ms,
            None if unit.is_empty() => {
                return Err(duration_error(format!("`{t}`: the number {n} has no unit")))
            }
            None => {
                let lower = unit.to_ascii_lowercase();
                let hint = if lower != unit && duration_unit(&lower).is_some() {
                    format!("units are lowercase: write {n}{lower}")
                } else {
                    "units are ms, s, m, h, d".to_string()
                };
                return Err(UnitError {
                    problem: format!("`{t}` has an unknown unit `{unit}`"),
                    hint,
                });
            }
        };
        total_ms = n
            .checked_mul(ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| duration_error(format!("`{t}` is too large")))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Prints a duration as the plan writes it: `1h30m`, `5s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, len) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= len {
            out.push_str(&format!("{}{unit}", ms / len));
            ms %= len;
        }
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

fn size_unit(unit: &str) -> Option<u64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "b" | "byte" | "bytes" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return None,
    })
}

fn size_error(problem: String) -> UnitError {
    UnitError {
        problem,
        hint: SIZE_HINT.to_string(),
    }
}

/// `1GB`, `512MB`, `10kB`, `2TB`, `1GiB`, `1.5GB`, `100B`, `1 gb`: 1024-based as PostgreSQL
/// counts, units case-insensitive. A bare number is refused.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(size_error("an empty size".to_string()));
    }
    if t.starts_with('-') {
        return Err(size_error(format!("`{t}` is negative")));
    }
    let int_len = t.bytes().take_while(u8::is_ascii_digit).count();
    if int_len == 0 {
        return Err(size_error(format!("`{t}` is not a size")));
    }
    let (int_part, after) = t.split_at(int_len);
    let (frac_part, after) = match after.strip_prefix('.') {
        Some(f) => {
            let n = f.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return Err(size_error(format!("`{t}` is not a size")));
            }
            f.split_at(n)
        }
        None => ("", after),
    };
    let unit = after.trim();
    if unit.is_empty() {
        return Err(UnitError {
            problem: format!("`{t}` has no unit"),
            hint: format!("write {t}MB or {t}GB (or {t}B for bytes)"),
        });
    }
    let mult = size_unit(unit).ok_or_else(|| UnitError {
        problem: format!("`{t}` has an unknown unit `{unit}`"),
        hint: "units are B, kB, MB, GB, TB (also KiB, MiB, GiB, TiB; case does not matter)"
            .to_string(),
    })?;
    let too_large = || size_error(format!("`{t}` is too large"));
    let whole: u64 = int_part.parse().map_err(|_| too_large())?;
    let mut bytes = whole.checked_mul(mult).ok_or_else(too_large)?;
    if !frac_part.is_empty() {
        // Exact: frac / 10^len * mult, rounded down, with at most 18 digits considered.
        let digits = &frac_part[..frac_part.len().min(18)];
        let frac: u128 = digits.parse().map_err(|_| too_large())?;
        let scale = 10u128.pow(u32::try_from(digits.len()).unwrap_or(18));
        let extra = frac * u128::from(mult) / scale;
        bytes = u64::try_from(extra)
            .ok()
            .and_then(|e| bytes.checked_add(e))
            .ok_or_else(too_large)?;
    }
    Ok(bytes)
}

/// Prints a byte count the way PostgreSQL's `pg_size_pretty` would read it back: `1GB`,
/// `512MB`, `1536kB`, `100B` (exact, never rounded).
pub fn format_size(bytes: u64) -> String {
    for (unit, len) in [
        ("TB", 1u64 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("kB", 1 << 10),
    ] {
        if bytes >= len && (bytes / len) * len == bytes {
            return format!("{}{unit}", bytes / len);
        }
    }
    format!("{bytes}B")
}

/// `*` matches any run of characters (dots included), `?` exactly one; everything else itself,
/// case-sensitively (PostgreSQL names are case-sensitive once folded).
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

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("5s"), Ok(secs(5)));
        assert_eq!(parse_duration("5m"), Ok(secs(300)));
        assert_eq!(parse_duration("1h"), Ok(secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2d"), Ok(secs(172_800)));
        assert_eq!(parse_duration(" 10 min "), Ok(secs(600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
    }

    #[test]
    fn bare_numbers_are_refused_with_a_hint() {
        let e = parse_duration("300").expect_err("no unit");
        assert_eq!(e.problem, "`300` has no unit");
        assert_eq!(e.hint, "write 5m or 300s");
        let e = parse_duration("45").expect_err("no unit");
        assert_eq!(e.hint, "write 45s or 45m");
        let e = parse_duration("1h30").expect_err("trailing number");
        assert!(e.problem.contains("has no unit"), "{e}");
    }

    #[test]
    fn bad_durations() {
        for bad in [
            "",
            " ",
            "5x",
            "m5",
            "-5s",
            "5.5s",
            "1,5h",
            "s",
            "5S",
            "5M",
            "1h-30m",
            "5s!",
            "99999999999999999999s",
            "999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse_duration("5M").expect_err("upper").hint,
            "units are lowercase: write 5m"
        );
        assert!(parse_duration("1.5h")
            .expect_err("frac")
            .hint
            .contains("1h30m"));
    }

    #[test]
    fn durations_print_back() {
        for s in ["5s", "5m", "1h30m", "500ms", "2d", "1m500ms"] {
            assert_eq!(format_duration(parse_duration(s).expect("valid")), s);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn sizes_are_1024_based_and_case_insensitive() {
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1 gb"), Ok(1 << 30));
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_size("10kB"), Ok(10 << 10));
        assert_eq!(parse_size("10KB"), Ok(10 << 10));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("100 bytes"), Ok(100));
        assert_eq!(parse_size("1.5GB"), Ok(3 << 29));
        assert_eq!(parse_size("0.5kB"), Ok(512));
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "",
            "GB",
            "1",
            "1024",
            "1XB",
            "1.GB",
            ".5GB",
            "-1GB",
            "1 G B",
            "99999999999999999999GB",
            "999999999999TB",
            "16384PB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse_size("1024").expect_err("bare").hint,
            "write 1024MB or 1024GB (or 1024B for bytes)"
        );
    }

    #[test]
    fn sizes_print_back() {
        assert_eq!(format_size(1 << 30), "1GB");
        assert_eq!(format_size(1536 << 10), "1536kB");
        assert_eq!(format_size(100), "100B");
        assert_eq!(format_size(3 << 29), "1536MB");
        for b in [1u64, 1 << 10, 5 << 20, 3 << 40, 12345] {
            assert_eq!(parse_size(&format_size(b)), Ok(b));
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("public.tmp_*", "public.tmp_orders"));
        assert!(glob_match("public.tmp_*", "public.tmp_"));
        assert!(!glob_match("public.tmp_*", "public.orders"));
        assert!(glob_match("audit.*", "audit.log"));
        assert!(!glob_match("audit.*", "audit_x.log"));
        assert!(glob_match("*.log?", "x.log1"));
        assert!(!glob_match("*.log?", "x.log"));
        assert!(glob_match("*", "anything.at_all"));
        assert!(glob_match("a*b*c", "a.xx.b.yy.c"));
        assert!(!glob_match("a*b*c", "a.xx.c.yy.b"));
        assert!(glob_match("public.t??", "public.t01"));
        assert!(!glob_match("public.t??", "public.t1"));
        assert!(!glob_match("Public.*", "public.x"), "case-sensitive");
        assert!(glob_match("public.é*", "public.éclair"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "x"));
    }
}
