//! The route table: issued-key hash → route, fed from route Secrets by a [`RouteSource`].
//!
//! A route that cannot be read (a version this gateway does not know, or a malformed document) never
//! replaces the one the gateway already has for that Secret: during a rolling upgrade the newer
//! operator may write documents an older gateway cannot read, and dropping the route would cut
//! traffic that the old route still serves correctly.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use keysmith_api::{
    OnLimitExceeded,
    gateway_route::{
        ApiKeyRef, GatewayApi, GatewayRoute, ModelPrice, ROUTE_DATA_KEY, RouteLimits, RouteParseError,
        RouteState, UPSTREAM_KEY_DATA_KEY,
    },
};
use keysmith_core::SecretValue;

use crate::metrics::Metrics;

/// One ApiKey's route, ready to serve.
#[derive(Debug)]
pub struct Route {
    /// The ApiKey the route serves.
    pub key: ApiKeyRef,
    /// Protocol of the upstream.
    pub api: GatewayApi,
    /// Upstream base URL without a trailing slash.
    pub upstream: String,
    /// Whether the key may be used.
    pub state: RouteState,
    /// Limits in force.
    pub limits: RouteLimits,
    /// What happens when a limit is reached.
    pub on_limit_exceeded: OnLimitExceeded,
    /// Prices per model.
    pub pricing: Vec<ModelPrice>,
    /// The provider key sent upstream.
    pub upstream_key: SecretValue,
    /// SHA-256 of the key issued to the app.
    pub issued_key_sha256: [u8; 32],
    /// SHA-256 of the key issued before a rotation, accepted during its overlap.
    pub previous_issued_key_sha256: Option<[u8; 32]>,
}

impl Route {
    /// Whether `digest` is the SHA-256 of a key this route admits, compared in constant time.
    pub fn admits(&self, digest: &[u8; 32]) -> bool {
        use subtle::ConstantTimeEq;
        let current = self.issued_key_sha256.ct_eq(digest);
        let previous = self
            .previous_issued_key_sha256
            .map_or(subtle::Choice::from(0), |p| p.ct_eq(digest));
        bool::from(current | previous)
    }
}

impl Route {
    /// Price of `model`, if the route lists one.
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        self.pricing.iter().find(|p| p.model == model)
    }
}

/// Why a route Secret could not become a route.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The Secret has no `route.json` or no `upstreamKey`.
    #[error("the Secret has no data key {0}")]
    MissingData(&'static str),
    /// `route.json` could not be read.
    #[error(transparent)]
    Parse(#[from] RouteParseError),
    /// `issuedKeySha256` is not 64 hex characters.
    #[error("issuedKeySha256 is not a hex SHA-256")]
    BadHash,
    /// `upstreamKey` is not UTF-8 text.
    #[error("upstreamKey is not UTF-8")]
    BadUpstreamKey,
}

impl RouteError {
    /// Short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            RouteError::MissingData(_) => "missing_data",
            RouteError::Parse(RouteParseError::UnknownVersion { .. }) => "unknown_version",
            RouteError::Parse(RouteParseError::Malformed(_)) => "malformed",
            RouteError::BadHash => "bad_hash",
            RouteError::BadUpstreamKey => "bad_upstream_key",
        }
    }
}

/// Builds a route from a route Secret's data.
pub fn route_from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Route, RouteError> {
    let doc = data
        .get(ROUTE_DATA_KEY)
        .ok_or(RouteError::MissingData(ROUTE_DATA_KEY))?;
    let upstream_key = data
        .get(UPSTREAM_KEY_DATA_KEY)
        .ok_or(RouteError::MissingData(UPSTREAM_KEY_DATA_KEY))?;
    let upstream_key = std::str::from_utf8(upstream_key).map_err(|_| RouteError::BadUpstreamKey)?;
    route_from_document(GatewayRoute::parse(doc)?, SecretValue::new(upstream_key.trim()))
}

/// Builds a route from a parsed document and its upstream key.
pub fn route_from_document(doc: GatewayRoute, upstream_key: SecretValue) -> Result<Route, RouteError> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(doc.issued_key_sha256.trim(), &mut hash).map_err(|_| RouteError::BadHash)?;
    let previous = match doc.previous_issued_key_sha256.as_deref() {
        Some(text) => {
            let mut previous = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut previous).map_err(|_| RouteError::BadHash)?;
            Some(previous)
        }
        None => None,
    };
    Ok(Route {
        key: doc.api_key,
        api: doc.api,
        upstream: doc.upstream.trim_end_matches('/').to_owned(),
        state: doc.state,
        limits: doc.limits,
        on_limit_exceeded: doc.on_limit_exceeded,
        pricing: doc.pricing,
        upstream_key,
        issued_key_sha256: hash,
        previous_issued_key_sha256: previous,
    })
}

