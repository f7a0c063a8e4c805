//! The foundation, end to end: the real binary publishes an .ics source into an .ics target.
//!
//! What must never be wrong is checked on the published file with an independent parser:
//! every public in-window event is there, nothing private, confidential, unknown-class or
//! cancelled is, no attendee or organizer travels, the private occurrence of a series is cut
//! out of it — and no private title appears anywhere in what calsync printed, even at debug.

mod support;

use support::cli::Cli;
use support::http::{Request, Response, TestServer};
use support::ics::{self, feed, timed};
use support::parish::{self, parish_feed};

fn config(source: &str, extra_pair: &str) -> String {
    format!(
        "state = \"state/calsync.db\"\n\n[net]\nretries = 1\nbackoff_ms = 10\n\n[[pair]]\nname = \"parish\"\n\
         exclude_categories = [\"Staff only\"]\n{extra_pair}\n[pair.source]\nkind = \"ics\"\n{source}\n\n\
         [pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n"
    )
}

fn parish() -> Cli {
    let cli = Cli::new();
    cli.write("feed.ics", parish_feed());
    cli.write("calsync.toml", config("path = \"feed.ics\"", ""));
    cli
}

#[test]
fn public_events_are_published_and_nothing_private_is() {
    let mut cli = parish();
    cli.env("RUST_LOG", "debug");
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    let cal = ics::parse(&cli.read("public.ics"));
    parish::assert_published(&cal.events());
    assert_eq!(
        cal.components
            .iter()
            .filter(|c| c.name == "VTIMEZONE")
            .count(),
        1
    );

    // Nothing private anywhere: not in the file, not on stdout or stderr at debug level.
    parish::assert_nothing_private(&[&cli.read("public.ics"), &run.all_output()]);

    // The log: JSON lines, a summary last, counts as numbers.
    let log = run.log();
    let last = log.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("sync.finished"));
    assert_eq!(last.num("created"), 4);
    assert!(
        log.iter()
            .all(|l| l.run_id.as_deref() == log[0].run_id.as_deref() && l.run_id.is_some())
    );
    let finished = run.event("pair.finished");
    assert_eq!(finished.pair.as_deref(), Some("parish"));
    assert_eq!(
        finished.num("withheld_not_public"),
        parish::WITHHELD_NOT_PUBLIC
    );
    assert_eq!(finished.num("withheld_instances"), 1);
    assert!(
        run.event("target.written")
            .str("path")
            .unwrap()
            .ends_with("public.ics")
    );
}

