//! Mirror fidelity on real-world calendars (issue 17): the real binary publishes each of the
//! third-party calendars in `../shared/realworld-ics/corpus` (Google, Outlook/Exchange,
//! Evolution, khal, Sunbird, KOrganizer, Oracle exports and the test calendars of
//! python-icalendar, recurring-ical-events, ical.js, libical and ical4j) into an .ics target,
//! and each target is compared with its source occurrence by occurrence — start, end and
//! title — by a parser that is not calsync's (`tests/support/corpus_compare.py`: Python's
//! icalendar with recurring-ical-events, pinned in `scripts/test.sh`).
//!
//! The files are third-party data and are read where they lie, never copied into the project.
//! Each gets a `now` (CALSYNC_NOW) that puts most of its events inside a 3,650-day window on
//! either side; files sharing a `now` run as pairs of one config in one calsync process, so
//! the whole corpus costs a few dozen processes. A file that is not a readable calendar as a
//! whole is listed in `tests/fixtures/realworld-invalid.toml` with its reason: its pair must
//! fail (exit 1) without writing a target, and the error must name the pair, line and column,
//! never bytes of the feed.

mod support;

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::cli::Cli;

const PAST_DAYS: u32 = 3650;
const FUTURE_DAYS: u32 = 3650;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realworld-ics/corpus")
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CALSYNC_TEST_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python");
    assert!(
        venv.exists(),
        "no Python with icalendar and recurring-ical-events: run scripts/test.sh \
         (it installs the pinned packages into .venv-test/)"
    );
    venv
}