/// The routes in force, by Secret name and by issued-key hash.
#[derive(Debug, Default)]
pub struct RouteTable {
    inner: RwLock<Tables>,
    synced: AtomicBool,
    metrics: Option<Arc<Metrics>>,
}

#[derive(Debug, Default)]
struct Tables {
    by_secret: HashMap<String, Arc<Route>>,
    by_hash: HashMap<[u8; 32], Arc<Route>>,
}

impl Tables {
    fn reindex(&mut self) {
        self.by_hash = self
            .by_secret
            .values()
            .flat_map(|r| {
                std::iter::once(r.issued_key_sha256)
                    .chain(r.previous_issued_key_sha256)
                    .map(move |hash| (hash, r.clone()))
            })
            .collect();
    }
}

impl RouteTable {
    /// An empty table that reports route errors to `metrics`.
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            metrics,
            ..Self::default()
        }
    }

    /// The route for an issued key's SHA-256.
    pub fn lookup(&self, hash: &[u8; 32]) -> Option<Arc<Route>> {
        self.read().by_hash.get(hash).cloned()
    }

    /// Every route, for the usage report.
    pub fn routes(&self) -> Vec<Arc<Route>> {
        self.read().by_secret.values().cloned().collect()
    }

    /// Applies one Secret's content. An unreadable route keeps the Secret's previous route.
    pub fn apply(&self, secret: &str, route: Result<Route, RouteError>) {
        match route {
            Ok(route) => {
                let mut tables = self.write();
                tables.by_secret.insert(secret.to_owned(), Arc::new(route));
                tables.reindex();
            }
            Err(err) => self.report(secret, &err),
        }
        self.report_count();
    }

    /// Forgets a deleted Secret's route.
    pub fn remove(&self, secret: &str) {
        let mut tables = self.write();
        if tables.by_secret.remove(secret).is_some() {
            tables.reindex();
        }
        drop(tables);
        self.report_count();
    }

    /// Replaces the whole table with a full listing (a watch's initial list or relist). Secrets that
    /// are unreadable keep their previous route; Secrets that are gone lose theirs.
    pub fn resync(&self, listing: Vec<(String, Result<Route, RouteError>)>) {
        let mut tables = self.write();
        let mut next = HashMap::with_capacity(listing.len());
        for (secret, route) in listing {
            match route {
                Ok(route) => {
                    next.insert(secret, Arc::new(route));
                }
                Err(err) => {
                    let old = tables.by_secret.get(&secret).cloned();
                    self.report_with(&secret, &err, old.is_some());
                    if let Some(old) = old {
                        next.insert(secret, old);
                    }
                }
            }
        }
        tables.by_secret = next;
        tables.reindex();
        drop(tables);
        self.report_count();
    }

    /// Records that the first full listing has been applied (what `/readyz` waits for).
    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// Whether the first full listing has been applied.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn report(&self, secret: &str, err: &RouteError) {
        let kept = self.read().by_secret.contains_key(secret);
        self.report_with(secret, err, kept);
    }

    // Takes no lock: `resync` calls it while holding the write lock.
    fn report_with(&self, secret: &str, err: &RouteError, kept: bool) {
        tracing::warn!(secret, error = %err, kept_previous = kept, "route Secret not applied");
        if let Some(m) = &self.metrics {
            m.route_error(err.reason());
        }
    }

    fn report_count(&self) {
        if let Some(m) = &self.metrics {
            let n = self.read().by_secret.len();
            m.set_routes(n);
        }
    }

    // A poisoned lock only means a panic elsewhere while holding it; the maps are still whole because
    // every writer replaces them in one assignment.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Something that keeps a [`RouteTable`] filled: the Kubernetes watch in production, a fixed list in
/// tests.
#[async_trait::async_trait]
pub trait RouteSource: Send + 'static {
    /// Feeds `table` until the source ends (a watch never does) or fails.
    async fn run(self: Box<Self>, table: Arc<RouteTable>) -> Result<(), crate::Error>;
}

/// A fixed set of routes, applied once.
#[derive(Debug, Default)]
pub struct StaticRoutes {
    routes: Vec<(String, GatewayRoute, SecretValue)>,
}

impl StaticRoutes {
    /// Adds a route under a Secret name.
    pub fn with(mut self, secret: &str, route: GatewayRoute, upstream_key: SecretValue) -> Self {
        self.routes.push((secret.to_owned(), route, upstream_key));
        self
    }
}

/// One entry of a routes file.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileRoute {
    secret: String,
    route: GatewayRoute,
    upstream_key: String,
}

impl StaticRoutes {
    /// Reads a routes file: a JSON list of `{"secret", "route", "upstreamKey"}`.
    pub fn from_file(path: &std::path::Path) -> Result<Self, crate::Error> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| crate::Error::RoutesFile {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read(path).map_err(|e| fail(e.into()))?;
        let entries: Vec<FileRoute> = serde_json::from_slice(&text).map_err(|e| fail(e.into()))?;
        Ok(entries.into_iter().fold(Self::default(), |routes, e| {
            routes.with(&e.secret, e.route, SecretValue::new(e.upstream_key))
        }))
    }
}

