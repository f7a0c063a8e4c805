//! The CalDAV provider against a real Radicale (3.9.0, started per test by the test kit).
//!
//! calsync talks to Radicale through a `FaultProxy`, which counts every request and can break
//! one on purpose; the tests seed and inspect the calendars directly (bypassing the proxy and
//! calsync's own CalDAV code) and read what was published with an independent parser.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;
use support::cli::{Cli, Run};
use support::http::{Request, Response, TestServer};
use support::ics::{self, feed, timed};
use support::parish::{self, PUBLISHED, assert_nothing_private};
use support::proxy::{Fault, FaultProxy, Matching};
use support::radicale::{Radicale, StoredObject};

/// A Radicale with `source` and `target` calendars, a counting proxy in front of it, and a
/// calsync folder whose password variable holds Radicale's password.
struct Dav {
    radicale: Radicale,
    proxy: FaultProxy,
    cli: Cli,
}

impl Dav {
    fn start() -> Dav {
        let radicale = Radicale::start();
        radicale.mkcalendar("source");
        radicale.mkcalendar("target");
        let proxy = FaultProxy::start(&radicale.url());
        let mut cli = Cli::new();
        cli.env("RADICALE_PASSWORD", radicale.password());
        Dav {
            radicale,
            proxy,
            cli,
        }
    }

    /// The caldav endpoint keys for a collection reached through the proxy.
    fn endpoint(&self, collection: &str, extra: &str) -> String {
        format!(
            "kind = \"caldav\"\nurl = \"{}/test/{collection}/\"\nusername = \"test\"\npassword_env = \"RADICALE_PASSWORD\"\n{extra}",
            self.proxy.url()
        )
    }

    fn configure(&self, source: &str, target: &str) {
        self.configure_pair("", source, target);
    }

    /// Writes the config with `extra` keys for the pair.
    fn configure_pair(&self, extra: &str, source: &str, target: &str) {
        self.cli.write(
            "calsync.toml",
            format!(
                "state = \"state/calsync.db\"\n\n[net]\nretries = 1\nbackoff_ms = 10\n\n[[pair]]\nname = \"parish\"\n\
                 exclude_categories = [\"Staff only\"]\n{extra}\n\n[pair.source]\n{source}\n[pair.target]\n{target}\n"
            ),
        );
    }

    fn caldav_to_caldav(&self) {
        self.configure(&self.endpoint("source", ""), &self.endpoint("target", ""));
    }

    fn seed(&self, resources: &[(String, String)]) {
        for (name, text) in resources {
            self.radicale.put("source", name, text);
        }
    }

    fn sync(&self, args: &[&str]) -> Run {
        let mut all = vec!["sync"];
        all.extend_from_slice(args);
        self.cli.run(&all)
    }

    /// Runs `sync` and insists it succeeded.
    fn sync_ok(&self, args: &[&str]) -> Run {
        let run = self.sync(args);
        assert_eq!(
            run.code,
            0,
            "sync {args:?} failed:\n{}{}\nRadicale:\n{}",
            run.stdout,
            run.stderr,
            self.radicale.log()
        );
        run
    }

    fn target(&self) -> Vec<StoredObject> {
        self.radicale.list("target")
    }
}

