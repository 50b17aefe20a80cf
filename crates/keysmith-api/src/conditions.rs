//! Condition types and reasons, and the one helper that sets a condition while keeping its
//! `lastTransitionTime` stable unless its status really changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{Schema, SchemaGenerator, json_schema};

/// The resource does what its spec asks.
pub const READY: &str = "Ready";
/// Usage reached an enforced limit.
pub const LIMIT_EXCEEDED: &str = "LimitExceeded";
/// Every limit set is enforced by the provider or keysmith (False: which are only advisory).
pub const LIMITS_ENFORCED: &str = "LimitsEnforced";
/// The provider's record matches the spec as of the last sync (False: a management-API call failed;
/// `Ready` still says whether the delivered key works).
pub const SYNCED: &str = "Synced";
/// The key's expiry has passed.
pub const EXPIRED: &str = "Expired";
/// keysmith is working toward the spec (kstatus).
pub const RECONCILING: &str = "Reconciling";
/// keysmith cannot make progress without a change from the user (kstatus).
pub const STALLED: &str = "Stalled";

/// Sets (or replaces) condition `type_` in `conditions`. The transition time is kept when the status
/// is unchanged, so that writing the same condition twice is a no-op for server-side apply.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" };
    set_status(
        conditions,
        type_,
        status,
        reason,
        message,
        observed_generation,
        now,
    );
}

/// [`set`] with the status as written: `True`, `False` or `Unknown` (keysmith cannot tell).
pub fn set_status(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: &Time,
) {
    let status = status.to_owned();
    let message = message.into();
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status {
            existing.last_transition_time = now.clone();
        }
        existing.status = status;
        existing.reason = reason.to_owned();
        existing.message = message;
        existing.observed_generation = observed_generation;
    } else {
        conditions.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message,
            observed_generation,
            last_transition_time: now.clone(),
        });
    }
}

/// Removes condition `type_`.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Finds condition `type_`.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Schema for a `conditions` list: a map keyed by `type`, so server-side apply merges conditions
/// by type instead of replacing the list.
pub fn schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "description": "Current state, one entry per condition type.",
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string", "description": "Condition type, e.g. Ready."},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"], "description": "True, False or Unknown."},
                "reason": {"type": "string", "description": "Machine-readable reason in CamelCase."},
                "message": {"type": "string", "description": "Human-readable details."},
                "observedGeneration": {"type": "integer", "format": "int64", "description": "Generation the condition describes."},
                "lastTransitionTime": {"type": "string", "format": "date-time", "description": "When the status last changed."}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn transition_time_changes_only_when_status_changes() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            READY,
            false,
            "Pending",
            "waiting",
            Some(1),
            &time("2026-01-01T00:00:00Z"),
        );
        set(
            &mut conditions,
            READY,
            false,
            "Other",
            "still waiting",
            Some(2),
            &time("2026-01-02T00:00:00Z"),
        );
        assert_eq!(conditions[0].last_transition_time, time("2026-01-01T00:00:00Z"));
        assert_eq!(conditions[0].reason, "Other");
        assert_eq!(conditions[0].observed_generation, Some(2));
        set(
            &mut conditions,
            READY,
            true,
            "Ready",
            "ok",
            Some(2),
            &time("2026-01-03T00:00:00Z"),
        );
        assert_eq!(conditions[0].last_transition_time, time("2026-01-03T00:00:00Z"));
        assert!(is_true(&conditions, READY));
        remove(&mut conditions, READY);
        assert!(conditions.is_empty());
    }
}
