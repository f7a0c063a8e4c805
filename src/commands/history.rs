//! `calsync history`: what the last runs did, for "the website calendar is wrong".
//!
//! Lists the newest runs (one row per pair of a run) with outcome and counts, and summarises
//! the kept history (`[history] keep_runs`, 100 by default; `--since` narrows it): success
//! rate, duration p50/p95/p99, an hourly breakdown, the trend of this period against the one
//! before, and per-endpoint API request counts and latency percentiles (kept
//! `keep_metrics_days`, 7 by default). The numbers come from pure functions below; the
//! command only reads the state file and prints. Reads only; creates nothing.

use super::report::{self, Table, human_ms, rfc3339_ms};
use crate::cli::{GlobalArgs, HistoryArgs};
use crate::error::Error;
use crate::exit;
use crate::net::ApiCall;
use crate::store::{RunRecord, Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

const HOUR_MS: i64 = 3_600_000;
/// The period the trend compares when `--since` does not set one.
const DEFAULT_PERIOD_MS: i64 = 24 * HOUR_MS;

/// Runs `history`; 0 unless the configuration or the state file stops it.
///
/// # Errors
/// A bad `--since` (64), config (78), an unusable state file (78).
pub fn run(global: &GlobalArgs, args: &HistoryArgs) -> Result<i32, Error> {
    let now = Utc::now();
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s).map_err(Error::Usage))
        .transpose()?;
    let (settings, selected) = report::load(global)?;
    let now_ms = now.timestamp_millis();
    // The trend compares [since, now) with the period as long before it.
    let span = since.map_or(DEFAULT_PERIOD_MS, |s| (now_ms - s).max(1));
    let trend_from = now_ms - 2 * span;
    let metrics_from =
        since.unwrap_or(now_ms - i64::from(settings.history.keep_metrics_days) * 24 * HOUR_MS);

    let (all_runs, calls) = match Store::open_existing(&settings.state) {
        Ok(store) => {
            let from = since.map_or(i64::MIN, |s| s.min(trend_from));
            (
                store.recent_runs(1_000_000, Some(from), None)?,
                store.api_calls_since(metrics_from)?,
            )
        }
        Err(StoreError::Missing { .. }) => {
            log::warn!(event = "state.missing", path = settings.state.display().to_string().as_str();
                       "no state file yet: no runs to show");
            (Vec::new(), Vec::new())
        }
        Err(e) => return Err(e.into()),
    };
    let filtered = !global.pairs.is_empty();
    let runs: Vec<RunRecord> = all_runs
        .into_iter()
        .filter(|r| !filtered || selected.contains(&r.pair))
        .collect();
    let calls: Vec<ApiCall> = if filtered {
        let endpoints: Vec<String> = selected
            .iter()
            .flat_map(|name| report::endpoints_of(report::pair(&settings, name)))
            .collect();
        calls
            .into_iter()
            .filter(|c| endpoints.contains(&c.endpoint))
            .collect()
    } else {
        calls
    };
    let in_range: Vec<RunRecord> = runs
        .iter()
        .filter(|r| since.is_none_or(|s| r.started_at >= s))
        .cloned()
        .collect();

    let listed: Vec<&RunRecord> = in_range.iter().take(args.limit).collect();
    let summary = summarize(&in_range);
    let hours = hourly(&in_range);
    let trend = trend(&runs, now_ms, span);
    let endpoints = endpoint_stats(&calls);

    let document = serde_json::json!({
        "generated_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "since": since.map(rfc3339_ms),
        "limit": args.limit,
        "runs": listed.iter().map(|r| run_json(r)).collect::<Vec<_>>(),
        "summary": summary,
        "hourly": hours,
        "trend": trend,
        "endpoints": endpoints,
    });
    report::print(report::wants_json(args.format), &document, || {
        text(
            &listed,
            in_range.len(),
            &summary,
            &hours,
            &trend,
            &endpoints,
        )
    });
    Ok(exit::OK)
}

/// `--since`: a date (`YYYY-MM-DD`, from its UTC midnight) or an RFC 3339 time; Unix ms.
///
/// # Errors
/// Anything else, as a usage message.
pub fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("--since: '{s}' is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))
}

