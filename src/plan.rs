//! Pure decisions: names, tags, the desired Secret, the desired provider settings, usage windows and
//! effective limits. Nothing here performs I/O, so every branch is unit-tested without a cluster.

use std::collections::BTreeMap;

use jiff::{Timestamp, ToSpan, civil::Weekday, tz::TimeZone};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Resource, ResourceExt, api::ObjectMeta};

use crate::{
    crd::{
        ApiKey, BudgetReset, Capabilities, EffectiveBudget, EffectiveLimits, EffectiveModelLimit,
        EffectiveRate, EffectiveValue, Enforcement, LimitSource, ModelHub, RateLimit, Usage,
    },
    provider::{KeyRecord, KeySettings, KeyUsage, SecretValue},
};

/// Label on every Secret keysmith writes; the Secret watch selects on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "keysmith";
/// Label naming the ApiKey a Secret belongs to.
pub const APIKEY_LABEL: &str = "keysmith.dev/apikey";
/// Annotation on the Secret: the provider id of the key it holds. It is what lets a restarted
/// controller adopt a key whose Secret was written but whose status was not.
pub const KEY_ID_ANNOTATION: &str = "keysmith.dev/key-id";
/// Annotation on the Secret: the fingerprint of the key it holds.
pub const FINGERPRINT_ANNOTATION: &str = "keysmith.dev/fingerprint";
/// Annotation asking for a rotation: each new value rotates the key once.
pub const ROTATE_ANNOTATION: &str = "keysmith.dev/rotate";
/// Annotation keysmith writes on an ApiKey together with its finalizer, in one request, just before
/// the ApiKey's first provider key is created. It is that create's crash-safety marker: until status
/// records a key, it says a key may exist at the provider that nobody knows of. Folding the marker
/// into the finalizer's write is what keeps a first key at three writes (this, the Secret, status).
pub const ISSUING_ANNOTATION: &str = "keysmith.dev/issuing";
/// How long a rotated-out key stays valid when `spec.rotation.overlap` is not set.
pub const DEFAULT_ROTATION_OVERLAP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prefix of the tag keysmith puts in provider-side key names.
pub const TAG_PREFIX: &str = "ks:";

/// Data key publishing the per-request input-token cap in force.
pub const MAX_INPUT_TOKENS_DATA_KEY: &str = "maxInputTokens";
/// Data key publishing the per-request output-token cap in force.
pub const MAX_OUTPUT_TOKENS_DATA_KEY: &str = "maxOutputTokens";

/// What the Secret delivers besides the key: where to call, and the limits clients should apply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delivery {
    /// The hub's inference base URL.
    pub base_url: String,
    /// Extra data keys (e.g. per-request caps) and their values.
    pub published: BTreeMap<String, String>,
}

/// The per-request caps in force (spec, else hub default; 0 means unlimited and is left out),
/// published as Secret data so that clients and gateways can enforce what no provider does.
pub fn published_limits(key: &ApiKey, hub: &ModelHub) -> BTreeMap<String, String> {
    let own = key.spec.request_limits.clone().unwrap_or_default();
    let def = hub
        .spec
        .defaults
        .as_ref()
        .and_then(|d| d.request_limits.clone())
        .unwrap_or_default();
    [
        (
            MAX_INPUT_TOKENS_DATA_KEY,
            own.max_input_tokens.or(def.max_input_tokens),
        ),
        (
            MAX_OUTPUT_TOKENS_DATA_KEY,
            own.max_output_tokens.or(def.max_output_tokens),
        ),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.filter(|v| *v > 0).map(|v| (name.to_owned(), v.to_string())))
    .collect()
}

/// Default data key for the key value.
pub const DEFAULT_API_KEY_DATA_KEY: &str = "apiKey";
/// Default data key for the inference base URL.
pub const DEFAULT_BASE_URL_DATA_KEY: &str = "baseUrl";

/// The tag for one create attempt: `ks:<apikey uid>/<nonce>`. The uid finds every key an ApiKey ever
/// made (even after a crash lost the provider's answer); the nonce tells attempts apart.
pub fn attempt_tag(uid: &str, nonce: &str) -> String {
    format!("{TAG_PREFIX}{uid}/{nonce}")
}

