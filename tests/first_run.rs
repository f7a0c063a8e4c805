//! What a newcomer meets first, on the real binary: the bundled demo runs clean and its
//! summaries add up (`pair.finished`, `sync.finished`, the metrics file, `history`).

mod support;

use calsync::exit;
use serde_json::Value;
use std::path::PathBuf;
use support::cli::{Cli, LogLine, Run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of `examples/` in a temp folder, as a fresh clone has it.
fn demo() -> Cli {
    let cli = Cli::new();
    for name in ["demo.toml", "demo-source.ics"] {
        std::fs::copy(
            repo().join("examples").join(name),
            cli.path("examples").join(name).tap_mkdir(),
        )
        .unwrap();
    }
    std::fs::create_dir_all(cli.path("examples/out")).unwrap();
    cli
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(self.parent().unwrap()).unwrap();
        self
    }
}

fn run_demo(cli: &Cli, args: &[&str]) -> Run {
    let mut all = vec!["--config", "examples/demo.toml"];
    all.extend_from_slice(args);
    cli.run_raw(&all)
}

/// The lines above `info`, less the one-time note that the audit key was created.
fn complaints(run: &Run) -> Vec<String> {
    run.log()
        .into_iter()
        .filter(|l| l.level != "info" && l.level != "debug")
        .filter(|l| l.event.as_deref() != Some("audit.key_created"))
        .map(|l| format!("{:?}: {}", l.event, l.msg))
        .collect()
}

