use super::*;

#[test]
fn masks_keep_the_kind_prefix_and_three_characters_at_each_end() {
    assert_eq!(mask("sk-svcacct-abcdef0123456789"), "sk-svcacct-abc...789");
    assert_eq!(mask("sk-proj-XyZ123456789qrs"), "sk-proj-XyZ...qrs");
    assert_eq!(mask("sk-short"), "sk-...");
    assert_eq!(mask("opaque-token-123456"), "opa...456");
}

#[test]
fn rate_limit_rows_render_only_the_fields_that_apply() {
    let rows = seeded_rate_limits();
    let gpt4o = rows.iter().find(|row| row.model == "gpt-4o").unwrap();
    let body = gpt4o.api_json();
    assert_eq!(body["id"], "rl-gpt-4o");
    assert_eq!(body["max_tokens_per_1_minute"], 30_000);
    assert!(body.get("max_images_per_1_minute").is_none());
    assert_eq!(gpt4o.maximum("max_tokens_per_1_minute"), Some(300_000));
    assert_eq!(gpt4o.maximum("max_images_per_1_minute"), None);
}