/// The uid part of a provider-side name carrying keysmith's tag, if any.
pub fn tagged_uid(provider_name: &str) -> Option<&str> {
    let start = provider_name.rfind(&format!("[{TAG_PREFIX}"))? + 1 + TAG_PREFIX.len();
    let rest = &provider_name[start..];
    let end = rest.find('/')?;
    rest.ends_with(']').then(|| &rest[..end])
}

/// Name at the provider: the display name followed by the attempt tag.
pub fn provider_key_name(display_name: &str, tag: &str) -> String {
    format!("{display_name} [{tag}]")
}

/// The tag inside a provider-side name, if any.
pub fn name_tag(provider_name: &str) -> Option<&str> {
    let start = provider_name.rfind(&format!("[{TAG_PREFIX}"))? + 1;
    provider_name[start..].strip_suffix(']')
}

/// The display name: the spec's, else `<namespace>/<name>`.
pub fn display_name(key: &ApiKey) -> String {
    key.spec
        .display_name
        .clone()
        .unwrap_or_else(|| format!("{}/{}", key.namespace().unwrap_or_default(), key.name_any()))
}

/// Name of the target Secret.
pub fn secret_name(key: &ApiKey) -> String {
    key.spec
        .secret
        .as_ref()
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| key.name_any())
}

/// Data key names of the target Secret: (value, base URL).
pub fn secret_data_keys(key: &ApiKey) -> (String, String) {
    let keys = key.spec.secret.as_ref().and_then(|s| s.keys.as_ref());
    (
        keys.and_then(|k| k.api_key.clone())
            .unwrap_or_else(|| DEFAULT_API_KEY_DATA_KEY.to_owned()),
        keys.and_then(|k| k.base_url.clone())
            .unwrap_or_else(|| DEFAULT_BASE_URL_DATA_KEY.to_owned()),
    )
}

/// Whether `secret` belongs to `key` (owned through a controller reference with the key's uid).
pub fn secret_owned_by(secret: &Secret, key: &ApiKey) -> bool {
    let uid = key.uid();
    secret
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == uid.as_ref() && r.kind == "ApiKey")
}

/// The key value held in an owned Secret, if any.
pub fn secret_value(secret: &Secret, key: &ApiKey) -> Option<SecretValue> {
    let (data_key, _) = secret_data_keys(key);
    let bytes = secret.data.as_ref()?.get(&data_key)?;
    let text = std::str::from_utf8(&bytes.0).ok()?;
    (!text.is_empty()).then(|| SecretValue::new(text))
}

/// The provider key id recorded on a Secret.
pub fn secret_key_id(secret: &Secret) -> Option<&str> {
    secret.annotations().get(KEY_ID_ANNOTATION).map(String::as_str)
}

/// The Secret keysmith wants for `key`, holding `value` of provider key `key_id`.
pub fn desired_secret(
    key: &ApiKey,
    value: &SecretValue,
    key_id: Option<&str>,
    delivery: &Delivery,
) -> Secret {
    let (value_key, url_key) = secret_data_keys(key);
    let spec = key.spec.secret.clone().unwrap_or_default();
    let mut labels = spec.labels;
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels.insert(APIKEY_LABEL.into(), key.name_any());
    let mut annotations = spec.annotations;
    annotations.insert(FINGERPRINT_ANNOTATION.into(), value.fingerprint());
    if let Some(id) = key_id {
        annotations.insert(KEY_ID_ANNOTATION.into(), id.to_owned());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(key)),
            namespace: key.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: key.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some({
            let mut data: BTreeMap<String, ByteString> = delivery
                .published
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                .collect();
            // Inserted last: the key and URL win should a user name their data keys like a published one.
            data.insert(url_key, ByteString(delivery.base_url.as_bytes().to_vec()));
            data.insert(value_key, ByteString(value.expose().as_bytes().to_vec()));
            data
        }),
        ..Default::default()
    }
}