/// A run's wall-clock duration, once it finished.
pub fn duration_ms(r: &RunRecord) -> Option<i64> {
    r.finished_at.map(|f| (f - r.started_at).max(0))
}

/// The nearest-rank percentile `p` (0–100) of values sorted ascending: the smallest value
/// with at least p% of the values at or below it.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p95 and p99 of some durations or latencies (milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub p99: Option<i64>,
}

pub fn percentiles(values: impl IntoIterator<Item = i64>) -> Percentiles {
    let mut v: Vec<i64> = values.into_iter().collect();
    v.sort_unstable();
    Percentiles {
        p50: percentile(&v, 50.0),
        p95: percentile(&v, 95.0),
        p99: percentile(&v, 99.0),
    }
}

/// How a run ended, for the rates: `ok`; `failed` or `interrupted` (a failure); a dry run or
/// one still running is not counted.
fn counted(r: &RunRecord) -> Option<bool> {
    match r.outcome.as_str() {
        "ok" => Some(true),
        "running" | "dry_run" => None,
        _ => Some(false),
    }
}

/// Success rate in percent, one decimal; `None` without counted runs.
fn rate(ok: u64, counted: u64) -> Option<f64> {
    (counted > 0).then(|| (ok as f64 * 1000.0 / counted as f64).round() / 10.0)
}

/// What a set of runs adds up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Rows (one per pair of a run).
    pub runs: u64,
    pub ok: u64,
    /// Failed or interrupted.
    pub failed: u64,
    pub running: u64,
    /// Dry runs (not counted in the success rate). `runs` is `ok + failed + running +
    /// dry_run`.
    pub dry_run: u64,
    /// `ok / (ok + failed)`, percent.
    pub success_rate: Option<f64>,
    pub duration_ms: Percentiles,
    pub created: i64,
    pub updated: i64,
    pub deleted: i64,
    /// Deletions of events the source withdrew (part of `deleted`).
    pub withdrawn: i64,
    pub withheld: i64,
    pub failed_writes: i64,
}

pub fn summarize(runs: &[RunRecord]) -> Summary {
    let mut s = Summary {
        runs: runs.len() as u64,
        ..Default::default()
    };
    for r in runs {
        match counted(r) {
            Some(true) => s.ok += 1,
            Some(false) => s.failed += 1,
            None if r.outcome == "running" => s.running += 1,
            None => s.dry_run += 1,
        }
        s.created += r.created;
        s.updated += r.updated;
        s.deleted += r.deleted;
        s.withdrawn += r.withdrawn;
        s.withheld += r.withheld;
        s.failed_writes += r.failed;
    }
    s.success_rate = rate(s.ok, s.ok + s.failed);
    s.duration_ms = percentiles(runs.iter().filter_map(duration_ms));
    s
}

/// The runs that started in one clock hour (UTC).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourBucket {
    /// The hour's start, RFC 3339.
    pub hour: String,
    pub runs: u64,
    pub ok: u64,
    pub failed: u64,
    /// Running or dry runs: `runs` is `ok + failed + other`.
    pub other: u64,
    pub duration_p50_ms: Option<i64>,
}

/// Runs per clock hour (UTC), newest hour first; hours without runs are left out.
pub fn hourly(runs: &[RunRecord]) -> Vec<HourBucket> {
    let mut by_hour: BTreeMap<i64, Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        by_hour
            .entry(r.started_at.div_euclid(HOUR_MS))
            .or_default()
            .push(r);
    }
    by_hour
        .into_iter()
        .rev()
        .map(|(hour, rs)| HourBucket {
            hour: rfc3339_ms(hour * HOUR_MS),
            runs: rs.len() as u64,
            ok: rs.iter().filter(|r| counted(r) == Some(true)).count() as u64,
            failed: rs.iter().filter(|r| counted(r) == Some(false)).count() as u64,
            other: rs.iter().filter(|r| counted(r).is_none()).count() as u64,
            duration_p50_ms: percentiles(rs.iter().filter_map(|r| duration_ms(r))).p50,
        })
        .collect()
}

/// One period of the trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    pub from: String,
    pub to: String,
    /// `ok + failed + other`.
    pub runs: u64,
    pub ok: u64,
    pub failed: u64,
    /// Running or dry runs.
    pub other: u64,
    pub success_rate: Option<f64>,
    pub duration_ms: Percentiles,
}

