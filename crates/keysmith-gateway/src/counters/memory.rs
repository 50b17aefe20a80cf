//! Counters in this process's memory: right for one replica (the default). Several replicas each
//! count alone, which multiplies every limit; they need the shared store.

use std::{collections::HashMap, sync::Mutex};

use jiff::Timestamp;

use super::{Charge, CounterError, Counters, Mode, Reservation, fits};

/// In-memory counters behind one mutex: a reservation touches a handful of counters for well under
/// a microsecond, so contention stays negligible at thousands of requests per second.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    counters: HashMap<String, Slot>,
    next_sweep: i64,
}

#[derive(Debug)]
struct Slot {
    value: u64,
    /// Unix second after which the window is over and the slot can go.
    expires: Option<i64>,
}

impl MemoryCounters {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of one counter (tests and the usage report).
    pub fn value(&self, counter: &str) -> u64 {
        self.lock().counters.get(counter).map_or(0, |s| s.value)
    }

    /// How many counters are held (to check that old windows are forgotten).
    pub fn len(&self) -> usize {
        self.lock().counters.len()
    }

    /// Whether no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a counter half-written: each update is one store.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Drops windows that have ended, at most once a second.
    fn sweep(&mut self, now: i64) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + 1;
        self.counters.retain(|_, s| s.expires.is_none_or(|e| e > now));
    }
}

#[async_trait::async_trait]
impl Counters for MemoryCounters {
    async fn reserve(
        &self,
        charges: &[Charge],
        mode: Mode,
        now: Timestamp,
    ) -> Result<Reservation, CounterError> {
        let mut state = self.lock();
        state.sweep(now.as_second());
        let used = |state: &State, c: &Charge| state.counters.get(&c.counter).map_or(0, |s| s.value);
        if mode == Mode::Enforce {
            // Two charges may share a counter (none do today, but a later scope might); sum per counter
            // so the check is the one the additions will make.
            let mut pending: HashMap<&str, u64> = HashMap::new();
            for (index, c) in charges.iter().enumerate() {
                let before = used(&state, c) + pending.get(c.counter.as_str()).copied().unwrap_or(0);
                if !fits(before, c.amount, c.limit) {
                    return Ok(Reservation::Refused { index, used: before });
                }
                *pending.entry(&c.counter).or_default() += c.amount;
            }
        }
        let mut over = Vec::new();
        for (index, c) in charges.iter().enumerate() {
            let slot = state.counters.entry(c.counter.clone()).or_insert(Slot {
                value: 0,
                expires: c.window_end.map(|t| t.as_second()),
            });
            slot.value = slot.value.saturating_add(c.amount);
            if slot.value > c.limit {
                over.push(index);
            }
        }
        Ok(Reservation::Admitted { over })
    }

    async fn settle(&self, charges: &[Charge], actual: &[u64]) -> Result<(), CounterError> {
        let mut state = self.lock();
        for (c, actual) in charges.iter().zip(actual) {
            if let Some(slot) = state.counters.get_mut(&c.counter) {
                slot.value = slot.value.saturating_sub(c.amount).saturating_add(*actual);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Metric;

    fn charge(counter: &str, amount: u64, limit: u64, end: Option<i64>) -> Charge {
        Charge {
            counter: counter.into(),
            limit_name: "x".into(),
            metric: Metric::Tokens,
            amount,
            limit,
            window_end: end.map(|e| Timestamp::from_second(e).unwrap()),
        }
    }

    fn now(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[tokio::test]
    async fn a_reservation_is_all_or_nothing() {
        let c = MemoryCounters::new();
        let charges = [charge("a", 5, 10, None), charge("b", 5, 4, None)];
        let r = c.reserve(&charges, Mode::Enforce, now(0)).await.unwrap();
        assert_eq!(r, Reservation::Refused { index: 1, used: 0 });
        assert_eq!(c.value("a"), 0);
    }

    #[tokio::test]
    async fn settling_replaces_the_reservation_with_actual_use() {
        let c = MemoryCounters::new();
        let charges = [charge("a", 100, 150, None)];
        assert!(matches!(
            c.reserve(&charges, Mode::Enforce, now(0)).await.unwrap(),
            Reservation::Admitted { .. }
        ));
        assert!(matches!(
            c.reserve(&charges, Mode::Enforce, now(0)).await.unwrap(),
            Reservation::Refused { used: 100, .. }
        ));
        c.settle(&charges, &[30]).await.unwrap();
        assert_eq!(c.value("a"), 30);
        assert!(matches!(
            c.reserve(&charges, Mode::Enforce, now(0)).await.unwrap(),
            Reservation::Admitted { .. }
        ));
        assert_eq!(c.value("a"), 130);
    }

    #[tokio::test]
    async fn record_mode_always_adds_and_names_what_went_over() {
        let c = MemoryCounters::new();
        let charges = [charge("a", 1, 1, None), charge("b", 1, 5, None)];
        c.reserve(&charges, Mode::Record, now(0)).await.unwrap();
        let r = c.reserve(&charges, Mode::Record, now(0)).await.unwrap();
        assert_eq!(r, Reservation::Admitted { over: vec![0] });
        assert_eq!(c.value("a"), 2);
    }

    #[tokio::test]
    async fn an_exhausted_window_refuses_even_a_zero_amount() {
        let c = MemoryCounters::new();
        c.reserve(&[charge("usd", 10, 10, None)], Mode::Enforce, now(0))
            .await
            .unwrap();
        let r = c
            .reserve(&[charge("usd", 0, 10, None)], Mode::Enforce, now(0))
            .await
            .unwrap();
        assert!(matches!(r, Reservation::Refused { used: 10, .. }));
    }

    #[tokio::test]
    async fn ended_windows_are_forgotten_and_late_settlements_skip_them() {
        let c = MemoryCounters::new();
        let old = [charge("m0", 3, 10, Some(60))];
        c.reserve(&old, Mode::Enforce, now(10)).await.unwrap();
        c.reserve(&[charge("m1", 1, 10, Some(120))], Mode::Enforce, now(61))
            .await
            .unwrap();
        assert_eq!(c.len(), 1);
        c.settle(&old, &[2]).await.unwrap();
        assert_eq!(c.value("m0"), 0);
    }
}
