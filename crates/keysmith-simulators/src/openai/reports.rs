//! `GET /v1/organization/usage/completions` and `GET /v1/organization/costs`: the usage ledger cut
//! into time buckets, grouped and filtered as asked, a page of buckets at a time.
//!
//! Buckets are aligned to their width (a `1d` bucket starts at 00:00 UTC) and the first one holds
//! `start_time`. The `page` cursor is `page_` plus the start of the next bucket in hex. Array
//! parameters are accepted both as `name=a&name=b` and as `name[]=a` (the spec does not say which
//! OpenAI uses).

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::HeaderMap,
    response::IntoResponse,
};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    OpenAiSim,
    api::{ApiError, ApiResult, require_admin},
    state::Usage,
};

pub(super) type ReportQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Report {
    Completions,
    Costs,
}

impl Report {
    fn dimensions(self) -> &'static [&'static str] {
        match self {
            Self::Completions => &[
                "project_id",
                "user_id",
                "api_key_id",
                "model",
                "batch",
                "service_tier",
            ],
            Self::Costs => &["project_id", "line_item", "api_key_id"],
        }
    }

    /// (default, maximum) number of buckets per page for a bucket width in seconds.
    fn bucket_limits(self, width: i64) -> (usize, usize) {
        match (self, width) {
            (Self::Costs, _) => (7, 180),
            (Self::Completions, 60) => (60, 1440),
            (Self::Completions, 3600) => (24, 168),
            (Self::Completions, _) => (7, 31),
        }
    }
}

/// The parsed query of a report.
struct Params {
    start: i64,
    end: i64,
    width: i64,
    limit: usize,
    first_bucket: i64,
    project_ids: Vec<String>,
    api_key_ids: Vec<String>,
    models: Vec<String>,
    group_by: Vec<String>,
}

impl Params {
    fn parse(pairs: &[(String, String)], report: Report, now: Timestamp) -> Result<Self, ApiError> {
        let single = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let array = |name: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(key, _)| key.strip_suffix("[]").unwrap_or(key) == name)
                .map(|(_, value)| value.clone())
                .collect()
        };
        let int = |name: &str| -> Result<Option<i64>, ApiError> {
            single(name)
                .map(|text| {
                    text.parse::<i64>()
                        .ok()
                        .filter(|value| *value >= 0)
                        .ok_or_else(|| {
                            ApiError::bad_param(format!("{name} must be a Unix time in seconds"), name)
                        })
                })
                .transpose()
        };
        let start = int("start_time")?
            .ok_or_else(|| ApiError::bad_param("Missing required parameter: 'start_time'.", "start_time"))?;
        // Without an end, everything up to now counts, the current second included.
        let end = int("end_time")?.unwrap_or_else(|| now.as_second() + 1);
        if end <= start {
            return Err(ApiError::bad_param(
                "end_time must be after start_time",
                "end_time",
            ));
        }
        let width = match (single("bucket_width").unwrap_or("1d"), report) {
            ("1d", _) => 86_400,
            ("1h", Report::Completions) => 3_600,
            ("1m", Report::Completions) => 60,
            (other, _) => {
                return Err(ApiError::bad_param(
                    format!("bucket_width {other:?} is not supported here"),
                    "bucket_width",
                ));
            }
        };
        let (default_limit, max_limit) = report.bucket_limits(width);
        let limit = match single("limit") {
            None => default_limit,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=max_limit).contains(limit))
                .ok_or_else(|| {
                    ApiError::bad_param(format!("limit must be between 1 and {max_limit}"), "limit")
                })?,
        };
        let group_by = array("group_by");
        if let Some(unknown) = group_by
            .iter()
            .find(|g| !report.dimensions().contains(&g.as_str()))
        {
            return Err(ApiError::bad_param(
                format!("group_by cannot include {unknown:?}"),
                "group_by",
            ));
        }
        let aligned = start.div_euclid(width) * width;
        let first_bucket = match single("page") {
            None => aligned,
            Some(token) => parse_page(token)
                .filter(|at| *at >= aligned && *at < end && (at - aligned) % width == 0)
                .ok_or_else(|| ApiError::bad_param("page is not a cursor of this report", "page"))?,
        };
        Ok(Self {
            start,
            end,
            width,
            limit,
            first_bucket,
            project_ids: array("project_ids"),
            api_key_ids: array("api_key_ids"),
            models: array("models"),
            group_by,
        })
    }

    fn admits(&self, usage: &Usage, report: Report) -> bool {
        let listed = |filter: &[String], value: &str| filter.is_empty() || filter.iter().any(|f| f == value);
        listed(&self.project_ids, &usage.project_id)
            && listed(&self.api_key_ids, &usage.api_key_id)
            && (report == Report::Costs || listed(&self.models, &usage.model))
    }

    /// The value of dimension `name` for `usage`, or null when the report is not grouped on it.
    fn dimension(&self, name: &str, usage: &Usage) -> Value {
        if !self.group_by.iter().any(|g| g == name) {
            return Value::Null;
        }
        match name {
            "project_id" => json!(usage.project_id),
            "api_key_id" => json!(usage.api_key_id),
            "model" => json!(usage.model),
            "line_item" => json!(usage.line_item()),
            "batch" => json!(false),
            "service_tier" => json!("default"),
            // Usage is recorded per key, not per user.
            _ => Value::Null,
        }
    }
}