/// The events of every resource, each resource parsed on its own by the independent parser.
fn events_of(objects: &[StoredObject]) -> Vec<ics::Component> {
    objects
        .iter()
        .flat_map(|o| {
            ics::parse(&o.ics)
                .events()
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

fn master_titles(events: &[ics::Component]) -> Vec<String> {
    let mut titles: Vec<String> = events
        .iter()
        .filter(|e| e.get("RECURRENCE-ID").is_none())
        .map(|e| e.summary().to_string())
        .collect();
    titles.sort();
    titles
}

/// Checks a published calendar holds exactly the parish's public events (see
/// `support::parish`).
fn assert_parish_published(events: &[ics::Component]) {
    parish::assert_published(&events.iter().collect::<Vec<_>>());
}

#[test]
fn caldav_to_caldav_publishes_exactly_the_public_events() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.caldav_to_caldav();
    let run = dav.sync_ok(&[]);

    let target = dav.target();
    // One resource per series: master and override together; named by calsync, tagged.
    assert_eq!(target.len(), PUBLISHED.len());
    for object in &target {
        let name = object.href.rsplit('/').next().unwrap();
        assert!(
            name.starts_with("calsync-") && name.ends_with(".ics"),
            "{name}"
        );
        let cal = ics::parse(&object.ics);
        let masters = cal.masters();
        assert_eq!(masters.len(), 1, "{}", object.ics);
        assert!(
            masters[0]
                .get("X-CALSYNC-TAG")
                .is_some_and(|t| calsync::hashing::is_pair_tag("parish", t))
        );
    }
    let events = events_of(&target);
    assert_parish_published(&events);
    let texts: Vec<&str> = target.iter().map(|o| o.ics.as_str()).collect();
    assert_nothing_private(&texts);
    assert_nothing_private(&[&run.all_output()]);

    let finished = run.event("pair.finished");
    assert_eq!(finished.str("read"), Some("full"));
    assert_eq!(finished.num("created"), 4);
    assert_eq!(
        finished.num("withheld_not_public"),
        parish::WITHHELD_NOT_PUBLIC
    );
    assert_eq!(finished.num("withheld_instances"), 1);

    // validate reads both calendars and agrees.
    let run = dav.cli.run(&["validate"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let text = report.to_string();
    for check in [
        "counts_match",
        "no_private_event",
        "series_intact",
        "fields_equal",
    ] {
        assert!(text.contains(check), "validate did not run {check}: {text}");
    }

    // The same again with --full: nothing to write, nothing duplicated.
    let run = dav.sync_ok(&["--full"]);
    let s = run.event("sync.finished");
    assert_eq!(
        (s.num("created"), s.num("updated"), s.num("deleted")),
        (0, 0, 0)
    );
    assert_eq!(dav.target(), target, "a full resync rewrote the target");
}

#[test]
fn ics_to_caldav_publishes_exactly_the_public_events() {
    let dav = Dav::start();
    let all: Vec<String> = parish::resources()
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    // One feed holding every resource's VEVENTs.
    let bodies: Vec<String> = all
        .iter()
        .flat_map(|text| {
            let text = text.replace("\r\n", "\n");
            text.split("BEGIN:VEVENT\n")
                .skip(1)
                .map(|part| part.split("END:VEVENT").next().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    dav.cli.write("feed.ics", feed(&bodies));
    dav.configure(
        "kind = \"ics\"\npath = \"feed.ics\"\n",
        &dav.endpoint("target", ""),
    );
    let run = dav.sync_ok(&[]);
    let target = dav.target();
    assert_eq!(target.len(), PUBLISHED.len());
    assert_parish_published(&events_of(&target));
    let texts: Vec<&str> = target.iter().map(|o| o.ics.as_str()).collect();
    assert_nothing_private(&texts);
    assert_nothing_private(&[&run.all_output()]);
}

#[test]
fn caldav_to_ics_publishes_exactly_the_public_events() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.configure(
        &dav.endpoint("source", ""),
        "kind = \"ics\"\npath = \"public.ics\"\n",
    );
    let run = dav.sync_ok(&[]);
    let text = dav.cli.read("public.ics");
    let cal = ics::parse(&text);
    let events: Vec<ics::Component> = cal.events().into_iter().cloned().collect();
    assert_parish_published(&events);
    assert_nothing_private(&[&text, &run.all_output()]);

    // A source resource deleted and one made private are withdrawn on the next run.
    dav.radicale.delete("source", "fete.ics");
    let council = parish::resources()
        .into_iter()
        .find(|(n, _)| n == "council.ics")
        .unwrap()
        .1
        .replace("CLASS:PUBLIC", "CLASS:PRIVATE");
    dav.radicale.put("source", "council.ics", &council);
    let run = dav.sync_ok(&[]);
    assert_eq!(run.event("pair.finished").str("read"), Some("delta"));
    let cal = ics::parse(&dav.cli.read("public.ics"));
    let events: Vec<ics::Component> = cal.events().into_iter().cloned().collect();
    assert_eq!(master_titles(&events), ["Choir rehearsal", "Open day"]);
}

/// A foreign event: not created by calsync, so never touched by it.
fn foreign_event() -> String {
    feed(&[timed(
        "someone-elses@example.org",
        "Added by hand in the target",
        3,
        "CLASS:PUBLIC",
    )])
}

#[test]
fn a_foreign_event_in_the_target_survives_a_full_sync() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    let etag = dav.radicale.put("target", "by-hand.ics", &foreign_event());
    dav.caldav_to_caldav();
    dav.sync_ok(&[]);
    // Even when the source empties and deletions are allowed, the foreign event stays.
    for (name, _) in parish::resources() {
        dav.radicale.delete("source", &name);
    }
    let run = dav.sync_ok(&["--full", "--allow-mass-delete"]);
    assert_eq!(run.event("sync.finished").num("deleted"), 4);
    let target = dav.target();
    assert_eq!(target.len(), 1, "{target:?}");
    assert_eq!(target[0].href, "/test/target/by-hand.ics");
    assert_eq!(target[0].etag, etag, "the foreign event was rewritten");
    assert_eq!(dav.proxy.count_method("DELETE"), 4);
    assert!(
        dav.proxy
            .requests()
            .iter()
            .all(|r| !r.path.contains("by-hand")),
        "calsync touched the foreign resource"
    );
}

#[test]
fn a_foreign_event_in_the_target_survives_cleanup_and_a_full_sync() {
    let dav = Dav::start();
    dav.seed(&[
        (
            "concert.ics".into(),
            feed(&[timed("concert@intranet", "Advent concert", 3, "")]),
        ),
        (
            "harvest.ics".into(),
            feed(&[timed("harvest@intranet", "Harvest festival", -40, "")]),
        ),
    ]);
    // Foreign events, one as old as the harvest festival.
    let old = feed(&[timed(
        "old-by-hand@example.org",
        "Old event added by hand",
        -40,
        "",
    )]);
    let foreign = [
        (
            "old-by-hand.ics",
            dav.radicale.put("target", "old-by-hand.ics", &old),
        ),
        (
            "by-hand.ics",
            dav.radicale.put("target", "by-hand.ics", &foreign_event()),
        ),
    ];
    let (source, target) = (dav.endpoint("source", ""), dav.endpoint("target", ""));
    // Published while the window reached 90 days back…
    dav.configure_pair("past_days = 90", &source, &target);
    let run = dav.sync_ok(&[]);
    assert_eq!(run.event("sync.finished").num("created"), 2);
    // …then the window narrows to 30 days and retention to 35: the festival is past it.
    dav.configure_pair("past_days = 30\nretention_days = 35", &source, &target);
    dav.proxy.clear();
    let run = dav.cli.run(&["cleanup"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.event("pair.finished").num("removed"), 1);
    let run = dav.sync_ok(&["--full"]);
    let s = run.event("sync.finished");
    assert_eq!(
        (s.num("created"), s.num("updated"), s.num("deleted")),
        (0, 0, 0)
    );

    let target = dav.target();
    let titles: Vec<String> = master_titles(&events_of(&target));
    assert_eq!(
        titles,
        [
            "Added by hand in the target",
            "Advent concert",
            "Old event added by hand"
        ]
    );
    for (name, etag) in foreign {
        let now = dav
            .radicale
            .get("target", name)
            .expect("a foreign event is gone");
        assert_eq!(now.etag, etag, "{name} was rewritten");
    }
    let requests = dav.proxy.requests();
    assert_eq!(
        requests.iter().filter(|r| r.method == "DELETE").count(),
        1,
        "cleanup deletes exactly the expired event of its own"
    );
    assert!(
        requests.iter().all(|r| !r.path.contains("by-hand")),
        "calsync sent a request to a foreign resource"
    );
}

#[test]
fn a_second_run_with_nothing_changed_makes_one_request_per_calendar_and_reads_no_body() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.caldav_to_caldav();
    dav.sync_ok(&[]);
    dav.proxy.clear();
    let run = dav.sync_ok(&[]);
    let mut requests: Vec<(String, String, usize)> = dav
        .proxy
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.response_bytes))
        .collect();
    requests.sort();
    let asked: Vec<(&str, &str)> = requests
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        asked,
        [("PROPFIND", "/test/target/"), ("REPORT", "/test/source/")],
        "a run with nothing changed asks each calendar one thing: the source for its changes, \
         the target whether it is still there"
    );
    for (method, _, bytes) in &requests {
        assert!(
            *bytes < 1024,
            "the no-op {method} answer carried {bytes} bytes"
        );
    }
    assert_eq!(run.event("pair.finished").str("read"), Some("unchanged"));

    // That one target request is why a calendar deleted in the target is noticed at once.
    let gone = dav
        .radicale
        .request("DELETE", &dav.radicale.collection_url("target"))
        .send()
        .unwrap();
    assert!(gone.status().is_success(), "{}", gone.status());
    let run = dav.sync(&[]);
    assert_eq!(run.code, calsync::exit::FAILED, "{}", run.stdout);
    assert!(
        run.event("pair.failed")
            .msg
            .contains("the calendar collection does not exist"),
        "{}",
        run.stdout
    );
}

/// `n` public single events around today, as resources `e<i>.ics`.
fn singles(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("e{i}.ics"),
                feed(&[timed(
                    &format!("e{i}@intranet"),
                    &format!("Public event {i}"),
                    2 + i as i64,
                    "",
                )]),
            )
        })
        .collect()
}

