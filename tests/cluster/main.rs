//! The integration tests: one binary, run against a real kube-apiserver and etcd (started by
//! `hack/cluster.sh`; a test fails, never skips, when there is none) and the provider simulators.

// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admission;
mod aixplain_lifecycle;
mod anthropic_lifecycle;
mod apiserver_restart;
mod argocd_health;
mod cluster_hubs;
mod control_plane;
mod crash_safety;
mod crd_drift;
mod deletion_order;
mod digitalocean_lifecycle;
mod fault_suite;
mod gateway_delivery;
mod gateway_routes;
mod google_lifecycle;
mod leader_election;
mod limits_and_windows;
mod openai_lifecycle;
mod openrouter_lifecycle;
mod provider_behaviour;
mod rotation;
mod secret_edits;
mod secret_hygiene;
mod status_times;
mod together_lifecycle;
