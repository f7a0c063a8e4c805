//! The .ics target file's edges on the real binary: a file calsync did not write for the pair
//! is never overwritten, a symlink is written through, temp files a killed run left behind
//! go, two pairs on one file are recognised by its real path; and `validate` on such a
//! target: a component written twice is a duplicate, control characters in the source do
//! not fail it forever.

mod support;

use calsync::exit;
use serde_json::Value;
use support::cli::{Cli, Run};
use support::ics::{self, feed, timed};

fn config(target: &str) -> String {
    format!(
        "state = \"calsync.db\"\n[[pair]]\nname = \"parish\"\n[pair.source]\nkind = \"ics\"\n\
         path = \"feed.ics\"\n[pair.target]\nkind = \"ics\"\npath = \"{target}\"\n"
    )
}

fn ready(target: &str) -> Cli {
    let cli = Cli::new();
    cli.write(
        "feed.ics",
        feed(&[
            timed("a@x", "Open day", 3, ""),
            timed("b@x", "Choir", 5, ""),
        ]),
    );
    cli.write("calsync.toml", config(target));
    cli
}

fn failed_on(run: &Run, file: &str, words: &str) {
    assert_eq!(run.code, exit::FAILED, "{}{}", run.stdout, run.stderr);
    let line = run.event("pair.failed");
    assert!(
        line.msg.contains(file),
        "the file is not named: {}",
        line.msg
    );
    assert!(line.msg.contains(words), "{words:?} not in {}", line.msg);
}

/// A hand-made calendar of `n` events, as someone's own website calendar would be.
fn hand_made(n: usize) -> String {
    let events: Vec<String> = (0..n)
        .map(|i| {
            timed(
                &format!("event-{i}@website"),
                &format!("Event {i}"),
                2 + i as i64,
                "",
            )
        })
        .collect();
    feed(&events)
}

#[test]
fn a_file_not_written_by_calsync_for_this_pair_is_never_overwritten() {
    let cli = ready("public.ics");
    let mine = hand_made(50);
    cli.write("public.ics", &mine);
    for args in [&["sync"][..], &["sync", "--dry-run"]] {
        let run = cli.run(args);
        failed_on(&run, "public.ics", "not written by calsync");
        assert_eq!(cli.read("public.ics"), mine, "{args:?} touched it");
    }
    cli.run(&["cleanup"]);
    assert_eq!(cli.read("public.ics"), mine, "cleanup touched it");

    // Written by calsync, but for another pair.
    let other = ready("public.ics");
    other.write(
        "calsync.toml",
        config("public.ics").replace("\"parish\"", "\"school\""),
    );
    assert_eq!(other.run(&["sync"]).code, exit::OK);
    let theirs = other.read("public.ics");
    cli.write("public.ics", &theirs);
    failed_on(
        &cli.run(&["sync"]),
        "public.ics",
        "2 of its 2 events were not written",
    );
    assert_eq!(cli.read("public.ics"), theirs);

    // Not a calendar at all.
    cli.write("public.ics", "<html>calendar coming soon</html>\n");
    failed_on(&cli.run(&["sync"]), "public.ics", "not an iCalendar file");

    // An empty placeholder holds nothing to lose; calsync's own file is rewritten.
    cli.write("public.ics", "");
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    assert!(cli.read("public.ics").contains("BEGIN:VEVENT"));
    cli.write("feed.ics", feed(&[timed("a@x", "Open day", 3, "")]));
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert_eq!(run.event("pair.finished").num("deleted"), 1);
}