/// Effective budget: the key's, else the hub default; `None` when neither sets one.
fn effective_budget(key: &ApiKey, hub: &ModelHub) -> Option<(crate::crd::Budget, LimitSource)> {
    if let Some(b) = &key.spec.budget {
        return Some((b.clone(), LimitSource::Spec));
    }
    hub.spec
        .defaults
        .as_ref()?
        .budget
        .clone()
        .map(|b| (b, LimitSource::HubDefault))
}

/// The settings the provider should hold for `key`. `onLimitExceeded: UseAnyway` leaves the budget
/// out at the provider so the key keeps working; keysmith still reports the overrun. A rate limit over
/// a minute or a day is sent as requests per minute or per day (see [`fold_rate_limit`]).
pub fn desired_settings(key: &ApiKey, hub: &ModelHub, tag: &str) -> KeySettings {
    let budget = effective_budget(key, hub).map(|(b, _)| b);
    let enforce = key.spec.on_limit_exceeded.unwrap_or_default() == crate::crd::OnLimitExceeded::Reject;
    let limit_reset = budget
        .as_ref()
        .and_then(|b| b.reset)
        .filter(|r| *r != BudgetReset::Never);
    let mut limits = effective_key_limits(key, hub);
    let other_rate_limit =
        effective_rate_limit(key, hub).and_then(|(rate, _)| fold_rate_limit(&mut limits, rate));
    KeySettings {
        name: provider_key_name(&display_name(key), tag),
        disabled: key.spec.disabled.unwrap_or(false),
        limit_usd: budget.as_ref().filter(|_| enforce).map(|b| b.limit_usd),
        limit_reset: if enforce { limit_reset } else { None },
        include_byok: budget.as_ref().and_then(|b| b.include_byok).unwrap_or(false),
        expires_at: key.spec.expires_at.as_deref().and_then(|t| t.parse().ok()),
        limits,
        other_rate_limit,
        model_limits: effective_model_limits(key, hub),
    }
}

/// `spec.rateLimit`, else the hub's default, with where it came from.
pub fn effective_rate_limit(key: &ApiKey, hub: &ModelHub) -> Option<(RateLimit, LimitSource)> {
    key.spec
        .rate_limit
        .clone()
        .map(|r| (r, LimitSource::Spec))
        .or_else(|| {
            hub.spec
                .defaults
                .as_ref()
                .and_then(|d| d.rate_limit.clone())
                .map(|r| (r, LimitSource::HubDefault))
        })
}

/// Folds a request rate over exactly a minute or a day into `limits`, where it is the same limit as
/// requests per minute or per day (the stricter of the two wins), so a provider that holds those
/// really enforces it. Returns the rate when its interval is neither, for the provider to refuse.
pub fn fold_rate_limit(limits: &mut crate::crd::Limits, rate: RateLimit) -> Option<RateLimit> {
    let slot = match rate.interval_seconds {
        60 => &mut limits.requests_per_minute,
        86_400 => &mut limits.requests_per_day,
        _ => return Some(rate),
    };
    *slot = Some(slot.map_or(rate.requests, |v| v.min(rate.requests)));
    None
}

/// The key-wide request and token limits: each from the spec, else from the hub's defaults.
pub fn effective_key_limits(key: &ApiKey, hub: &ModelHub) -> crate::crd::Limits {
    let own = key.spec.limits.clone().unwrap_or_default();
    let def = hub
        .spec
        .defaults
        .as_ref()
        .and_then(|d| d.limits.clone())
        .unwrap_or_default();
    crate::crd::Limits {
        requests_per_minute: own.requests_per_minute.or(def.requests_per_minute),
        requests_per_day: own.requests_per_day.or(def.requests_per_day),
        tokens_per_minute: own.tokens_per_minute.or(def.tokens_per_minute),
        tokens_per_day: own.tokens_per_day.or(def.tokens_per_day),
    }
}

/// The per-model limits: the spec's list, else the hub's default list.
pub fn effective_model_limits(key: &ApiKey, hub: &ModelHub) -> Vec<crate::crd::ModelLimit> {
    if key.spec.model_limits.is_empty() {
        hub.spec
            .defaults
            .as_ref()
            .map(|d| d.model_limits.clone())
            .unwrap_or_default()
    } else {
        key.spec.model_limits.clone()
    }
}