#[test]
fn an_unchanged_source_rewrites_nothing() {
    let cli = parish();
    assert_eq!(cli.run(&["sync"]).code, 0);
    let first = std::fs::read(cli.path("public.ics")).unwrap();
    let mtime = std::fs::metadata(cli.path("public.ics"))
        .unwrap()
        .modified()
        .unwrap();
    let second = cli.run(&["sync"]);
    assert_eq!(second.code, 0, "{}", second.stdout);
    assert_eq!(
        std::fs::read(cli.path("public.ics")).unwrap(),
        first,
        "not byte-identical"
    );
    assert_eq!(
        std::fs::metadata(cli.path("public.ics"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    let summary = second.event("sync.finished");
    assert_eq!(
        (
            summary.num("created"),
            summary.num("updated"),
            summary.num("deleted")
        ),
        (0, 0, 0)
    );
    // A full re-read (same content) renders the same bytes too.
    assert_eq!(cli.run(&["sync", "--full"]).code, 0);
    assert_eq!(std::fs::read(cli.path("public.ics")).unwrap(), first);
}

/// A feed server that honours If-None-Match like a good web server.
fn feed_server(body: String) -> TestServer {
    TestServer::start(move |req: &Request| {
        let etag = "\"v1\"";
        if req.header("if-none-match") == Some(etag) {
            Response::new(304).header("ETag", etag)
        } else {
            Response::ics(200, &body).header("ETag", etag)
        }
    })
}

#[test]
fn a_304_costs_one_request_and_no_body() {
    let server = feed_server(parish_feed());
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        config(&format!("url = \"{}/feed.ics\"", server.url()), ""),
    );
    assert_eq!(cli.run(&["sync"]).code, 0);
    let published = std::fs::read(cli.path("public.ics")).unwrap();
    assert_eq!(server.count(), 1);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "a no-op run makes exactly one request");
    assert_eq!(requests[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!(run.event("pair.finished").str("read"), Some("unchanged"));
    assert_eq!(std::fs::read(cli.path("public.ics")).unwrap(), published);
}

#[test]
fn changes_in_the_source_reach_the_target() {
    let cli = parish();
    assert_eq!(cli.run(&["sync"]).code, 0);
    // The council becomes private, the open day is renamed, a new public event appears.
    let changed = parish_feed()
        .replace(
            "Parish council\r\nCLASS:PUBLIC",
            "Parish council\r\nCLASS:PRIVATE",
        )
        .replace("SUMMARY:Open day", "SUMMARY:Open day and fair")
        .replace(
            "END:VCALENDAR",
            &format!(
                "BEGIN:VEVENT\r\n{}\r\nEND:VEVENT\r\nEND:VCALENDAR",
                timed("new@x", "Advent concert", 3, "").replace('\n', "\r\n")
            ),
        );
    cli.write("feed.ics", changed);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let s = run.event("sync.finished");
    assert_eq!(
        (s.num("created"), s.num("updated"), s.num("deleted")),
        (1, 1, 1)
    );
    let mut titles: Vec<String> = ics::parse(&cli.read("public.ics"))
        .masters()
        .iter()
        .map(|e| e.summary().to_string())
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            "Advent concert",
            "Choir rehearsal",
            "Open day and fair",
            "Summer fete"
        ]
    );
}

#[test]
fn dry_run_changes_nothing() {
    let cli = parish();
    let run = cli.run(&["sync", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(!cli.path("public.ics").exists());
    assert_eq!(
        run.log()
            .iter()
            .filter(|l| l.event.as_deref() == Some("plan.action"))
            .count(),
        4
    );
    assert_eq!(cli.run(&["sync"]).code, 0);
}

/// Fourteen public events, so that the deletion guard's minimum (10 mapped) is passed.
fn many_events() -> String {
    feed(
        &(0..14)
            .map(|i| timed(&format!("e{i}@x"), &format!("Public event {i}"), 2 + i, ""))
            .collect::<Vec<_>>(),
    )
}

fn guarded() -> Cli {
    let cli = Cli::new();
    cli.write("feed.ics", many_events());
    cli.write("calsync.toml", config("path = \"feed.ics\"", ""));
    assert_eq!(cli.run(&["sync"]).code, 0);
    cli
}

#[test]
fn an_emptied_source_deletes_nothing_until_told() {
    let cli = guarded();
    let before = cli.read("public.ics");
    cli.write("feed.ics", feed(&[]));
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, calsync::exit::FAILED, "{}", run.stdout);
    let tripped = run.event("guard.tripped");
    assert_eq!((tripped.num("deletes"), tripped.num("mapped")), (14, 14));
    assert_eq!(cli.read("public.ics"), before);
    // It stays withheld on the next run, until the operator means it.
    assert_eq!(cli.run(&["sync"]).code, calsync::exit::FAILED);
    let run = cli.run(&["sync", "--allow-mass-delete"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.event("sync.finished").num("deleted"), 14);
    assert!(ics::parse(&cli.read("public.ics")).events().is_empty());
}

#[test]
fn deleting_a_few_passes_the_guard() {
    let cli = guarded();
    let fewer = feed(
        &(0..10)
            .map(|i| timed(&format!("e{i}@x"), &format!("Public event {i}"), 2 + i, ""))
            .collect::<Vec<_>>(),
    );
    cli.write("feed.ics", fewer);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.event("sync.finished").num("deleted"), 4);
}

#[test]
fn failed_or_cut_short_reads_delete_nothing() {
    let body = many_events();
    type Handler = Box<dyn Fn(&Request) -> Response + Send + Sync>;
    let cases: Vec<(&str, Handler, i32)> = vec![
        (
            "HTTP 500",
            Box::new(|_: &Request| Response::text(500, "oops")),
            calsync::exit::TEMPFAIL,
        ),
        (
            "HTTP 404",
            Box::new(|_: &Request| Response::text(404, "gone")),
            calsync::exit::FAILED,
        ),
        (
            "fewer bytes than Content-Length",
            {
                let body = body.clone();
                Box::new(move |_: &Request| {
                    let cut = &body[..body.len() / 2];
                    Response::raw(format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\nContent-Length: {}\r\n\r\n{cut}",
                        body.len()
                    ))
                })
            },
            calsync::exit::TEMPFAIL,
        ),
        (
            "no END:VCALENDAR",
            {
                let body = body.clone();
                Box::new(move |_: &Request| Response::ics(200, &body[..body.len() / 2]))
            },
            calsync::exit::FAILED,
        ),
        (
            "empty answer",
            Box::new(|_: &Request| Response::ics(200, "")),
            calsync::exit::FAILED,
        ),
    ];
    for (what, handler, want) in cases {
        let good = feed_server(body.clone());
        let cli = Cli::new();
        cli.write(
            "calsync.toml",
            config(&format!("url = \"{}/feed.ics\"", good.url()), ""),
        );
        assert_eq!(cli.run(&["sync"]).code, 0, "{what}: first sync");
        let before = cli.read("public.ics");
        let bad = TestServer::start(handler);
        cli.write(
            "calsync.toml",
            config(&format!("url = \"{}/feed.ics\"", bad.url()), ""),
        );
        let run = cli.run(&["sync", "--full"]);
        assert_eq!(run.code, want, "{what}: {}", run.stdout);
        assert_eq!(cli.read("public.ics"), before, "{what}: the target changed");
        assert_eq!(run.event("sync.finished").num("deleted"), 0, "{what}");
        assert!(run.has_event("pair.failed"), "{what}");
    }
}

#[test]
fn a_transient_failure_is_retried() {
    let body = many_events();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let server = TestServer::start(move |_: &Request| {
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Response::text(503, "busy").header("Retry-After", "0")
        } else {
            Response::ics(200, &body)
        }
    });
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        config(&format!("url = \"{}/feed.ics\"", server.url()), ""),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(server.count(), 2);
    assert_eq!(run.event("sync.finished").num("created"), 14);
}

