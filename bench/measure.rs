//! What the fake-backed benchmarks (`graph_bench.rs`, `google_bench.rs`) share: one timed run
//! of the release calsync (wall; CPU and peak RSS through `/usr/bin/time` when it is there),
//! the write counts it logged, and the table row the scale table uses.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One `calsync sync` run.
pub struct Measured {
    pub ok: bool,
    pub wall: Duration,
    /// User + system seconds, when `/usr/bin/time` is installed.
    pub cpu_s: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// created + updated + deleted, from the `sync.finished` log line.
    pub writes: Option<u64>,
}

/// Runs `calsync --config calsync.toml sync` in `dir` with `env`.
pub fn run_calsync(calsync: &Path, dir: &Path, env: &[(&str, &str)]) -> Measured {
    let calsync = std::fs::canonicalize(calsync).unwrap_or_else(|_| calsync.to_path_buf());
    let time = Path::new("/usr/bin/time");
    let tfile = dir.join("run.time");
    let _ = std::fs::remove_file(&tfile);
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.arg("-f")
            .arg("%U %S %M")
            .arg("-o")
            .arg(&tfile)
            .arg(calsync);
        c
    } else {
        Command::new(&calsync)
    };
    cmd.args(["--config", "calsync.toml", "sync"])
        .current_dir(dir)
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("running calsync");
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (mut cpu_s, mut peak_rss_mib) = (None, None);
    if let Ok(text) = std::fs::read_to_string(&tfile) {
        let f: Vec<&str> = text.split_whitespace().rev().take(3).collect();
        if let [rss, sys, user] = f[..] {
            cpu_s = Some(user.parse::<f64>().unwrap_or(0.0) + sys.parse::<f64>().unwrap_or(0.0));
            peak_rss_mib = rss.parse::<f64>().ok().map(|k| k / 1024.0);
        }
    }
    let writes = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "sync.finished")
        .map(|v| {
            ["created", "updated", "deleted"]
                .iter()
                .map(|k| v[k].as_u64().unwrap_or(0))
                .sum()
        });
    if !out.status.success() {
        eprintln!("calsync failed ({}):\n{stdout}", out.status);
    }
    Measured {
        ok: out.status.success(),
        wall,
        cpu_s,
        peak_rss_mib,
        writes,
    }
}

/// One row of the fakes' part of the scale table.
pub struct Row {
    pub path: String,
    pub events: usize,
    pub rtt_ms: u64,
    pub run: &'static str,
    pub m: Measured,
    pub requests: usize,
    pub by_kind: String,
    /// Events that had to be written (a target) or read as changed (a source).
    pub changes: usize,
    /// Requests each of which needs the answer of the one before (delta or list pages after the
    /// token and calendar look-ups); for a write path 0.
    pub chain: usize,
    pub in_flight: usize,
}

pub const HEADER: &str = "| path | events | RTT ms | run | wall s | CPU s | peak RSS MiB | requests | by kind | changes | requests per change | writes logged | lower bound s | bound from | wall / bound | exit ok |\n|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---|";

impl Row {
    /// max(ceil(requests / in flight), sequential chain) × RTT.
    pub fn bound(&self) -> (f64, &'static str) {
        let rtt = self.rtt_ms as f64 / 1000.0;
        let parallel = self.requests.div_ceil(self.in_flight.max(1));
        if self.chain > 0 && self.chain >= parallel {
            (self.chain as f64 * rtt, "sequential pages")
        } else if self.in_flight == 1 {
            (parallel as f64 * rtt, "requests one at a time")
        } else {
            (parallel as f64 * rtt, "requests / 4 in flight")
        }
    }

    pub fn markdown(&self) -> String {
        let (bound, from) = self.bound();
        let wall = self.m.wall.as_secs_f64();
        let per = if self.changes > 0 {
            format!("{:.2}", self.requests as f64 / self.changes as f64)
        } else {
            "—".to_string()
        };
        let opt = |v: Option<f64>, d: usize| v.map_or("—".to_string(), |v| format!("{v:.d$}"));
        format!(
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} |",
            self.path,
            self.events,
            self.rtt_ms,
            self.run,
            wall,
            opt(self.m.cpu_s, 2),
            opt(self.m.peak_rss_mib, 0),
            self.requests,
            self.by_kind,
            self.changes,
            per,
            self.m.writes.map_or("—".to_string(), |w| w.to_string()),
            bound,
            from,
            if bound > 0.0 {
                format!("{:.2}×", wall / bound)
            } else {
                "—".to_string()
            },
            if self.m.ok { "yes" } else { "NO" },
        )
    }
}
