//! OpenAI Administration API shapes (`providers.md` §2) as keysmith reads and writes them. Unknown
//! fields are ignored and missing optional ones read as `None`, so additions upstream do not break
//! keysmith. Timestamps are Unix seconds; money in spend limits is integer cents.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A cursor-paginated list: `{object:"list", data, first_id, last_id, has_more}`.
#[derive(Debug, Deserialize)]
pub(super) struct List<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub last_id: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

/// `organization.project`.
#[derive(Debug, Deserialize)]
pub(super) struct Project {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub archived_at: Option<i64>,
}

impl Project {
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some() || self.status.as_deref() == Some("archived")
    }
}

/// `organization.project.service_account`.
#[derive(Debug, Deserialize)]
pub(super) struct ServiceAccount {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created_at: Option<i64>,
}

/// `POST .../service_accounts` body. keysmith's service accounts exist only to hold a key, so the
/// key is always requested (`create_service_account_only` stays false).
#[derive(Debug, Serialize)]
pub(super) struct CreateServiceAccount<'a> {
    pub name: &'a str,
}

/// `POST .../service_accounts/{id}` body: only the name; the role is left as OpenAI holds it.
#[derive(Debug, Serialize)]
pub(super) struct RenameServiceAccount<'a> {
    pub name: &'a str,
}

/// `POST .../service_accounts` answer. No `Debug`: `api_key.value` is the plaintext key.
#[derive(Deserialize)]
pub(super) struct CreatedServiceAccount {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub api_key: Option<CreatedApiKey>,
}

/// The key inside a create answer, shown unredacted this once. No `Debug`, for the same reason.
#[derive(Deserialize)]
pub(super) struct CreatedApiKey {
    pub value: String,
    pub id: String,
}

/// `organization.project.api_key`: never holds the value, only `redacted_value`.
#[derive(Debug, Deserialize)]
pub(super) struct ProjectApiKey {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub redacted_value: Option<String>,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub owner: Option<Owner>,
}

impl ProjectApiKey {
    /// The service account holding this key, if a service account does.
    pub fn service_account_id(&self) -> Option<&str> {
        let owner = self.owner.as_ref()?;
        if owner
            .kind
            .as_deref()
            .is_some_and(|kind| kind != "service_account")
        {
            return None;
        }
        owner.service_account.as_ref().map(|account| account.id.as_str())
    }
}

/// `owner` of a project key: a user or a service account.
#[derive(Debug, Deserialize)]
pub(super) struct Owner {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub service_account: Option<OwnerRef>,
}

#[derive(Debug, Deserialize)]
pub(super) struct OwnerRef {
    pub id: String,
}

/// `project.rate_limit`: one row per model. Only the fields keysmith manages are read.
#[derive(Debug, Deserialize)]
pub(super) struct RateLimit {
    pub id: String,
    pub model: String,
    #[serde(default)]
    pub max_requests_per_1_minute: Option<u64>,
    #[serde(default)]
    pub max_tokens_per_1_minute: Option<u64>,
    #[serde(default)]
    pub max_requests_per_1_day: Option<u64>,
}

/// `POST .../rate_limits/{id}` body: OpenAI changes only the fields sent, so only differing ones go.
#[derive(Debug, Default, PartialEq, Serialize)]
pub(super) struct RateLimitUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_per_1_minute: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_1_minute: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_per_1_day: Option<u64>,
}

impl RateLimitUpdate {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `project.spend_limit`.
#[derive(Debug, Deserialize)]
pub(super) struct SpendLimit {
    #[serde(default)]
    pub threshold_amount: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
}

/// `POST .../spend_limit` body: a monthly cap in US cents, the only kind OpenAI offers.
#[derive(Debug, PartialEq, Serialize)]
pub(super) struct SpendLimitRequest {
    pub threshold_amount: i64,
    pub currency: &'static str,
    pub interval: &'static str,
}

impl SpendLimitRequest {
    pub fn monthly_cents(cents: i64) -> Self {
        Self {
            threshold_amount: cents,
            currency: "USD",
            interval: "month",
        }
    }

