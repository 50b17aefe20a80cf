//! The operator under test: the release binary `keysmith run` as a child process watching one
//! namespace, with its probes, its own metrics and what `/proc` says about its CPU and memory.

use std::{
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::oneshot,
};

use crate::Result;

/// CPU and memory of a process, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    /// User plus system CPU time.
    pub cpu_s: f64,
    /// Peak resident set (`VmHWM`).
    pub peak_rss_mib: f64,
}

impl ProcStats {
    fn read(pid: u32, ticks_per_s: f64) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces; the fields after it are fixed: utime and stime are the
        // 14th and 15th fields, the 12th and 13th after the closing parenthesis.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let hwm_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(Self {
            cpu_s: ticks / ticks_per_s,
            peak_rss_mib: hwm_kib / 1024.0,
        })
    }
}

/// Clock ticks per second for `/proc/<pid>/stat` (almost always 100).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// What the operator logged at warn level or above.
#[derive(Clone, Debug, Default)]
pub struct LogSummary {
    pub warnings: u64,
    pub errors: u64,
    /// The first few messages, for the notes.
    pub samples: Vec<String>,
}

/// A running operator.
pub struct Operator {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    http: reqwest::Client,
    ticks: f64,
    log: Arc<Mutex<LogSummary>>,
}

impl Operator {
    /// Starts `keysmith run` on `ns` with leader election off, the default log level, JSON logs (to
    /// learn the probe address) and a usage interval longer than the benchmark, so that usage polls
    /// do not mix with the work measured.
    pub async fn start(bin: &Path, kubeconfig: &Path, ns: &str, concurrency: u16) -> Result<Self> {
        let mut child = Command::new(bin)
            .args(["run", "--namespace", ns, "--health-addr", "127.0.0.1:0"])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--usage-interval", "1h", "--log-format", "json"])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("KEYSMITH_LOG_LEVEL")
            .stdin(Stdio::null())
            // The log goes to stdout.
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("the operator exited at once")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let log = Arc::new(Mutex::new(LogSummary::default()));
        let (addr_tx, addr_rx) = oneshot::channel();
        tokio::spawn(read_log(stdout, addr_tx, log.clone()));
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
            .await
            .map_err(|_| "the operator did not report its probe address within 30 s")??;
        Ok(Self {
            child,
            pid,
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            ticks: ticks_per_second(),
            log,
        })
    }

    /// Waits for `/readyz` (caches synced).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let start = tokio::time::Instant::now();
        let url = format!("http://{}/readyz", self.addr);
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(start.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("the operator exited ({status})").into());
            }
            if start.elapsed() > timeout {
                return Err(format!("the operator was not ready within {timeout:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `keysmith_reconciles_total` for ApiKeys.
    pub async fn reconciles(&self) -> Result<u64> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("keysmith_reconciles_total{") && l.contains("controller=\"apikey\""))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }

    /// Waits until no ApiKey has been reconciled for `quiet` (at most `timeout`): the follow-up
    /// reconciles that the operator's own writes trigger have run. Returns how long that took.
    pub async fn settle(&self, quiet: Duration, timeout: Duration) -> Result<Duration> {
        let start = tokio::time::Instant::now();
        let mut last = self.reconciles().await?;
        let mut since = tokio::time::Instant::now();
        while since.elapsed() < quiet && start.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.reconciles().await?;
            if now != last {
                last = now;
                since = tokio::time::Instant::now();
            }
        }
        Ok(start.elapsed())
    }

    pub fn stats(&self) -> ProcStats {
        ProcStats::read(self.pid, self.ticks).unwrap_or_default()
    }

    pub fn log(&self) -> LogSummary {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the process with SIGTERM (SIGKILL after 15 s) and returns its last figures.
    pub async fn stop(mut self) -> Result<ProcStats> {
        let stats = self.stats();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            self.child.start_kill()?;
            self.child.wait().await?;
        }
        Ok(stats)
    }
}

/// Reads the JSON log: the probe address from the first lines, then counts warnings and errors.
async fn read_log(
    stdout: tokio::process::ChildStdout,
    addr_tx: oneshot::Sender<SocketAddr>,
    log: Arc<Mutex<LogSummary>>,
) {
    let mut addr_tx = Some(addr_tx);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
        if field("message") == "serving /healthz and /readyz"
            && let (Some(tx), Ok(addr)) = (addr_tx.take(), field("addr").parse())
        {
            let _ = tx.send(addr);
        }
        let level = field("level");
        if level == "WARN" || level == "ERROR" {
            let mut s = log.lock().unwrap_or_else(|p| p.into_inner());
            if level == "WARN" {
                s.warnings += 1;
            } else {
                s.errors += 1;
            }
            if s.samples.len() < 3 {
                s.samples
                    .push(format!("{level} {} {}", field("message"), field("error")));
            }
        }
    }
}
