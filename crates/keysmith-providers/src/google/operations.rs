//! Google's long-running operations: every change to a key is one, polled to its end, and the
//! changes built on them (patch, soft delete, undelete, converge to the settings keysmith wants).

use reqwest::{Method, Url};
use serde_json::Value;

use super::{
    GoogleClient, MODEL_SERVICES, is_segment,
    wire::{Operation, WireKey, error_message},
};
use crate::{Error, KeySettings, Result, http::Call};

impl GoogleClient {
    /// Sends a mutation and polls its operation to the end; returns the operation's `response`.
    /// Mutations are sent as idempotent calls: each names its key, so a repeat finds it changed
    /// already (and a repeated create finds its `keyId` taken, see [`Self::create_key`]).
    pub(super) async fn mutate(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        let operation: Operation = self
            .call(Call::idempotent(error_message), method, url, body)
            .await?
            .json()?;
        self.finish(operation).await
    }

    /// Polls `operation` until it is done, waiting longer each time, for at most
    /// [`OperationPolling::max_polls`] polls.
    pub(super) async fn finish(&self, mut operation: Operation) -> Result<Option<Value>> {
        let mut wait = self.polling.first;
        for _ in 0..self.polling.max_polls {
            if operation.done {
                break;
            }
            if !operation.name.starts_with("operations/")
                || !is_segment(&operation.name["operations/".len()..])
            {
                return Err(Error::Decode("an unfinished operation has no usable name".into()));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.polling.max_interval);
            let url = self.url(&["v2", "operations", &operation.name["operations/".len()..]])?;
            operation = self.get(url).await?.json()?;
        }
        if !operation.done {
            // The change may still happen; every caller can repeat it, and the controller does.
            return Err(Error::Timeout);
        }
        match operation.error {
            Some(status) => Err(status.into_error()),
            None => Ok(operation.response),
        }
    }

    /// Patches what keysmith manages on `key` to `wanted`; returns the key as patched.
    pub(super) async fn patch(&self, key: &WireKey, wanted: &WireKey) -> Result<WireKey> {
        let mut url = self.key_url(&key.name, "", &[])?;
        url.query_pairs_mut()
            .append_pair("updateMask", "displayName,annotations,restrictions");
        let body = WireKey {
            display_name: wanted.display_name.clone(),
            annotations: wanted.annotations.clone(),
            restrictions: wanted.restrictions.clone(),
            etag: key.etag.clone(),
            ..Default::default()
        };
        let response = self
            .mutate(Method::PATCH, url, Some(&crate::http::to_json(&body)?))
            .await?;
        self.result_or_reread(&key.name, response).await
    }

    pub(super) async fn soft_delete(&self, key: &WireKey) -> Result<WireKey> {
        let mut url = self.key_url(&key.name, "", &[])?;
        if let Some(etag) = &key.etag {
            url.query_pairs_mut().append_pair("etag", etag);
        }
        let response = self.mutate(Method::DELETE, url, None).await?;
        self.result_or_reread(&key.name, response).await
    }

    pub(super) async fn undelete(&self, key: &WireKey) -> Result<WireKey> {
        let url = self.key_url(&key.name, ":undelete", &[])?;
        let response = self
            .mutate(Method::POST, url, Some(&Value::Object(Default::default())))
            .await?;
        self.result_or_reread(&key.name, response).await
    }

    /// The key an operation returned, or (for an operation that returns nothing) the key read again.
    pub(super) async fn result_or_reread(&self, name: &str, response: Option<Value>) -> Result<WireKey> {
        if let Some(key) = response
            .and_then(|value| serde_json::from_value::<WireKey>(value).ok())
            .filter(|key| !key.name.is_empty())
        {
            return Ok(key);
        }
        self.wire_key(name).await?.ok_or_else(|| Error::NotFound {
            message: "the key vanished during the change".into(),
        })
    }

    /// Brings `key` to `settings`: undeletes it when it must change or come back, patches what differs,
    /// and soft-deletes it (with the marker) to disable it. The API cannot patch a deleted key, so a
    /// disabled key that must change is live for the few seconds between undelete and delete.
    pub(super) async fn converge(&self, key: WireKey, settings: &KeySettings) -> Result<WireKey> {
        let mut wanted = key.clone();
        wanted.apply(settings, &MODEL_SERVICES);
        let must_patch = wanted.differs_from(&key);
        let mut key = key;
        if key.is_deleted() && (must_patch || !settings.disabled) {
            key = self.undelete(&key).await?;
        }
        if must_patch {
            key = self.patch(&key, &wanted).await?;
        }
        if settings.disabled && !key.is_deleted() {
            key = self.soft_delete(&key).await?;
        }
        Ok(key)
    }
}
