//! One table row per path through `decide`: every `Step` is reached, and each row names the
//! guarantee it holds.

use jiff::Timestamp;
use keysmith_api::{
    ApiKeySpec, ApiKeyStatus, Capabilities, CreateKind, Enforcement, ModelHub, ModelHubSpec, PendingCreate,
    RotationStatus, Suspension, SuspensionReason,
    well_known::{ISSUING_ANNOTATION, ROTATE_ANNOTATION},
};
use keysmith_providers::{KeyRecord, KeyUsage};

use super::*;

const TAG: &str = "ks:uid-1/n1";
const NOW: &str = "2026-12-07T12:00:00Z";

/// The world one decision sees, owned; [`World::decide`] lends it to `decide`.
struct World {
    key: ApiKey,
    hub: ModelHub,
    caps: Capabilities,
    expiry_in_place: bool,
    status: ApiKeyStatus,
    held_id: Option<String>,
    record: Record,
    recovered: bool,
    import: Option<ImportView>,
    denied: bool,
}

fn caps(e: Enforcement) -> Capabilities {
    Capabilities {
        budget: e,
        rate_limits: e,
        model_limits: e,
        request_limits: e,
        expiry: e,
        disable: e,
        rename: e,
        usage: e,
        provisioning: e,
        rotation: e,
    }
}

impl World {
    /// An ApiKey with `spec` (merged over a bare `hubRef`), on a hub whose provider holds everything.
    fn new(spec: serde_json::Value) -> Self {
        let mut base = serde_json::json!({"hubRef": {"name": "hub"}});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
            base.extend(extra.clone());
        }
        let spec: ApiKeySpec = serde_json::from_value(base).unwrap();
        let mut key = ApiKey::new("app", spec);
        key.metadata.namespace = Some("team-a".into());
        key.metadata.uid = Some("uid-1".into());
        key.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-12-01T00:00:00Z".parse().unwrap(),
        ));
        let hub_spec: ModelHubSpec =
            serde_json::from_value(serde_json::json!({"provider": "openrouter"})).unwrap();
        Self {
            key,
            hub: ModelHub::new("hub", hub_spec),
            caps: caps(Enforcement::Provider),
            expiry_in_place: true,
            status: ApiKeyStatus::default(),
            held_id: None,
            record: Record::Unread,
            recovered: false,
            import: None,
            denied: false,
        }
    }

    /// Its ClusterModelHub no longer allows its namespace.
    fn denied(mut self) -> Self {
        self.denied = true;
        self
    }

    /// A live key `k1` whose value the Secret holds and whose record matches the spec.
    fn live(mut self) -> Self {
        self.status.key_id = Some("k1".into());
        self.held_id = Some("k1".into());
        self.record = Record::Found(self.record_matching_spec());
        self
    }

    fn record_matching_spec(&self) -> KeyRecord {
        let settings = plan::desired_settings(&self.key, &self.hub, TAG);
        KeyRecord {
            id: "k1".into(),
            name: settings.name.clone(),
            label: Some("sk-...abc".into()),
            settings,
            usage: KeyUsage::default(),
        }
    }

    /// Where the provider cannot disable keys: keysmith revokes them instead.
    fn revoking(mut self) -> Self {
        self.caps.disable = Enforcement::Operator;
        self
    }

    fn suspended(mut self, key_id: Option<&str>) -> Self {
        self.status.key_id = key_id.map(str::to_owned);
        self.status.suspended = Some(Suspension {
            reason: SuspensionReason::Disabled,
            since: "2026-12-07T11:00:00Z".into(),
            revoked_key_id: None,
        });
        self
    }

    fn imported(mut self, record: Option<KeyRecord>) -> Self {
        self.import = Some(ImportView {
            record,
            regenerated: false,
            validated: false,
        });
        self
    }

    fn decide(&self) -> Step {
        decide(&Observed {
            key: &self.key,
            hub: &self.hub,
            caps: self.caps.clone(),
            expiry_in_place: self.expiry_in_place,
            status: &self.status,
            held_id: self.held_id.as_deref(),
            record: &self.record,
            recovered: self.recovered,
            import: self.import.as_ref(),
            fresh_tag: TAG,
            denied: self.denied,
            now: NOW.parse::<Timestamp>().unwrap(),
        })
    }
}

fn spec(json: serde_json::Value) -> World {
    World::new(json)
}

fn plain() -> World {
    spec(serde_json::json!({}))
}

#[test]
fn a_new_key_is_issued_and_nothing_else_happens_first() {
    assert_eq!(plain().decide(), Step::Issue(CreateKind::Create, None));
}

