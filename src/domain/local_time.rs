//! Delivery at each device's local time (`options.local_time: "09:00"`):
//! IANA time zones, and the next time a wall-clock time comes in one.

use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::FieldError;

/// Validates an IANA time zone name (`America/Montevideo`, `UTC`).
pub fn timezone(field: &str, name: &str) -> Result<Tz, FieldError> {
    name.parse::<Tz>().map_err(|_| FieldError::new(field, "timezone must be an IANA time zone, e.g. Europe/Madrid"))
}

/// A wall-clock time of day, to the minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime(NaiveTime);

impl LocalTime {
    /// Parses `HH:MM` (24-hour).
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let refused = || FieldError::new(field, "local_time is HH:MM, 00:00 to 23:59");
        if text.len() != 5 {
            return Err(refused());
        }
        NaiveTime::parse_from_str(text, "%H:%M").map(Self).map_err(|_| refused())
    }

    /// When a device in `zone` (UTC when unknown or unreadable) gets a
    /// notification sent at `now` (ms): now, while its clock shows this
    /// time's minute; otherwise the next time it does. Where a daylight-
    /// saving change skips the time, an hour later by the clock; where it
    /// repeats it, the first time.
    pub fn next_at(self, zone: Option<&str>, now: i64) -> i64 {
        let tz: Tz = zone.and_then(|z| z.parse().ok()).unwrap_or(Tz::UTC);
        let Some(now_utc) = DateTime::<Utc>::from_timestamp_millis(now) else { return now };
        let today = now_utc.with_timezone(&tz).date_naive();
        for day in 0..3 {
            let Some(date) = today.checked_add_signed(Duration::days(day)) else { break };
            let wall = date.and_time(self.0);
            let at = match tz.from_local_datetime(&wall) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t,
                // In a gap: the wall time an hour later exists.
                LocalResult::None => match tz.from_local_datetime(&(wall + Duration::hours(1))) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t,
                    LocalResult::None => continue,
                },
            };
            let at = at.timestamp_millis();
            if at + 60_000 > now {
                return at.max(now);
            }
        }
        now
    }

    /// `HH:MM`.
    pub fn as_text(self) -> String {
        self.0.format("%H:%M").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse_rfc3339;

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).expect("time")
    }

    #[test]
    fn next_local_time_per_zone() {
        let nine = LocalTime::parse("local_time", "09:00").expect("valid");
        let now = at("2026-11-30T10:00:00Z");
        // Madrid is UTC+1 in winter: 09:00 there was an hour ago, so tomorrow.
        assert_eq!(nine.next_at(Some("Europe/Madrid"), now), at("2026-12-01T08:00:00Z"));
        // Montevideo is UTC-3: 09:00 there is 12:00 UTC today.
        assert_eq!(nine.next_at(Some("America/Montevideo"), now), at("2026-11-30T12:00:00Z"));
        // Unknown: UTC.
        assert_eq!(nine.next_at(None, now), at("2026-12-01T09:00:00Z"));
        assert_eq!(nine.next_at(Some("Nowhere/Else"), now), at("2026-12-01T09:00:00Z"));
        // Within the minute: now.
        assert_eq!(nine.next_at(None, at("2026-11-30T09:00:59Z")), at("2026-11-30T09:00:59Z"));
    }

    #[test]
    fn daylight_saving_gaps_and_repeats() {
        // 2026-03-29 02:30 does not exist in Madrid (02:00 → 03:00): at 03:30 local, 01:30 UTC.
        let half_past_two = LocalTime::parse("local_time", "02:30").expect("valid");
        assert_eq!(
            half_past_two.next_at(Some("Europe/Madrid"), at("2026-03-28T23:00:00Z")),
            at("2026-03-29T01:30:00Z")
        );
        // 2026-10-25 02:30 happens twice: the first (UTC+2) is 00:30 UTC.
        assert_eq!(
            half_past_two.next_at(Some("Europe/Madrid"), at("2026-10-24T23:00:00Z")),
            at("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn parses_hh_mm_and_zones() {
        assert!(LocalTime::parse("f", "23:59").is_ok());
        for bad in ["24:00", "9:00", "09:60", "09:00:00", "nine"] {
            assert_eq!(LocalTime::parse("f", bad).expect_err(bad).field, "f");
        }
        assert!(timezone("timezone", "America/Montevideo").is_ok());
        assert!(timezone("timezone", "UTC").is_ok());
        assert_eq!(timezone("timezone", "Mars/Olympus").expect_err("unknown").field, "timezone");
    }
}
