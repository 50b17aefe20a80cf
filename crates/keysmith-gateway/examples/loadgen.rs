//! Measures the gateway: a minimal OpenAI-style upstream and an open-loop load generator.
//!
//! ```text
//! cargo run --release --example loadgen -- upstream 127.0.0.1:7001
//! keysmith-gateway --routes-file routes.json --listen 127.0.0.1:7000 --metrics-addr 127.0.0.1:7009
//! cargo run --release --example loadgen -- load http://127.0.0.1:7001/v1 KEY 1000 20   # direct
//! cargo run --release --example loadgen -- load http://127.0.0.1:7000/v1 KEY 1000 20   # via gateway
//! ```
//! The difference between the two runs' percentiles is the latency the gateway adds.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, routing::post};
use serde_json::{Value, json};

async fn chat(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({
        "id": "bench", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}
    }))
}

async fn upstream(addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new().route("/v1/chat/completions", post(chat));
    axum::serve(listener, app).await?;
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn load(base: &str, key: &str, rate: u64, seconds: u64) -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    let url = format!("{base}/chat/completions");
    let body = serde_json::to_vec(&json!({
        "model": "gpt-4o-mini", "max_tokens": 16,
        "messages": [{"role": "system", "content": "You are a terse assistant."},
                     {"role": "user", "content": "Say ok. ".repeat(40)}]
    }))?;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity((rate * seconds) as usize)));
    let errors = Arc::new(Mutex::new(0u64));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        tick.tick().await;
        let (client, url, body, key) = (client.clone(), url.clone(), body.clone(), key.to_owned());
        let (latencies, errors) = (latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let ok = match client
                .post(&url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            let micros = start.elapsed().as_micros() as u64;
            if ok {
                latencies.lock().unwrap_or_else(|e| e.into_inner()).push(micros);
            } else {
                *errors.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut l = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    l.sort_unstable();
    let errors = *errors.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "requests={} errors={} rate={}/s p50={}us p90={}us p99={}us p99.9={}us max={}us",
        l.len(),
        errors,
        rate,
        percentile(&l, 0.50),
        percentile(&l, 0.90),
        percentile(&l, 0.99),
        percentile(&l, 0.999),
        l.last().copied().unwrap_or(0)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("upstream") => upstream(args.get(2).map_or("127.0.0.1:7001", String::as_str)).await,
        Some("load") if args.len() >= 6 => {
            let rate = args[4].parse()?;
            let seconds = args[5].parse()?;
            load(&args[2], &args[3], rate, seconds).await
        }
        _ => Err("usage: loadgen upstream ADDR | loadgen load BASE KEY RATE SECONDS".into()),
    }
}