#[test]
fn ten_changed_five_deleted_five_added_cost_one_read_plus_one_request_per_write() {
    let dav = Dav::start();
    let events = singles(30);
    for (name, text) in &events {
        dav.radicale.put("source", name, text);
    }
    dav.caldav_to_caldav();
    dav.sync_ok(&[]);
    assert_eq!(dav.target().len(), 30);

    for (name, text) in &events[..10] {
        dav.radicale.put(
            "source",
            name,
            &text.replace("SUMMARY:Public", "SUMMARY:Renamed"),
        );
    }
    for (name, _) in &events[10..15] {
        dav.radicale.delete("source", name);
    }
    for (name, text) in singles(35).iter().skip(30) {
        dav.radicale.put("source", name, text);
    }
    dav.proxy.clear();
    let run = dav.sync_ok(&[]);
    let s = run.event("sync.finished");
    assert_eq!(
        (s.num("created"), s.num("updated"), s.num("deleted")),
        (5, 10, 5)
    );
    let by_method = dav.proxy.counts_by_method();
    assert_eq!(
        by_method,
        BTreeMap::from([
            ("REPORT".to_string(), 1),
            ("PROPFIND".to_string(), 1),
            ("PUT".to_string(), 15),
            ("DELETE".to_string(), 5)
        ]),
        "one read of the source, one check of the target, one request per write"
    );
    assert!(
        dav.proxy
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" || r.method == "DELETE")
            .all(|r| r.path.starts_with("/test/target/calsync-")),
        "a write went elsewhere than to calsync's own resources"
    );
    let titles = master_titles(&events_of(&dav.target()));
    assert_eq!(titles.len(), 30);
    assert_eq!(
        titles.iter().filter(|t| t.starts_with("Renamed")).count(),
        10
    );
    for i in 10..15 {
        assert!(
            !titles.contains(&format!("Public event {i}")),
            "event {i} still published"
        );
    }
    for i in 30..35 {
        assert!(
            titles.contains(&format!("Public event {i}")),
            "event {i} not published"
        );
    }
}

