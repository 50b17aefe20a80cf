//! What every simulator is made of: its provider's state, shared by its clones, and the clock, fault
//! queue and request log that the API middleware and the shared hooks work on, with the accessors
//! tests call on them.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::{
    http::{Method, StatusCode},
    response::Response,
};

use super::{api_layer::ApiLayer, clock::Clock, faults::Faults, request_log::RequestLog};

/// A simulator's provider state. Clones share it.
#[derive(Debug, Default)]
pub(crate) struct SharedState<S>(Arc<Mutex<S>>);

impl<S> SharedState<S> {
    pub(crate) fn new(state: S) -> Self {
        Self(Arc::new(Mutex::new(state)))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        // Handlers never leave the state half-updated across a panic point, so poison is harmless.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// Derived, `Clone` would ask the state itself to be `Clone`.
impl<S> Clone for SharedState<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

/// A simulator's clock, fault queue and request log. Clones share all three.
#[derive(Clone, Debug, Default)]
pub struct SimCore {
    pub clock: Clock,
    pub faults: Faults,
    pub log: RequestLog,
}

impl SimCore {
    /// A core on `clock`, with no faults and an empty log.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            faults: Faults::new(),
            log: RequestLog::new(),
        }
    }

    /// The shared API middleware's settings for a provider with this error format and create request.
    pub fn api_layer(
        &self,
        render_error: fn(StatusCode, &str) -> Response,
        is_create: fn(&Method, &str) -> bool,
    ) -> ApiLayer {
        ApiLayer {
            clock: self.clock.clone(),
            faults: self.faults.clone(),
            log: self.log.clone(),
            render_error,
            is_create,
        }
    }
}

/// For APIs that create nothing.
pub fn never_creates(_: &Method, _: &str) -> bool {
    false
}

/// Expands, inside the `impl` of a simulator with a `core: SimCore` field, to the accessors every
/// simulator offers. They are inherent methods rather than a trait's so that tests call them with
/// no import.
macro_rules! core_accessors {
    () => {
        /// Arms a fault for the requests that follow (use [`Fault::on_path`] to aim it).
        ///
        /// [`Fault::on_path`]: crate::faults::Fault::on_path
        pub fn inject(&self, fault: $crate::faults::Fault) {
            self.core.faults.push(fault);
        }

        /// The faults still armed.
        pub fn pending_faults(&self) -> Vec<$crate::faults::Fault> {
            self.core.faults.pending()
        }

        /// Disarms every fault.
        pub fn clear_faults(&self) {
            self.core.faults.clear();
        }

        /// How many requests arrived before a `Retry-After` given to the same credential expired.
        pub fn early_retries(&self) -> usize {
            self.core.log.early_retries()
        }

        /// Every request answered so far (hooks excluded), oldest first.
        pub fn requests(&self) -> Vec<$crate::request_log::RequestRecord> {
            self.core.log.records()
        }

        /// The simulator's clock (shared, so advancing it moves the simulator's time).
        pub fn clock(&self) -> $crate::clock::Clock {
            self.core.clock.clone()
        }
    };
}

pub(crate) use core_accessors;