/// Runs `corpus_compare.py` with arguments and decodes its JSON answer.
fn compare_script<T: serde::de::DeserializeOwned>(args: &[&std::ffi::OsStr]) -> T {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/corpus_compare.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("running tests/support/corpus_compare.py");
    assert!(
        out.status.success(),
        "corpus_compare.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("corpus_compare.py prints JSON")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectations {
    invalid: Vec<Invalid>,
}

/// A corpus file that is not a readable calendar as a whole.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalid {
    file: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
struct Plan {
    now: String,
}

#[derive(Debug, Deserialize)]
struct Compared {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    expected: u64,
    #[serde(default)]
    published: u64,
    #[serde(default)]
    missing_count: u64,
    #[serde(default)]
    extra_count: u64,
    #[serde(default)]
    missing: Vec<Vec<String>>,
    #[serde(default)]
    extra: Vec<Vec<String>>,
}

/// What calsync said about one pair.
#[derive(Debug, Default)]
struct PairOutcome {
    finished: Option<u64>,
    failed: Option<String>,
}

fn config(pairs: &[(String, PathBuf)]) -> String {
    let mut text = String::from("state = \"calsync.db\"\n");
    for (name, source) in pairs {
        text.push_str(&format!(
            "\n[[pair]]\nname = \"{name}\"\npast_days = {PAST_DAYS}\nfuture_days = {FUTURE_DAYS}\n\
             [pair.source]\nkind = \"ics\"\npath = {source:?}\n\
             [pair.target]\nkind = \"ics\"\npath = \"out/{name}.ics\"\n"
        ));
    }
    text
}

#[test]
fn every_corpus_file_is_mirrored_exactly_or_listed_invalid() {
    let started = Instant::now();
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus is not at {}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ics"))
        .collect();
    files.sort();
    assert!(files.len() >= 149, "only {} corpus files", files.len());
    let file_name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();

    let expectations: Expectations = toml::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/realworld-invalid.toml"),
        )
        .expect("tests/fixtures/realworld-invalid.toml"),
    )
    .expect("the expectations file parses");
    let invalid: BTreeMap<&str, &str> = expectations
        .invalid
        .iter()
        .map(|i| (i.file.as_str(), i.reason.as_str()))
        .collect();
    for name in invalid.keys() {
        assert!(
            files.iter().any(|f| file_name(f) == *name),
            "{name} is listed invalid but is not in the corpus"
        );
    }

    // One `now` per file; files sharing one run together.
    let args: Vec<&std::ffi::OsStr> = std::iter::once("plan".as_ref())
        .chain(files.iter().map(|f| f.as_os_str()))
        .collect();
    let plans: BTreeMap<String, Plan> = compare_script(&args);
    let mut groups: BTreeMap<String, Vec<(String, PathBuf)>> = BTreeMap::new();
    let mut pair_file: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (index, file) in files.iter().enumerate() {
        let now = plans[&file.to_string_lossy().into_owned()].now.clone();
        let pair = format!("c{index:03}");
        pair_file.insert(pair.clone(), file.clone());
        groups.entry(now).or_default().push((pair, file.clone()));
    }
    let planned = started.elapsed();

    // Two calsync processes at a time (CI has two cores), each a group of pairs.
    let queue = std::sync::Mutex::new(groups.iter().collect::<Vec<_>>());
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let Some((now, pairs)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let mut cli = Cli::new();
                    std::fs::create_dir_all(cli.path("out")).unwrap();
                    cli.write("calsync.toml", config(pairs));
                    cli.env("CALSYNC_NOW", now);
                    let run = cli.run(&["sync"]);
                    done.lock()
                        .unwrap()
                        .push((now.clone(), pairs.clone(), cli, run));
                }
            });
        }
    });
    let mut outcomes: BTreeMap<String, PairOutcome> = BTreeMap::new();
    let mut manifest = Vec::new();
    let mut clis = Vec::new();
    for (now, pairs, cli, run) in done.into_inner().unwrap() {
        assert!(
            [0, 1].contains(&run.code),
            "calsync sync exited {} for the group at {now}:\n{}{}",
            run.code,
            run.stdout,
            run.stderr
        );
        for line in run.log() {
            let Some(pair) = line.pair.clone() else {
                continue;
            };
            match line.event.as_deref() {
                Some("pair.finished") => {
                    outcomes.entry(pair).or_default().finished = Some(line.num("exit_code"))
                }
                Some("pair.failed") => {
                    outcomes.entry(pair).or_default().failed = Some(line.msg.clone())
                }
                _ => {}
            }
        }
        for (pair, source) in &pairs {
            manifest.push(serde_json::json!({
                "name": pair,
                "source": source,
                "target": cli.path(&format!("out/{pair}.ics")),
                "now": now,
                "past_days": PAST_DAYS,
                "future_days": FUTURE_DAYS,
            }));
        }
        clis.push(cli);
    }
    let synced = started.elapsed();

    let manifest_path = clis[0].write(
        "manifest.json",
        serde_json::to_vec(&manifest).expect("the manifest serialises"),
    );
    let compared: BTreeMap<String, Compared> =
        compare_script(&["compare".as_ref(), manifest_path.as_os_str()]);
    let checked = started.elapsed();

    let mut problems = Vec::new();
    let mut right = 0;
    let mut listed = 0;
    let mut occurrences = 0;
    for (pair, file) in &pair_file {
        let name = file_name(file);
        let outcome = outcomes.get(pair);
        let result = &compared[pair];
        if let Some(reason) = invalid.get(name.as_str()) {
            match outcome.and_then(|o| o.failed.as_deref()) {
                Some(msg) => {
                    let feed = std::fs::read(file).unwrap();
                    if let Some(problem) = raw_bytes_in(msg, &feed) {
                        problems.push(format!("{name}: the error echoes the feed: {problem}"));
                    } else if !msg.contains("line ") || !msg.contains("column ") {
                        problems.push(format!("{name}: the error names no line and column: {msg}"));
                    } else {
                        listed += 1;
                    }
                }
                None => problems.push(format!(
                    "{name} is listed invalid ({reason}) but its pair did not fail"
                )),
            }
            continue;
        }
        match outcome {
            Some(PairOutcome {
                finished: Some(0),
                failed: None,
            }) => {}
            other => {
                problems.push(format!(
                    "{name}: calsync did not sync it cleanly: {other:?}"
                ));
                continue;
            }
        }
        if result.status == "ok" {
            right += 1;
            occurrences += result.expected;
        } else {
            problems.push(format!(
                "{name}: {} (expected {}, published {}; {} missing, {} extra){}\n  missing: {:?}\n  extra: {:?}",
                result.status,
                result.expected,
                result.published,
                result.missing_count,
                result.extra_count,
                result.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default(),
                result.missing,
                result.extra
            ));
        }
    }
    eprintln!(
        "corpus: {} files, {right} mirrored right ({occurrences} occurrences compared), \
         {listed} listed invalid, {} wrong; {} calsync processes; plan {:.1?}, sync {:.1?}, compare {:.1?}",
        files.len(),
        problems.len(),
        groups.len(),
        planned,
        synced - planned,
        checked - synced
    );
    let unique: BTreeSet<&String> = problems.iter().collect();
    assert!(
        problems.is_empty(),
        "{} of {} corpus files mirrored wrong:\n{}",
        unique.len(),
        files.len(),
        problems.join("\n")
    );
}

/// A stretch of the feed's own text (8 bytes or more of one of its lines, past the property
/// name) that appears in a log message: the message echoes the feed.
fn raw_bytes_in(msg: &str, feed: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(feed);
    for line in text.lines() {
        let (name, value) = line.split_once(':').unwrap_or(("", line));
        if ["BEGIN", "END"].contains(&name.trim().to_ascii_uppercase().as_str()) {
            continue;
        }
        let value = value.trim();
        if value.len() >= 8 && msg.contains(value) {
            return Some(value.chars().take(40).collect());
        }
    }
    None
}