#[test]
fn an_invalid_sync_token_means_a_full_resync_with_a_correct_result() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.caldav_to_caldav();
    dav.sync_ok(&[]);
    // Radicale forgets the token (its cache of sync states, as after max_sync_token_age),
    // and the source changes so that the token no longer names the current state.
    let tokens = dav
        .radicale
        .collection_dir("source")
        .join(".Radicale.cache")
        .join("sync-token");
    assert!(
        tokens.is_dir(),
        "Radicale keeps its sync tokens elsewhere now"
    );
    std::fs::remove_dir_all(&tokens).unwrap();
    dav.radicale.delete("source", "openday.ics");
    dav.seed(&[(
        "advent.ics".into(),
        feed(&[timed("advent@intranet", "Advent concert", 3, "")]),
    )]);
    dav.proxy.clear();
    let run = dav.sync_ok(&[]);
    let refused: Vec<_> = dav
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.status == Some(403))
        .map(|r| r.method)
        .collect();
    assert_eq!(refused, ["REPORT"], "Radicale did not refuse the token");
    assert!(run.has_event("caldav.sync_token_invalid"));
    let finished = run.event("pair.finished");
    assert_eq!(finished.str("read"), Some("full"));
    assert_eq!(
        (
            finished.num("created"),
            finished.num("updated"),
            finished.num("deleted")
        ),
        (1, 0, 1)
    );
    assert_eq!(
        master_titles(&events_of(&dav.target())),
        [
            "Advent concert",
            "Choir rehearsal",
            "Parish council",
            "Summer fete"
        ]
    );
    // And the token of the full read is good for the next run.
    dav.proxy.clear();
    dav.sync_ok(&[]);
    assert_eq!(dav.proxy.count_method("REPORT"), 1);
    assert_eq!(dav.proxy.count(), 2);
}

#[test]
fn a_server_without_sync_collection_is_read_by_ctag_and_etags() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.caldav_to_caldav();
    // The server refuses the sync-collection REPORT, as one without RFC 6578 does (405; a
    // 501 would be retried first, as every 5xx is).
    dav.proxy.inject(
        Fault::status(405),
        1,
        Matching::any()
            .method("REPORT")
            .path_containing("/test/source/"),
    );
    let run = dav.sync_ok(&[]);
    assert_eq!(dav.proxy.pending_faults(), 0);
    assert!(run.has_event("caldav.sync_unsupported"));
    assert_parish_published(&events_of(&dav.target()));

    // Nothing changed: one PROPFIND for the ctag (and the target's check), no listing, no
    // body.
    dav.proxy.clear();
    let run = dav.sync_ok(&[]);
    let mut paths: Vec<(String, String)> = dav
        .proxy
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            ("PROPFIND".to_string(), "/test/source/".to_string()),
            ("PROPFIND".to_string(), "/test/target/".to_string())
        ]
    );
    assert_eq!(run.event("pair.finished").str("read"), Some("unchanged"));

    // One change, one deletion: ctag, listing, a multiget of just the changed resource.
    let council = parish::resources()
        .into_iter()
        .find(|(n, _)| n == "council.ics")
        .unwrap()
        .1
        .replace(
            "SUMMARY:Parish council",
            "SUMMARY:Parish council (new room)",
        );
    dav.radicale.put("source", "council.ics", &council);
    dav.radicale.delete("source", "fete.ics");
    dav.proxy.clear();
    let run = dav.sync_ok(&[]);
    let source_requests: Vec<_> = dav
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/test/source/"))
        .map(|r| r.method)
        .collect();
    assert_eq!(source_requests, ["PROPFIND", "PROPFIND", "REPORT"]);
    let finished = run.event("pair.finished");
    assert_eq!(finished.str("read"), Some("delta"));
    assert_eq!((finished.num("updated"), finished.num("deleted")), (1, 1));
    assert_eq!(
        master_titles(&events_of(&dav.target())),
        ["Choir rehearsal", "Open day", "Parish council (new room)"]
    );
}

