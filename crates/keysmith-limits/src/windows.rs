//! The providers' calendar windows: a budget resets daily at 00:00 UTC, weekly on Monday 00:00 UTC,
//! monthly on the 1st.

use jiff::{Timestamp, ToSpan, civil::Weekday, tz::TimeZone};
use keysmith_api::BudgetReset;

/// Start of the next window after `now`, in UTC: midnight, Monday midnight, or the 1st of the month.
pub fn next_window_reset(reset: BudgetReset, now: Timestamp) -> Option<Timestamp> {
    let today = now.to_zoned(TimeZone::UTC).date();
    let next = match reset {
        BudgetReset::Daily => today.tomorrow().ok()?,
        BudgetReset::Weekly => today.nth_weekday(1, Weekday::Monday).ok()?,
        BudgetReset::Monthly => today.first_of_month().checked_add(1.month()).ok()?,
        BudgetReset::Never => return None,
    };
    next.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
}