/// What must happen to an existing provider key to match the desired settings.
#[derive(Debug, PartialEq)]
pub enum KeyChange {
    /// Nothing.
    None,
    /// Patch in place.
    Update,
    /// The key must be re-issued (a field the provider cannot change in place differs).
    Reissue,
}

/// Compares a provider record with the desired settings, looking only at what the provider itself
/// holds (per its capabilities): a field it cannot store would otherwise look changed forever. An
/// expiry the provider cannot change in place (`expiry_in_place` false) means a new key.
pub fn key_change(
    record: &KeyRecord,
    desired: &KeySettings,
    caps: &Capabilities,
    expiry_in_place: bool,
) -> KeyChange {
    let held = |e: Enforcement| e == Enforcement::Provider;
    let have = &record.settings;
    // Whole seconds: a provider that stores expiry at a coarser precision must not look changed
    // forever (each look would re-issue the key).
    let expiry_differs = have.expires_at.map(|t| t.as_second()) != desired.expires_at.map(|t| t.as_second());
    if held(caps.expiry) && expiry_differs && !expiry_in_place {
        return KeyChange::Reissue;
    }
    let same_limit = match (have.limit_usd, desired.limit_usd) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    };
    let sorted = |v: &[crate::crd::ModelLimit]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.model.cmp(&b.model));
        v
    };
    let changed = (held(caps.expiry) && expiry_differs)
        || (held(caps.rename) && have.name != desired.name)
        || (held(caps.disable) && have.disabled != desired.disabled)
        || (held(caps.budget)
            && (!same_limit
                || have.limit_reset != desired.limit_reset
                || have.include_byok != desired.include_byok))
        || (held(caps.rate_limits)
            && (have.limits != desired.limits || have.other_rate_limit != desired.other_rate_limit))
        || (held(caps.model_limits) && sorted(&have.model_limits) != sorted(&desired.model_limits));
    if changed {
        KeyChange::Update
    } else {
        KeyChange::None
    }
}

/// Start of the next window after `now`, in UTC: midnight, Monday midnight, or the 1st of the month.
pub fn next_window_reset(reset: BudgetReset, now: Timestamp) -> Option<Timestamp> {
    let today = now.to_zoned(TimeZone::UTC).date();
    let next = match reset {
        BudgetReset::Daily => today.tomorrow().ok()?,
        BudgetReset::Weekly => today.nth_weekday(1, Weekday::Monday).ok()?,
        BudgetReset::Monthly => today.first_of_month().checked_add(1.month()).ok()?,
        BudgetReset::Never => return None,
    };
    next.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
}

/// Rounds money to a tenth of a cent so float noise never causes a status write.
pub fn money(v: Option<f64>) -> Option<f64> {
    v.map(|x| (x * 1000.0).round() / 1000.0)
}

/// Usage for the status, from the provider's figures and the budget in force.
pub fn usage_status(usage: &KeyUsage, budget_reset: Option<BudgetReset>, now: Timestamp) -> Usage {
    let current = match budget_reset {
        Some(BudgetReset::Daily) => usage.daily_usd,
        Some(BudgetReset::Weekly) => usage.weekly_usd,
        Some(BudgetReset::Monthly) => usage.monthly_usd,
        Some(BudgetReset::Never) | None => usage.total_usd,
    };
    Usage {
        total_usd: money(usage.total_usd),
        daily_usd: money(usage.daily_usd),
        weekly_usd: money(usage.weekly_usd),
        monthly_usd: money(usage.monthly_usd),
        current_usd: money(current),
        remaining_usd: money(usage.remaining_usd),
        window_resets_at: budget_reset
            .and_then(|r| next_window_reset(r, now))
            .map(|t| t.to_string()),
        requests_today: usage.requests_today,
        tokens_today: usage.tokens_today,
        models: usage
            .models
            .iter()
            .map(|m| crate::crd::ModelUsage {
                usd: money(m.usd),
                ..m.clone()
            })
            .collect(),
    }
}