#[test]
fn a_lost_answer_to_a_create_makes_no_duplicate() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.caldav_to_caldav();
    // Radicale stores the first PUT, calsync never hears of it and tries again.
    dav.proxy
        .inject(Fault::LoseResponse, 1, Matching::any().method("PUT"));
    let run = dav.sync_ok(&[]);
    assert_eq!(dav.proxy.pending_faults(), 0);
    assert_eq!(run.event("sync.finished").num("created"), 4);
    let target = dav.target();
    assert_eq!(target.len(), 4, "a duplicate was created");
    assert_parish_published(&events_of(&target));
    // The retried create found its own resource (412, then a GET), not a foreign one.
    let statuses: Vec<Option<u16>> = dav
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&Some(412)), "{statuses:?}");
}

#[test]
fn a_lost_state_file_converges_without_duplicates() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.caldav_to_caldav();
    dav.sync_ok(&[]);
    let before = dav.target();
    std::fs::remove_dir_all(dav.cli.path("state")).unwrap();
    let run = dav.sync_ok(&[]);
    assert_eq!(run.event("sync.finished").num("failed"), 0);
    assert_eq!(
        dav.target(),
        before,
        "the target changed after the state file was lost"
    );

    // Lost again, and meanwhile the fete left the source: its published copy, found in the
    // target under a tag no source item has, is deleted where it is; the rest stays as it was.
    std::fs::remove_dir_all(dav.cli.path("state")).unwrap();
    dav.radicale.delete("source", "fete.ics");
    dav.proxy.clear();
    let run = dav.sync_ok(&[]);
    let s = run.event("sync.finished");
    assert_eq!(
        (s.num("created"), s.num("updated"), s.num("deleted")),
        (0, 0, 1)
    );
    let after = dav.target();
    assert_eq!(
        master_titles(&events_of(&after)),
        ["Choir rehearsal", "Open day", "Parish council"]
    );
    let fete = before
        .iter()
        .find(|o| o.ics.contains("SUMMARY:Summer fete"))
        .unwrap();
    let deletes: Vec<String> = dav
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect();
    assert_eq!(deletes, std::slice::from_ref(&fete.href));
    let kept: Vec<&StoredObject> = before.iter().filter(|o| o.href != fete.href).collect();
    assert_eq!(after.iter().collect::<Vec<_>>(), kept);
}

#[test]
fn a_target_event_changed_by_hand_is_not_overwritten() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.caldav_to_caldav();
    dav.sync_ok(&[]);
    // Someone edits the published council meeting in the target.
    let council = dav
        .target()
        .into_iter()
        .find(|o| o.ics.contains("SUMMARY:Parish council"))
        .unwrap();
    let name = council.href.rsplit('/').next().unwrap().to_string();
    let edited = council.ics.replace(
        "SUMMARY:Parish council",
        "SUMMARY:Parish council - edited by hand",
    );
    dav.radicale.put("target", &name, &edited);
    // And the source changes the same event.
    let source = parish::resources()
        .into_iter()
        .find(|(n, _)| n == "council.ics")
        .unwrap()
        .1
        .replace("LOCATION:Parish hall", "LOCATION:Church");
    dav.radicale.put("source", "council.ics", &source);
    let run = dav.sync(&[]);
    assert_eq!(run.code, calsync::exit::FAILED, "{}", run.stdout);
    assert!(run.has_event("write.conflict"));
    assert_eq!(
        run.event("caldav.conflict").str("resource"),
        Some(council.href.as_str()),
        "the conflict does not name the target resource"
    );
    let after = dav.radicale.get("target", &name).unwrap();
    assert!(
        after.ics.contains("edited by hand"),
        "the change by hand was overwritten"
    );
    assert!(!after.ics.contains("Church"));
}

