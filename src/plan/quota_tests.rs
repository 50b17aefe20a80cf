use keysmith_api::QuotaBudget;

use super::*;

fn claim(name: &str, minute: i64, holds_key: bool, budget: Option<f64>) -> Claim {
    Claim {
        name: name.to_owned(),
        created: Some(Timestamp::from_second(1_800_000_000 + minute * 60).unwrap()),
        holds_key,
        budget_usd: budget,
        limits: Limits::default(),
        spend_usd: None,
    }
}

fn max_keys(n: u32) -> NamespaceQuota {
    NamespaceQuota {
        max_keys: Some(n),
        ..NamespaceQuota::default()
    }
}

#[test]
fn without_a_quota_every_key_is_admitted() {
    let verdict = judge(
        None,
        vec![claim("a", 0, false, Some(5.0)), claim("b", 1, true, None)],
    );
    assert!(verdict.refused.is_empty());
    assert_eq!(verdict.admitted, 2);
    assert_eq!(verdict.allocated_usd, 5.0);
}

#[test]
fn waiting_keys_are_admitted_oldest_first() {
    let claims = vec![
        claim("young", 3, false, None),
        claim("old", 1, false, None),
        claim("middle", 2, false, None),
    ];
    let verdict = judge(Some(&max_keys(2)), claims);
    assert_eq!(verdict.admitted, 2);
    assert_eq!(verdict.refused.keys().collect::<Vec<_>>(), ["young"]);
    assert!(verdict.refused["young"].contains("quota.maxKeys is 2"));
}

#[test]
fn same_creation_time_is_ordered_by_name() {
    let verdict = judge(
        Some(&max_keys(1)),
        vec![claim("b", 0, false, None), claim("a", 0, false, None)],
    );
    assert_eq!(verdict.refused.keys().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn a_new_key_never_pushes_out_one_that_holds_a_key() {
    // "younger" holds a key although "older" was created first and still waits (say it waited for a
    // quota raise): the key in use stays, the waiting one is refused.
    let verdict = judge(
        Some(&max_keys(1)),
        vec![claim("older", 0, false, None), claim("younger", 5, true, None)],
    );
    assert_eq!(verdict.refused.keys().collect::<Vec<_>>(), ["older"]);
    assert_eq!(verdict.admitted, 1);
    assert_eq!(verdict.overrun, None);
}

#[test]
fn a_lowered_quota_suspends_nothing_and_reports_the_overrun() {
    let quota = NamespaceQuota {
        max_keys: Some(1),
        budget_usd: Some(QuotaBudget {
            limit: 10.0,
            reset: None,
        }),
        ..NamespaceQuota::default()
    };
    let verdict = judge(
        Some(&quota),
        vec![
            claim("a", 0, true, Some(8.0)),
            claim("b", 1, true, Some(8.0)),
            claim("c", 2, false, Some(1.0)),
        ],
    );
    assert_eq!(verdict.admitted, 2);
    assert_eq!(verdict.refused.keys().collect::<Vec<_>>(), ["c"]);
    let overrun = verdict.overrun.expect("overrun reported");
    assert!(overrun.contains("2 keys held, quota.maxKeys is 1"), "{overrun}");
    assert!(
        overrun.contains("$16.00 allocated, quota.budgetUsd.limit is $10.00"),
        "{overrun}"
    );
}

#[test]
fn budgets_add_up_to_the_namespace_allowance() {
    let quota = NamespaceQuota {
        budget_usd: Some(QuotaBudget {
            limit: 100.0,
            reset: None,
        }),
        ..NamespaceQuota::default()
    };
    let verdict = judge(
        Some(&quota),
        vec![
            claim("a", 0, true, Some(60.0)),
            claim("b", 1, false, Some(50.0)),
            // Smaller and younger: fits beside "a" although "b" did not.
            claim("c", 2, false, Some(40.0)),
        ],
    );
    assert_eq!(verdict.refused.keys().collect::<Vec<_>>(), ["b"]);
    assert!(verdict.refused["b"].contains("allocated $60.00 and this key asks for $50.00"));
    assert_eq!(verdict.allocated_usd, 100.0);
}

#[test]
fn require_budget_refuses_a_key_without_one() {
    let quota = NamespaceQuota {
        require_budget: Some(true),
        ..NamespaceQuota::default()
    };
    let verdict = judge(
        Some(&quota),
        vec![claim("none", 0, false, None), claim("some", 1, false, Some(1.0))],
    );
    assert_eq!(verdict.refused.keys().collect::<Vec<_>>(), ["none"]);
    assert!(verdict.refused["none"].contains("quota.requireBudget"));
}

#[test]
fn max_limits_refuse_a_limit_above_the_cap_or_left_out() {
    let quota = NamespaceQuota {
        max_limits: Some(Limits {
            requests_per_minute: Some(600),
            ..Limits::default()
        }),
        ..NamespaceQuota::default()
    };
    let mut high = claim("high", 0, false, None);
    high.limits.requests_per_minute = Some(601);
    let unset = claim("unset", 1, false, None);
    let mut fine = claim("fine", 2, false, None);
    fine.limits.requests_per_minute = Some(600);
    let verdict = judge(Some(&quota), vec![high, unset, fine]);
    assert_eq!(verdict.refused.keys().collect::<Vec<_>>(), ["high", "unset"]);
    assert!(verdict.refused["high"].contains("asks for 601"));
    assert!(verdict.refused["unset"].contains("set spec.limits.requestsPerMinute to at most 600"));
}

#[test]
fn spend_is_summed_over_admitted_keys() {
    let mut a = claim("a", 0, true, Some(10.0));
    a.spend_usd = Some(1.25);
    let mut b = claim("b", 1, true, Some(10.0));
    b.spend_usd = Some(2.5);
    let verdict = judge(None, vec![a, b, claim("c", 2, false, None)]);
    assert_eq!(verdict.spend_usd, Some(3.75));
}