#[async_trait::async_trait]
impl RouteSource for StaticRoutes {
    async fn run(self: Box<Self>, table: Arc<RouteTable>) -> Result<(), crate::Error> {
        let listing = self
            .routes
            .into_iter()
            .map(|(secret, doc, key)| (secret, route_from_document(doc, key)))
            .collect();
        table.resync(listing);
        table.mark_synced();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(version: u32, hash: &str, state: &str) -> BTreeMap<String, Vec<u8>> {
        let doc = format!(
            r#"{{"version":{version},"apiKey":{{"namespace":"ns","name":"k"}},"api":"openai",
            "upstream":"http://up/v1/","issuedKeySha256":"{hash}","state":"{state}"}}"#
        );
        BTreeMap::from([
            (ROUTE_DATA_KEY.to_owned(), doc.into_bytes()),
            (UPSTREAM_KEY_DATA_KEY.to_owned(), b"sk-up\n".to_vec()),
        ])
    }

    fn hash(byte: u8) -> String {
        hex::encode([byte; 32])
    }

    #[test]
    fn a_route_secret_becomes_a_route_found_by_its_hash() {
        let table = RouteTable::default();
        table.apply("s", route_from_secret_data(&data(1, &hash(1), "Active")));
        let route = table.lookup(&[1; 32]).unwrap();
        assert_eq!(route.upstream, "http://up/v1");
        assert_eq!(route.upstream_key.expose(), "sk-up");
        assert!(table.lookup(&[2; 32]).is_none());
    }

    #[test]
    fn an_unknown_version_keeps_the_previous_route() {
        let table = RouteTable::default();
        table.apply("s", route_from_secret_data(&data(1, &hash(1), "Active")));
        let newer = route_from_secret_data(&data(2, &hash(2), "Disabled"));
        assert_eq!(newer.as_ref().unwrap_err().reason(), "unknown_version");
        table.apply("s", newer);
        assert_eq!(table.lookup(&[1; 32]).unwrap().state, RouteState::Active);
        assert!(table.lookup(&[2; 32]).is_none());
    }

    #[test]
    fn the_key_issued_before_a_rotation_is_admitted_until_the_route_drops_it() {
        let table = RouteTable::default();
        let mut during = data(1, &hash(2), "Active");
        let doc = String::from_utf8(during[ROUTE_DATA_KEY].clone())
            .unwrap()
            .replace(
                r#""state":"#,
                &format!(r#""previousIssuedKeySha256":"{}","state":"#, hash(1)),
            );
        during.insert(ROUTE_DATA_KEY.to_owned(), doc.into_bytes());
        table.apply("s", route_from_secret_data(&during));
        let route = table.lookup(&[1; 32]).unwrap();
        assert!(route.admits(&[1; 32]) && route.admits(&[2; 32]) && !route.admits(&[3; 32]));
        assert!(table.lookup(&[2; 32]).is_some());
        // The overlap ends: the route names the current key alone.
        table.apply("s", route_from_secret_data(&data(1, &hash(2), "Active")));
        assert!(table.lookup(&[1; 32]).is_none());
        assert!(!table.lookup(&[2; 32]).unwrap().admits(&[1; 32]));
    }

    #[test]
    fn a_new_issued_key_replaces_the_old_hash() {
        let table = RouteTable::default();
        table.apply("s", route_from_secret_data(&data(1, &hash(1), "Active")));
        table.apply("s", route_from_secret_data(&data(1, &hash(2), "Active")));
        assert!(table.lookup(&[1; 32]).is_none());
        assert!(table.lookup(&[2; 32]).is_some());
        table.remove("s");
        assert!(table.lookup(&[2; 32]).is_none());
    }

    #[test]
    fn a_resync_drops_deleted_secrets_but_keeps_unreadable_ones() {
        let table = RouteTable::default();
        table.apply("a", route_from_secret_data(&data(1, &hash(1), "Active")));
        table.apply("b", route_from_secret_data(&data(1, &hash(2), "Active")));
        table.resync(vec![(
            "a".into(),
            route_from_secret_data(&data(9, &hash(3), "Active")),
        )]);
        assert!(table.lookup(&[1; 32]).is_some());
        assert!(table.lookup(&[2; 32]).is_none());
    }

    #[test]
    fn missing_data_and_bad_hashes_are_errors() {
        let mut d = data(1, "zz", "Active");
        assert!(matches!(route_from_secret_data(&d), Err(RouteError::BadHash)));
        d.remove(UPSTREAM_KEY_DATA_KEY);
        assert!(matches!(
            route_from_secret_data(&d),
            Err(RouteError::MissingData(UPSTREAM_KEY_DATA_KEY))
        ));
    }
}
