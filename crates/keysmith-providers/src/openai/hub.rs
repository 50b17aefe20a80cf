//! Verifying the hub: the admin key reads the project, and the project-wide limits the hub declares
//! (`spec.openai.rateLimits`, `spec.openai.spendLimitUsd`) are written only where OpenAI holds
//! something else, so a steady hub costs reads only.
//!
//! What the hub leaves out is left as OpenAI holds it: a model missing from `rateLimits`, a field
//! missing from a model's entry, or no `spendLimitUsd` at all. keysmith never lifts a cap it was not
//! told about.

use reqwest::Method;

use super::{
    OpenAiClient,
    wire::{Project, RateLimit, RateLimitUpdate, SpendLimit, SpendLimitRequest},
};
use crate::{AccountInfo, Error, Result};
use keysmith_api::OpenAiModelRateLimit;

pub(super) async fn verify(client: &OpenAiClient) -> Result<AccountInfo> {
    let project_id = client.project()?.to_owned();
    let project: Project = client.get_json(client.project_url(&[])?).await?;
    if project.is_archived() {
        return Err(Error::Config(format!(
            "project {project_id} is archived: it can hold no service accounts"
        )));
    }
    if let Some(hub) = &client.hub {
        apply_rate_limits(client, &hub.rate_limits).await?;
        if let Some(usd) = hub.spend_limit_usd {
            apply_spend_limit(client, usd).await?;
        }
    }
    // OpenAI's Administration API reports no credits or balance.
    Ok(AccountInfo::default())
}

async fn apply_rate_limits(client: &OpenAiClient, wanted: &[OpenAiModelRateLimit]) -> Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<RateLimit> = Vec::new();
    client
        .list_all(&["rate_limits"], |row: RateLimit| {
            rows.push(row);
            true
        })
        .await?;
    for limit in wanted {
        let Some(row) = rows.iter().find(|row| row.model == limit.model) else {
            return Err(Error::Config(format!(
                "spec.openai.rateLimits names model {:?}, which has no rate limit in the project",
                limit.model
            )));
        };
        let update = rate_limit_update(row, limit);
        if update.is_empty() {
            continue;
        }
        let url = client.project_url(&["rate_limits", &row.id])?;
        client
            .call(Method::POST, url, Some(crate::http::to_json(&update)?))
            .await?;
    }
    Ok(())
}

/// The fields of `wanted` that differ from what `row` holds; fields `wanted` leaves out are not sent.
fn rate_limit_update(row: &RateLimit, wanted: &OpenAiModelRateLimit) -> RateLimitUpdate {
    let differs = |want: Option<u64>, have: Option<u64>| want.filter(|w| Some(*w) != have);
    RateLimitUpdate {
        max_requests_per_1_minute: differs(wanted.requests_per_minute, row.max_requests_per_1_minute),
        max_tokens_per_1_minute: differs(wanted.tokens_per_minute, row.max_tokens_per_1_minute),
        max_requests_per_1_day: differs(wanted.requests_per_day, row.max_requests_per_1_day),
    }
}

async fn apply_spend_limit(client: &OpenAiClient, usd: f64) -> Result<()> {
    let cents = (usd * 100.0).round();
    if !(cents.is_finite() && cents >= 1.0 && cents <= i64::MAX as f64) {
        return Err(Error::Config(
            "spec.openai.spendLimitUsd must be at least 0.01".into(),
        ));
    }
    // Whole cents: the check above keeps the value in range.
    #[allow(clippy::cast_possible_truncation)]
    let wanted = SpendLimitRequest::monthly_cents(cents as i64);
    let url = client.project_url(&["spend_limit"])?;
    // A project without a spend limit answers 404 (UNCONFIRMED; the simulator does so).
    let held = match client.get_json::<SpendLimit>(url.clone()).await {
        Ok(held) => Some(held),
        Err(Error::NotFound { .. }) => None,
        Err(err) => return Err(err),
    };
    if held.is_some_and(|held| wanted.matches(&held)) {
        return Ok(());
    }
    client
        .call(Method::POST, url, Some(crate::http::to_json(&wanted)?))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_and_differing_fields_are_updated() {
        let row = RateLimit {
            id: "rl-gpt-4o".into(),
            model: "gpt-4o".into(),
            max_requests_per_1_minute: Some(500),
            max_tokens_per_1_minute: Some(30_000),
            max_requests_per_1_day: None,
        };
        let wanted = OpenAiModelRateLimit {
            model: "gpt-4o".into(),
            requests_per_minute: Some(500),
            tokens_per_minute: Some(10_000),
            requests_per_day: None,
        };
        assert_eq!(
            rate_limit_update(&row, &wanted),
            RateLimitUpdate {
                max_tokens_per_1_minute: Some(10_000),
                ..Default::default()
            }
        );
        let same = OpenAiModelRateLimit {
            tokens_per_minute: Some(30_000),
            ..wanted
        };
        assert!(rate_limit_update(&row, &same).is_empty());
    }
}