#[test]
fn a_symlinked_target_is_written_through_in_its_own_folder() {
    let cli = ready("public.ics");
    std::fs::create_dir_all(cli.path("www/data")).unwrap();
    std::os::unix::fs::symlink("www/data/calendar.ics", cli.path("public.ics")).unwrap();
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    let link = std::fs::symlink_metadata(cli.path("public.ics")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    assert!(cli.read("www/data/calendar.ics").contains("SUMMARY:Choir"));
    // The next run reads it through the link as calsync's own, and changes nothing.
    let again = cli.run(&["sync"]);
    assert_eq!(again.code, exit::OK, "{}", again.stdout);
    assert_eq!(again.event("pair.finished").num("unchanged"), 2);
    let names: Vec<String> = std::fs::read_dir(cli.path("www/data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["calendar.ics"], "no temp file beside the real file");
}

#[test]
fn temp_files_a_killed_run_left_behind_are_removed_by_the_next() {
    let cli = ready("public.ics");
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    // What a run killed between creating and renaming its temp file leaves.
    let stale = ".public.ics.0a1b2c3d4e5f.tmp";
    cli.write(stale, "BEGIN:VCALENDAR\r\nhalf a calend");
    cli.write(".public.ics.backup.tmp", "not ours: kept");
    cli.write("feed.ics", feed(&[timed("a@x", "Open day (moved)", 4, "")]));
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert!(
        !cli.path(stale).exists(),
        "the stale temp file is still there"
    );
    assert!(run.has_event("temp.removed"));
    assert_eq!(cli.read(".public.ics.backup.tmp"), "not ours: kept");
}

#[test]
fn two_pairs_on_one_file_by_another_spelling_are_a_config_error() {
    for spelling in ["./public.ics", "sub/../public.ics", "alias.ics"] {
        let cli = ready("public.ics");
        std::fs::create_dir(cli.path("sub")).unwrap();
        std::os::unix::fs::symlink("public.ics", cli.path("alias.ics")).unwrap();
        let second = config(spelling)
            .replace("state = \"calsync.db\"\n", "")
            .replace("\"parish\"", "\"school\"");
        cli.write(
            "calsync.toml",
            format!("{}\n{second}", config("public.ics")),
        );
        let run = cli.run(&["sync"]);
        assert_eq!(run.code, exit::CONFIG, "{spelling}: {}", run.stdout);
        let msg = run.event("config.invalid").msg;
        assert!(
            msg.contains("pair 'school'.target.path") && msg.contains("write the same file"),
            "{spelling}: {msg}"
        );
        assert!(!cli.path("public.ics").exists());
    }
}

fn checks(run: &Run) -> Vec<(String, String, Vec<String>)> {
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr));
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn validate_finds_a_component_written_twice_in_an_ics_target() {
    let cli = ready("public.ics");
    assert_eq!(cli.run(&["sync"]).code, exit::OK);
    assert_eq!(cli.run(&["validate"]).code, exit::OK);
    let text = cli.read("public.ics");
    let start = text.find("BEGIN:VEVENT").unwrap();
    let end = start + text[start..].find("END:VEVENT\r\n").unwrap() + "END:VEVENT\r\n".len();
    let copy = &text[start..end];
    let uid = copy
        .replace("\r\n ", "")
        .lines()
        .find_map(|l| l.strip_prefix("UID:"))
        .unwrap()
        .to_string();
    cli.write(
        "public.ics",
        text.replace("END:VCALENDAR", &format!("{copy}END:VCALENDAR")),
    );
    let run = cli.run(&["validate"]);
    assert_eq!(run.code, exit::FAILED, "{}", run.stdout);
    let failed: Vec<_> = checks(&run)
        .into_iter()
        .filter(|(_, status, _)| status == "fail")
        .collect();
    assert!(
        failed
            .iter()
            .any(|(name, _, ids)| name == "no_duplicates" && ids == &vec![uid.clone()]),
        "{failed:?}"
    );
}

#[test]
fn validate_passes_a_target_whose_source_text_holds_control_characters() {
    let cli = ready("public.ics");
    cli.write(
        "feed.ics",
        feed(&[timed(
            "bell@x",
            "Choir\u{7} practice",
            3,
            "LOCATION:Hall\u{1}B\nDESCRIPTION:Bring\u{1b} music\\, and tea\nCATEGORIES:Mu\u{8}sic",
        )]),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
    assert!(!cli.read("public.ics").contains('\u{7}'));
    let run = cli.run(&["validate"]);
    let failed: Vec<_> = checks(&run)
        .into_iter()
        .filter(|(_, status, _)| status == "fail")
        .collect();
    assert_eq!(run.code, exit::OK, "{failed:?}");
}

/// A run that changes nothing published leaves a file that is still as calsync wrote it
/// alone without rendering it again; a file that changed on disk (here: removed) is written.
#[test]
fn an_unchanged_calendar_is_not_rendered_again_until_its_file_changes() {
    let mut cli = Cli::new();
    cli.env("RUST_LOG", "debug");
    cli.write(
        "feed.ics",
        feed(&[timed("a@x", "Alpha", 3, ""), timed("b@x", "Beta", 4, "")]),
    );
    cli.write(
        "calsync.toml",
        "state = \"state/calsync.db\"\n[[pair]]\nname = \"parish\"\n[pair.source]\nkind = \"ics\"\n\
         path = \"feed.ics\"\n[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
    );
    let first = cli.run(&["sync"]);
    assert_eq!(first.code, exit::OK, "{}", first.stdout);
    assert!(first.has_event("target.written"));
    let again = cli.run(&["sync", "--full"]);
    assert_eq!(again.code, exit::OK);
    assert!(again.has_event("target.unchanged"), "{}", again.stdout);
    std::fs::remove_file(cli.path("public.ics")).unwrap();
    let rewrite = cli.run(&["sync"]);
    assert_eq!(rewrite.code, exit::OK);
    assert!(!rewrite.has_event("target.unchanged"));
    assert!(rewrite.has_event("target.written"), "{}", rewrite.stdout);
    assert_eq!(ics::parse(&cli.read("public.ics")).events().len(), 2);
}