#[test]
fn writes_overlap_up_to_the_configured_concurrency() {
    for (concurrency, overlap) in [(4, true), (1, false)] {
        let dav = Dav::start();
        for (name, text) in singles(12) {
            dav.radicale.put("source", &name, &text);
        }
        dav.configure(
            &dav.endpoint("source", ""),
            &dav.endpoint("target", &format!("concurrency = {concurrency}")),
        );
        // The first PUT is held back: with room for more in flight, others pass it.
        dav.proxy.inject(
            Fault::Delay(Duration::from_millis(400)),
            1,
            Matching::any().method("PUT"),
        );
        dav.sync_ok(&[]);
        let puts: Vec<_> = dav
            .proxy
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .collect();
        assert_eq!(puts.len(), 12);
        let held = puts.iter().find(|r| r.fault.is_some()).unwrap();
        let passed = puts
            .iter()
            .filter(|r| r.fault.is_none() && r.arrived < held.completed)
            .count();
        let most_in_flight = puts
            .iter()
            .map(|r| {
                puts.iter()
                    .filter(|o| o.arrived <= r.arrived && r.arrived < o.completed)
                    .count()
            })
            .max()
            .unwrap();
        if overlap {
            assert!(passed >= 3, "only {passed} PUTs went past the held one");
            assert!(
                most_in_flight <= 4,
                "{most_in_flight} PUTs in flight at once"
            );
        } else {
            assert_eq!(passed, 0, "PUTs overlapped with concurrency = 1");
        }
    }
}

#[test]
fn a_calendar_is_found_by_name_from_the_server_url() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    // The target's display name, as a calendar client would set it.
    let proppatch = dav
        .radicale
        .request("PROPPATCH", &dav.radicale.collection_url("target"))
        .header("Content-Type", "application/xml")
        .body(
            r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Parish — public</D:displayname></D:prop></D:set></D:propertyupdate>"#,
        )
        .send()
        .unwrap();
    assert_eq!(proppatch.status().as_u16(), 207);
    let by_name = |name: &str| {
        format!(
            "kind = \"caldav\"\nurl = \"{}/\"\ncalendar = \"{name}\"\nusername = \"test\"\npassword_env = \"RADICALE_PASSWORD\"\n",
            dav.proxy.url()
        )
    };
    // The source by its path segment (no display name), the target by its display name.
    dav.configure(&by_name("source"), &by_name("Parish — public"));
    dav.sync_ok(&[]);
    assert_parish_published(&events_of(&dav.target()));
    // The resolved collections are cached: the next run does not discover again (one
    // request per calendar, as for a calendar configured by its own URL).
    dav.proxy.clear();
    dav.sync_ok(&[]);
    assert_eq!(dav.proxy.count(), 2);

    // A name that matches nothing is a configuration error that lists what is there.
    let mut cli = Cli::new();
    cli.env("RADICALE_PASSWORD", dav.radicale.password());
    cli.write(
        "calsync.toml",
        format!(
            "state = \"calsync.db\"\n[[pair]]\nname = \"p\"\n[pair.source]\n{}\n[pair.target]\nkind = \"ics\"\npath = \"o.ics\"\n",
            by_name("Nonexistent")
        ),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, calsync::exit::CONFIG, "{}", run.stdout);
    assert!(run.stdout.contains("no calendar named"), "{}", run.stdout);
    assert!(run.stdout.contains("Parish — public"), "{}", run.stdout);

    // A URL that is no calendar, without a name, says what to do.
    cli.write(
        "calsync.toml",
        format!(
            "state = \"calsync.db\"\n[[pair]]\nname = \"p\"\n[pair.source]\nkind = \"caldav\"\nurl = \"{}/test/\"\nusername = \"test\"\npassword_env = \"RADICALE_PASSWORD\"\n[pair.target]\nkind = \"ics\"\npath = \"o.ics\"\n",
            dav.proxy.url()
        ),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, calsync::exit::CONFIG, "{}", run.stdout);
    assert!(
        run.stdout.contains("is not a calendar collection"),
        "{}",
        run.stdout
    );
}

#[test]
fn refused_credentials_exit_77_and_change_nothing() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.caldav_to_caldav();
    let mut cli = Cli::new();
    cli.env("RADICALE_PASSWORD", "wrong");
    cli.write("calsync.toml", dav.cli.read("calsync.toml"));
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, calsync::exit::NOPERM, "{}", run.stdout);
    assert!(dav.target().is_empty());
    assert!(!run.all_output().contains("wrong"));
}

// ------------------------------------------------------------------------------------------
// A sabre/dav-style server (Nextcloud) that truncates sync-collection listings: the behaviour
// RFC 6578 §3.6 describes and Radicale never shows. Its answers follow sabre's format.