/// This period against the one before it, and how the main numbers moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    pub current: Period,
    pub previous: Period,
    /// Percentage points (current − previous); `None` when either has no counted run.
    pub success_rate_change: Option<f64>,
    /// Milliseconds (current − previous).
    pub duration_p50_change_ms: Option<i64>,
    pub duration_p95_change_ms: Option<i64>,
}

/// Compares the runs of `[now − span, now)` with those of `[now − 2·span, now − span)`.
pub fn trend(runs: &[RunRecord], now_ms: i64, span_ms: i64) -> Trend {
    let period = |from: i64, to: i64| {
        let rs: Vec<RunRecord> = runs
            .iter()
            .filter(|r| r.started_at >= from && r.started_at < to)
            .cloned()
            .collect();
        let s = summarize(&rs);
        Period {
            from: rfc3339_ms(from),
            to: rfc3339_ms(to),
            runs: s.runs,
            ok: s.ok,
            failed: s.failed,
            other: s.running + s.dry_run,
            success_rate: s.success_rate,
            duration_ms: s.duration_ms,
        }
    };
    // `now` itself belongs to the current period.
    let current = period(now_ms - span_ms, now_ms + 1);
    let previous = period(now_ms - 2 * span_ms, now_ms - span_ms);
    let diff = |a: Option<i64>, b: Option<i64>| Some(a? - b?);
    Trend {
        success_rate_change: match (current.success_rate, previous.success_rate) {
            (Some(c), Some(p)) => Some(((c - p) * 10.0).round() / 10.0),
            _ => None,
        },
        duration_p50_change_ms: diff(current.duration_ms.p50, previous.duration_ms.p50),
        duration_p95_change_ms: diff(current.duration_ms.p95, previous.duration_ms.p95),
        current,
        previous,
    }
}

/// What one remote endpoint was asked, and how fast it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    pub endpoint: String,
    /// Attempts, retries included.
    pub requests: u64,
    /// Attempts after the first of a request.
    pub retries: u64,
    /// Attempts by status class: `2xx` … `5xx`, and `none` when no answer came.
    pub statuses: BTreeMap<String, u64>,
    pub latency_ms: Percentiles,
}

pub fn endpoint_stats(calls: &[ApiCall]) -> Vec<EndpointStats> {
    let mut by_endpoint: BTreeMap<&str, Vec<&ApiCall>> = BTreeMap::new();
    for c in calls {
        by_endpoint.entry(&c.endpoint).or_default().push(c);
    }
    by_endpoint
        .into_iter()
        .map(|(endpoint, cs)| {
            let mut statuses = BTreeMap::new();
            for c in &cs {
                let class = match c.status {
                    0 => "none".to_string(),
                    s => format!("{}xx", s / 100),
                };
                *statuses.entry(class).or_insert(0) += 1;
            }
            EndpointStats {
                endpoint: endpoint.to_string(),
                requests: cs.len() as u64,
                retries: cs.iter().filter(|c| c.attempt > 1).count() as u64,
                statuses,
                latency_ms: percentiles(cs.iter().map(|c| c.latency_ms)),
            }
        })
        .collect()
}

fn run_json(r: &RunRecord) -> serde_json::Value {
    serde_json::json!({
        "run_id": r.run_id,
        "pair": r.pair,
        "command": r.command,
        "started_at": rfc3339_ms(r.started_at),
        "finished_at": r.finished_at.map(rfc3339_ms),
        "duration_ms": duration_ms(r),
        "outcome": r.outcome,
        "exit_code": r.exit_code,
        "read": r.read_kind,
        "created": r.created,
        "updated": r.updated,
        "deleted": r.deleted,
        "unchanged": r.unchanged,
        "withheld": r.withheld,
        "skipped": r.skipped,
        "failed": r.failed,
        "guard_withheld": r.guard_withheld,
        "withdrawn": r.withdrawn,
        "error": r.error,
    })
}

fn opt_ms(v: Option<i64>) -> String {
    v.map(human_ms).unwrap_or_else(|| "-".into())
}

fn opt_rate(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.1}%")).unwrap_or_else(|| "-".into())
}

