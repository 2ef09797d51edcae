//! Cumulative daily series (Sensay's historical analytics): one point per UTC day, each the
//! number of items created up to the end of that day, including everything before the window.

use time::{Date, Duration, OffsetDateTime, Time};

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// The window of `days` UTC days ending with the day of `now`: its first day and the instants
/// (microseconds) where it starts and ends (exclusive).
pub fn window(now: OffsetDateTime, days: u16) -> (Date, i64, i64) {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let first = today - Duration::days(i64::from(days.max(1)) - 1);
    let start = crate::timefmt::to_micros(first.with_time(Time::MIDNIGHT).assume_utc());
    (first, start, start + i64::from(days.max(1)) * DAY_US)
}

/// The series from the count before the window and per-day counts (day 0 = `first`; days
/// outside `0..days` are ignored). Exactly `days` points, ascending.
pub fn cumulative(first: Date, days: u16, before: i64, per_day: &[(i64, i64)]) -> Vec<(Date, i64)> {
    let mut total = before;
    (0..i64::from(days))
        .map(|d| {
            total += per_day
                .iter()
                .filter(|(day, _)| *day == d)
                .map(|(_, n)| n)
                .sum::<i64>();
            (first + Duration::days(d), total)
        })
        .collect()
}

/// `YYYY-MM-DD`.
pub fn ymd(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn thirty_points_ending_today() {
        let now = datetime!(2025-03-01 23:59:59.999999 UTC);
        let (first, start, end) = window(now, 30);
        assert_eq!(ymd(first), "2025-01-31");
        assert_eq!(end - start, 30 * DAY_US);
        assert_eq!(
            end,
            crate::timefmt::to_micros(datetime!(2025-03-02 0:00 UTC))
        );
        let s = cumulative(first, 30, 7, &[(0, 1), (29, 2), (3, 4)]);
        assert_eq!(s.len(), 30);
        assert_eq!(s[0], (first, 8));
        assert_eq!(s[2].1, 8);
        assert_eq!(s[3].1, 12);
        assert_eq!(ymd(s[29].0), "2025-03-01");
        assert_eq!(s[29].1, 14);
    }

    #[test]
    fn window_is_in_utc() {
        let now = datetime!(2025-03-02 01:00 +03:00);
        assert_eq!(ymd(window(now, 30).0), "2025-01-31");
    }
}
