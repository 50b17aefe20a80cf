//! Provider keys a deleted ApiKey could not revoke, recorded on its hub until they are. Each ApiKey
//! gets its own hub annotation, so ApiKeys deleted together never overwrite each other's record.

use std::collections::BTreeMap;

use keysmith_api::well_known::UNREVOKED_ANNOTATION_PREFIX;

/// The record one deleted ApiKey left on its hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unrevoked {
    /// The hub annotation holding it.
    pub annotation: String,
    /// `<namespace>/<name>` of the deleted ApiKey.
    pub api_key: String,
    /// The provider's ids of its keys.
    pub ids: Vec<String>,
}

/// The annotation (name, value) recording that the ApiKey `namespace/name` (uid `uid`) left `ids`
/// unrevoked; none when there is nothing to record.
pub fn record(uid: &str, namespace: &str, name: &str, ids: &[String]) -> Option<(String, String)> {
    let ids: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !id.is_empty())
        .collect();
    (!ids.is_empty() && !uid.is_empty()).then(|| {
        (
            format!("{UNREVOKED_ANNOTATION_PREFIX}{uid}"),
            format!("{namespace}/{name}={}", ids.join(",")),
        )
    })
}

/// The records in a hub's annotations, in annotation order. A value that does not parse is kept with
/// its annotation as the only name, so nothing recorded is ever silently dropped.
pub fn recorded(annotations: &BTreeMap<String, String>) -> Vec<Unrevoked> {
    annotations
        .iter()
        .filter(|(k, _)| k.starts_with(UNREVOKED_ANNOTATION_PREFIX))
        .map(|(k, v)| {
            let (api_key, ids) = v.split_once('=').unwrap_or((k.as_str(), v.as_str()));
            Unrevoked {
                annotation: k.clone(),
                api_key: api_key.to_owned(),
                ids: ids
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            }
        })
        .collect()
}

/// Every id of `records`, sorted, for the hub's status.
pub fn ids(records: &[Unrevoked]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().flat_map(|r| r.ids.iter().cloned()).collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_the_hub_annotations() {
        let (k, v) = record("u-1", "team", "chat", &["k2".into(), "k1".into()]).unwrap();
        assert_eq!(k, "unrevoked.keysmith.dev/u-1");
        assert_eq!(v, "team/chat=k2,k1");
        let mut annotations = BTreeMap::from([(k.clone(), v), ("other".into(), "x".into())]);
        let (k2, v2) = record("u-2", "team", "batch", &["k3".into()]).unwrap();
        annotations.insert(k2, v2);
        let found = recorded(&annotations);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].api_key, "team/chat");
        assert_eq!(found[0].ids, ["k2", "k1"]);
        assert_eq!(found[0].annotation, k);
        assert_eq!(ids(&found), ["k1", "k2", "k3"]);
    }

    #[test]
    fn nothing_is_recorded_without_ids_and_nothing_recorded_is_dropped() {
        assert_eq!(record("u", "ns", "n", &[]), None);
        assert_eq!(record("u", "ns", "n", &[String::new()]), None);
        let odd = BTreeMap::from([("unrevoked.keysmith.dev/u".to_owned(), "k9".to_owned())]);
        let found = recorded(&odd);
        assert_eq!(found[0].ids, ["k9"]);
        assert_eq!(found[0].api_key, "unrevoked.keysmith.dev/u");
    }
}