/// `withheld` and its parts `withheld_<part>` of a summary line.
fn assert_parts_sum(line: &LogLine) {
    let parts: u64 = line
        .fields
        .iter()
        .filter(|(k, _)| k.starts_with("withheld_"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    let names: Vec<&String> = line
        .fields
        .keys()
        .filter(|k| k.starts_with("withheld_"))
        .collect();
    assert_eq!(names.len(), 6, "{:?}: parts {names:?}", line.event);
    assert_eq!(
        line.num("withheld"),
        parts,
        "{:?}: {:?}",
        line.event,
        line.fields
    );
}

#[test]
fn the_demo_runs_clean_and_its_summaries_add_up() {
    let cli = demo();
    // With a metrics file, so its numbers are checked too.
    let config = std::fs::read_to_string(cli.path("examples/demo.toml")).unwrap();
    cli.write(
        "examples/demo.toml",
        config.replace(
            "state = \"out/calsync.db\"\n",
            "state = \"out/calsync.db\"\nmetrics_file = \"out/calsync.prom\"\n",
        ),
    );
    let first = run_demo(&cli, &["sync"]);
    assert_eq!(first.code, exit::OK, "{}", first.stdout);
    assert_eq!(
        complaints(&first),
        Vec::<String>::new(),
        "the demo's sync complains"
    );
    let pair = first.event("pair.finished");
    assert!(pair.num("withheld") > 0, "the demo withholds nothing?");
    assert_parts_sum(&pair);
    assert_parts_sum(&first.event("sync.finished"));
    assert!(cli.path("examples/out/public.ics").exists());

    // The metrics file: the reasons add up to the withheld count.
    let prom = std::fs::read_to_string(cli.path("examples/out/calsync.prom")).unwrap();
    let sample = |prefix: &str| -> f64 {
        prom.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let whole = sample("calsync_pair_last_run_events{pair=\"demo\",result=\"withheld\"}");
    let parts = sample("calsync_pair_last_run_withheld_events{pair=\"demo\",");
    assert_eq!(whole, pair.num("withheld") as f64, "{prom}");
    assert_eq!(parts, whole, "{prom}");

    let again = run_demo(&cli, &["sync"]);
    assert_eq!(again.code, exit::OK);
    assert_eq!(
        complaints(&again),
        Vec::<String>::new(),
        "the second sync complains"
    );
    let dry = run_demo(&cli, &["sync", "--dry-run"]);
    assert_eq!(dry.code, exit::OK);
    let cleanup = run_demo(&cli, &["cleanup"]);
    assert_eq!(cleanup.code, exit::OK, "{}", cleanup.stdout);
    assert_eq!(
        complaints(&cleanup),
        Vec::<String>::new(),
        "cleanup warns about the demo's settings"
    );

    // history: every total is the sum of its parts.
    let history = run_demo(&cli, &["history", "--format", "json"]);
    assert_eq!(history.code, exit::OK, "{}", history.stderr);
    let doc: Value = serde_json::from_str(&history.stdout).unwrap();
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    let s = &doc["summary"];
    assert_eq!(n(s, "runs"), 3, "two syncs and a cleanup: {s}");
    assert_eq!(
        n(s, "runs"),
        n(s, "ok") + n(s, "failed") + n(s, "running") + n(s, "dry_run"),
        "{s}"
    );
    for period in [&doc["trend"]["current"], &doc["trend"]["previous"]] {
        assert_eq!(
            n(period, "runs"),
            n(period, "ok") + n(period, "failed") + n(period, "other")
        );
    }
    for hour in doc["hourly"].as_array().unwrap() {
        assert_eq!(
            n(hour, "runs"),
            n(hour, "ok") + n(hour, "failed") + n(hour, "other")
        );
    }
}

/// Runs calsync on a terminal (a pseudo-terminal from util-linux's `script`), as a person
/// at a shell would, and returns what the terminal showed, line ends normalised.
fn on_a_terminal(cli: &Cli, args: &[&str]) -> (i32, String) {
    let mut command = String::from(env!("CARGO_BIN_EXE_calsync"));
    for a in args {
        command.push(' ');
        command.push_str(a);
    }
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(cli.dir())
        .env_remove("RUST_LOG")
        .env_remove("CALSYNC_CONFIG")
        .env_remove("CALSYNC_STATE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running script (util-linux)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
    )
}

#[test]
fn report_commands_on_a_terminal_show_the_table_first_and_plain_notes_after_it() {
    let cli = demo();
    assert_eq!(run_demo(&cli, &["sync"]).code, exit::OK);
    let published = cli.path("examples/out/public.ics");
    let text = std::fs::read_to_string(&published).unwrap();
    std::fs::write(&published, text.replacen("SUMMARY:", "SUMMARY:Hacked ", 1)).unwrap();

    let (code, shown) = on_a_terminal(&cli, &["--config", "examples/demo.toml", "validate"]);
    assert_eq!(code, exit::FAILED, "{shown}");
    assert!(!shown.contains("{\""), "JSON on a terminal:\n{shown}");
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "calsync validate: fail", "{shown}");
    let table_end = lines
        .iter()
        .position(|l| l.starts_with("demo  fields_equal"))
        .expect("the table");
    let note = lines
        .iter()
        .position(|l| *l == "warning: check failed (pair demo, check fields_equal, events 1)")
        .unwrap_or_else(|| panic!("no plain note:\n{shown}"));
    assert!(note > table_end, "the note is above the table:\n{shown}");

    // What stops a report command reads as one plain line too.
    let (code, shown) = on_a_terminal(&cli, &["--config", "nowhere.toml", "history"]);
    assert_eq!(code, exit::CONFIG, "{shown}");
    assert!(shown.trim().starts_with("error: nowhere.toml"), "{shown}");
    assert!(!shown.contains("{\""), "{shown}");

    // Not on a terminal: the report is JSON and the log lines JSON, as before.
    let piped = run_demo(&cli, &["validate"]);
    assert_eq!(piped.code, exit::FAILED);
    let _: Value = serde_json::from_str(&piped.stdout).expect("a JSON report");
    assert!(
        piped
            .stderr_log()
            .iter()
            .any(|l| l.event.as_deref() == Some("validate.failed_check"))
    );
}

/// The shipped example (`/etc/calsync/calsync.toml`) with its URLs, user names and secrets
/// pointed at a real CalDAV server: nothing else changed, it runs.
#[test]
fn the_example_configuration_runs_as_shipped_apart_from_urls_and_secrets() {
    use support::radicale::Radicale;
    let radicale = Radicale::start();
    radicale.mkcalendar("office");
    radicale.mkcalendar("public");
    for (name, text) in support::parish::resources() {
        radicale.put("office", &name, &text);
    }
    let mut cli = Cli::new();
    let example = std::fs::read_to_string(repo().join("examples/calsync.toml")).unwrap();
    let edited = example
        .replace(
            "https://cloud.example.org/remote.php/dav/calendars/office/personal/",
            &radicale.collection_url("office"),
        )
        .replace(
            "https://cloud.example.org/remote.php/dav/calendars/publisher/public/",
            &radicale.collection_url("public"),
        )
        .replace(
            "username = \"office\"",
            &format!("username = \"{}\"", radicale.user()),
        )
        .replace(
            "username = \"publisher\"",
            &format!("username = \"{}\"", radicale.user()),
        );
    let changed = example
        .lines()
        .zip(edited.lines())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(changed, 4, "the example's URLs or user names moved");
    cli.write("etc/calsync.toml", &edited);
    // The secrets and the audit key, where systemd's LoadCredential= puts them.
    cli.write(
        "credentials/office-password",
        format!("{}\n", radicale.password()),
    );
    cli.write(
        "credentials/caldav-password",
        format!("{}\n", radicale.password()),
    );
    cli.write("credentials/audit.key", [42u8; 32]);
    cli.env(
        "CREDENTIALS_DIRECTORY",
        cli.path("credentials").to_str().unwrap(),
    );
    let config = cli.path("etc/calsync.toml").display().to_string();
    let state = cli.path("state/calsync.db").display().to_string();
    let run = |command: &str| cli.run_raw(&["--config", &config, "--state", &state, command]);
    let sync = run("sync");
    assert_eq!(sync.code, exit::OK, "{}{}", sync.stdout, sync.stderr);
    assert!(sync.event("pair.finished").num("created") > 0);
    let published: Vec<String> = radicale.list("public").into_iter().map(|o| o.ics).collect();
    let calendars: Vec<_> = published.iter().map(|t| support::ics::parse(t)).collect();
    let events: Vec<&support::ics::Component> = calendars.iter().flat_map(|c| c.events()).collect();
    support::parish::assert_published(&events);
    let validate = run("validate");
    assert_eq!(validate.code, exit::OK, "{}", validate.stdout);

    // validate finds an event held twice in a CalDAV calendar too: a second resource with
    // the same event (Radicale refuses to store it, so it is copied in on its disk, as a
    // restored backup or a server's own copy would leave it).
    let victim = radicale
        .list("public")
        .into_iter()
        .find(|o| o.ics.matches("BEGIN:VEVENT").count() == 1)
        .expect("a single event");
    let name = victim.href.rsplit('/').next().unwrap().to_string();
    let dir = radicale.collection_dir("public");
    std::fs::copy(dir.join(&name), dir.join("copy-of-an-event.ics")).unwrap();
    let validate = run("validate");
    assert_eq!(validate.code, exit::FAILED, "{}", validate.stdout);
    let doc: Value = serde_json::from_str(&validate.stdout).unwrap();
    let duplicates = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "no_duplicates")
        .unwrap();
    assert_eq!(duplicates["status"], "fail", "{duplicates}");
    assert!(
        duplicates["ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id.as_str().unwrap().ends_with("copy-of-an-event.ics")),
        "{duplicates}"
    );
}

/// The providers this build has: a pair of each kind is run (a dry run, on a loopback port
/// nothing listens on) and a kind the build lacks says so.
fn built_kinds() -> Vec<&'static str> {
    let mut built = Vec::new();
    for kind in calsync::config::KINDS {
        let side = match kind.name {
            "graph" => "kind = \"graph\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"HOME\"\nuser = \"u@example.org\"\nbase_url = \"http://127.0.0.1:9/v1.0\"\ntoken_url = \"http://127.0.0.1:9/token\"".to_string(),
            "google" => "kind = \"google\"\nservice_account_env = \"HOME\"\ncalendar_id = \"c\"\nbase_url = \"http://127.0.0.1:9/v3\"\ntoken_url = \"http://127.0.0.1:9/token\"".to_string(),
            "caldav" => "kind = \"caldav\"\nurl = \"http://127.0.0.1:9/c/\"".to_string(),
            _ => "kind = \"ics\"\nurl = \"http://127.0.0.1:9/f.ics\"".to_string(),
        };
        let mut cli = Cli::new();
        cli.env("HOME", "{}");
        cli.write(
            "calsync.toml",
            format!(
                "state = \"calsync.db\"\n[net]\nretries = 0\n[[pair]]\nname = \"p\"\n[pair.source]\n{side}\n\
                 [pair.target]\nkind = \"ics\"\npath = \"o.ics\"\n"
            ),
        );
        let run = cli.run(&["sync", "--dry-run"]);
        if !run.all_output().contains("is not available in this build") {
            built.push(kind.name);
        }
    }
    built
}

#[test]
fn what_a_build_ships_names_only_the_providers_it_has() {
    let built = built_kinds();
    assert!(
        built.contains(&"caldav") && built.contains(&"ics"),
        "{built:?}"
    );
    let names: &[(&str, &[&str])] = &[
        (
            "graph",
            &["Microsoft 365", "Microsoft Graph", "kind = \"graph\""],
        ),
        ("google", &["Google Calendar", "kind = \"google\""]),
    ];
    let help = Cli::new().run(&["--help"]).stdout;
    let mut shipped = vec![("calsync --help".to_string(), help)];
    for entry in std::fs::read_dir(repo().join("man")).unwrap() {
        let path = entry.unwrap().path();
        shipped.push((
            path.display().to_string(),
            std::fs::read_to_string(&path).unwrap(),
        ));
    }
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let description = cargo
        .split("extended-description = \"\"\"")
        .nth(1)
        .and_then(|rest| rest.split("\"\"\"").next())
        .expect("the Debian package description")
        .to_string();
    shipped.push(("Cargo.toml extended-description".into(), description));
    let spec = std::fs::read_to_string(repo().join("packaging/rpm/calsync.spec")).unwrap();
    shipped.push(("calsync.spec".into(), spec));
    let pkgbuild = std::fs::read_to_string(repo().join("packaging/arch/PKGBUILD")).unwrap();
    shipped.push(("PKGBUILD".into(), pkgbuild));
    // The example's settings, its comments left out (they may show what other builds have).
    let example: String = std::fs::read_to_string(repo().join("examples/calsync.toml"))
        .unwrap()
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    shipped.push(("examples/calsync.toml (settings)".into(), example));
    for (kind, words) in names {
        if built.contains(kind) {
            continue;
        }
        for (what, text) in &shipped {
            for word in *words {
                assert!(
                    !text.contains(word),
                    "{what} names {word:?}, but this build has no {kind} provider"
                );
            }
        }
    }
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

#[test]
fn the_readme_lists_every_number_with_its_range_and_what_a_newcomer_needs() {
    let text = readme();
    for row in calsync::config::NUMBERS {
        let group = |n: i64| {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        };
        let line = format!("| `{}` | {}–{} |", row.key, group(row.min), group(row.max));
        assert!(text.contains(&line), "README lacks the row {line}");
    }
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert!(
        text.contains(&format!("Rust {msrv} or newer")),
        "no minimum Rust version"
    );
    assert!(
        text.contains("C compiler"),
        "the bundled SQLite's C compiler is not named"
    );
    let fedora = text
        .lines()
        .find(|l| l.starts_with("| Fedora"))
        .expect("the Fedora row");
    let mkdir = fedora
        .find("mkdir -p ~/rpmbuild/SOURCES")
        .expect("mkdir first");
    assert!(mkdir < fedora.find("git archive").unwrap(), "{fedora}");
    assert!(text.contains("SKIPPED") || text.contains("skips a check"));
}

/// The exit codes the README's table gives a command.
fn documented_codes(text: &str, command: &str) -> Vec<i32> {
    let row = text
        .lines()
        .find(|l| {
            l.starts_with(&format!("| `{command} ")) || l.starts_with(&format!("| `{command}` "))
        })
        .unwrap_or_else(|| panic!("no README row for {command}"));
    let codes = row.rsplit(" | ").next().unwrap();
    let codes = if codes.contains("as `sync`") {
        format!(
            "{codes} {}",
            documented_codes(text, "sync")
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        )
    } else {
        codes.to_string()
    };
    codes
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[test]
fn the_readmes_exit_code_table_lists_what_each_command_exits_with() {
    let text = readme();
    let cli = demo();
    for command in [
        "sync",
        "cleanup",
        "validate",
        "health",
        "history",
        "audit-verify",
    ] {
        let codes = documented_codes(&text, command);
        let cases: [(&str, Vec<&str>); 4] = [
            (
                "a missing configuration",
                vec!["--config", "nowhere.toml", command],
            ),
            (
                "an unknown pair",
                vec!["--config", "examples/demo.toml", "--pair", "nope", command],
            ),
            (
                "an unknown flag",
                vec!["--config", "examples/demo.toml", command, "--frobnicate"],
            ),
            (
                "no state file yet",
                vec![
                    "--config",
                    "examples/demo.toml",
                    "--state",
                    "never.db",
                    command,
                ],
            ),
        ];
        for (what, args) in cases {
            let run = cli.run_raw(&args);
            assert!(
                codes.contains(&run.code),
                "{command} with {what} exits {}, which README's table does not list ({codes:?})",
                run.code
            );
        }
    }
}
