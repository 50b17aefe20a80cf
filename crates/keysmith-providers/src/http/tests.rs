use reqwest::header::HeaderValue;

use super::{pacing::backoff_ceiling, *};

#[test]
fn sanitize_redacts_openrouter_keys_in_any_wrapping() {
    let key = format!("sk-or-v1-{}", "ab12".repeat(16));
    for message in [
        format!("Invalid key {key}"),
        format!("Invalid key \"{key}\"."),
        format!("key={key},other"),
        format!("({key})"),
    ] {
        let clean = sanitize(&message);
        assert!(!clean.contains("ab12ab12"), "{clean}");
        assert!(clean.contains("<redacted>"), "{clean}");
    }
    assert_eq!(
        sanitize(&format!("bad key {key} here")),
        "bad key <redacted> here"
    );
}

#[test]
fn sanitize_redacts_short_sk_tokens_and_long_opaque_tokens() {
    assert_eq!(sanitize("token sk-ant-api03-abcdefghij"), "token <redacted>");
    let opaque = "A".repeat(32);
    assert_eq!(sanitize(&format!("x {opaque} y")), "x <redacted> y");
    assert_eq!(
        sanitize(&format!("x {} y", "A".repeat(31))),
        format!("x {} y", "A".repeat(31))
    );
}

#[test]
fn sanitize_keeps_ordinary_messages_and_masked_labels() {
    assert_eq!(sanitize("Rate limit exceeded"), "Rate limit exceeded");
    assert_eq!(
        sanitize("label sk-or-v1-0e6...1c96 is fine"),
        "label sk-or-v1-0e6...1c96 is fine"
    );
    assert_eq!(sanitize("sk-short"), "sk-short");
    assert_eq!(sanitize("line\nbreak"), "line break");
}

#[test]
fn sanitize_truncates_to_two_hundred_characters_after_redacting() {
    let long = "word ".repeat(100);
    let clean = sanitize(&long);
    assert_eq!(clean.chars().count(), MAX_MESSAGE_CHARS + 1);
    assert!(clean.ends_with('…'));
    // A key straddling the cut is removed whole, not left as a short fragment.
    let message = format!("{}sk-or-v1-{}", "x ".repeat(95), "f".repeat(64));
    let clean = sanitize(&message);
    assert!(!clean.contains("fff"), "{clean}");
    assert!(clean.ends_with("<redacted>"));
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    headers
}