fn page_token(at: i64) -> String {
    format!("page_{at:016x}")
}

fn parse_page(token: &str) -> Option<i64> {
    i64::from_str_radix(token.strip_prefix("page_")?, 16).ok()
}

/// The dimensions of one result row, each a value or null.
type Dimensions = Vec<(&'static str, Value)>;

/// Running totals of one result row.
#[derive(Default)]
struct Sums {
    input_tokens: u64,
    output_tokens: u64,
    requests: u64,
    usd: f64,
}

fn report(sim: &OpenAiSim, headers: &HeaderMap, query: ReportQuery, kind: Report) -> ApiResult {
    let now = sim.core.clock.now();
    let state = sim.state();
    require_admin(&state, headers)?;
    let Query(pairs) = query.map_err(|_| ApiError::bad_request("The query string is malformed."))?;
    let params = Params::parse(&pairs, kind, now)?;
    let mut buckets = Vec::new();
    let mut at = params.first_bucket;
    while at < params.end && buckets.len() < params.limit {
        let (from, to) = (at.max(params.start), (at + params.width).min(params.end));
        let mut groups: BTreeMap<String, (Dimensions, Sums)> = BTreeMap::new();
        for usage in &state.ledger {
            let Some(when) = usage.at.map(|t| t.as_second()) else {
                continue;
            };
            if when < from || when >= to || when > now.as_second() || !params.admits(usage, kind) {
                continue;
            }
            let dims: Dimensions = kind
                .dimensions()
                .iter()
                .map(|name| (*name, params.dimension(name, usage)))
                .collect();
            let key =
                serde_json::to_string(&dims.iter().map(|(_, v)| v).collect::<Vec<_>>()).unwrap_or_default();
            let (_, sums) = groups.entry(key).or_insert_with(|| (dims, Sums::default()));
            sums.input_tokens = sums.input_tokens.saturating_add(usage.input_tokens);
            sums.output_tokens = sums.output_tokens.saturating_add(usage.output_tokens);
            sums.requests = sums.requests.saturating_add(usage.requests);
            sums.usd += usage.usd;
        }
        let results: Vec<Value> = groups
            .into_values()
            .map(|(dims, sums)| result_json(kind, dims, &sums))
            .collect();
        buckets.push(
            json!({"object": "bucket", "start_time": at, "end_time": at + params.width, "results": results}),
        );
        at += params.width;
    }
    let has_more = at < params.end;
    Ok(Json(json!({
        "object": "page",
        "data": buckets,
        "has_more": has_more,
        "next_page": has_more.then(|| page_token(at)),
    }))
    .into_response())
}

fn result_json(kind: Report, dims: Dimensions, sums: &Sums) -> Value {
    let mut object = match kind {
        Report::Completions => json!({
            "object": "organization.usage.completions.result",
            "input_tokens": sums.input_tokens,
            "output_tokens": sums.output_tokens,
            "input_cached_tokens": 0,
            "input_audio_tokens": 0,
            "output_audio_tokens": 0,
            "num_model_requests": sums.requests,
        }),
        Report::Costs => json!({
            "object": "organization.costs.result",
            "amount": {"value": sums.usd, "currency": "usd"},
            "quantity": null,
            "quantity_unit": null,
        }),
    };
    for (name, value) in dims {
        object[name] = value;
    }
    object
}

pub(super) async fn completions(
    State(sim): State<OpenAiSim>,
    headers: HeaderMap,
    query: ReportQuery,
) -> ApiResult {
    report(&sim, &headers, query, Report::Completions)
}

pub(super) async fn costs(State(sim): State<OpenAiSim>, headers: HeaderMap, query: ReportQuery) -> ApiResult {
    report(&sim, &headers, query, Report::Costs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(parse_page(&page_token(1_730_419_200)), Some(1_730_419_200));
        assert_eq!(parse_page("page_zz"), None);
        assert_eq!(parse_page("1234"), None);
    }

    #[test]
    fn both_array_styles_are_read_and_unknown_groupings_refused() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        let now: Timestamp = "2025-01-10T00:00:00Z".parse().unwrap();
        let params = Params::parse(
            &pairs(&[
                ("start_time", "0"),
                ("group_by", "model"),
                ("group_by[]", "api_key_id"),
                ("api_key_ids[]", "key_a"),
                ("api_key_ids", "key_b"),
            ]),
            Report::Completions,
            now,
        )
        .unwrap();
        assert_eq!(params.group_by, vec!["model", "api_key_id"]);
        assert_eq!(params.api_key_ids, vec!["key_a", "key_b"]);
        assert!(
            Params::parse(
                &pairs(&[("start_time", "0"), ("group_by", "model")]),
                Report::Costs,
                now
            )
            .is_err()
        );
        assert!(
            Params::parse(
                &pairs(&[("start_time", "0"), ("bucket_width", "1h")]),
                Report::Costs,
                now
            )
            .is_err()
        );
        assert!(Params::parse(&pairs(&[("bucket_width", "1d")]), Report::Completions, now).is_err());
        assert!(
            Params::parse(
                &pairs(&[("start_time", "0"), ("limit", "32")]),
                Report::Completions,
                now
            )
            .is_err()
        );
    }
}
