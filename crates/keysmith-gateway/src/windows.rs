//! Counting windows. Each is identified by its start, so a reset is simply a new window: nothing has to
//! run at midnight, and a request admitted in one window settles in that window even if it ends in the
//! next.

use jiff::{Timestamp, civil::Weekday, tz::TimeZone};
use keysmith_api::BudgetReset;

/// One window: `[start, end)` in Unix seconds; no end for a lifetime budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First second of the window.
    pub start: i64,
    /// First second after the window, if it ends.
    pub end: Option<i64>,
}

impl Window {
    /// The fixed window of `len_seconds` (aligned to the Unix epoch) holding `now`.
    pub fn fixed(len_seconds: u64, now: Timestamp) -> Self {
        let len = i64::try_from(len_seconds.max(1)).unwrap_or(i64::MAX);
        let secs = now.as_second();
        let start = secs - secs.rem_euclid(len);
        Self {
            start,
            end: start.checked_add(len),
        }
    }

    /// The UTC day holding `now`.
    pub fn day(now: Timestamp) -> Self {
        Self::fixed(86_400, now)
    }

    /// The budget window holding `now`: the UTC day, the week from Monday, the month from the 1st, or
    /// forever. Ends come from keysmith-limits, so the operator and the gateway agree on resets.
    pub fn budget(reset: BudgetReset, now: Timestamp) -> Self {
        let date = now.to_zoned(TimeZone::UTC).date();
        let start = match reset {
            BudgetReset::Daily => Some(date),
            BudgetReset::Weekly => date.nth_weekday(-1, Weekday::Monday).ok().map(|monday| {
                if date.weekday() == Weekday::Monday {
                    date
                } else {
                    monday
                }
            }),
            BudgetReset::Monthly => Some(date.first_of_month()),
            BudgetReset::Never => None,
        };
        let start = start
            .and_then(|d| d.to_zoned(TimeZone::UTC).ok())
            .map_or(0, |z| z.timestamp().as_second());
        let end = keysmith_limits::next_window_reset(reset, now).map(|t| t.as_second());
        Self { start, end }
    }

    /// Whole seconds from `now` until the window ends, at least 1.
    pub fn retry_after(&self, now: Timestamp) -> Option<u64> {
        self.end
            .map(|end| u64::try_from(end - now.as_second()).unwrap_or(0).max(1))
    }

    /// The window's end as a timestamp.
    pub fn end_timestamp(&self) -> Option<Timestamp> {
        self.end.and_then(|e| Timestamp::from_second(e).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn minute_windows_align_to_the_minute() {
        let w = Window::fixed(60, at("2026-12-07T12:00:59Z"));
        assert_eq!(w.start, at("2026-12-07T12:00:00Z").as_second());
        assert_eq!(w.retry_after(at("2026-12-07T12:00:59Z")), Some(1));
        assert_ne!(w, Window::fixed(60, at("2026-12-07T12:01:00Z")));
    }

    #[test]
    fn budget_windows_follow_the_provider_calendar() {
        let now = at("2026-12-09T15:30:00Z"); // a Wednesday
        let daily = Window::budget(BudgetReset::Daily, now);
        assert_eq!(daily.start, at("2026-12-09T00:00:00Z").as_second());
        assert_eq!(daily.end, Some(at("2026-12-10T00:00:00Z").as_second()));
        let weekly = Window::budget(BudgetReset::Weekly, now);
        assert_eq!(weekly.start, at("2026-12-07T00:00:00Z").as_second());
        assert_eq!(weekly.end, Some(at("2026-12-14T00:00:00Z").as_second()));
        let monthly = Window::budget(BudgetReset::Monthly, now);
        assert_eq!(monthly.start, at("2026-12-01T00:00:00Z").as_second());
        assert_eq!(monthly.end, Some(at("2027-01-01T00:00:00Z").as_second()));
        let never = Window::budget(BudgetReset::Never, now);
        assert_eq!((never.start, never.end), (0, None));
        assert_eq!(never.retry_after(now), None);
    }

    #[test]
    fn a_monday_week_starts_that_monday() {
        let w = Window::budget(BudgetReset::Weekly, at("2026-12-07T00:00:01Z"));
        assert_eq!(w.start, at("2026-12-07T00:00:00Z").as_second());
    }
}
