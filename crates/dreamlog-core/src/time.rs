//! Event times: milliseconds since the Unix epoch, bounded, read and written as RFC 3339.
//! Pure: "now" is always given by the caller.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// The last millisecond a time may name: 9999-12-31T23:59:59.999Z. Stores refuse later
/// times on new events (RFC 3339 has four-digit years).
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// RFC 3339 time (UTC, milliseconds) of a ms-since-epoch timestamp; a time past
/// [`MAX_TIME_MS`] (only events stored before stores bounded times) is said as such,
/// never wrapped into another date.
pub fn time_text(ms: u64) -> String {
    if ms > MAX_TIME_MS {
        return format!("{ms} ms (after the year 9999)");
    }
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// A time given by a person, in ms: an RFC 3339 time (`2026-12-01T09:30:00Z`), a date
/// (`2026-12-01`: its first millisecond, UTC), or a time relative to `now_ms` (`-5m`,
/// `-90s`, `-2h`, `-7d`, `-1w`; `ms` for milliseconds). `None`: not a time in any of these
/// forms; `Some(Err)`: one of these forms, out of range.
pub fn parse_time(text: &str, now_ms: u64) -> Option<Result<u64, String>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(bounded(t.timestamp_millis(), text));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let ms = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis())?;
        return Some(bounded(ms, text));
    }
    let ago = text.strip_prefix('-')?;
    let digits = ago.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 12 {
        return None;
    }
    let (n, unit) = ago.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    Some(match n.checked_mul(unit_ms) {
        Some(back) if back <= now_ms => Ok(now_ms - back),
        _ => Err(format!("{text} is before 1970-01-01T00:00:00Z")),
    })
}

fn bounded(ms: i64, text: &str) -> Result<u64, String> {
    if ms < 0 {
        Err(format!("{text} is before 1970-01-01T00:00:00Z"))
    } else if ms as u64 > MAX_TIME_MS {
        Err(format!("{text} is after 9999-12-31T23:59:59.999Z"))
    } else {
        Ok(ms as u64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_every_form_and_out_of_range_ones_are_named() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("2026-12-01T00:00:00Z", now), Some(Ok(1_796_083_200_000)));
        assert_eq!(parse_time("2026-12-01", now), Some(Ok(1_796_083_200_000)));
        assert_eq!(parse_time("-5m", now), Some(Ok(now - 300_000)));
        assert_eq!(parse_time("-90s", now), Some(Ok(now - 90_000)));
        assert_eq!(parse_time("-2h", now), Some(Ok(now - 7_200_000)));
        assert_eq!(parse_time("-1w", now), Some(Ok(now - 604_800_000)));
        assert_eq!(parse_time("-250ms", now), Some(Ok(now - 250)));
        assert!(matches!(parse_time("-999999999999d", now), Some(Err(e)) if e.contains("before 1970")));
        assert!(matches!(parse_time("1969-12-31", now), Some(Err(_))));
        for not_a_time in ["head", "-5", "-m", "-5y", "5m", "abc", "12"] {
            assert_eq!(parse_time(not_a_time, now), None, "{not_a_time}");
        }
    }

    #[test]
    fn times_past_the_year_9999_are_never_printed_as_another_date() {
        assert_eq!(time_text(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time_text(MAX_TIME_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(time_text(u64::MAX), "18446744073709551615 ms (after the year 9999)");
        assert_eq!(time_text(MAX_TIME_MS + 1), "253402300800000 ms (after the year 9999)");
    }
}