/// Each limit in force for `key`, where it comes from and who enforces it.
pub fn effective_limits(key: &ApiKey, hub: &ModelHub, caps: &Capabilities) -> EffectiveLimits {
    let defaults = hub.spec.defaults.as_ref();
    let mut out = EffectiveLimits::default();
    if let Some((b, source)) = effective_budget(key, hub) {
        out.budget = Some(EffectiveBudget {
            limit_usd: b.limit_usd,
            reset: b.reset.unwrap_or(BudgetReset::Never),
            include_byok: b.include_byok.unwrap_or(false),
            source,
            enforcement: caps.budget,
        });
    }
    out.rate_limit = effective_rate_limit(key, hub).map(|(r, source)| EffectiveRate {
        requests: r.requests,
        interval_seconds: r.interval_seconds,
        source,
        enforcement: caps.rate_limits,
    });
    // Spec, else the hub's default, else the provider's entry tier, which the provider itself enforces
    // on the whole account.
    let pick = |own: Option<u64>, def: Option<u64>, tier: Option<u64>| -> Option<EffectiveValue> {
        own.map(|v| (v, LimitSource::Spec, caps.rate_limits))
            .or(def.map(|v| (v, LimitSource::HubDefault, caps.rate_limits)))
            .or(tier.map(|v| (v, LimitSource::ProviderDefault, Enforcement::Provider)))
            .map(|(value, source, enforcement)| EffectiveValue {
                value,
                source,
                enforcement,
            })
    };
    let own = key.spec.limits.clone().unwrap_or_default();
    let def = defaults.and_then(|d| d.limits.clone()).unwrap_or_default();
    let tier = crate::provider::defaults::entry_tier(hub.spec.provider).unwrap_or_default();
    out.requests_per_minute = pick(
        own.requests_per_minute,
        def.requests_per_minute,
        tier.requests_per_minute,
    );
    out.requests_per_day = pick(own.requests_per_day, def.requests_per_day, tier.requests_per_day);
    out.tokens_per_minute = pick(
        own.tokens_per_minute,
        def.tokens_per_minute,
        tier.tokens_per_minute,
    );
    out.tokens_per_day = pick(own.tokens_per_day, def.tokens_per_day, tier.tokens_per_day);
    let (models, source) = if key.spec.model_limits.is_empty() {
        (
            defaults.map(|d| d.model_limits.clone()).unwrap_or_default(),
            LimitSource::HubDefault,
        )
    } else {
        (key.spec.model_limits.clone(), LimitSource::Spec)
    };
    out.model_limits = models
        .into_iter()
        .map(|m| EffectiveModelLimit {
            model: m.model,
            requests_per_minute: m.requests_per_minute,
            requests_per_day: m.requests_per_day,
            tokens_per_minute: m.tokens_per_minute,
            tokens_per_day: m.tokens_per_day,
            source,
            enforcement: caps.model_limits,
        })
        .collect();
    let req_own = key.spec.request_limits.clone().unwrap_or_default();
    let req_def = defaults
        .and_then(|d| d.request_limits.clone())
        .unwrap_or_default();
    let pick_req = |own: Option<u64>, def: Option<u64>| {
        own.map(|v| (v, LimitSource::Spec))
            .or(def.map(|v| (v, LimitSource::HubDefault)))
            .filter(|(v, _)| *v > 0)
            .map(|(value, source)| EffectiveValue {
                value,
                source,
                enforcement: caps.request_limits,
            })
    };
    out.max_input_tokens = pick_req(req_own.max_input_tokens, req_def.max_input_tokens);
    out.max_output_tokens = pick_req(req_own.max_output_tokens, req_def.max_output_tokens);
    out
}

/// Whether Reject-mode enforcement applies to the budget in force.
pub fn budget_reset_in_force(key: &ApiKey, hub: &ModelHub) -> Option<BudgetReset> {
    effective_budget(key, hub).map(|(b, _)| b.reset.unwrap_or(BudgetReset::Never))
}

/// A limit that usage has reached.
#[derive(Clone, Debug, PartialEq)]
pub struct Breach {
    /// The spec field of the limit, e.g. `budget` or `limits.requestsPerDay`.
    pub limit: &'static str,
    /// What was reached, for the condition message and the Event.
    pub message: String,
    /// Who enforces the limit.
    pub enforcement: Enforcement,
}

