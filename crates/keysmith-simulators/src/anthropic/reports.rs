//! The usage report (`/v1/organizations/usage_report/messages`) and the cost report
//! (`/v1/organizations/cost_report`): ledgers summed into UTC buckets, grouped by the requested
//! dimensions (the others read `null`), one page of buckets at a time behind a `next_page` cursor.
//! Cost amounts are decimal strings in cents, as Anthropic sends them.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{RawQuery, State},
    http::HeaderMap,
    response::IntoResponse,
};
use jiff::Timestamp;
use serde_json::{Value, json};
use url::Url;

use super::{
    AnthropicSim,
    api::{ApiError, ApiResult, require_admin},
    state::{CostLine, Dated, MessagesUsage, rfc3339},
};

/// Query parameters, repeats kept: array parameters come as `group_by[]=a&group_by[]=b` (the docs'
/// style) or `group_by=a&group_by=b`, and both are accepted.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let url = Url::parse(&format!("http://sim/?{}", raw.unwrap_or_default()))
            .map_err(|_| ApiError::invalid("malformed query string"))?;
        Ok(Self(
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn many(&self, name: &str) -> Vec<&str> {
        let bracketed = format!("{name}[]");
        self.0
            .iter()
            .filter(|(k, _)| *k == name || *k == bracketed)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.one("limit") {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(format!("limit: must be between 1 and {max}"))),
            },
        }
    }

    fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.one(name)
            .map(|text| {
                text.parse::<Timestamp>()
                    .map_err(|_| ApiError::invalid(format!("{name}: must be an RFC 3339 timestamp")))
            })
            .transpose()
    }
}

/// The buckets of one page: `[start, start + width)` each.
struct Page {
    starts: Vec<Timestamp>,
    width: i64,
    next: Option<Timestamp>,
}

impl Page {
    /// Buckets from `starting_at` (snapped to the width in UTC) to `ending_at` or now, resuming at
    /// the `page` cursor.
    fn new(params: &Params, width: i64, limit: usize, now: Timestamp) -> Result<Self, ApiError> {
        let start = params
            .time("starting_at")?
            .ok_or_else(|| ApiError::invalid("starting_at: Field required"))?;
        let snap = |at: Timestamp| Timestamp::from_second(at.as_second() - at.as_second().rem_euclid(width));
        let first = snap(start).map_err(|_| ApiError::invalid("starting_at: out of range"))?;
        let bound = params.time("ending_at")?.unwrap_or(now);
        let resume = match params.one("page") {
            None => first,
            Some(token) => cursor(token)
                .filter(|at| *at >= first && (at.as_second() - first.as_second()) % width == 0)
                .ok_or_else(|| ApiError::invalid("page: invalid cursor"))?,
        };
        let mut starts = Vec::new();
        let mut at = resume;
        while at < bound && starts.len() < limit {
            starts.push(at);
            at = Timestamp::from_second(at.as_second() + width)
                .map_err(|_| ApiError::invalid("the range is out of bounds"))?;
        }
        Ok(Self {
            starts,
            width,
            next: (at < bound).then_some(at),
        })
    }

    fn end(&self, start: Timestamp) -> Timestamp {
        Timestamp::from_second(start.as_second() + self.width).unwrap_or(Timestamp::MAX)
    }

    /// Entries of `ledger` inside bucket `start` and already in the past.
    fn within<'a, T>(
        &self,
        ledger: &'a [Dated<T>],
        start: Timestamp,
        now: Timestamp,
    ) -> impl Iterator<Item = &'a T> {
        let end = self.end(start);
        ledger
            .iter()
            .filter(move |d| d.at >= start && d.at < end && d.at <= now)
            .map(|d| &d.item)
    }

    fn render(&self, buckets: Vec<Value>) -> Value {
        json!({
            "data": buckets,
            "has_more": self.next.is_some(),
            "next_page": self.next.map(|at| format!("page_{}", hex::encode(rfc3339(at)))),
        })
    }
}

fn cursor(token: &str) -> Option<Timestamp> {
    let bytes = hex::decode(token.strip_prefix("page_")?).ok()?;
    String::from_utf8(bytes).ok()?.parse().ok()
}