#[test]
fn an_interrupted_create_is_recovered_before_anything_else_and_only_once() {
    // The first key's marker rides on an annotation; a later one's in status.
    let mut w = plain();
    w.key.metadata.annotations = Some([(ISSUING_ANNOTATION.to_owned(), TAG.to_owned())].into());
    assert_eq!(w.decide(), Step::Recover);
    w.recovered = true;
    assert_eq!(
        w.decide(),
        Step::Issue(CreateKind::Create, None),
        "recovered, nothing adopted"
    );
    let mut w = plain().live();
    w.status.pending_create = Some(PendingCreate {
        tag: TAG.into(),
        reason: CreateKind::Rotate,
    });
    assert_eq!(w.decide(), Step::Recover);
}

#[test]
fn a_previous_key_is_revoked_once_its_overlap_has_ended_and_not_before() {
    let mut w = plain().live();
    w.status.rotation = Some(RotationStatus {
        previous_key_id: Some("k0".into()),
        previous_key_revoke_at: Some("2026-12-07T11:59:59Z".into()),
        ..Default::default()
    });
    assert_eq!(w.decide(), Step::RevokePrevious);
    if let Some(r) = w.status.rotation.as_mut() {
        r.previous_key_revoke_at = Some("2026-12-07T12:30:00Z".into());
    }
    assert_eq!(w.decide(), Step::Keep, "still in its overlap");
}

#[test]
fn a_suspension_finishes_its_revocation_then_holds_until_the_key_may_work() {
    let w = plain().revoking().suspended(Some("k1"));
    assert_eq!(
        w.decide(),
        Step::FinishRevoke,
        "recorded, but the key is still live"
    );
    let mut w = plain().revoking().suspended(None);
    w.key.spec.disabled = Some(true);
    assert_eq!(w.decide(), Step::StaySuspended);
    w.key.spec.disabled = Some(false);
    assert_eq!(
        w.decide(),
        Step::Restore,
        "enabled again: a new key is issued next"
    );
}

#[test]
fn the_record_is_read_before_judging_a_key() {
    let mut w = plain();
    w.status.key_id = Some("k1".into());
    w.held_id = Some("k1".into());
    assert_eq!(w.decide(), Step::ReadRecord);
}

#[test]
fn a_key_that_matches_its_spec_is_kept() {
    assert_eq!(plain().live().decide(), Step::Keep);
}

