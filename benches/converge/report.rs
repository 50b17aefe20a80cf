//! The table, the notes on method and the `RESULT` line.

use crate::{Args, Kind, Phase};

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn of(phases: &[Phase], kind: Kind) -> Vec<&Phase> {
    phases.iter().filter(|p| p.kind == kind).collect()
}

fn med(phases: &[&Phase], f: impl Fn(&Phase) -> f64) -> f64 {
    median(phases.iter().map(|p| f(p)).collect())
}

fn max(phases: &[&Phase], f: impl Fn(&Phase) -> Option<f64>) -> Option<f64> {
    phases.iter().filter_map(|p| f(p)).reduce(f64::max)
}

fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Operator => "operator",
        Kind::Floor => "floor",
    }
}

/// A progress line printed after each phase.
pub fn one_line(p: &Phase, n: usize) -> String {
    format!(
        "round {} {}: {}/{n} Ready in {:.1}s, {} writes ({}), {} changes seen{}",
        p.round,
        name(p.kind),
        p.ready,
        p.time.as_secs_f64(),
        p.window.requests.total(),
        p.window.requests.describe(),
        p.window.changes.total(),
        p.stats
            .map(|s| format!(", cpu {:.1}s, peak RSS {:.1} MiB", s.cpu_s, s.peak_rss_mib))
            .unwrap_or_default(),
    )
}

fn provider_total(p: &Phase) -> u64 {
    p.window.provider.values().sum()
}

fn row(label: &str, round: &str, p: &Phase, n: usize) -> String {
    let r = &p.window.requests;
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".into(), |v| format!("{v:.prec$}"));
    format!(
        "| {label:<8} | {round:>6} | {:>9} | {:>7.1} | {:>6.0} | {:>6} | {:>5.2} | {:>7} | {:>6} | {:>7} | {:>6} | {:>5} | {:>7} | {:>8} | {:>6} | {:>7} | {:>4} |",
        format!("{}/{n}", p.ready),
        p.time.as_secs_f64(),
        n as f64 / p.time.as_secs_f64().max(1e-9),
        r.total(),
        r.total() as f64 / n as f64,
        r.get("apikeys"),
        r.get("apikeys/status"),
        r.get("secrets"),
        r.get("events"),
        r.other(),
        p.window.changes.total(),
        provider_total(p),
        opt(p.stats.map(|s| s.cpu_s), 1),
        opt(p.stats.map(|s| s.peak_rss_mib), 1),
        p.idle
            .as_ref()
            .map_or("-".into(), |i| i.requests.total().to_string()),
    )
}

/// A synthetic phase holding the medians of `phases` (their first one supplies the shape).
fn median_phase(phases: &[&Phase]) -> Option<Phase> {
    let first = *phases.first()?;
    let mut m = first.clone();
    m.ready = med(phases, |p| p.ready as f64) as usize;
    m.time = std::time::Duration::from_secs_f64(med(phases, |p| p.time.as_secs_f64()));
    for (k, v) in m.window.requests.0.iter_mut() {
        *v = med(phases, |p| p.window.requests.get(k) as f64) as u64;
    }
    let changes = &mut m.window.changes;
    changes.apikey_metadata = med(phases, |p| p.window.changes.apikey_metadata as f64) as u64;
    changes.apikey_status = med(phases, |p| p.window.changes.apikey_status as f64) as u64;
    changes.secrets = med(phases, |p| p.window.changes.secrets as f64) as u64;
    changes.events = med(phases, |p| p.window.changes.events as f64) as u64;
    changes.hub_status = med(phases, |p| p.window.changes.hub_status as f64) as u64;
    for (k, v) in m.window.provider.iter_mut() {
        *v = med(phases, |p| p.window.provider.get(k).copied().unwrap_or(0) as f64) as u64;
    }
    if let Some(s) = m.stats.as_mut() {
        s.cpu_s = med(phases, |p| p.stats.map_or(f64::NAN, |s| s.cpu_s));
        s.peak_rss_mib = med(phases, |p| p.stats.map_or(f64::NAN, |s| s.peak_rss_mib));
    }
    if let Some(i) = m.idle.as_mut() {
        let idle = med(phases, |p| {
            p.idle.as_ref().map_or(0.0, |i| i.requests.total() as f64)
        });
        i.requests.0 = [("(median)".to_owned(), idle as u64)].into_iter().collect();
    }
    Some(m)
}

fn print_table(args: &Args, phases: &[Phase]) {
    let n = args.n;
    println!(
        "| phase    |  round |     ready |  time s | keys/s | writes |  /key | apikeys | status | secrets | events | other | changes | provider |  cpu s | rss MiB | idle |"
    );
    println!(
        "|----------|-------:|----------:|--------:|-------:|-------:|------:|--------:|-------:|--------:|-------:|------:|--------:|---------:|-------:|--------:|-----:|"
    );
    for p in phases {
        println!("{}", row(name(p.kind), &p.round.to_string(), p, n));
    }
    for kind in [Kind::Operator, Kind::Floor] {
        if let Some(m) = median_phase(&of(phases, kind)) {
            println!("{}", row(name(kind), "median", &m, n));
        }
    }
}

