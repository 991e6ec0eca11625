//! Times: parsing what a user types (RFC 3339 in UTC, epoch seconds, ages) and printing
//! nanosecond timestamps the way every query shows them.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "time {0:?}: use 2026-11-28T05:00:00Z (or +01:00, or no zone: local time; the seconds and \
     the time may be left out), seconds since the epoch, or an age such as 10m"
)]
pub struct TimeError(pub String);

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Parses a time: RFC 3339 (`2026-11-28T05:00:00Z`, `…+01:00`, fractions allowed; a space may
/// stand for the `T`, the seconds may be left out), a date and time without a zone (local time,
/// as `TZ` says: `2026-11-28 06:00`), a date alone (local midnight), seconds since the epoch
/// (fractions allowed), or an age (`90s`, `10m`, `2h`, `7d` ago). Returns nanoseconds since
/// the epoch.
pub fn parse_time(s: &str, now_ns: u64) -> Result<u64, TimeError> {
    parse_time_in(s, now_ns, &local_offset_secs)
}

/// Parses an age alone (`90s`, `10m`, `2h`, `7d`): its length in nanoseconds.
pub fn parse_age(s: &str) -> Result<u64, TimeError> {
    model::limits::parse_age(s).ok_or_else(|| TimeError(s.to_string()))
}

/// The local time zone's offset from UTC (seconds east) at the local time given, from the C
/// library (`TZ`, /etc/localtime).
fn local_offset_secs(y: i64, mo: i64, d: i64, h: i64, mi: i64, sec: i64) -> Option<i64> {
    // SAFETY: a zeroed struct tm filled with plain integers; mktime only reads and normalizes it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = (y - 1900) as i32;
    tm.tm_mon = (mo - 1) as i32;
    tm.tm_mday = d as i32;
    tm.tm_hour = h as i32;
    tm.tm_min = mi as i32;
    tm.tm_sec = sec as i32;
    tm.tm_isdst = -1;
    // SAFETY: a valid pointer to the struct above.
    let t = unsafe { libc::mktime(&mut tm) };
    if t == -1 {
        return None;
    }
    Some(epoch_secs(y, mo, d, h, mi, sec) - t)
}

/// Seconds since the epoch of a UTC civil time (days from civil, H. Hinnant).
fn epoch_secs(y: i64, mo: i64, d: i64, h: i64, mi: i64, sec: i64) -> i64 {
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86400 + h * 3600 + mi * 60 + sec
}

type LocalOffset = dyn Fn(i64, i64, i64, i64, i64, i64) -> Option<i64>;

fn parse_time_in(s: &str, now_ns: u64, local: &LocalOffset) -> Result<u64, TimeError> {
    let t = s.trim();
    if let Some(age) = model::limits::parse_age(t) {
        return Ok(now_ns.saturating_sub(age));
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(secs * 1_000_000_000);
    }
    // Seconds since the epoch with a fraction (as `date +%s.%N` prints).
    if let Some((secs, frac)) = t.split_once('.') {
        if let (Ok(secs), true) = (
            secs.parse::<u64>(),
            !frac.is_empty() && frac.len() <= 9 && frac.bytes().all(|b| b.is_ascii_digit()),
        ) {
            let frac_ns: u64 = format!("{frac:0<9}").parse().unwrap_or(0);
            return Ok(secs * 1_000_000_000 + frac_ns);
        }
    }
    let bad = || TimeError(s.to_string());
    // The zone: Z, ±HH:MM or ±HHMM at the end; none: local time.
    let (t, offset): (&str, Option<i64>) = if let Some(r) = t.strip_suffix('Z') {
        (r, Some(0))
    } else {
        let tail = t.len().saturating_sub(6);
        let cut = t
            .char_indices()
            .rev()
            .take(6)
            .find(|(i, c)| (*c == '+' || *c == '-') && *i >= tail && t[..*i].contains(':'))
            .map(|(i, _)| i);
        match cut {
            Some(i) => {
                let z = &t[i + 1..].replace(':', "");
                if z.len() != 4 || !z.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let secs = z[..2].parse::<i64>().map_err(|_| bad())? * 3600
                    + z[2..].parse::<i64>().map_err(|_| bad())? * 60;
                (
                    &t[..i],
                    Some(if t[i..].starts_with('-') { -secs } else { secs }),
                )
            }
            None => (t, None),
        }
    };
    let (date, time) = match t.split_once(['T', ' ']) {
        Some((d, tm)) => (d, tm.trim()),
        None => (t, "00:00:00"),
    };
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if h.len() == 2 {
        h.push(0);
    }
    if d.len() != 3
        || h.len() != 3
        || !(1..=12).contains(&d[1])
        || !(1..=31).contains(&d[2])
        || h[0] > 23
        || h[1] > 59
        || h[2] > 60
        || (date.len() != 10)
    {
        return Err(bad());
    }
    let offset = match offset {
        Some(o) => o,
        None => local(d[0], d[1], d[2], h[0], h[1], h[2]).ok_or_else(bad)?,
    };
    let secs = epoch_secs(d[0], d[1], d[2], h[0], h[1], h[2]) - offset;
    let mut ns = frac.chars().take(9).collect::<String>();
    while ns.len() < 9 {
        ns.push('0');
    }
    let frac_ns: u64 = if frac.is_empty() {
        0
    } else {
        ns.parse().map_err(|_| bad())?
    };
    if secs < 0 {
        return Err(bad());
    }
    Ok(secs as u64 * 1_000_000_000 + frac_ns)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-28T03:38:31Z` for a time in milliseconds since the epoch.
pub fn time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2026-11-28T03:38:31.123456` (UTC, microseconds) for nanoseconds since the epoch.
pub fn time_us(ns: u64) -> String {
    let t = time_ms((ns / 1_000_000) as i64);
    format!("{}.{:06}", t.trim_end_matches('Z'), (ns / 1000) % 1_000_000)
}

/// RFC 3339 in UTC with nanoseconds, `2026-11-28T03:38:31.123456789Z`, for nanoseconds since
/// the epoch (the string every `--json` output pairs with an `_ns` integer).
pub fn time_rfc3339(ns: i128) -> String {
    let ms = ns.div_euclid(1_000_000) as i64;
    let t = time_ms(ms);
    format!(
        "{}.{:09}Z",
        t.trim_end_matches('Z'),
        ns.rem_euclid(1_000_000_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("90s").unwrap(), 90_000_000_000);
        assert_eq!(parse_age("7d").unwrap(), 7 * 86_400 * 1_000_000_000);
        assert!(parse_age("7").is_err() && parse_age("soon").is_err() && parse_age("d").is_err());
    }

    #[test]
    fn rfc3339() {
        assert_eq!(time_rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            time_rfc3339(1_795_837_111_500_000_007),
            "2026-11-28T03:38:31.500000007Z"
        );
        assert_eq!(time_rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
        let t = 1_795_837_111_123_456_789u64;
        assert_eq!(parse_time(&time_rfc3339(t.into()), 0).unwrap(), t);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z", 0).unwrap(), 0);
        assert_eq!(
            parse_time("2026-11-28T03:38:31Z", 0).unwrap(),
            1_795_837_111 * 1_000_000_000
        );
        assert_eq!(
            parse_time("2026-11-28T03:38:31.5Z", 0).unwrap(),
            1_795_837_111_500_000_000
        );
        assert_eq!(
            parse_time("1795837111", 0).unwrap(),
            1_795_837_111 * 1_000_000_000
        );
        assert_eq!(
            parse_time("1795837111.25", 0).unwrap(),
            1_795_837_111_250_000_000
        );
        assert_eq!(
            parse_time("10m", 3_600_000_000_000).unwrap(),
            3_000_000_000_000
        );
        assert_eq!(
            parse_time("2d", 0).unwrap(),
            0,
            "an age before the epoch clamps"
        );
        for bad in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-28T03:38:31+1",
            "26-11-28",
            "5y",
            "1.",
            "1.1234567890",
        ] {
            assert!(parse_time(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_and_local_times() {
        let utc = 1_795_837_111 * 1_000_000_000; // 2026-11-28T03:38:31Z
        assert_eq!(parse_time("2026-11-28T04:38:31+01:00", 0).unwrap(), utc);
        assert_eq!(parse_time("2026-11-28T02:38:31-0100", 0).unwrap(), utc);
        assert_eq!(parse_time("2026-11-28 03:38:31Z", 0).unwrap(), utc);
        // No zone: local time, here a zone two hours east.
        let east2 = |_, _, _, _, _, _| Some(7200);
        assert_eq!(
            parse_time_in("2026-11-28 05:38:31", 0, &east2).unwrap(),
            utc
        );
        assert_eq!(
            parse_time_in("2026-11-28T05:38", 0, &east2).unwrap(),
            utc - 31_000_000_000
        );
        assert_eq!(
            parse_time_in("2026-11-28", 0, &east2).unwrap(),
            (1_795_837_111 - 3 * 3600 - 38 * 60 - 31 - 7200) * 1_000_000_000
        );
    }

    #[test]
    fn printed_times() {
        assert_eq!(time_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(time_ms(1_795_837_111_000), "2026-11-28T03:38:31Z");
        assert_eq!(time_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            time_us(1_795_837_111_123_456_789),
            "2026-11-28T03:38:31.123456"
        );
    }
}
