//! `GET /activity`: the spend ledger summed per UTC day and model over the last 30 completed UTC
//! days, the way OpenRouter reports it.

use std::collections::{BTreeMap, HashMap};

use jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};
use serde_json::{Value, json};

use super::{
    input::Invalid,
    state::{State, midnight},
};
use crate::sha256_hex;

/// How many completed UTC days `/activity` covers.
const DAYS: i64 = 30;

/// The filters of one `/activity` call.
#[derive(Debug)]
pub(super) struct ActivityQuery {
    /// Ledger entries in `[from, until)` count.
    from: Timestamp,
    until: Timestamp,
    pub api_key_hash: Option<String>,
    user_id: Option<String>,
    workspace_id: Option<String>,
    /// `group_by=workspace`: one row per workspace as well, with `workspace_id` set.
    by_workspace: bool,
}

impl ActivityQuery {
    /// `date` (YYYY-MM-DD, one of the last 30 completed UTC days), `api_key_hash`, `user_id`,
    /// `workspace_id` and `group_by=workspace`.
    pub fn parse(query: &HashMap<String, String>, now: Timestamp) -> Result<Self, Invalid> {
        let today = now.to_zoned(TimeZone::UTC).date();
        let first = today.saturating_sub(DAYS.days());
        let (from, until) = match query.get("date") {
            None => (first, today),
            Some(text) => match text.parse::<Date>() {
                Ok(day) if day >= first && day < today => (day, day.tomorrow().unwrap_or(day)),
                Ok(_) => return Err("date must be within the last 30 completed UTC days".into()),
                Err(_) => return Err("date must be YYYY-MM-DD".into()),
            },
        };
        let by_workspace = match query.get("group_by").map(String::as_str) {
            None => false,
            Some("workspace") => true,
            Some(_) => return Err("group_by must be workspace".into()),
        };
        Ok(Self {
            from: midnight(from),
            until: midnight(until),
            api_key_hash: query.get("api_key_hash").cloned(),
            user_id: query.get("user_id").cloned(),
            workspace_id: query.get("workspace_id").cloned(),
            by_workspace,
        })
    }
}

/// One row before rendering.
#[derive(Default)]
struct Row {
    usage: f64,
    byok_usage_inference: f64,
    requests: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    reasoning_tokens: u64,
}

/// The rows of the report, newest day first. Deleted keys' spend still counts: it happened.
pub(super) fn report(state: &State, query: &ActivityQuery, now: Timestamp) -> Vec<Value> {
    let keys = state.keys.iter().filter(|key| {
        query.api_key_hash.as_ref().is_none_or(|hash| &key.hash == hash)
            && query
                .user_id
                .as_ref()
                .is_none_or(|user| key.creator_user_id.as_ref() == Some(user))
            && query
                .workspace_id
                .as_ref()
                .is_none_or(|ws| &key.workspace_id == ws)
    });
    let mut rows: BTreeMap<(Date, String, String), Row> = BTreeMap::new();
    for key in keys {
        let workspace = if query.by_workspace {
            key.workspace_id.clone()
        } else {
            String::new()
        };
        for entry in key
            .entries(now)
            .filter(|entry| entry.at >= query.from && entry.at < query.until)
        {
            let date = entry.at.to_zoned(TimeZone::UTC).date();
            let row = rows
                .entry((date, entry.spend.model.clone(), workspace.clone()))
                .or_default();
            if entry.spend.byok {
                row.byok_usage_inference += entry.spend.usd;
            } else {
                row.usage += entry.spend.usd;
            }
            row.requests += entry.spend.requests;
            row.prompt_tokens += entry.spend.prompt_tokens;
            row.completion_tokens += entry.spend.completion_tokens;
            row.reasoning_tokens += entry.spend.reasoning_tokens;
        }
    }
    rows.into_iter()
        .rev()
        .map(|((date, model, workspace), row)| render(date, &model, workspace, row, query))
        .collect()
}

fn render(date: Date, model: &str, workspace: String, row: Row, query: &ActivityQuery) -> Value {
    let mut item = json!({
        "date": date.to_string(),
        "model": model,
        "model_permaslug": model,
        "endpoint_id": endpoint_id(model),
        "provider_name": model.split('/').next().unwrap_or_default(),
        "usage": row.usage,
        "byok_usage_inference": row.byok_usage_inference,
        "requests": row.requests,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "reasoning_tokens": row.reasoning_tokens,
    });
    if query.by_workspace {
        item["workspace_id"] = json!(workspace);
    }
    item
}

/// A stable UUID-shaped endpoint id per model, so repeated reports agree.
fn endpoint_id(model: &str) -> String {
    let digest = sha256_hex(model);
    format!(
        "{}-{}-{}-{}-{}",
        &digest[..8],
        &digest[8..12],
        &digest[12..16],
        &digest[16..20],
        &digest[20..32]
    )
}
