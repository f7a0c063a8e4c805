//! JSON lines for the log (`log` crate facade, our own small formatter).
//!
//! Every line carries `ts` (RFC 3339, UTC), `level`, `msg`, the run's `run_id` once one is
//! set, and the record's key-values (`event`, `pair`, counts as numbers). `sync` and `cleanup`
//! log to stdout (their output is the log); report commands log to stderr, so their stdout is
//! only the report. `RUST_LOG` sets the level (`debug`, `calsync=debug`, …). Lines from other
//! crates are shown from `warn` up only. Every string is passed through e-mail masking, a
//! last safety net under the rule that nothing private is handed to the logger at all.
//!
//! Under systemd, when the log stream is the journal (`$JOURNAL_STREAM` names its device and
//! inode), each line is prefixed with its syslog priority (`<3>` error … `<7>` debug), as
//! sd-daemon(3) describes: journald strips the prefix and records the priority, so the stored
//! message is still exactly one JSON object and `journalctl -p warning` works. Nothing here
//! ever writes colour or cursor codes; the progress bar is the engine's and only on a terminal.
//!
//! A report command that prints its table to a person ([`init_report`]: the report is text
//! and stderr is a terminal) logs for that person instead: one plain line per record
//! (`warning: check failed (pair parish, check counts_match, events 1)`), warnings and errors
//! only unless `RUST_LOG` asks for more, held back and written after the report by
//! [`finish`], so the table comes first. Everywhere else the lines are JSON, as above.

use crate::mask::mask_emails;
use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

struct JsonLogger {
    level: LevelFilter,
    stream: Stream,
    /// The stream is the journal: lines carry a `<N>` priority prefix.
    journal: bool,
    /// Plain lines for a person at a terminal, held back until [`finish`].
    human: bool,
    held: Mutex<Vec<String>>,
    run_id: Mutex<Option<String>>,
}

static LOGGER: OnceLock<JsonLogger> = OnceLock::new();

/// Installs the logger once per process; the level comes from `RUST_LOG` (default `info`).
pub fn init(stream: Stream) {
    install(stream, false);
}

/// Installs the logger of a report command, whose log goes to stderr: plain lines held back
/// until after the report when the report is a table (`json` false) and stderr is a
/// terminal, JSON lines otherwise.
pub fn init_report(json: bool) {
    use std::io::IsTerminal;
    install(Stream::Stderr, !json && std::io::stderr().is_terminal());
}

fn install(stream: Stream, human: bool) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let level = match (human, rust_log.as_deref()) {
        // A person at a terminal reads the report; the log adds what went wrong.
        (true, None) => LevelFilter::Warn,
        (_, value) => level_from_env(value),
    };
    let logger = LOGGER.get_or_init(|| JsonLogger {
        level,
        stream,
        journal: !human && is_journal(stream, std::env::var("JOURNAL_STREAM").ok().as_deref()),
        human,
        held: Mutex::new(Vec::new()),
        run_id: Mutex::new(None),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// Writes the lines held back for a person (after the report), once, under a blank line.
pub fn finish() {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    let held = std::mem::take(&mut *logger.held.lock().expect("held lines lock"));
    if held.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"\n");
    for line in held {
        let _ = err.write_all(line.as_bytes());
    }
    let _ = err.flush();
}

/// Every later line carries this run id.
pub fn set_run_id(run_id: &str) {
    if let Some(l) = LOGGER.get() {
        *l.run_id.lock().expect("run id lock") = Some(run_id.to_string());
    }
}

/// Reads `RUST_LOG`: a bare level, or `calsync=<level>` (which wins), comma-separated.
pub fn level_from_env(value: Option<&str>) -> LevelFilter {
    let Some(value) = value else {
        return LevelFilter::Info;
    };
    let mut bare = None;
    let mut ours = None;
    for directive in value.split(',').map(str::trim) {
        match directive.split_once('=') {
            Some((module, level)) if module == "calsync" || module.starts_with("calsync::") => {
                ours = level.parse().ok().or(ours);
            }
            Some(_) => {}
            None => bare = directive.parse().ok().or(bare),
        }
    }
    ours.or(bare).unwrap_or(LevelFilter::Info)
}

impl Log for JsonLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let ours = metadata.target().starts_with("calsync");
        metadata.level() <= self.level && (ours || metadata.level() <= Level::Warn)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if self.human {
            let line = format_human(record);
            self.held.lock().expect("held lines lock").push(line);
            return;
        }
        let run_id = self.run_id.lock().expect("run id lock").clone();
        let mut line = format_line(record, run_id.as_deref(), chrono::Utc::now());
        if self.journal {
            line.insert_str(0, syslog_prefix(record.level()));
        }
        let write = |mut out: Box<dyn Write>| {
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        };
        match self.stream {
            Stream::Stdout => write(Box::new(std::io::stdout().lock())),
            Stream::Stderr => write(Box::new(std::io::stderr().lock())),
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
}

/// Whether `stream` is the journal: `$JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd for a
/// unit's stdout/stderr) names the file the stream is open on. A child process or a
/// redirection inherits the variable but not the stream, hence the comparison.
fn is_journal(stream: Stream, journal_stream: Option<&str>) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let fd = match stream {
        Stream::Stdout => std::io::stdout().as_fd().try_clone_to_owned(),
        Stream::Stderr => std::io::stderr().as_fd().try_clone_to_owned(),
    };
    fd.and_then(|fd| std::fs::File::from(fd).metadata())
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The sd-daemon(3) priority prefix of a level.
fn syslog_prefix(level: Level) -> &'static str {
    match level {
        Level::Error => "<3>",
        Level::Warn => "<4>",
        Level::Info => "<6>",
        Level::Debug | Level::Trace => "<7>",
    }
}

