//! The gateway in-process, with static routes, in front of a fake provider. No network beyond
//! loopback, no Kubernetes.

// Test code: a failed unwrap is a failed test, in helpers as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod budget;
mod caps;
mod resilience;
mod streaming;
mod support;
mod windows;