const SABRE_COLLECTION: &str = "/remote.php/dav/calendars/office/public/";

fn sabre_response(href: &str, inner: &str) -> String {
    format!("<d:response><d:href>{href}</d:href>{inner}</d:response>")
}

fn sabre_member(name: &str, text: Option<&str>) -> String {
    let data = text
        .map(|t| {
            format!(
                "<cal:calendar-data>{}</cal:calendar-data>",
                t.replace('&', "&amp;").replace('<', "&lt;")
            )
        })
        .unwrap_or_default();
    sabre_response(
        &format!("{SABRE_COLLECTION}{name}"),
        &format!(
            "<d:propstat><d:prop><d:getetag>&quot;{name}-etag&quot;</d:getetag>{data}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
        ),
    )
}

fn sabre_multistatus(token: &str, responses: &[String]) -> Response {
    Response::new(207)
        .header("Content-Type", "application/xml; charset=utf-8")
        .body(format!(
            "<?xml version=\"1.0\"?>\n<d:multistatus xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\" xmlns:cal=\"urn:ietf:params:xml:ns:caldav\" xmlns:cs=\"http://calendarserver.org/ns/\">{}<d:sync-token>{token}</d:sync-token></d:multistatus>",
            responses.concat()
        ))
}

fn truncated_marker() -> String {
    sabre_response(
        SABRE_COLLECTION,
        "<d:status>HTTP/1.1 507 Insufficient Storage</d:status>",
    )
}

/// The sabre-style server: three events; sync tokens 1 (first part of the listing), 2 (all),
/// then a change in two parts: token 3 (one event changed, truncated) and 4 (one removed).
fn sabre_server() -> TestServer {
    let event = |i: usize| {
        feed(&[timed(
            &format!("s{i}@office"),
            &format!("Sabre event {i}"),
            2 + i as i64,
            "",
        )])
    };
    TestServer::start(move |req: &Request| {
        let body = req.body_text();
        match (req.method.as_str(), req.path_only()) {
            ("PROPFIND", SABRE_COLLECTION) => sabre_multistatus(
                "http://sabre.io/ns/sync/2",
                &[sabre_response(
                    SABRE_COLLECTION,
                    "<d:propstat><d:prop><d:resourcetype><d:collection/><cal:calendar/></d:resourcetype><d:sync-token>http://sabre.io/ns/sync/2</d:sync-token></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>",
                )],
            ),
            ("REPORT", SABRE_COLLECTION) if body.contains("sync-collection") => {
                // The text of the request's sync-token element, whatever its prefix.
                let token = body
                    .split_once("sync-token>")
                    .map(|(_, rest)| rest.split('<').next().unwrap_or(""))
                    .unwrap_or("");
                let data = body.contains("calendar-data");
                let with =
                    |i: usize| sabre_member(&format!("{i}.ics"), data.then(|| event(i)).as_deref());
                match token {
                    "" => sabre_multistatus("http://sabre.io/ns/sync/1", &[with(0), with(1), truncated_marker()]),
                    "http://sabre.io/ns/sync/1" => sabre_multistatus("http://sabre.io/ns/sync/2", &[with(2)]),
                    "http://sabre.io/ns/sync/2" => {
                        let changed = feed(&[timed("s1@office", "Sabre event 1 (changed)", 3, "")]);
                        sabre_multistatus(
                            "http://sabre.io/ns/sync/3",
                            &[sabre_member("1.ics", Some(&changed)), truncated_marker()],
                        )
                    }
                    "http://sabre.io/ns/sync/3" => sabre_multistatus(
                        "http://sabre.io/ns/sync/4",
                        &[sabre_response(&format!("{SABRE_COLLECTION}2.ics"), "<d:status>HTTP/1.1 404 Not Found</d:status>")],
                    ),
                    "http://sabre.io/ns/sync/4" => sabre_multistatus("http://sabre.io/ns/sync/4", &[]),
                    _ => Response::new(403)
                        .header("Content-Type", "application/xml; charset=utf-8")
                        .body("<?xml version=\"1.0\"?>\n<d:error xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\"><d:valid-sync-token/></d:error>"),
                }
            }
            ("REPORT", SABRE_COLLECTION) if body.contains("calendar-multiget") => {
                let members: Vec<String> = (0..3)
                    .filter(|i| body.contains(&format!("{SABRE_COLLECTION}{i}.ics<")))
                    .map(|i| sabre_member(&format!("{i}.ics"), Some(&event(i))))
                    .collect();
                sabre_multistatus("http://sabre.io/ns/sync/2", &members)
            }
            _ => Response::text(404, "not here"),
        }
    })
}