/// Every effective limit that `usage` has reached, with its enforcement under `caps`.
pub fn breaches(key: &ApiKey, hub: &ModelHub, usage: &Usage, caps: &Capabilities) -> Vec<Breach> {
    let mut out = Vec::new();
    if let (Some((budget, _)), Some(spent)) = (effective_budget(key, hub), usage.current_usd)
        && spent >= budget.limit_usd
    {
        out.push(Breach {
            limit: "budget",
            message: format!(
                "spend {spent:.3} USD reached the budget of {:.3} USD",
                budget.limit_usd
            ),
            enforcement: caps.budget,
        });
    }
    let limits = effective_key_limits(key, hub);
    let counted = [
        (
            "limits.requestsPerDay",
            "requests",
            limits.requests_per_day,
            usage.requests_today,
        ),
        (
            "limits.tokensPerDay",
            "tokens",
            limits.tokens_per_day,
            usage.tokens_today,
        ),
    ];
    for (limit, unit, cap, used) in counted {
        if let (Some(cap), Some(used)) = (cap, used)
            && used >= cap
        {
            out.push(Breach {
                limit,
                message: format!("{used} {unit} today reached {limit} = {cap}"),
                enforcement: caps.rate_limits,
            });
        }
    }
    // A request rate over a whole day is a daily request cap too (a stricter `limits.requestsPerDay`
    // already reached is the one named).
    if let Some((rate, _)) = effective_rate_limit(key, hub)
        && rate.interval_seconds == 86_400
        && let Some(used) = usage.requests_today
        && used >= rate.requests
        && !out.iter().any(|b| b.limit == "limits.requestsPerDay")
    {
        out.push(Breach {
            limit: "rateLimit",
            message: format!(
                "{used} requests today reached rateLimit = {} per day",
                rate.requests
            ),
            enforcement: caps.rate_limits,
        });
    }
    out
}

/// Whether keysmith itself must stop the key: `Reject` and a reached limit that only keysmith
/// enforces, or an expiry the provider does not hold that has passed.
pub fn operator_blocks(key: &ApiKey, breaches: &[Breach], caps: &Capabilities, now: Timestamp) -> bool {
    let reject = key.spec.on_limit_exceeded.unwrap_or_default() == crate::crd::OnLimitExceeded::Reject;
    let over = reject && breaches.iter().any(|b| b.enforcement == Enforcement::Operator);
    over || operator_expired(key, caps, now)
}

/// Whether `spec.expiresAt` has passed for a provider whose keys carry no expiry of their own.
pub fn operator_expired(key: &ApiKey, caps: &Capabilities, now: Timestamp) -> bool {
    caps.expiry == Enforcement::Operator
        && key
            .spec
            .expires_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|t| t <= now)
}

/// Why a rotation is due now, if it is: a new `keysmith.dev/rotate` value, or the schedule.
pub fn rotation_due(key: &ApiKey, status: &crate::crd::ApiKeyStatus, now: Timestamp) -> Option<&'static str> {
    let rotation = status.rotation.clone().unwrap_or_default();
    if rotation.previous_key_id.is_some() {
        // One rotation at a time: the next waits until the previous key's overlap has ended.
        return None;
    }
    if let Some(token) = key.annotations().get(ROTATE_ANNOTATION)
        && rotation.last_requested_token.as_ref() != Some(token)
    {
        return Some("requested");
    }
    let every = key
        .spec
        .rotation
        .as_ref()
        .and_then(|r| r.every.as_deref())
        .and_then(crate::duration::parse)?;
    let since = rotation
        .last_rotated_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| key.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let due = since
        .checked_add(jiff::SignedDuration::try_from(every).ok()?)
        .ok()?;
    (now >= due).then_some("scheduled")
}

/// How long the previous key stays valid after a rotation.
pub fn rotation_overlap(key: &ApiKey) -> std::time::Duration {
    key.spec
        .rotation
        .as_ref()
        .and_then(|r| r.overlap.as_deref())
        .and_then(crate::duration::parse)
        .unwrap_or(DEFAULT_ROTATION_OVERLAP)
}