/// The README's first command on the bundled demo, in a copy of `examples/`.
#[test]
fn the_bundled_demo_publishes_only_what_is_public() {
    let cli = Cli::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    cli.write(
        "demo.toml",
        std::fs::read(examples.join("demo.toml")).unwrap(),
    );
    cli.write(
        "demo-source.ics",
        std::fs::read(examples.join("demo-source.ics")).unwrap(),
    );
    std::fs::create_dir_all(cli.path("out")).unwrap();
    let config = cli.path("demo.toml");
    let run = cli.run_raw(&["--config", config.to_str().unwrap(), "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let text = cli.read("out/public.ics");
    let cal = ics::parse(&text);
    assert!(cal.masters().len() >= 5, "{:?}", cal.summaries());
    let source = std::fs::read_to_string(examples.join("demo-source.ics")).unwrap();
    for title in [
        "Salary review with J. Doe",
        "Counselling session K. Miller",
        "Staff room: Secret Santa draw",
        "Doctor appointment P. Novak",
        "Choir board: disciplinary talk with M. Weber",
    ] {
        assert!(
            source.contains(title.split(':').next().unwrap()),
            "fixture changed: {title}"
        );
        assert!(
            !text.contains(title) && !run.all_output().contains(title),
            "{title} leaked"
        );
    }
    for leak in [
        "zoom.us",
        "teams.microsoft.com",
        "246810",
        "ATTENDEE",
        "ORGANIZER",
        "VALARM",
    ] {
        assert!(
            !text.contains(leak),
            "{leak} leaked into the demo's public calendar"
        );
    }
    assert!(
        run.event("target.written")
            .str("path")
            .unwrap()
            .ends_with("public.ics")
    );
}

/// Real-world exports (Outlook with Windows zone names, Outlook's display-name zones, Google,
/// folded non-ASCII text, bare LF) go through the whole binary, and what comes out is read by
/// the independent parser with every zone resolved to IANA and a VTIMEZONE for each.
#[test]
fn real_world_exports_publish_cleanly() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "outlook-export.ics",
        "outlook-display-names.ics",
        "google-export.ics",
        "folding-unicode.ics",
        "bare-lf.ics",
    ] {
        let cli = Cli::new();
        cli.write("feed.ics", std::fs::read(fixtures.join(name)).unwrap());
        cli.write(
            "calsync.toml",
            config(
                "path = \"feed.ics\"",
                "past_days = 3650\nfuture_days = 3650",
            ),
        );
        let run = cli.run(&["sync"]);
        assert_eq!(run.code, 0, "{name}: {}", run.stdout);
        let finished = run.event("pair.finished");
        assert_eq!(finished.num("skipped"), 0, "{name}: events skipped");
        assert!(finished.num("created") > 0, "{name}: nothing published");
        let cal = ics::parse(&cli.read("public.ics"));
        let zones: Vec<&str> = cal
            .components
            .iter()
            .filter(|c| c.name == "VTIMEZONE")
            .filter_map(|c| c.get("TZID"))
            .collect();
        for e in cal.events() {
            assert_eq!(e.get("CLASS"), Some("PUBLIC"), "{name}");
            if let Some(tz) = e.param("DTSTART", "TZID") {
                assert!(
                    tz.parse::<chrono_tz::Tz>().is_ok(),
                    "{name}: {tz} is not an IANA zone"
                );
                assert!(zones.contains(&tz), "{name}: no VTIMEZONE for {tz}");
            }
        }
    }
}

