//! Names keysmith writes on objects and that others may read or set: labels, annotations, finalizers
//! and the data keys of the Secrets it writes. Tools (the kubectl plugin, Argo CD health checks,
//! policies) should take them from here rather than repeat the strings.

use std::time::Duration;

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
/// Pod-template annotation that restart targets carry: the fingerprint of the key they were rolled for.
pub const RESTARTED_FOR_ANNOTATION: &str = "keysmith.dev/key-fingerprint";
/// Finalizer on an ApiKey: its provider key is revoked (or left, per `deletionPolicy`) before the
/// ApiKey goes.
pub const APIKEY_FINALIZER: &str = "apikeys.keysmith.dev/cleanup";
/// Finalizer on a ModelHub or ClusterModelHub: it stays while an ApiKey refers to it, so that every
/// key can still be revoked through it, in whatever order things are deleted.
pub const HUB_FINALIZER: &str = "keysmith.dev/hub-in-use";
/// Finalizer on a hub's credential Secret: it stays while a hub refers to it.
pub const CREDENTIAL_FINALIZER: &str = "keysmith.dev/credential-in-use";
/// Label (value `true`) on a credential Secret that carries [`CREDENTIAL_FINALIZER`]: how keysmith finds
/// and watches the Secrets it protects.
pub const CREDENTIAL_LABEL: &str = "keysmith.dev/credential";

/// Default data key for the key value.
pub const DEFAULT_API_KEY_DATA_KEY: &str = "apiKey";
/// Default data key for the inference base URL.
pub const DEFAULT_BASE_URL_DATA_KEY: &str = "baseUrl";
/// Data key publishing the per-request input-token cap in force.
pub const MAX_INPUT_TOKENS_DATA_KEY: &str = "maxInputTokens";
/// Data key publishing the per-request output-token cap in force.
pub const MAX_OUTPUT_TOKENS_DATA_KEY: &str = "maxOutputTokens";

/// How long a rotated-out key stays valid when `spec.rotation.overlap` is not set.
pub const DEFAULT_ROTATION_OVERLAP: Duration = Duration::from_secs(3600);

/// Prefix of the hub annotations that record provider keys a deleted ApiKey could not revoke, one per
/// ApiKey: `unrevoked.keysmith.dev/<ApiKey uid>: <namespace>/<name>=<id>[,<id>]`. Removed once the
/// keys are revoked; removing one by hand says they were revoked at the provider.
pub const UNREVOKED_ANNOTATION_PREFIX: &str = "unrevoked.keysmith.dev/";
