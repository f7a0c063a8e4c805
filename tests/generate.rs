//! The checked-in man pages (`man/`) and shell completions (`completions/`) are exactly what
//! the built binary's hidden `generate` command writes, and every option `--help` shows is on
//! the man page. When the clap definitions change, these tests fail until the files are
//! regenerated (the failure message says how).

use assert_cmd::Command;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const REGENERATE: &str = "regenerate them with:\n  \
cargo run --locked -- generate man man\n  \
for s in bash zsh fish; do cargo run --locked -- generate completions $s completions; done\n\
and commit the result";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn calsync() -> Command {
    let mut cmd = Command::cargo_bin("calsync").expect("the calsync binary is built");
    // The definitions read these; the output must not depend on them.
    cmd.env_remove("CALSYNC_CONFIG").env_remove("CALSYNC_STATE");
    cmd
}

fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}; {REGENERATE}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

/// Compares two folders file by file and names every difference.
fn assert_same_files(checked_in: &Path, generated: &Path) {
    let want = files_in(generated);
    let have = files_in(checked_in);
    let mut problems = Vec::new();
    for (name, bytes) in &want {
        match have.get(name) {
            None => problems.push(format!("{name} is missing")),
            Some(b) if b != bytes => problems.push(format!("{name} differs")),
            Some(_) => {}
        }
    }
    for name in have.keys().filter(|n| !want.contains_key(*n)) {
        problems.push(format!("{name} is no longer generated"));
    }
    assert!(
        problems.is_empty(),
        "{} is out of date ({}); {REGENERATE}",
        checked_in.display(),
        problems.join(", ")
    );
}

#[test]
fn checked_in_man_pages_are_what_generate_writes() {
    let out = tempfile::tempdir().unwrap();
    calsync()
        .args(["generate", "man"])
        .arg(out.path())
        .assert()
        .success();
    assert_same_files(&repo().join("man"), out.path());
}

#[test]
fn checked_in_completions_are_what_generate_writes() {
    let out = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        calsync()
            .args(["generate", "completions", shell])
            .arg(out.path())
            .assert()
            .success();
    }
    assert_same_files(&repo().join("completions"), out.path());
}

/// Long options as `--help` prints them (`--dry-run`, `--config <PATH>` …).
fn long_options(help: &str) -> Vec<String> {
    let mut options: Vec<String> = help
        .lines()
        .map(str::trim_start)
        .filter_map(|line| {
            let line = line.strip_prefix("-h, ").unwrap_or(line);
            let line = line.strip_prefix("-V, ").unwrap_or(line);
            let word = line.split_whitespace().next()?;
            (word.starts_with("--") && word.len() > 2).then(|| word.trim_end_matches(',').into())
        })
        .collect();
    options.sort();
    options.dedup();
    options
}

#[test]
fn every_option_in_help_is_on_the_man_page() {
    let man = repo().join("man");
    for (args, page) in [
        (vec![], "calsync.1"),
        (vec!["sync"], "calsync-sync.1"),
        (vec!["cleanup"], "calsync-cleanup.1"),
        (vec!["validate"], "calsync-validate.1"),
        (vec!["health"], "calsync-health.1"),
        (vec!["history"], "calsync-history.1"),
        (vec!["audit-verify"], "calsync-audit-verify.1"),
    ] {
        let out = calsync().args(&args).arg("--help").output().unwrap();
        assert!(out.status.success(), "{args:?} --help failed");
        let help = String::from_utf8(out.stdout).unwrap();
        let options = long_options(&help);
        assert!(
            options.iter().any(|o| o == "--config"),
            "{args:?}: no options read from --help:\n{help}"
        );
        let text = std::fs::read_to_string(man.join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}; {REGENERATE}"));
        // roff escapes every '-' as "\-".
        let text = text.replace("\\-", "-");
        for option in options {
            assert!(
                text.contains(&format!("\\fB{option}\\fR")),
                "{page} lacks {option}, which `calsync {} --help` shows; {REGENERATE}",
                args.join(" ")
            );
        }
    }
}