fn text(
    listed: &[&RunRecord],
    total: usize,
    summary: &Summary,
    hours: &[HourBucket],
    trend: &Trend,
    endpoints: &[EndpointStats],
) -> String {
    let mut out = format!("RUNS (newest {} of {total})\n", listed.len());
    let mut t = Table::new(&[
        "STARTED",
        "PAIR",
        "COMMAND",
        "OUTCOME",
        "EXIT",
        "READ",
        "CREATED",
        "UPDATED",
        "DELETED",
        "WITHDRAWN",
        "WITHHELD",
        "FAILED",
        "DURATION",
    ]);
    for r in listed {
        t.row(vec![
            rfc3339_ms(r.started_at),
            r.pair.clone(),
            r.command.clone(),
            r.outcome.clone(),
            r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            r.read_kind.clone().unwrap_or_default(),
            r.created.to_string(),
            r.updated.to_string(),
            r.deleted.to_string(),
            r.withdrawn.to_string(),
            r.withheld.to_string(),
            r.failed.to_string(),
            opt_ms(duration_ms(r)),
        ]);
    }
    out.push_str(&t.render());

    out.push_str("\nSUMMARY\n");
    let mut t = Table::new(&[
        "RUNS", "OK", "FAILED", "RUNNING", "DRY RUN", "SUCCESS", "P50", "P95", "P99",
    ]);
    t.row(vec![
        summary.runs.to_string(),
        summary.ok.to_string(),
        summary.failed.to_string(),
        summary.running.to_string(),
        summary.dry_run.to_string(),
        opt_rate(summary.success_rate),
        opt_ms(summary.duration_ms.p50),
        opt_ms(summary.duration_ms.p95),
        opt_ms(summary.duration_ms.p99),
    ]);
    out.push_str(&t.render());

    out.push_str("\nTREND\n");
    let mut t = Table::new(&[
        "PERIOD", "FROM", "RUNS", "OK", "FAILED", "OTHER", "SUCCESS", "P50", "P95",
    ]);
    for (name, p) in [("current", &trend.current), ("previous", &trend.previous)] {
        t.row(vec![
            name.into(),
            p.from.clone(),
            p.runs.to_string(),
            p.ok.to_string(),
            p.failed.to_string(),
            p.other.to_string(),
            opt_rate(p.success_rate),
            opt_ms(p.duration_ms.p50),
            opt_ms(p.duration_ms.p95),
        ]);
    }
    out.push_str(&t.render());
    if let Some(change) = trend.success_rate_change {
        out.push_str(&format!("success rate change: {change:+.1} points\n"));
    }

    out.push_str("\nHOURLY\n");
    let mut t = Table::new(&["HOUR", "RUNS", "OK", "FAILED", "OTHER", "P50"]);
    for h in hours {
        t.row(vec![
            h.hour.clone(),
            h.runs.to_string(),
            h.ok.to_string(),
            h.failed.to_string(),
            h.other.to_string(),
            opt_ms(h.duration_p50_ms),
        ]);
    }
    out.push_str(&t.render());

    out.push_str("\nAPI ENDPOINTS\n");
    let mut t = Table::new(&[
        "ENDPOINT", "REQUESTS", "RETRIES", "STATUSES", "P50", "P95", "P99",
    ]);
    for e in endpoints {
        t.row(vec![
            e.endpoint.clone(),
            e.requests.to_string(),
            e.retries.to_string(),
            e.statuses
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" "),
            opt_ms(e.latency_ms.p50),
            opt_ms(e.latency_ms.p95),
            opt_ms(e.latency_ms.p99),
        ]);
    }
    out.push_str(&t.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(started_at: i64, duration: Option<i64>, outcome: &str) -> RunRecord {
        RunRecord {
            run_id: format!("r{started_at}"),
            pair: "p".into(),
            command: "sync".into(),
            started_at,
            finished_at: duration.map(|d| started_at + d),
            outcome: outcome.into(),
            created: 1,
            ..Default::default()
        }
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(
            percentiles(v.iter().rev().copied()),
            Percentiles {
                p50: Some(50),
                p95: Some(95),
                p99: Some(99)
            }
        );
        let cases: &[(&[i64], f64, Option<i64>)] = &[
            (&[], 50.0, None),
            (&[7], 99.0, Some(7)),
            (&[1, 2], 50.0, Some(1)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95.0, Some(10)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50.0, Some(5)),
            (&[1, 2, 3], 0.0, Some(1)),
        ];
        for (values, p, want) in cases {
            assert_eq!(percentile(values, *p), *want, "{values:?} p{p}");
        }
    }

    #[test]
    fn the_summary_counts_failures_and_leaves_out_running_and_dry_runs() {
        let runs = [
            run(0, Some(100), "ok"),
            run(1, Some(300), "ok"),
            run(2, Some(200), "failed"),
            run(3, Some(400), "interrupted"),
            run(4, None, "running"),
            run(5, Some(50), "dry_run"),
        ];
        let s = summarize(&runs);
        assert_eq!((s.runs, s.ok, s.failed, s.running), (6, 2, 2, 1));
        assert_eq!(s.success_rate, Some(50.0));
        assert_eq!(s.duration_ms.p50, Some(200));
        assert_eq!(s.duration_ms.p99, Some(400));
        assert_eq!(s.created, 6);
        assert_eq!(summarize(&[]).success_rate, None);
    }

    #[test]
    fn hours_group_by_clock_hour_newest_first() {
        let runs = [
            run(10, Some(10), "ok"),
            run(HOUR_MS - 1, Some(30), "failed"),
            run(2 * HOUR_MS + 5, Some(20), "ok"),
        ];
        let h = hourly(&runs);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].hour, "1970-01-01T02:00:00Z");
        assert_eq!((h[0].runs, h[0].ok, h[0].failed), (1, 1, 0));
        assert_eq!(h[1].hour, "1970-01-01T00:00:00Z");
        assert_eq!((h[1].runs, h[1].ok, h[1].failed), (2, 1, 1));
        assert_eq!(h[1].duration_p50_ms, Some(10));
    }

    #[test]
    fn the_trend_compares_this_period_with_the_one_before() {
        let now = 10 * HOUR_MS;
        let span = 2 * HOUR_MS;
        let runs = [
            // previous period [6h, 8h): one ok, one failed, slow
            run(6 * HOUR_MS, Some(1000), "ok"),
            run(7 * HOUR_MS, Some(3000), "failed"),
            // current period [8h, 10h]: all ok, fast; `now` itself counts
            run(8 * HOUR_MS, Some(100), "ok"),
            run(now, Some(300), "ok"),
            // older than both
            run(HOUR_MS, Some(9), "failed"),
        ];
        let t = trend(&runs, now, span);
        assert_eq!((t.current.runs, t.previous.runs), (2, 2));
        assert_eq!(t.current.success_rate, Some(100.0));
        assert_eq!(t.previous.success_rate, Some(50.0));
        assert_eq!(t.success_rate_change, Some(50.0));
        assert_eq!(t.duration_p50_change_ms, Some(100 - 1000));
        assert_eq!(t.current.from, "1970-01-01T08:00:00Z");
        let empty = trend(&[], now, span);
        assert_eq!(empty.success_rate_change, None);
    }

    #[test]
    fn endpoints_count_attempts_by_status_class() {
        let call = |endpoint: &str, status, attempt, latency_ms| ApiCall {
            endpoint: endpoint.into(),
            method: "GET".into(),
            status,
            attempt,
            latency_ms,
            at: 0,
        };
        let stats = endpoint_stats(&[
            call("https://b:443", 200, 1, 40),
            call("https://a:443", 503, 1, 10),
            call("https://a:443", 0, 2, 30),
            call("https://a:443", 200, 3, 20),
        ]);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].endpoint, "https://a:443");
        assert_eq!((stats[0].requests, stats[0].retries), (3, 2));
        assert_eq!(
            stats[0]
                .statuses
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
            [("2xx", 1), ("5xx", 1), ("none", 1)]
        );
        assert_eq!(stats[0].latency_ms.p50, Some(20));
        assert_eq!(stats[0].latency_ms.p99, Some(30));
    }

    #[test]
    fn since_takes_a_date_or_a_time() {
        assert_eq!(parse_since("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_since("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(parse_since("yesterday").unwrap_err().contains("--since"));
    }
}
