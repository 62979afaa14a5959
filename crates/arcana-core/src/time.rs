//! Timestamps: RFC 3339 UTC with millisecond precision, the one format stored and
//! returned everywhere. A fixed width makes stored timestamps sort correctly as text.

use time::OffsetDateTime;
use time::macros::format_description;

/// The current time.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `2026-11-26T05:13:32.123Z`.
pub fn format(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .expect("formatting a UTC time cannot fail")
}

/// The current time, formatted.
pub fn now_string() -> String {
    format(now())
}

/// Parses any RFC 3339 timestamp.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_fixed_width() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.6 UTC);
        let s = format(t);
        assert_eq!(s, "2026-01-02T03:04:05.600Z");
        assert_eq!(parse(&s), Some(t));
    }
}