/// When a few events of a big feed change, only they are read again: the others are listed
/// as unchanged (the same bytes, the same rules, the same day) and what was published of
/// them stands. A change of the rules reads everything again.
#[test]
fn only_changed_events_are_read_again_until_the_rules_change() {
    let events = |changed: &str| {
        feed(
            &(0..12)
                .map(|i| {
                    let title = if i == 3 {
                        format!("Event 3{changed}")
                    } else {
                        format!("Event {i}")
                    };
                    let extra = if i == 5 { "CATEGORIES:Choir" } else { "" };
                    timed(&format!("e{i}@x"), &title, 2 + i, extra)
                })
                .collect::<Vec<_>>(),
        )
    };
    let cli = Cli::new();
    cli.write("feed.ics", events(""));
    cli.write("calsync.toml", config("path = \"feed.ics\"", ""));
    let first = cli.run(&["sync"]);
    assert_eq!(first.code, 0, "{}", first.stdout);
    assert_eq!(first.event("pair.finished").num("source_unchanged"), 0);

    cli.write("feed.ics", events(" (moved to the hall)"));
    let second = cli.run(&["sync"]);
    assert_eq!(second.code, 0, "{}", second.stdout);
    let done = second.event("pair.finished");
    assert_eq!(
        (
            done.num("source_items"),
            done.num("source_unchanged"),
            done.num("updated"),
            done.num("deleted")
        ),
        (12, 11, 1, 0)
    );
    let titles = ics::parse(&cli.read("public.ics")).summaries();
    assert_eq!(titles.len(), 12);
    assert!(titles.contains(&"Event 3 (moved to the hall)".to_string()));

    // Excluding a category changes what an unchanged event gives: everything is read again.
    cli.write(
        "calsync.toml",
        config("path = \"feed.ics\"", "").replace(
            "exclude_categories = [\"Staff only\"]",
            "exclude_categories = [\"Choir\"]",
        ),
    );
    cli.write("feed.ics", events(" (back in church)"));
    let third = cli.run(&["sync"]);
    assert_eq!(third.code, 0, "{}", third.stdout);
    let done = third.event("pair.finished");
    assert_eq!(done.num("source_unchanged"), 0);
    assert_eq!(done.num("withdrawn"), 1);
    let titles = ics::parse(&cli.read("public.ics")).summaries();
    assert_eq!(titles.len(), 11);
    assert!(!titles.contains(&"Event 5".to_string()));
}
