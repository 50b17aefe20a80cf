//! Each provider's documented entry-tier limits: what a key is held to when neither the ApiKey nor its
//! hub says otherwise. They are the provider's own account-level limits, so the provider enforces
//! them. Sources are cited per row; the numbers come from `providers.md`, which marks most of them as
//! secondary or unconfirmed, so they are reported as defaults and never configured at the provider.

use keysmith_api::Provider;

/// Entry-tier request and token limits of one provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryTier {
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Requests per UTC day.
    pub requests_per_day: Option<u64>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Tokens per UTC day.
    pub tokens_per_day: Option<u64>,
}

/// The entry tier of `provider`, where one is documented.
pub fn entry_tier(provider: Provider) -> Option<EntryTier> {
    match provider {
        // OpenRouter docs, "Rate limits": free (`:free`) models allow 20 requests/minute and 50
        // requests/day to an account that has bought less than 10 credits.
        Provider::Openrouter => Some(EntryTier {
            requests_per_minute: Some(20),
            requests_per_day: Some(50),
            ..Default::default()
        }),
        // OpenAI Tier 1 (the docs' tier table as quoted on community.openai.com): 500 RPM; 10,000 RPD
        // (gpt-4o-mini); 30,000 TPM (gpt-4o, the lower of the two models listed).
        Provider::Openai => Some(EntryTier {
            requests_per_minute: Some(500),
            requests_per_day: Some(10_000),
            tokens_per_minute: Some(30_000),
            ..Default::default()
        }),
        // Anthropic Tier 1 (rate-limits docs; secondary sources agree): 50 RPM and 40,000 input
        // tokens per minute per model class.
        Provider::Anthropic => Some(EntryTier {
            requests_per_minute: Some(50),
            tokens_per_minute: Some(40_000),
            ..Default::default()
        }),
        // Together's older docs: about 60 RPM for free accounts (limits are dynamic today).
        Provider::Together => Some(EntryTier {
            requests_per_minute: Some(60),
            ..Default::default()
        }),
        // aiXplain limits are per key and set by keysmith; DigitalOcean publishes limits for its
        // management API only; Google's quotas are per project in Cloud Quotas; an OpenAI-compatible
        // server's limits are its own. None documents an entry tier.
        Provider::Aixplain | Provider::Digitalocean | Provider::Google | Provider::OpenaiCompatible => None,
    }
}

/// What `effectiveLimits.providerDefaults` says about `provider`'s entry tier: its figures as the
/// whole account's limits, or why there are none.
pub fn provider_defaults_note(provider: Provider) -> String {
    let Some(tier) = entry_tier(provider) else {
        let why = match provider {
            Provider::Aixplain => "aiXplain's limits are per key, and keysmith sets them from the spec",
            Provider::Digitalocean => "DigitalOcean publishes limits for its management API only",
            Provider::Google => "Google's quotas are per project, in Cloud Quotas",
            _ => "an OpenAI-compatible server's limits are its own",
        };
        return format!("none documented: {why}");
    };
    let figures = [
        (tier.requests_per_minute, "requests/minute"),
        (tier.requests_per_day, "requests/day"),
        (tier.tokens_per_minute, "tokens/minute"),
        (tier.tokens_per_day, "tokens/day"),
    ]
    .into_iter()
    .filter_map(|(value, unit)| value.map(|v| format!("{v} {unit}")))
    .collect::<Vec<_>>()
    .join(", ");
    let (name, tier_name) = match provider {
        Provider::Openrouter => ("OpenRouter", "free models, under 10 credits bought"),
        Provider::Openai => ("OpenAI", "Tier 1"),
        Provider::Anthropic => ("Anthropic", "Tier 1"),
        _ => ("Together", "free accounts"),
    };
    format!(
        "{name}'s entry tier ({tier_name}): {figures} for the whole account, every key of it together, enforced by {name}; shown with appliesTo: Account where neither the ApiKey nor its hub sets a limit"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_tiers_have_at_least_one_limit_and_the_rest_have_none() {
        for p in [
            Provider::Openrouter,
            Provider::Openai,
            Provider::Anthropic,
            Provider::Together,
        ] {
            let tier = entry_tier(p).unwrap();
            assert!(tier != EntryTier::default(), "{p:?}");
        }
        for p in [
            Provider::Aixplain,
            Provider::Digitalocean,
            Provider::Google,
            Provider::OpenaiCompatible,
        ] {
            assert_eq!(entry_tier(p), None, "{p:?}");
        }
    }

    #[test]
    fn the_note_gives_the_figures_as_the_accounts_or_says_none_is_documented() {
        let openai = provider_defaults_note(Provider::Openai);
        assert!(openai.contains("500 requests/minute"), "{openai}");
        assert!(openai.contains("whole account"), "{openai}");
        let aixplain = provider_defaults_note(Provider::Aixplain);
        assert!(aixplain.starts_with("none documented"), "{aixplain}");
    }
}
