//! Unix-second timestamps and RFC 3339 rendering and parsing (no extra crate).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The one deadline loop: asks `f` every `every` until it answers or `limit` has passed
/// (`None`). `f` is asked at least once, and once more at the deadline.
pub fn poll_until<T>(
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(every.min(left));
    }
}

/// TEST ONLY: `METAWSM_TEST_CLOCK_OFFSET=<seconds>` (may be negative) shifts the
/// program's clock, so tests can step it back or jump it forward (suspend) without
/// touching the machine's. Not for real use: every stored time follows it.
pub const TEST_CLOCK_ENV: &str = "METAWSM_TEST_CLOCK_OFFSET";

fn test_clock_offset() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var(TEST_CLOCK_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        .saturating_add(test_clock_offset())
}

/// Days since 1970-01-01 → (year, month, day); Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn parts(ts: i64) -> (i64, u32, u32, i64, i64, i64) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// `2026-11-25T18:49:20Z`
pub fn rfc3339(ts: i64) -> String {
    let (y, m, d, hh, mm, ss) = parts(ts);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// 1970-01-01 + days for a civil date (inverse of civil_from_days).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 (`2026-02-08T09:13:44-08:00`, `…Z`, fractions ignored) → Unix seconds, as
/// the original metawsm wrote its timestamps. `None` for anything else (its "" = none).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' || !matches!(rb[0], b'+' | b'-') {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            let o = oh * 3600 + om * 60;
            if rb[0] == b'-' {
                -o
            } else {
                o
            }
        }
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// The local UTC offset (seconds east) at `ts`, from the C library's time zone rules.
pub fn local_offset(ts: i64) -> i64 {
    let t = ts as nix::libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which we own; a zeroed tm is valid.
    unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        if nix::libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

/// `2026-02-08T09:13:44-08:00`: RFC 3339 with the local offset, as the original wrote
/// its changelog headings (`Z` when local time is UTC).
pub fn rfc3339_local(ts: i64) -> String {
    let off = local_offset(ts);
    if off == 0 {
        return rfc3339(ts);
    }
    let (y, m, d, hh, mm, ss) = parts(ts + off);
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.abs();
    format!(
        "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{sign}{:02}:{:02}",
        a / 3600,
        (a % 3600) / 60
    )
}

/// `20261125-184920`, used for default run ids.
pub fn compact(ts: i64) -> String {
    let (y, m, d, hh, mm, ss) = parts(ts);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

/// Human age: `45s`, `15m`, `2h3m`, `3d4h`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{}h", s / 86_400, (s % 86_400) / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_until_asks_at_least_once_and_gives_up_at_the_limit() {
        let ms = Duration::from_millis;
        let mut asked = 0;
        assert_eq!(
            poll_until(Duration::ZERO, ms(1), || {
                asked += 1;
                None::<()>
            }),
            None
        );
        assert_eq!(asked, 1);
        let mut n = 0;
        assert_eq!(
            poll_until(ms(5_000), ms(1), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
        let t = Instant::now();
        assert_eq!(poll_until(ms(30), ms(5), || None::<()>), None);
        assert!(t.elapsed() >= ms(30));
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_480_681), "2026-11-24T00:38:01Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(compact(1_795_480_681), "20261124-003801");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_the_originals_timestamps() {
        assert_eq!(parse_rfc3339("2026-11-24T00:38:01Z"), Some(1_795_480_681));
        assert_eq!(
            parse_rfc3339("2026-11-23T16:38:01-08:00"),
            Some(1_795_480_681)
        );
        assert_eq!(
            parse_rfc3339("2026-11-24T05:38:01.250+05:00"),
            Some(1_795_480_681)
        );
        for bad in [
            "",
            "x",
            "2026-13-01T00:00:00Z",
            "2026-11-24T00:38:01",
            "2026-11-24T00:38:01+0800",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        for ts in [0, 951_782_400, 1_795_480_681] {
            assert_eq!(parse_rfc3339(&rfc3339(ts)), Some(ts));
            assert_eq!(parse_rfc3339(&rfc3339_local(ts)), Some(ts));
        }
    }

    #[test]
    fn ages_are_compact() {
        assert_eq!(age(45), "45s");
        assert_eq!(age(900), "15m0s");
        assert_eq!(age(3723), "1h2m");
        assert_eq!(age(-5), "0s");
    }
}