fn bucket(start: Timestamp, end: Timestamp, results: Vec<Value>) -> Value {
    json!({"starting_at": rfc3339(start), "ending_at": rfc3339(end), "results": results})
}

const USAGE_GROUPS: &[&str] = &[
    "api_key_id",
    "workspace_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
    "account_id",
    "service_account_id",
];

/// `GET /v1/organizations/usage_report/messages`.
pub(super) async fn usage(
    State(sim): State<AnthropicSim>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let now = sim.core.clock.now();
    let org = sim.state();
    require_admin(&org, &headers)?;
    let params = Params::parse(raw.as_deref())?;
    let (width, default, max) = match params.one("bucket_width").unwrap_or("1d") {
        "1d" => (86_400, 7, 31),
        "1h" => (3_600, 24, 168),
        "1m" => (60, 60, 1_440),
        _ => return Err(ApiError::invalid("bucket_width: must be one of 1d, 1h, 1m")),
    };
    let groups = params.many("group_by");
    if let Some(bad) = groups.iter().find(|g| !USAGE_GROUPS.contains(g)) {
        return Err(ApiError::invalid(format!("group_by: unknown dimension {bad}")));
    }
    let grouped = |dim: &str| groups.contains(&dim);
    let (keys, workspaces, models) = (
        params.many("api_key_ids"),
        params.many("workspace_ids"),
        params.many("models"),
    );
    let page = Page::new(&params, width, params.limit(default, max)?, now)?;
    let buckets = page
        .starts
        .iter()
        .map(|&start| {
            let mut rows: BTreeMap<[Option<String>; 3], MessagesUsage> = BTreeMap::new();
            let entries = page.within(&org.usage, start, now).filter(|u| {
                (keys.is_empty() || u.api_key_id.as_deref().is_some_and(|id| keys.contains(&id)))
                    && (workspaces.is_empty()
                        || u.workspace_id
                            .as_deref()
                            .is_some_and(|id| workspaces.contains(&id)))
                    && (models.is_empty() || models.contains(&u.model.as_str()))
            });
            for u in entries {
                let dims = [
                    u.api_key_id.clone().filter(|_| grouped("api_key_id")),
                    u.workspace_id.clone().filter(|_| grouped("workspace_id")),
                    Some(u.model.clone()).filter(|_| grouped("model")),
                ];
                let row = rows.entry(dims).or_default();
                row.uncached_input_tokens += u.uncached_input_tokens;
                row.output_tokens += u.output_tokens;
                row.cache_read_input_tokens += u.cache_read_input_tokens;
                row.cache_creation_5m_input_tokens += u.cache_creation_5m_input_tokens;
                row.cache_creation_1h_input_tokens += u.cache_creation_1h_input_tokens;
                row.web_search_requests += u.web_search_requests;
            }
            let results = rows
                .into_iter()
                .map(|([key, ws, model], u)| {
                    json!({
                        "uncached_input_tokens": u.uncached_input_tokens,
                        "cache_creation": {
                            "ephemeral_1h_input_tokens": u.cache_creation_1h_input_tokens,
                            "ephemeral_5m_input_tokens": u.cache_creation_5m_input_tokens,
                        },
                        "cache_read_input_tokens": u.cache_read_input_tokens,
                        "output_tokens": u.output_tokens,
                        "server_tool_use": {"web_search_requests": u.web_search_requests},
                        "api_key_id": key,
                        "workspace_id": ws,
                        "model": model,
                        "service_tier": grouped("service_tier").then_some("standard"),
                        "context_window": grouped("context_window").then_some("0-200k"),
                        "inference_geo": grouped("inference_geo").then_some("global"),
                    })
                })
                .collect();
            bucket(start, page.end(start), results)
        })
        .collect();
    Ok(Json(page.render(buckets)).into_response())
}

