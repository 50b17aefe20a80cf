//! Usage counters behind a trait a shared store can implement (Redis, one script per call).
//!
//! A request takes a *reservation* across every window of its key in one all-or-nothing call:
//! one request, the input bound plus the output cap in tokens, and the estimated cost. When the
//! response ends, the reservation is *settled* with what was really used (or released). Because the
//! reservation holds the worst case, a key with an output cap can never overshoot a limit, however
//! many of its requests run at once.

mod memory;

pub use memory::MemoryCounters;

use jiff::Timestamp;

/// What a counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Requests.
    Requests,
    /// Input plus output tokens.
    Tokens,
    /// Spend in millionths of a US dollar.
    MicroUsd,
}

/// One amount to add to one window's counter, checked against its limit.
#[derive(Clone, Debug, PartialEq)]
pub struct Charge {
    /// The counter: key, scope, metric and window start. Equal ids are the same counter.
    pub counter: String,
    /// The limit's spec path, e.g. `limits.tokensPerMinute`, for errors and metrics.
    pub limit_name: String,
    /// What is counted.
    pub metric: Metric,
    /// The amount reserved.
    pub amount: u64,
    /// The most the window may hold.
    pub limit: u64,
    /// When the window ends (the counter may be forgotten then); `None` for a lifetime budget.
    pub window_end: Option<Timestamp>,
}

/// Whether a reservation may exceed limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// All or nothing: refuse when any charge would exceed its limit.
    Enforce,
    /// Always add; report the charges that went over (`onLimitExceeded: UseAnyway`).
    Record,
}

/// The answer to a reservation.
#[derive(Clone, Debug, PartialEq)]
pub enum Reservation {
    /// Every charge was added. Under [`Mode::Record`], `over` lists the charges (by index) whose
    /// window now exceeds its limit.
    Admitted {
        /// Indices of charges over their limit.
        over: Vec<usize>,
    },
    /// Nothing was added: the charge at `index` would exceed its limit, its window holding `used`.
    Refused {
        /// Index of the first charge that does not fit.
        index: usize,
        /// What the window held.
        used: u64,
    },
}

/// Why a counter store failed.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    /// The shared store could not be reached or answered nonsense.
    #[error("counter store unavailable: {0}")]
    Unavailable(String),
}

/// Check-and-reserve counters.
#[async_trait::async_trait]
pub trait Counters: Send + Sync + 'static {
    /// Adds every charge, or (under [`Mode::Enforce`]) none when one does not fit. A charge fits when
    /// its window holds less than the limit and `used + amount` does not exceed it.
    async fn reserve(
        &self,
        charges: &[Charge],
        mode: Mode,
        now: Timestamp,
    ) -> Result<Reservation, CounterError>;

    /// Replaces each reserved amount with the actual one (`actual[i]` for `charges[i]`; zero releases
    /// it). Windows already forgotten are skipped.
    async fn settle(&self, charges: &[Charge], actual: &[u64]) -> Result<(), CounterError>;
}

/// Whether `amount` fits in a window holding `used` under `limit`.
pub fn fits(used: u64, amount: u64, limit: u64) -> bool {
    used < limit && used.saturating_add(amount) <= limit
}