#[test]
fn retry_after_reads_whole_seconds() {
    let now = Timestamp::UNIX_EPOCH;
    assert_eq!(
        retry_after(&headers(&[("retry-after", "3")]), now),
        Some(Duration::from_secs(3))
    );
    assert_eq!(
        retry_after(&headers(&[("retry-after", " 0 ")]), now),
        Some(Duration::ZERO)
    );
    assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn retry_after_reads_http_dates_relative_to_now() {
    let now: Timestamp = "2015-10-21T07:27:50Z".parse().unwrap();
    let date = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
    assert_eq!(retry_after(&date, now), Some(Duration::from_secs(10)));
    let later: Timestamp = "2015-10-21T08:00:00Z".parse().unwrap();
    assert_eq!(retry_after(&date, later), Some(Duration::ZERO));
}

#[test]
fn retry_after_ms_wins_over_retry_after() {
    let now = Timestamp::UNIX_EPOCH;
    let both = headers(&[("retry-after", "3"), ("retry-after-ms", "1500")]);
    assert_eq!(retry_after(&both, now), Some(Duration::from_millis(1500)));
    let fraction = headers(&[("retry-after-ms", "2.5")]);
    assert_eq!(retry_after(&fraction, now), Some(Duration::from_micros(2500)));
    let invalid_ms = headers(&[("retry-after", "2"), ("retry-after-ms", "-1")]);
    assert_eq!(retry_after(&invalid_ms, now), Some(Duration::from_secs(2)));
}

#[test]
fn backoff_grows_exponentially_and_never_exceeds_the_cap() {
    let config = HttpConfig {
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs(2),
        ..HttpConfig::default()
    };
    assert_eq!(backoff_ceiling(&config, 0), Duration::from_millis(100));
    assert_eq!(backoff_ceiling(&config, 3), Duration::from_millis(800));
    assert_eq!(backoff_ceiling(&config, 5), Duration::from_secs(2));
    assert_eq!(backoff_ceiling(&config, 200), Duration::from_secs(2));
    for retry in 0..64 {
        for _ in 0..20 {
            assert!(backoff_delay(&config, retry) <= config.backoff_cap);
            assert!(backoff_delay(&config, retry) <= backoff_ceiling(&config, retry));
        }
    }
}

#[test]
fn the_token_bucket_allows_a_burst_then_hands_out_later_slots_at_the_rate() {
    let bucket = TokenBucket::new(10.0, 2);
    let start = Instant::now();
    assert_eq!(bucket.reserve(start), Duration::ZERO);
    assert_eq!(bucket.reserve(start), Duration::ZERO);
    // Callers beyond the burst queue up 100 ms apart.
    let waits: Vec<u128> = (0..3).map(|_| bucket.reserve(start).as_millis()).collect();
    assert_eq!(waits, vec![100, 200, 300]);
}

#[test]
fn the_token_bucket_refills_while_idle_but_not_beyond_the_burst() {
    let bucket = TokenBucket::new(10.0, 2);
    let start = Instant::now();
    for _ in 0..2 {
        bucket.reserve(start);
    }
    let later = start + Duration::from_secs(60);
    assert_eq!(bucket.reserve(later), Duration::ZERO);
    assert_eq!(bucket.reserve(later), Duration::ZERO);
    assert_eq!(bucket.reserve(later).as_millis(), 100);
}

#[tokio::test]
async fn acquiring_tokens_beyond_the_burst_actually_waits() {
    let bucket = TokenBucket::new(50.0, 1);
    let start = Instant::now();
    for _ in 0..5 {
        bucket.acquire().await;
    }
    // Four tokens beyond the burst at 50 per second: at least 80 ms.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(79), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn a_transport_needs_a_positive_request_rate() {
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let config = HttpConfig {
            requests_per_second: rate,
            ..HttpConfig::default()
        };
        assert!(matches!(Transport::new(config), Err(Error::Config(_))));
    }
    assert!(Transport::new(HttpConfig::default()).is_ok());
}

#[tokio::test]
async fn a_pause_from_one_transport_holds_back_every_transport_sharing_it() {
    let pauses = Pauses::default();
    let config = HttpConfig {
        max_retry_after: Duration::from_secs(30),
        ..HttpConfig::default()
    };
    let hub_a = Transport::with_pause(config.clone(), pauses.get("openai|admin")).unwrap();
    let hub_b = Transport::with_pause(config.clone(), pauses.get("openai|admin")).unwrap();
    let other = Transport::with_pause(config, pauses.get("openai|other")).unwrap();
    // Longer than a call may wait, so a transport that sees the pause fails fast.
    hub_a.pause_for(Duration::from_secs(60));
    for transport in [&hub_a, &hub_b] {
        assert!(matches!(
            transport.wait_for_pause(),
            Err(Error::RateLimited { .. })
        ));
    }
    assert!(other.wait_for_pause().is_ok());
}

#[test]
fn a_pause_is_forgotten_with_its_last_transport() {
    let pauses = Pauses::default();
    let first = pauses.get("k");
    *first.until.lock().unwrap() = Some(Instant::now() + Duration::from_secs(60));
    assert!(pauses.get("k").until.lock().unwrap().is_some());
    drop(first);
    assert!(pauses.get("k").until.lock().unwrap().is_none());
    assert_eq!(pauses.by_key.lock().unwrap().len(), 1);
}

#[test]
fn responses_never_show_their_body_in_debug_output() {
    let response = Response {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: b"sk-or-v1-x".to_vec(),
    };
    assert!(!format!("{response:?}").contains("sk-or"));
}

#[test]
fn decode_errors_never_quote_the_body() {
    let err = serde_json::from_slice::<u32>(br#""sk-or-v1-secret""#).unwrap_err();
    assert!(!decode_error(&err).to_string().contains("secret"));
}
