//! Every reason keysmith writes into a condition or an Event, as one enum. Users match on these
//! strings (alerts, `kubectl wait`, Argo CD health checks), so a variant's string never changes once
//! released; [`Reason::as_str`] is the wire form.

use std::fmt;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// A condition or Event reason.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, for tests and documentation.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The CamelCase string written into conditions and Events.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

reasons! {
    // ApiKey Ready.
    /// The Secret holds a key the provider accepts.
    KeyReady,
    /// The key is disabled as the spec asks (or revoked where the provider cannot disable keys).
    KeyDisabled,
    /// `spec.disabled` is true, but the provider can neither disable nor revoke this key.
    DisableUnsupported,
    /// The key is refused until a limit's window resets (`onLimitExceeded: Reject`).
    LimitExceeded,
    /// The key's expiry has passed.
    Expired,
    /// The ModelHub named in `spec.hubRef` does not exist.
    HubNotFound,
    /// The ClusterModelHub named in `spec.hubRef` does not allow the ApiKey's namespace.
    HubNotAllowed,
    /// Admitting the key would take its namespace past the ClusterModelHub's quota.
    QuotaExceeded,
    /// The hub's credential Secret (or its key) is missing.
    HubCredentialsMissing,
    /// The target Secret exists and belongs to someone else.
    SecretConflict,
    /// The Secret named in `spec.import.secretRef` (or its key) is missing.
    ImportSecretMissing,
    /// The spec asks for something the provider cannot do.
    Unsupported,
    /// `spec.modelLimits` names a model the provider's catalog does not have (aiXplain).
    UnknownModel,
    /// `delivery: Gateway`, but the operator runs without keysmith-gateway.
    GatewayNotConfigured,
    /// A time keysmith recorded in status cannot be read back.
    MalformedStatus,
    // ApiKey Synced.
    /// The last sync with the provider succeeded.
    InSync,
    // ApiKey LimitsEnforced.
    /// Every limit the spec (or the hub's defaults) sets is enforced by the provider or keysmith.
    AllLimitsEnforced,
    /// Some limits are only published to the workload (`Advisory`): nobody stops a key that exceeds them.
    LimitsAdvisory,
    /// Some limits can be neither enforced nor published in a way that holds (`Unsupported`).
    LimitsUnsupported,
    // ApiKey LimitExceeded.
    /// Usage is within every enforced limit.
    WithinLimits,
    /// The provider does not attribute spend to this key (e.g. it shares an Anthropic workspace with
    /// other keys or the Console): whether the budget is reached cannot be told.
    SpendUnknown,
    /// Spend reached the budget.
    BudgetExceeded,
    /// A request or token count reached its limit.
    RateLimitExceeded,
    /// Only per-model limits are reached: the key keeps working for every other model.
    ModelLimitExceeded,
    // ApiKey Expired.
    /// The key expired.
    KeyExpired,
    /// The key has an expiry that has not passed.
    NotExpired,
    // ModelHub Ready.
    /// The provider accepted the management credential.
    CredentialsVerified,
    /// `spec.credentialsRef` is unset, or its Secret or data key is missing.
    CredentialsMissing,
    /// The provider refused the credential.
    Unauthorized,
    /// The credential is valid but lacks a permission keysmith needs.
    NotAuthorized,
    // Provider failures.
    /// The provider answered 403.
    Forbidden,
    /// The provider does not know the key.
    NotFound,
    /// The provider refused a request as invalid.
    ProviderRejected,
    /// The provider answered 429.
    RateLimited,
    /// The provider failed (5xx).
    ProviderError,
    /// The provider could not be reached or did not answer in time.
    ProviderUnreachable,
    /// The provider answered something keysmith cannot read.
    ProviderProtocolError,
    /// The hub's settings cannot make a client (a malformed endpoint, say).
    InvalidHubConfig,
    // Kubernetes failures.
    /// The object lacks its namespace or uid.
    MalformedObject,
    /// A Kubernetes API call failed.
    KubernetesApiError,
    /// An object could not be serialised.
    SerializationError,
    // Events of the key's lifecycle.
    /// A new provider key was issued.
    KeyIssued,
    /// A rotation started.
    KeyRotating,
    /// A rotation finished: the Secret holds the new key.
    KeyRotated,
    /// The expiry changed and the provider cannot change it in place: a new key is issued.
    KeyReissued,
    /// The provider key was updated in place to match the spec.
    KeyUpdated,
    /// keysmith disabled (or revoked) the key: a limit only it enforces, or an expiry it holds.
    KeyBlocked,
    /// keysmith enabled the key again (or issued a new one) after a block.
    KeyRestored,
    /// A provider key was revoked.
    KeyRevoked,
    /// The ApiKey went while its hub or credential was missing: its key could not be revoked.
    RevokeSkipped,
    /// `spec.secret.name` changed: the same key was written to the new Secret and the old one removed.
    SecretMoved,
    /// On a hub: provider keys of deleted ApiKeys stay live because its credential was missing; they
    /// are revoked once it works again (`status.keys.unrevokedIds`).
    KeysUnrevoked,
    /// A hub (or credential Secret) is being deleted and waits for the ApiKeys (or hubs) that use it.
    InUse,
    /// A quota on a ClusterModelHub is below what a namespace already holds.
    QuotaOverrun,
    /// The provider cannot revoke an imported key.
    RevokeUnsupported,
    /// A restart target was rolled for a new key.
    WorkloadRestarted,
    /// A restart target could not be rolled.
    RestartFailed,
}

impl Reason {
    /// The reason with the wire string `text`, if keysmith writes one.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> Self {
        reason.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_its_wire_string() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(*reason));
            assert!(
                reason
                    .as_str()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase())
            );
        }
        assert_eq!(Reason::KeyReady.to_string(), "KeyReady");
        assert_eq!(Reason::parse("NoSuchReason"), None);
    }
}