    /// Whether `held` already says the same, so that no write is needed.
    pub fn matches(&self, held: &SpendLimit) -> bool {
        held.threshold_amount == Some(self.threshold_amount)
            && held
                .currency
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(self.currency))
            && held.interval.as_deref() == Some(self.interval)
    }
}

/// The usage and costs envelope: `{object:"page", data:[bucket], has_more, next_page}`.
#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    pub data: Vec<Bucket<T>>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub next_page: Option<String>,
}

/// One time bucket; `start_time` is inclusive, in Unix seconds.
#[derive(Debug, Deserialize)]
pub(super) struct Bucket<T> {
    pub start_time: i64,
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
}

impl<T> Bucket<T> {
    pub fn start(&self) -> Option<Timestamp> {
        Timestamp::from_second(self.start_time).ok()
    }
}

/// `organization.usage.completions.result`, grouped by `api_key_id` and `model`.
#[derive(Debug, Deserialize)]
pub(super) struct CompletionsResult {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub num_model_requests: u64,
    #[serde(default)]
    pub api_key_id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// `organization.costs.result`, grouped by `api_key_id`.
#[derive(Debug, Deserialize)]
pub(super) struct CostsResult {
    #[serde(default)]
    pub amount: Option<Amount>,
    #[serde(default)]
    pub api_key_id: Option<String>,
}

/// `{value, currency}`, currency in lower case (`usd`).
#[derive(Debug, Deserialize)]
pub(super) struct Amount {
    #[serde(default)]
    pub value: f64,
    #[serde(default)]
    pub currency: Option<String>,
}

impl Amount {
    /// The value in US dollars; amounts in another currency are not counted.
    pub fn usd(&self) -> Option<f64> {
        let usd = self
            .currency
            .as_deref()
            .is_none_or(|c| c.eq_ignore_ascii_case("usd"));
        (usd && self.value.is_finite()).then_some(self.value)
    }
}

/// The ErrorResponse body, `{"error":{"message",...}}`, or the unwrapped `{"code","message"}` that the
/// spec's rate-limit 404 example shows: both are accepted.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorDetail>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

/// The provider's message of an error body (unsanitized: the transport sanitizes it).
pub(super) fn error_message(body: &[u8]) -> Option<String> {
    let body = serde_json::from_slice::<ErrorBody>(body).ok()?;
    body.error.and_then(|e| e.message).or(body.message)
}

/// A Unix-seconds timestamp, if it is one jiff can represent.
pub(super) fn unix(seconds: Option<i64>) -> Option<Timestamp> {
    seconds.and_then(|s| Timestamp::from_second(s).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_documented_create_answer_yields_the_account_and_its_one_time_key() {
        let body = json!({"object":"organization.project.service_account","id":"svc_acct_abc",
            "name":"Production App","role":"member","created_at":1711471533,
            "api_key":{"object":"organization.project.service_account.api_key","value":"sk-abcdefghijklmnop123",
                "name":"Secret Key","created_at":1711471533,"id":"key_abc"}});
        let created: CreatedServiceAccount = serde_json::from_value(body).unwrap();
        assert_eq!(created.id, "svc_acct_abc");
        assert_eq!(created.name, "Production App");
        let key = created.api_key.unwrap();
        assert_eq!(
            (key.id.as_str(), key.value.as_str()),
            ("key_abc", "sk-abcdefghijklmnop123")
        );
        let created: CreatedServiceAccount =
            serde_json::from_value(json!({"id":"svc_acct_x","name":"n","api_key":null})).unwrap();
        assert!(created.api_key.is_none());
    }

    #[test]
    fn a_project_key_names_its_service_account_owner() {
        let key: ProjectApiKey = serde_json::from_value(json!({"object":"organization.project.api_key",
            "redacted_value":"sk-abc...def","name":"Secret Key","created_at":1711471533,"last_used_at":null,
            "id":"key_abc","owner_project_access":"active",
            "owner":{"type":"service_account","service_account":{"id":"svc_acct_1","name":"n","created_at":1,"role":"member"}}}))
        .unwrap();
        assert_eq!(key.service_account_id(), Some("svc_acct_1"));
        assert_eq!(key.redacted_value.as_deref(), Some("sk-abc...def"));
        let user: ProjectApiKey = serde_json::from_value(json!({"id":"key_u","name":"k","redacted_value":"sk-x...y",
            "owner":{"type":"user","user":{"id":"user_1","email":"a@b","name":"A","created_at":1,"role":"owner"}}}))
        .unwrap();
        assert_eq!(user.service_account_id(), None);
    }

    #[test]
    fn rate_limit_rows_read_the_documented_example_and_updates_send_only_set_fields() {
        let row: RateLimit = serde_json::from_value(json!({"object":"project.rate_limit","id":"rl-ada",
            "model":"ada","max_requests_per_1_minute":600,"max_tokens_per_1_minute":150000,"max_images_per_1_minute":10}))
        .unwrap();
        assert_eq!(row.id, "rl-ada");
        assert_eq!(row.max_requests_per_1_minute, Some(600));
        assert_eq!(row.max_requests_per_1_day, None);
        let update = RateLimitUpdate {
            max_tokens_per_1_minute: Some(1000),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({"max_tokens_per_1_minute": 1000})
        );
        assert!(RateLimitUpdate::default().is_empty());
    }

    #[test]
    fn spend_limits_are_monthly_cents_in_usd() {
        let request = SpendLimitRequest::monthly_cents(12_345);
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"threshold_amount": 12345, "currency": "USD", "interval": "month"})
        );
        let held: SpendLimit =
            serde_json::from_value(json!({"object":"project.spend_limit","threshold_amount":12345,
            "currency":"USD","interval":"month","enforcement":{"status":"inactive"}}))
            .unwrap();
        assert!(request.matches(&held));
        assert!(!SpendLimitRequest::monthly_cents(100).matches(&held));
    }

    #[test]
    fn usage_and_cost_pages_read_their_buckets() {
        let page: Page<CompletionsResult> = serde_json::from_value(json!({"object":"page","data":[
            {"object":"bucket","start_time":1730419200,"end_time":1730505600,"results":[
                {"object":"organization.usage.completions.result","input_tokens":1000,"output_tokens":500,
                 "input_cached_tokens":800,"num_model_requests":5,"project_id":null,"user_id":null,
                 "api_key_id":"key_abc","model":"gpt-4o-mini","batch":null,"service_tier":null}]}],
            "has_more":true,"next_page":"page_AAAAAGdGxdEiJdKOAAAAAGcqsYA="}))
        .unwrap();
        assert!(page.has_more);
        let result = &page.data[0].results[0];
        assert_eq!(
            (
                result.input_tokens,
                result.output_tokens,
                result.num_model_requests
            ),
            (1000, 500, 5)
        );
        assert_eq!(result.model.as_deref(), Some("gpt-4o-mini"));
        let costs: Page<CostsResult> = serde_json::from_value(json!({"object":"page","data":[
            {"object":"bucket","start_time":1730419200,"end_time":1730505600,"results":[
                {"object":"organization.costs.result","amount":{"value":0.06,"currency":"usd"},
                 "line_item":null,"project_id":null,"api_key_id":"key_abc"}]}],"has_more":false,"next_page":null}))
        .unwrap();
        let amount = costs.data[0].results[0].amount.as_ref().unwrap();
        assert_eq!(amount.usd(), Some(0.06));
        assert_eq!(
            Amount {
                value: 1.0,
                currency: Some("eur".into())
            }
            .usd(),
            None
        );
    }

    #[test]
    fn error_messages_come_from_the_wrapped_or_the_bare_shape() {
        let wrapped = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(
            error_message(wrapped).as_deref(),
            Some("Incorrect API key provided")
        );
        let bare = br#"{"code":404,"message":"The project proj_x was not found"}"#;
        assert_eq!(
            error_message(bare).as_deref(),
            Some("The project proj_x was not found")
        );
        assert_eq!(error_message(b"<html>"), None);
    }
}