/// When the next scheduled rotation falls, counted from `rotated_at`.
pub fn next_rotation(key: &ApiKey, rotated_at: Timestamp) -> Option<Timestamp> {
    let every = key
        .spec
        .rotation
        .as_ref()
        .and_then(|r| r.every.as_deref())
        .and_then(crate::duration::parse)?;
    rotated_at
        .checked_add(jiff::SignedDuration::try_from(every).ok()?)
        .ok()
}

/// Jitters `secs` by ±10% so that many keys created together do not poll together.
pub fn jittered(secs: u64, unit: f64) -> std::time::Duration {
    let factor = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
    std::time::Duration::from_secs_f64(secs as f64 * factor)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

/// Pod-template annotation that restart targets carry: the fingerprint of the key they were rolled for.
pub const RESTARTED_FOR_ANNOTATION: &str = "keysmith.dev/key-fingerprint";

/// What to do with `spec.rotation.restartTargets` after a sync.
#[derive(Debug, PartialEq, Eq)]
pub enum RestartPlan {
    /// Nothing: no targets, no key yet, or the targets already run the current key.
    Nothing,
    /// The first key seen with targets configured: remember it without restarting anyone (workloads
    /// started after the Secret existed already read it).
    Remember(String),
    /// The key changed since the targets were last rolled: restart each once, then remember it.
    Restart(String),
}

/// Decides whether the restart targets must roll, from the key fingerprint in status.
pub fn restart_plan(key: &ApiKey, status: &crate::crd::ApiKeyStatus) -> RestartPlan {
    let targets = key
        .spec
        .rotation
        .as_ref()
        .map(|r| r.restart_targets.len())
        .unwrap_or(0);
    let (Some(current), true) = (status.fingerprint.clone(), targets > 0) else {
        return RestartPlan::Nothing;
    };
    match status.rotation.as_ref().and_then(|r| r.restarted_for.as_deref()) {
        Some(done) if done == current => RestartPlan::Nothing,
        Some(_) => RestartPlan::Restart(current),
        None => RestartPlan::Remember(current),
    }
}

/// Whether a create may have happened that status does not record yet: the status marker of a
/// later create, or the annotation of a first one whose key status has not recorded.
pub fn create_pending(key: &ApiKey, status: &crate::crd::ApiKeyStatus) -> bool {
    status.pending_create.is_some()
        || (status.key_id.is_none()
            && status.suspended.is_none()
            && key.annotations().contains_key(ISSUING_ANNOTATION))
}

/// Why keysmith must revoke the key, where the provider cannot disable keys (`disable: Operator`):
/// the spec disables it, its expiry only keysmith holds has passed, or a limit only keysmith enforces
/// was reached under `Reject`. `None` when the key may work (or the provider disables keys itself).
pub fn suspension_reason(
    key: &ApiKey,
    breaches: &[Breach],
    caps: &Capabilities,
    now: Timestamp,
) -> Option<&'static str> {
    if caps.disable != Enforcement::Operator {
        return None;
    }
    let reject = key.spec.on_limit_exceeded.unwrap_or_default() == crate::crd::OnLimitExceeded::Reject;
    if key.spec.disabled.unwrap_or(false) {
        Some("Disabled")
    } else if operator_expired(key, caps, now) {
        Some("Expired")
    } else if reject && breaches.iter().any(|b| b.enforcement == Enforcement::Operator) {
        Some("LimitExceeded")
    } else {
        None
    }
}

/// The usage to judge a suspended key by: what was last reported, or nothing once the window that
/// report belongs to has reset (the revoked key can spend no more, and a new key starts at zero).
pub fn usage_while_suspended(status: &crate::crd::ApiKeyStatus, now: Timestamp) -> Usage {
    let last = status.usage.clone().unwrap_or_default();
    let reset = last
        .window_resets_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|t| t <= now);
    if reset { Usage::default() } else { last }
}

/// Whether this pass is about to create the ApiKey's first provider key: it then needs no separate
/// finalizer write, since the create's marker carries the finalizer (see [`ISSUING_ANNOTATION`]).
pub fn first_key_pending(key: &ApiKey) -> bool {
    let status = key.status.as_ref();
    key.spec.import.is_none()
        && status.is_none_or(|s| s.key_id.is_none() && s.pending_create.is_none() && s.suspended.is_none())
}
