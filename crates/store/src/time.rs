//! The two timestamp forms of access logs, parsed by hand: a date library would be the biggest dependency of
//! this crate for two fixed layouts, and a parser per line must not allocate.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Unix milliseconds of a civil date-time with `offset_s` seconds east of UTC, after range checks (leap second
/// 60 is accepted and lands on the next second, as most log tooling does).
fn to_unix_ms(
    year: i64,
    month: u32,
    day: u32,
    hms: (u32, u32, u32),
    millis: u32,
    offset_s: i64,
) -> Option<i64> {
    let (h, mi, s) = hms;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + i64::from(h * 3600 + mi * 60 + s) - offset_s;
    Some(secs * 1000 + i64::from(millis))
}

/// `17/May/2015:10:05:03 +0000` (Apache `%t` and nginx `$time_local`, without the brackets).
pub(crate) fn parse_clf_time(s: &[u8]) -> Option<i64> {
    if s.len() != 26
        || s[2] != b'/'
        || s[6] != b'/'
        || s[11] != b':'
        || s[14] != b':'
        || s[17] != b':'
    {
        return None;
    }
    if s[20] != b' ' {
        return None;
    }
    let day = digits(&s[0..2])?;
    let month = match &s[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    let year = i64::from(digits(&s[7..11])?);
    let hms = (
        digits(&s[12..14])?,
        digits(&s[15..17])?,
        digits(&s[18..20])?,
    );
    let offset = parse_offset(s[21], &s[22..24], &s[24..26])?;
    to_unix_ms(year, month, day, hms, 0, offset)
}

fn parse_offset(sign: u8, hh: &[u8], mm: &[u8]) -> Option<i64> {
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = (digits(hh)?, digits(mm)?);
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * i64::from(h * 3600 + m * 60))
}

/// RFC 3339: `2015-05-17T10:05:03Z`, `2015-05-17T10:05:03.250+02:00`; a space or lower-case `t`/`z` is accepted
/// as RFC 3339 allows. Fractions beyond milliseconds are truncated.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.as_bytes();
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    if !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(digits(&s[0..4])?);
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hms = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    let mut rest = &s[19..];
    let mut millis = 0u32;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let frac = &rest[1..1 + n];
        for i in 0..3 {
            millis = millis * 10 + frac.get(i).map_or(0, |c| u32::from(c - b'0'));
        }
        rest = &rest[1 + n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign, h1, h2, b':', m1, m2] => parse_offset(*sign, &[*h1, *h2], &[*m1, *m2])?,
        _ => return None,
    };
    to_unix_ms(year, month, day, hms, millis, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2015, 5, 17), 16_572);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn clf_time_with_offsets() {
        // date -u -d '2015-05-17 10:05:03' +%s = 1431857103
        assert_eq!(
            parse_clf_time(b"17/May/2015:10:05:03 +0000"),
            Some(1_431_857_103_000)
        );
        assert_eq!(
            parse_clf_time(b"17/May/2015:12:05:03 +0200"),
            Some(1_431_857_103_000)
        );
        assert_eq!(
            parse_clf_time(b"17/May/2015:05:35:03 -0430"),
            Some(1_431_857_103_000)
        );
        assert_eq!(parse_clf_time(b"31/Feb/2015:10:05:03 +0000"), None);
        assert_eq!(parse_clf_time(b"17/Foo/2015:10:05:03 +0000"), None);
        assert_eq!(parse_clf_time(b"17/May/2015:10:05:03 0000"), None);
        assert_eq!(parse_clf_time(b"17/May/2015:24:05:03 +0000"), None);
    }

    #[test]
    fn rfc3339_forms() {
        assert_eq!(
            parse_rfc3339("2015-05-17T10:05:03Z"),
            Some(1_431_857_103_000)
        );
        assert_eq!(
            parse_rfc3339("2015-05-17t10:05:03.2509z"),
            Some(1_431_857_103_250)
        );
        assert_eq!(
            parse_rfc3339("2015-05-17 12:05:03.5+02:00"),
            Some(1_431_857_103_500)
        );
        assert_eq!(parse_rfc3339("2015-05-17T10:05:03"), None);
        assert_eq!(parse_rfc3339("2015-05-17T10:05:03.Z"), None);
        assert_eq!(
            parse_rfc3339("2016-02-29T00:00:00Z"),
            Some(days_from_civil(2016, 2, 29) * 86_400_000)
        );
        assert_eq!(parse_rfc3339("2015-02-29T00:00:00Z"), None);
    }
}
