//! How OpenAI's objects map onto keysmith's records: which ids are project keys, a service account's
//! record, and matching an imported value to a masked one.

use super::wire::ServiceAccount;
use crate::{KeyRecord, KeySettings, KeyUsage};

/// Whether `id` names a project key (`key_...`) rather than a service account (`svc_acct_...`): the
/// former come from imports, the latter from keysmith's own mints.
pub(super) fn is_project_key_id(id: &str) -> bool {
    id.starts_with("key_")
}

/// A service account's record. OpenAI holds only its name: no limits, expiry or disabled flag.
pub(super) fn account_only_record(
    account: ServiceAccount,
    label: Option<String>,
    usage: KeyUsage,
) -> KeyRecord {
    KeyRecord {
        settings: KeySettings {
            name: account.name.clone(),
            ..Default::default()
        },
        id: account.id,
        name: account.name,
        label,
        usage,
    }
}

/// Whether a masked value such as `sk-abc...wxyz` can only be `value`'s: its visible head and tail
/// must match and be long enough to mean something.
pub(super) fn mask_matches(masked: &str, value: &str) -> bool {
    let Some((head, tail)) = masked.split_once("...").or_else(|| masked.split_once('…')) else {
        return false;
    };
    head.len() + tail.len() >= 6
        && value.len() > head.len() + tail.len()
        && value.starts_with(head)
        && value.ends_with(tail)
}
