//! Logs under systemd: when stdout is the journal (`$JOURNAL_STREAM` names it), every line is
//! one JSON object behind its sd-daemon priority prefix, which journald strips and records;
//! no colour or cursor codes, nothing on stderr. When the variable names another file (a
//! child or a redirection inherited it), the lines stay bare JSON.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

struct Logged {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs a sync whose only pair fails (its feed file is missing): info, warn and error lines.
fn sync_into_file(journal_stream: impl Fn(&std::fs::Metadata) -> String) -> Logged {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("calsync.toml"),
        "state = \"calsync.db\"\n[[pair]]\nname = \"parish\"\n[pair.source]\nkind = \"ics\"\n\
         path = \"missing.ics\"\n[pair.target]\nkind = \"ics\"\npath = \"out.ics\"\n",
    )
    .unwrap();
    let out_path = dir.path().join("stdout");
    let out = std::fs::File::create(&out_path).unwrap();
    let value = journal_stream(&out.metadata().unwrap());
    let child = Command::new(env!("CARGO_BIN_EXE_calsync"))
        .args(["--config", "calsync.toml", "sync"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("CALSYNC_CONFIG")
        .env_remove("CALSYNC_STATE")
        .env("JOURNAL_STREAM", value)
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Logged {
        code: child.status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: String::from_utf8(child.stderr).unwrap(),
    }
}

fn assert_clean(text: &str) {
    assert!(
        !text.contains('\u{1b}') && !text.contains('\r'),
        "control codes in the log:\n{text:?}"
    );
}

#[test]
fn journal_lines_carry_their_priority_and_stay_one_json_object_each() {
    let run = sync_into_file(|m| format!("{}:{}", m.dev(), m.ino()));
    assert_eq!(run.code, calsync::exit::FAILED, "{}", run.stdout);
    assert_eq!(run.stderr, "", "nothing but the log, and only on stdout");
    assert_clean(&run.stdout);
    assert!(run.stdout.ends_with('\n'));
    let mut seen = Vec::new();
    for line in run.stdout.lines() {
        let (prefix, json) = line.split_at(3);
        let value: serde_json::Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("not one JSON object after the prefix ({e}): {line}"));
        let want = match value["level"].as_str().unwrap() {
            "error" => "<3>",
            "warn" => "<4>",
            "info" => "<6>",
            _ => "<7>",
        };
        assert_eq!(prefix, want, "{line}");
        seen.push(prefix);
    }
    for prefix in ["<3>", "<4>", "<6>"] {
        assert!(
            seen.contains(&prefix),
            "no {prefix} line in\n{}",
            run.stdout
        );
    }
}

#[test]
fn an_inherited_journal_stream_of_another_file_leaves_lines_bare() {
    let run = sync_into_file(|m| format!("{}:{}", m.dev(), m.ino() + 1));
    assert_eq!(run.code, calsync::exit::FAILED, "{}", run.stdout);
    assert_clean(&run.stdout);
    for line in run.stdout.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["ts"].is_string(), "{line}");
    }
}