/// One record as one JSON line (with its newline).
pub fn format_line(
    record: &Record<'_>,
    run_id: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let mut fields: Vec<(String, serde_json::Value)> = vec![
        (
            "ts".into(),
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        ),
        (
            "level".into(),
            record.level().as_str().to_lowercase().into(),
        ),
        ("msg".into(), mask_emails(&record.args().to_string()).into()),
    ];
    if let Some(id) = run_id {
        fields.push(("run_id".into(), id.into()));
    }
    let mut visitor = Collect(&mut fields);
    let _ = record.key_values().visit(&mut visitor);
    let mut line = String::with_capacity(256);
    line.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&serde_json::to_string(k).expect("strings serialise"));
        line.push(':');
        line.push_str(&serde_json::to_string(v).expect("values serialise"));
    }
    line.push_str("}\n");
    line
}

/// One record as a person reads it: `warning: <msg> (key value, …)`, the key-values that
/// say where (the event name and run id left out), with its newline.
pub fn format_human(record: &Record<'_>) -> String {
    let mut fields: Vec<(String, serde_json::Value)> = Vec::new();
    let _ = record.key_values().visit(&mut Collect(&mut fields));
    let level = match record.level() {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    };
    let mut line = format!("{level}: {}", mask_emails(&record.args().to_string()));
    let context: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "event" | "run_id" | "exit_code"))
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k} {s}"),
            other => format!("{k} {other}"),
        })
        .collect();
    if !context.is_empty() {
        line.push_str(&format!(" ({})", context.join(", ")));
    }
    line.push('\n');
    line
}

struct Collect<'a>(&'a mut Vec<(String, serde_json::Value)>);

impl<'kvs> VisitSource<'kvs> for Collect<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let v = if let Some(b) = value.to_bool() {
            serde_json::Value::Bool(b)
        } else if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(f) = value.to_f64() {
            serde_json::Number::from_f64(f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null)
        } else {
            mask_emails(&value.to_string()).into()
        };
        let key = key.as_str().to_string();
        // A key given twice keeps its last value (the run id may be passed explicitly).
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, v));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_priorities_follow_syslog() {
        assert_eq!(syslog_prefix(Level::Error), "<3>");
        assert_eq!(syslog_prefix(Level::Warn), "<4>");
        assert_eq!(syslog_prefix(Level::Info), "<6>");
        assert_eq!(syslog_prefix(Level::Debug), "<7>");
        assert_eq!(syslog_prefix(Level::Trace), "<7>");
    }

    #[test]
    fn only_a_matching_journal_stream_counts() {
        for value in [None, Some(""), Some("x:y"), Some("1"), Some("0:0")] {
            assert!(!is_journal(Stream::Stdout, value), "{value:?}");
        }
    }

    #[test]
    fn rust_log_directives() {
        let cases: &[(Option<&str>, LevelFilter)] = &[
            (None, LevelFilter::Info),
            (Some("debug"), LevelFilter::Debug),
            (Some("calsync=trace"), LevelFilter::Trace),
            (Some("warn,calsync=debug"), LevelFilter::Debug),
            (Some("hyper=trace"), LevelFilter::Info),
            (Some("nonsense"), LevelFilter::Info),
        ];
        for (value, want) in cases {
            assert_eq!(level_from_env(*value), *want, "{value:?}");
        }
    }

    #[test]
    fn a_line_for_a_person_reads_as_a_sentence() {
        let kvs: &[(&str, Value<'_>)] = &[
            ("event", Value::from("validate.failed_check")),
            ("pair", Value::from("parish")),
            ("events", Value::from(2u64)),
        ];
        let record = Record::builder()
            .args(format_args!("check failed for office@example.org"))
            .level(Level::Warn)
            .target("calsync::commands")
            .key_values(&kvs)
            .build();
        assert_eq!(
            format_human(&record),
            "warning: check failed for o***@example.org (pair parish, events 2)\n"
        );
    }

    #[test]
    fn a_line_is_json_with_numbers_as_numbers_and_addresses_masked() {
        let kvs: &[(&str, Value<'_>)] = &[
            ("event", Value::from("pair.finished")),
            ("pair", Value::from("parish")),
            ("created", Value::from(3u64)),
            ("delta", Value::from(-2i64)),
            ("mailbox", Value::from("office@example.org")),
        ];
        let record = Record::builder()
            .args(format_args!("done for office@example.org"))
            .level(Level::Info)
            .target("calsync::engine")
            .key_values(&kvs)
            .build();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let line = format_line(&record, Some("r1"), now);
        assert!(line.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "2026-11-29T10:00:00.000Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["run_id"], "r1");
        assert_eq!(v["event"], "pair.finished");
        assert_eq!(v["created"], 3);
        assert_eq!(v["delta"], -2);
        assert_eq!(v["mailbox"], "o***@example.org");
        assert_eq!(v["msg"], "done for o***@example.org");
    }
}
