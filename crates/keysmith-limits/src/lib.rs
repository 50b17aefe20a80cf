//! What keysmith's limits mean, in one place for the operator and a data-plane gateway alike: the
//! provider's calendar windows, the limit in force and where it came from, which limits usage has
//! reached, and the usage figures reported in status. Pure functions over `keysmith-api` types; no
//! I/O, so every rule is unit-tested without a cluster.

mod breaches;
mod effective;
mod entry_tier;
mod usage;
mod windows;

pub use breaches::{Breach, breaches, daily, operator_blocks, operator_expired, with_daily_counts};
pub use effective::{
    budget_reset_in_force, effective_budget, effective_key_limits, effective_limits, effective_model_limits,
    effective_rate_limit, fold_rate_limit, published_limits,
};
pub use entry_tier::{EntryTier, entry_tier};
pub use usage::{KeyUsage, money, usage_status, usage_while_suspended};
pub use windows::next_window_reset;

#[cfg(test)]
mod tests;
