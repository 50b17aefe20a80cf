//! The enforcement decisions, as pure functions: per-request caps, the charges a request reserves,
//! what a refusal says, and what a finished request really used. The proxy only acts on them.

use jiff::Timestamp;
use keysmith_api::{OnLimitExceeded, RequestLimits, gateway_route::ModelPrice};

use crate::{
    counters::{Charge, Metric},
    request::Endpoint,
    routes::Route,
    tokens::InputCount,
    windows::Window,
};

/// A request the gateway answers itself instead of forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400 for a per-request cap, 429 for a window.
    pub status: u16,
    /// Machine-readable code, e.g. `max_input_tokens` or `tokens_per_minute`.
    pub code: String,
    /// The limit's spec path, e.g. `requestLimits.maxInputTokens`.
    pub limit: String,
    /// What happened, naming the limit and the numbers.
    pub message: String,
    /// Seconds until the window resets (429 only).
    pub retry_after: Option<u64>,
}

/// The verdict on the per-request caps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CapCheck {
    /// Forward the request.
    Pass {
        /// Write this output maximum into the body (it named none).
        inject_output_cap: Option<u64>,
        /// The most output tokens the request can produce, if known.
        output_bound: Option<u64>,
        /// Caps exceeded under `UseAnyway`, by spec path.
        overruns: Vec<&'static str>,
    },
    /// Answer 400.
    Reject(Refusal),
}

/// Judges a request against `maxInputTokens` and `maxOutputTokens` (0 or absent: no cap).
pub fn check_caps(
    limits: Option<&RequestLimits>,
    mode: OnLimitExceeded,
    endpoint: Endpoint,
    input: InputCount,
    requested_output: Option<u64>,
) -> CapCheck {
    let cap = |v: Option<u64>| v.filter(|c| *c > 0);
    let max_in = limits.and_then(|l| cap(l.max_input_tokens));
    let max_out = limits
        .and_then(|l| cap(l.max_output_tokens))
        .filter(|_| endpoint.has_output());
    let mut overruns = Vec::new();
    if let Some(max_in) = max_in
        && input.tokens > max_in
    {
        if mode == OnLimitExceeded::Reject {
            let how = if input.exact {
                ""
            } else {
                " (upper bound: this model's tokenizer is not loaded)"
            };
            return CapCheck::Reject(Refusal {
                status: 400,
                code: "max_input_tokens".into(),
                limit: "requestLimits.maxInputTokens".into(),
                message: format!(
                    "The input is {} tokens{how}, over this key's maxInputTokens of {max_in}.",
                    input.tokens
                ),
                retry_after: None,
            });
        }
        overruns.push("requestLimits.maxInputTokens");
    }
    let (inject_output_cap, output_bound) = match (max_out, requested_output) {
        (Some(max_out), Some(asked)) if asked > max_out => {
            if mode == OnLimitExceeded::Reject {
                return CapCheck::Reject(Refusal {
                    status: 400,
                    code: "max_output_tokens".into(),
                    limit: "requestLimits.maxOutputTokens".into(),
                    message: format!(
                        "The request asks for up to {asked} output tokens, over this key's maxOutputTokens of {max_out}."
                    ),
                    retry_after: None,
                });
            }
            overruns.push("requestLimits.maxOutputTokens");
            (None, Some(asked))
        }
        (Some(max_out), None) => (Some(max_out), Some(max_out)),
        (_, asked) => (None, asked),
    };
    CapCheck::Pass {
        inject_output_cap,
        output_bound,
        overruns,
    }
}

/// What a request reserves before it is forwarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Input plus output bound in tokens; `None` for calls that are not metered.
    pub tokens: Option<u64>,
    /// Estimated cost in micro-USD, when the model has a price.
    pub micro_usd: Option<u64>,
}

/// Micro-USD for `input` and `output` tokens: tokens × USD per million tokens is micro-USD exactly.
pub fn cost_micros(price: &ModelPrice, input: u64, output: u64) -> u64 {
    let cost = input as f64 * price.input_usd_per_million + output as f64 * price.output_usd_per_million;
    to_micros(cost / 1_000_000.0)
}

/// USD to micro-USD, rounded up so an estimate never undercounts.
pub fn to_micros(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1_000_000.0).ceil() as u64
    } else {
        0
    }
}