/// `GET /v1/organizations/cost_report`: daily buckets only, groupable by workspace and description.
pub(super) async fn cost(
    State(sim): State<AnthropicSim>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let now = sim.core.clock.now();
    let org = sim.state();
    require_admin(&org, &headers)?;
    let params = Params::parse(raw.as_deref())?;
    if params.one("bucket_width").is_some_and(|w| w != "1d") {
        return Err(ApiError::invalid("bucket_width: must be 1d"));
    }
    let groups = params.many("group_by");
    if let Some(bad) = groups
        .iter()
        .find(|g| !matches!(**g, "workspace_id" | "description"))
    {
        return Err(ApiError::invalid(format!("group_by: unknown dimension {bad}")));
    }
    let by_workspace = groups.contains(&"workspace_id");
    let by_description = groups.contains(&"description");
    let page = Page::new(&params, 86_400, params.limit(7, 31)?, now)?;
    let buckets = page
        .starts
        .iter()
        .map(|&start| {
            type Key = (
                Option<String>,
                Option<(String, Option<String>, String, Option<String>)>,
            );
            let mut rows: BTreeMap<Key, f64> = BTreeMap::new();
            for line in page.within(&org.costs, start, now) {
                let key = (
                    line.workspace_id.clone().filter(|_| by_workspace),
                    by_description.then(|| description(line)),
                );
                *rows.entry(key).or_default() += line.amount_cents;
            }
            let results = rows
                .into_iter()
                .map(|((ws, desc), cents)| {
                    let (description, model, cost_type, token_type) = match desc {
                        Some((d, m, c, t)) => (Some(d), m, Some(c), t),
                        None => (None, None, None, None),
                    };
                    json!({
                        "amount": cents_text(cents),
                        "currency": "USD",
                        "workspace_id": ws,
                        "description": description,
                        "cost_type": cost_type,
                        "context_window": by_description.then_some("0-200k"),
                        "model": model,
                        "service_tier": by_description.then_some("standard"),
                        "token_type": token_type,
                        "inference_geo": null,
                    })
                })
                .collect();
            bucket(start, page.end(start), results)
        })
        .collect();
    Ok(Json(page.render(buckets)).into_response())
}

/// The description a line is grouped under, with the fields that come with it.
fn description(line: &CostLine) -> (String, Option<String>, String, Option<String>) {
    let text = line.description.clone().unwrap_or_else(|| match &line.model {
        Some(model) => format!("{model} Usage"),
        None => "Usage".into(),
    });
    (
        text,
        line.model.clone(),
        line.cost_type.clone(),
        line.token_type.clone(),
    )
}

/// Cents as a decimal string without float noise: `"123.45"`.
fn cents_text(cents: f64) -> String {
    let text = format!("{cents:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_parameters_are_read_in_both_styles() {
        let params = Params::parse(Some("group_by[]=model&group_by=api_key_id&limit=3")).unwrap();
        assert_eq!(params.many("group_by"), vec!["model", "api_key_id"]);
        assert_eq!(params.limit(7, 31).unwrap(), 3);
        assert!(params.limit(7, 2).is_err());
    }

    #[test]
    fn cents_render_as_short_decimal_strings() {
        assert_eq!(cents_text(123.45), "123.45");
        assert_eq!(cents_text(0.1 + 0.2), "0.3");
        assert_eq!(cents_text(100.0), "100");
        assert_eq!(cents_text(0.0), "0");
    }

    #[test]
    fn pages_snap_to_utc_days_and_continue_at_the_cursor() {
        let now: Timestamp = "2025-01-10T12:00:00Z".parse().unwrap();
        let params = Params::parse(Some("starting_at=2025-01-01T15:00:00Z&limit=4")).unwrap();
        let page = Page::new(&params, 86_400, 4, now).unwrap();
        assert_eq!(page.starts[0], "2025-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(page.starts.len(), 4);
        let next = page.render(vec![])["next_page"].as_str().unwrap().to_owned();
        let params = Params::parse(Some(&format!(
            "starting_at=2025-01-01T15:00:00Z&limit=31&page={next}"
        )))
        .unwrap();
        let rest = Page::new(&params, 86_400, 31, now).unwrap();
        assert_eq!(rest.starts[0], "2025-01-05T00:00:00Z".parse().unwrap());
        // The current, unfinished day is the last bucket.
        assert_eq!(rest.starts.len(), 6);
        assert!(rest.next.is_none());
    }
}