#[test]
fn a_change_the_provider_holds_is_made_in_place() {
    let mut w = plain().live();
    w.key.spec.display_name = Some("renamed".into());
    match w.decide() {
        Step::Update { desired, blocked } => {
            assert_eq!(desired.name, format!("renamed [{TAG}]"));
            assert!(!blocked);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_expiry_the_provider_cannot_change_in_place_re_issues_the_key() {
    let mut w = spec(serde_json::json!({"expiresAt": "2027-01-01T00:00:00Z"})).live();
    if let Record::Found(r) = &mut w.record {
        r.settings.expires_at = Some("2026-12-31T00:00:00Z".parse().unwrap());
    }
    w.expiry_in_place = false;
    assert_eq!(w.decide(), Step::Issue(CreateKind::Reissue, None));
    w.expiry_in_place = true;
    assert!(matches!(w.decide(), Step::Update { .. }));
}

#[test]
fn a_requested_or_scheduled_rotation_issues_a_new_key() {
    let mut w = plain().live();
    w.key.metadata.annotations = Some([(ROTATE_ANNOTATION.to_owned(), "t1".to_owned())].into());
    assert_eq!(w.decide(), Step::Issue(CreateKind::Rotate, Some("requested")));
    let w = spec(serde_json::json!({"rotation": {"every": "24h"}})).live();
    assert_eq!(w.decide(), Step::Issue(CreateKind::Rotate, Some("scheduled")));
}

#[test]
fn a_key_gone_at_the_provider_or_from_its_secret_is_replaced() {
    let mut w = plain().live();
    w.record = Record::Missing;
    assert_eq!(w.decide(), Step::Issue(CreateKind::Replace, None));
    let mut w = plain().live();
    w.held_id = Some("k0".into());
    assert_eq!(
        w.decide(),
        Step::Issue(CreateKind::Replace, None),
        "the Secret holds another key's value: k1's cannot be read back"
    );
}

#[test]
fn a_key_that_must_not_work_is_revoked_where_it_cannot_be_disabled() {
    let mut w = plain().revoking().live();
    w.key.spec.disabled = Some(true);
    assert_eq!(
        w.decide(),
        Step::Suspend {
            why: SuspensionReason::Disabled,
            report_usage: true
        }
    );
    w.held_id = None;
    assert_eq!(
        w.decide(),
        Step::Suspend {
            why: SuspensionReason::Disabled,
            report_usage: false
        },
        "live but unheld: revoked all the same"
    );
}

#[test]
fn a_key_that_must_not_work_is_never_issued() {
    let mut w = plain().revoking();
    w.key.spec.disabled = Some(true);
    assert_eq!(w.decide(), Step::Withhold(SuspensionReason::Disabled));
}

#[test]
fn where_the_provider_disables_keys_a_disabled_key_is_switched_off_in_place() {
    let mut w = plain().live();
    w.key.spec.disabled = Some(true);
    assert!(matches!(w.decide(), Step::Update { desired, .. } if desired.disabled));
}

#[test]
fn an_import_the_provider_keeps_no_record_of_is_validated_only() {
    assert_eq!(plain().imported(None).decide(), Step::Validate);
}

#[test]
fn a_managed_import_is_checked_then_kept_or_updated() {
    let w = plain();
    let record = w.record_matching_spec();
    let mut w = w.imported(Some(record.clone()));
    assert_eq!(w.decide(), Step::CheckImported);
    if let Some(view) = w.import.as_mut() {
        view.validated = true;
    }
    w.key.spec.display_name = Some(record.settings.name.clone());
    assert_eq!(w.decide(), Step::Keep);
    w.key.spec.display_name = Some("renamed".into());
    assert!(matches!(w.decide(), Step::Update { desired, .. } if desired.name == "renamed"));
}

#[test]
fn an_import_is_regenerated_when_a_rotation_is_due_or_one_was_cut_short() {
    let w = plain();
    let record = w.record_matching_spec();
    let mut w = w.imported(Some(record));
    w.key.metadata.annotations = Some([(ROTATE_ANNOTATION.to_owned(), "t1".to_owned())].into());
    assert_eq!(w.decide(), Step::Regenerate("requested"));
    w.key.metadata.annotations = None;
    w.status.pending_create = Some(PendingCreate {
        tag: "k1".into(),
        reason: CreateKind::Regenerate,
    });
    assert_eq!(w.decide(), Step::Regenerate("interrupted"));
    if let Some(view) = w.import.as_mut() {
        view.regenerated = true;
    }
    assert!(
        !matches!(w.decide(), Step::Regenerate(_) | Step::CheckImported),
        "a fresh value needs neither"
    );
    w.caps.rotation = Enforcement::Unsupported;
    if let Some(view) = w.import.as_mut() {
        view.regenerated = false;
    }
    assert_eq!(
        w.decide(),
        Step::CheckImported,
        "no regeneration where the provider has none"
    );
}

#[test]
fn only_preparatory_steps_ask_again() {
    let preparatory = [
        Step::Recover,
        Step::RevokePrevious,
        Step::FinishRevoke,
        Step::Restore,
        Step::ReadRecord,
        Step::Regenerate("requested"),
        Step::CheckImported,
    ];
    assert!(preparatory.iter().all(|s| !s.is_final()));
    let last = [
        Step::Keep,
        Step::Issue(CreateKind::Create, None),
        Step::Withhold(SuspensionReason::Expired),
        Step::StaySuspended,
        Step::Validate,
    ];
    assert!(last.iter().all(Step::is_final));
}

#[test]
fn a_namespace_its_hub_no_longer_allows_has_its_key_switched_off_not_deleted() {
    match World::new(serde_json::json!({})).live().denied().decide() {
        Step::Update { desired, blocked } => assert!(desired.disabled && blocked),
        other => panic!("expected the key disabled in place, got {other:?}"),
    }
}

#[test]
fn where_keys_cannot_be_disabled_a_denied_key_is_revoked_and_comes_back_once_allowed() {
    let step = World::new(serde_json::json!({}))
        .live()
        .revoking()
        .denied()
        .decide();
    assert_eq!(
        step,
        Step::Suspend {
            why: SuspensionReason::HubNotAllowed,
            report_usage: true
        }
    );
    let mut world = World::new(serde_json::json!({})).revoking().suspended(None);
    if let Some(s) = world.status.suspended.as_mut() {
        s.reason = SuspensionReason::HubNotAllowed;
    }
    assert_eq!(world.denied().decide(), Step::StaySuspended);
    let mut world = World::new(serde_json::json!({})).revoking().suspended(None);
    if let Some(s) = world.status.suspended.as_mut() {
        s.reason = SuspensionReason::HubNotAllowed;
    }
    assert_eq!(world.decide(), Step::Restore);
}