/// The charges of one request: one per window limit that applies to it. The key's identity
/// (namespace/name, not the issued key) names the counters, so a rotated key keeps its windows.
pub fn plan_charges(route: &Route, model: Option<&str>, demand: Demand, now: Timestamp) -> Vec<Charge> {
    let id = format!("{}/{}", route.key.namespace, route.key.name);
    let mut out = Vec::new();
    let mut push = |scope: &str, kind: &str, name: String, metric: Metric, limit: u64, window: Window| {
        let amount = match metric {
            Metric::Requests => Some(1),
            Metric::Tokens => demand.tokens,
            Metric::MicroUsd => demand.tokens.map(|_| demand.micro_usd.unwrap_or(0)),
        };
        if let Some(amount) = amount {
            out.push(Charge {
                counter: format!("{id}|{scope}|{kind}|{}", window.start),
                limit_name: name,
                metric,
                amount,
                limit,
                window_end: window.end_timestamp(),
            });
        }
    };
    let limits = &route.limits;
    if let Some(rate) = &limits.rate_limit {
        let w = Window::fixed(rate.interval_seconds, now);
        push(
            "key",
            "rate",
            "rateLimit".into(),
            Metric::Requests,
            rate.requests,
            w,
        );
    }
    if let Some(l) = &limits.limits {
        let minute = Window::fixed(60, now);
        let day = Window::day(now);
        let key_limits = [
            (
                l.requests_per_minute,
                "rpm",
                "requestsPerMinute",
                Metric::Requests,
                minute,
            ),
            (l.requests_per_day, "rpd", "requestsPerDay", Metric::Requests, day),
            (
                l.tokens_per_minute,
                "tpm",
                "tokensPerMinute",
                Metric::Tokens,
                minute,
            ),
            (l.tokens_per_day, "tpd", "tokensPerDay", Metric::Tokens, day),
        ];
        for (limit, kind, field, metric, w) in key_limits {
            if let Some(limit) = limit {
                push("key", kind, format!("limits.{field}"), metric, limit, w);
            }
        }
    }
    if let Some(model) = model {
        for ml in limits.model_limits.iter().filter(|m| m.model == model) {
            let minute = Window::fixed(60, now);
            let day = Window::day(now);
            let model_limits = [
                (
                    ml.requests_per_minute,
                    "rpm",
                    "requestsPerMinute",
                    Metric::Requests,
                    minute,
                ),
                (
                    ml.requests_per_day,
                    "rpd",
                    "requestsPerDay",
                    Metric::Requests,
                    day,
                ),
                (
                    ml.tokens_per_minute,
                    "tpm",
                    "tokensPerMinute",
                    Metric::Tokens,
                    minute,
                ),
                (ml.tokens_per_day, "tpd", "tokensPerDay", Metric::Tokens, day),
            ];
            for (limit, kind, field, metric, w) in model_limits {
                if let Some(limit) = limit {
                    let scope = format!("model:{model}");
                    push(
                        &scope,
                        kind,
                        format!("modelLimits[{model}].{field}"),
                        metric,
                        limit,
                        w,
                    );
                }
            }
        }
    }
    if let Some(budget) = &limits.budget {
        let reset = budget.reset.unwrap_or(keysmith_api::BudgetReset::Never);
        let w = Window::budget(reset, now);
        push(
            "key",
            "usd",
            "budget".into(),
            Metric::MicroUsd,
            to_micros(budget.limit_usd),
            w,
        );
    }
    out
}

/// The machine-readable code of a window limit: `limits.tokensPerMinute` → `tokens_per_minute`,
/// `modelLimits[m].requestsPerDay` → `model_requests_per_day`.
pub fn limit_code(limit_name: &str) -> String {
    let field = limit_name.rsplit('.').next().unwrap_or(limit_name);
    let mut code = String::new();
    if limit_name.starts_with("modelLimits") {
        code.push_str("model_");
    }
    for c in field.chars() {
        if c.is_ascii_uppercase() {
            code.push('_');
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

/// The 429 for a charge that did not fit.
pub fn window_refusal(route: &Route, charge: &Charge, used: u64, now: Timestamp) -> Refusal {
    let retry_after = charge.window_end.map(|end| {
        u64::try_from(end.as_second() - now.as_second())
            .unwrap_or(0)
            .max(1)
    });
    let (limit, used, need) = match charge.metric {
        Metric::MicroUsd => (
            format!("{:.2} USD", charge.limit as f64 / 1e6),
            format!("{:.4} USD", used as f64 / 1e6),
            format!("{:.4} USD", charge.amount as f64 / 1e6),
        ),
        Metric::Tokens => (
            format!("{} tokens", charge.limit),
            used.to_string(),
            charge.amount.to_string(),
        ),
        Metric::Requests => (format!("{} requests", charge.limit), used.to_string(), "1".into()),
    };
    let resets = retry_after.map_or_else(
        || " It does not reset.".to_owned(),
        |s| format!(" It resets in {s}s."),
    );
    Refusal {
        status: 429,
        code: limit_code(&charge.limit_name),
        limit: charge.limit_name.clone(),
        message: format!(
            "keysmith limit {} of {} reached for ApiKey {}/{}: {used} used, this request needs up to {need}.{resets}",
            charge.limit_name, limit, route.key.namespace, route.key.name
        ),
        retry_after,
    }
}

/// Usage a finished request reported.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Input tokens (cached ones included).
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Cost in USD, where the upstream reports it (OpenRouter's `usage.cost`).
    pub cost_usd: Option<f64>,
}

/// How a forwarded request ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Finish {
    /// The upstream answered 2xx.
    pub success: bool,
    /// Usage read from the response, if any.
    pub usage: Option<Usage>,
}

/// The amount each charge really used. A successful response without usage keeps its reservation:
/// the provider charged something the gateway could not see, and the reservation bounds it.
pub fn actual_amounts(charges: &[Charge], finish: Finish, price: Option<&ModelPrice>) -> Vec<u64> {
    charges
        .iter()
        .map(|c| match (c.metric, finish.usage) {
            (Metric::Requests, _) => 1,
            (Metric::Tokens, Some(u)) => u.input + u.output,
            (Metric::MicroUsd, Some(u)) => match (u.cost_usd, price) {
                (Some(cost), _) => to_micros(cost),
                (None, Some(p)) => cost_micros(p, u.input, u.output),
                (None, None) => 0,
            },
            (_, None) if finish.success => c.amount,
            (_, None) => 0,
        })
        .collect()
}

/// The spend a finished request adds to the usage report, when it is known.
pub fn spend_micros(finish: Finish, price: Option<&ModelPrice>) -> Option<u64> {
    let u = finish.usage?;
    u.cost_usd
        .map(to_micros)
        .or_else(|| price.map(|p| cost_micros(p, u.input, u.output)))
}

#[cfg(test)]
#[path = "enforce_tests.rs"]
mod tests;
