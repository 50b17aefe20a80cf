//! The simulators share the operator's adjustable clock, so that a test moves both with one call.

pub use crate::clock::Clock;