#[test]
fn a_truncated_sync_listing_is_continued_not_taken_for_deletions() {
    let server = sabre_server();
    let cli = Cli::new();
    cli.write(
        "calsync.toml",
        format!(
            "state = \"calsync.db\"\n[[pair]]\nname = \"office\"\n[pair.source]\nkind = \"caldav\"\nurl = \"{}{SABRE_COLLECTION}\"\n\
             [pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
            server.url()
        ),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let titles = |cli: &Cli| {
        let cal = ics::parse(&cli.read("public.ics"));
        let events: Vec<ics::Component> = cal.events().into_iter().cloned().collect();
        master_titles(&events)
    };
    // All three, though the first answer listed two and said it was cut short.
    assert_eq!(
        titles(&cli),
        ["Sabre event 0", "Sabre event 1", "Sabre event 2"]
    );
    let reports = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "REPORT")
        .count();
    assert_eq!(reports, 3, "two sync-collection parts and one multiget");

    // A truncated delta: event 1 changed in the first part, event 2 removed in the second;
    // event 0, in neither, stays.
    server.clear();
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(titles(&cli), ["Sabre event 0", "Sabre event 1 (changed)"]);
    assert_eq!(run.event("pair.finished").str("read"), Some("delta"));
    assert_eq!(
        server.count(),
        2,
        "the delta came in two sync-collection parts, bodies included"
    );
}

#[test]
fn a_source_answer_cut_short_fails_the_read_and_deletes_nothing() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.caldav_to_caldav();
    dav.sync_ok(&[]);
    let before = dav.target();
    // A full read: the member listing passes, the multiget of the bodies is cut short twice
    // (the first attempt and its retry).
    let reports = Matching::any()
        .method("REPORT")
        .path_containing("/test/source/");
    dav.proxy
        .inject(Fault::Delay(Duration::ZERO), 1, reports.clone());
    dav.proxy
        .inject(Fault::Truncate { keep_bytes: 200 }, 2, reports);
    let run = dav.sync(&["--full"]);
    assert_eq!(run.code, calsync::exit::TEMPFAIL, "{}", run.stdout);
    assert_eq!(dav.proxy.pending_faults(), 0);
    assert!(
        dav.proxy.requests()[0]
            .request_headers
            .get("Accept-Encoding")
            .is_some_and(|e| e.contains("gzip")),
        "answers are not asked for compressed"
    );
    assert_eq!(run.event("sync.finished").num("deleted"), 0);
    assert_eq!(dav.target(), before, "a cut-short read changed the target");
}

#[test]
fn the_target_lists_exactly_calsyncs_own_events() {
    let dav = Dav::start();
    dav.seed(&parish::resources());
    dav.radicale.put("target", "by-hand.ics", &foreign_event());
    dav.caldav_to_caldav();
    dav.sync_ok(&[]);

    // The provider itself, as the commands that inspect a target (validate, cleanup) use it.
    let config = dav.cli.path("calsync.toml");
    let env = calsync::config::Environment {
        credentials_directory: None,
        state_directory: None,
        vars: vec![(
            "RADICALE_PASSWORD".into(),
            dav.radicale.password().to_string(),
        )],
    };
    let settings = calsync::config::load(&config, None, &env).unwrap();
    let store = calsync::store::Store::open(&dav.cli.path("state/inspect.db")).unwrap();
    let http = calsync::net::Http::new(&settings.net).unwrap();
    let pair = &settings.pairs[0];
    let ctx = calsync::providers::Context::new(&settings, pair, &http, &store, chrono::Utc::now());
    let mut target = calsync::providers::build_target(&ctx).unwrap();
    let owned = target.list_owned().unwrap();

    // Tagged by (pair, source href): one per published source resource; the foreign one
    // is not among them.
    let mut tags: Vec<String> = owned.iter().map(|o| o.tag.clone()).collect();
    tags.sort();
    let mut expected: Vec<String> = ["council", "openday", "fete", "choir"]
        .iter()
        .map(|n| {
            calsync::hashing::item_tag(
                "parish",
                &calsync::model::ItemKey(format!("/test/source/{n}.ics")),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(tags, expected);
    for o in &owned {
        assert!(
            o.target_id.starts_with("/test/target/calsync-"),
            "{}",
            o.target_id
        );
        assert!(o.etag.is_some());
        assert!(o.foreign.is_empty(), "{:?}", o.foreign);
        assert!(
            o.markings
                .iter()
                .all(|m| *m == calsync::model::Marking::Class(Some("PUBLIC".into())))
        );
    }
    let choir = owned
        .iter()
        .find(|o| o.event.details.title == "Choir rehearsal")
        .expect("the series is listed");
    assert_eq!(
        choir.event.overrides.len(),
        1,
        "the series lost its override"
    );
}