fn print_notes(args: &Args, phases: &[Phase]) {
    println!();
    let method = [
        "Columns: time = first ApiKey create until the namespace watch saw all N Ready.",
        "writes = write requests (POST/PUT/PATCH/APPLY/DELETE) the API server counted in apiserver_request_total",
        "  from the first create until the writer was done (operator: no ApiKey reconcile for 3 s), minus the",
        "  benchmark's own ApiKey creates and what the API server writes by itself (Leases, Endpoints).",
        "apikeys = ApiKey metadata writes (the finalizer); status = apikeys/status; other = the rest (modelhubs/status).",
        "changes = new resourceVersions the namespace watch saw (a request that changed nothing is not one).",
        "provider = calls the simulator answered; cpu = the operator's user+system time until settled",
        "  (/proc/<pid>/stat); rss = its peak resident set (VmHWM, whole phase).",
    ];
    for line in method {
        println!("{line}");
    }
    println!(
        "idle = write requests in the {:?} after settling (Leases aside; leader election is off).",
        args.idle
    );
    println!("Provider pacing: hub apiRateLimit {} req/s.", args.provider_rps);
    for p in phases {
        let detail = |w: &crate::Window| {
            format!(
                "writes: {}; reads: {}; provider: {}",
                w.requests.describe(),
                w.reads.describe(),
                if w.provider.is_empty() {
                    "none".into()
                } else {
                    w.provider
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            )
        };
        println!(
            "- round {} {}: {}{}",
            p.round,
            name(p.kind),
            detail(&p.window),
            p.own_writes
                .map(|w| format!("; the floor client counted {w} writes itself"))
                .unwrap_or_default()
        );
        println!(
            "  creates returned after {:.1}s{}; load average {:.1} at the start, {:.1} at the end",
            p.created_in.as_secs_f64(),
            if p.kind == Kind::Operator {
                format!("; settled {:.1}s after the last Ready", p.settle.as_secs_f64())
            } else {
                String::new()
            },
            p.load.0,
            p.load.1
        );
        if let Some(i) = &p.idle {
            println!("  idle: {}; changes seen: {}", detail(i), i.changes.total());
        }
        if let Some(log) = &p.log
            && (log.warnings > 0 || log.errors > 0)
        {
            println!(
                "  operator log: {} warnings, {} errors, e.g. {:?}",
                log.warnings, log.errors, log.samples
            );
        }
        if p.failures > 0 {
            println!("  {} keys failed", p.failures);
        }
        for note in &p.notes {
            println!("  {note}");
        }
    }
}

fn print_restart(args: &Args, phases: &[Phase]) {
    for p in phases {
        let Some(r) = &p.restart else { continue };
        let w = &r.window;
        let creates = w.provider.get("create").copied().unwrap_or(0);
        let secrets = w.requests.get("secrets");
        let status = w.requests.get("apikeys/status");
        let hub_status = w.requests.get("modelhubs/status");
        let verdict = if creates == 0 && secrets == 0 && status == 0 {
            "PASS"
        } else {
            "FAIL"
        };
        println!();
        println!(
            "Restart over {} converged ApiKeys: {verdict}: provider creates {creates}, Secret writes {secrets}, ApiKey status writes {status} (ModelHub status writes {hub_status})",
            args.n
        );
        println!(
            "  ready after {:.1}s; {} reconciles, settled after {:.1}s (quiet {:?}); all writes: {}; changes seen: {}; provider calls: {}; cpu {:.1}s; peak RSS {:.1} MiB",
            r.ready_after.as_secs_f64(),
            r.reconciles,
            r.settled_after.as_secs_f64(),
            args.settle,
            w.requests.describe(),
            w.changes.total(),
            w.provider
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            r.stats.cpu_s,
            r.stats.peak_rss_mib,
        );
    }
}

/// Prints everything; the `RESULT` line comes last.
pub fn print(args: &Args, phases: &[Phase]) {
    println!();
    print_table(args, phases);
    print_notes(args, phases);
    print_restart(args, phases);
    let ops = of(phases, Kind::Operator);
    let floors = of(phases, Kind::Floor);
    let op_time = med(&ops, |p| p.time.as_secs_f64());
    let floor_time = med(&floors, |p| p.time.as_secs_f64());
    let writes = med(&ops, |p| p.window.requests.total() as f64);
    let floor_writes = med(&floors, |p| p.window.requests.total() as f64);
    let idle = max(&ops, |p| p.idle.as_ref().map(|i| i.requests.total() as f64)).unwrap_or(f64::NAN);
    let restart_rss = max(&ops, |p| p.restart.as_ref().map(|r| r.stats.peak_rss_mib));
    let rss = max(&ops, |p| p.stats.map(|s| s.peak_rss_mib))
        .into_iter()
        .chain(restart_rss)
        .reduce(f64::max)
        .unwrap_or(f64::NAN);
    let cpu = med(&ops, |p| p.stats.map_or(f64::NAN, |s| s.cpu_s));
    println!();
    println!(
        "ratio = median operator time / median floor time; writes = medians; idle_writes and peak_rss_mib = the worst round (restart included)."
    );
    println!(
        "RESULT n={} ratio={:.2} writes_operator={:.0} floor_writes={:.0} idle_writes={:.0} peak_rss_mib={:.1} cpu_s={:.1}",
        args.n,
        op_time / floor_time,
        writes,
        floor_writes,
        idle,
        rss,
        cpu
    );
}
