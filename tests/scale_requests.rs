//! What a run costs at scale, in requests (the "Scale" issue): at 1,000 events, the first sync,
//! a run with nothing changed and an incremental run (10 events changed, 5 deleted, 5 added)
//! each make an exact, deterministic number of requests on every provider — counted by the
//! fakes (Graph, Google) or by a counting proxy in front of Radicale (CalDAV). Timings are not
//! asserted here; they live in `bench/scale.sh`.
//!
//! CalDAV: Radicale's own create time grows with the collection (about 40 s to write 1,000
//! events), so the CalDAV test keeps 1,000 events in the *source* (written straight into
//! Radicale's storage, read by calsync through the proxy) of which 50 are public: the reads
//! are those of a 1,000-event calendar, the writes those of 50 events, and the test runs in a
//! few seconds.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use support::cli::{Cli, Run};
use support::google_fake::{self, CALENDAR_ID, GoogleFake};
use support::graph_fake::{self, GraphFake, Kind};
use support::ics::{feed, timed};
use support::proxy::FaultProxy;
use support::radicale::Radicale;

const N: usize = 1000;
const USER: &str = "office@example.org";
const NOW: &str = "2026-05-01T06:00:00Z";

fn ok(run: &Run) {
    assert_eq!(
        run.code,
        calsync::exit::OK,
        "sync failed:\n{}{}",
        run.stdout,
        run.stderr
    );
}

/// created, updated, deleted of the run's `sync.finished` line.
fn writes(run: &Run) -> (u64, u64, u64) {
    let s = run.event("sync.finished");
    (s.num("created"), s.num("updated"), s.num("deleted"))
}

/// The incremental step, on event indices: 10 changed (0..10), 5 deleted (10..15), 5 added
/// (N..N+5). Every index < N that is not deleted stays.
fn incremental_indices() -> impl Iterator<Item = usize> {
    (0..N).filter(|i| !(10..15).contains(i)).chain(N..N + 5)
}

fn title(i: usize, changed: bool) -> String {
    if changed && i < 10 {
        format!("Event {i} (changed)")
    } else {
        format!("Event {i}")
    }
}

/// A feed of the N events (i % 20 == 19 is private: 950 public; the 20 events the incremental
/// step touches are all public), or the feed after the incremental step.
fn source_feed(incremental: bool) -> String {
    let events: Vec<String> = if incremental {
        incremental_indices().map(|i| feed_event(i, true)).collect()
    } else {
        (0..N).map(|i| feed_event(i, false)).collect()
    };
    feed(&events)
}

fn feed_event(i: usize, changed: bool) -> String {
    let class = if i % 20 == 19 { "CLASS:PRIVATE" } else { "" };
    timed(
        &format!("ev{i}@intranet"),
        &title(i, changed),
        2 + (i % 300) as i64,
        class,
    )
}

const PUBLIC: u64 = 950;

// ------------------------------------------------------------------------------------ Graph

fn graph_side(fake: &GraphFake) -> String {
    format!(
        "kind = \"graph\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"GRAPH_SECRET\"\n\
         user = \"{USER}\"\ncalendar = \"Public\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\n",
        graph_fake::TENANT,
        graph_fake::CLIENT_ID,
        fake.graph_url(),
        fake.url() + "/{tenant}/oauth2/v2.0/token",
    )
}

/// A calsync folder for a Graph pair; "now" pinned (`CALSYNC_NOW`) for a Graph source, whose
/// events are seeded in May 2026; a feed's events lie around the real today.
fn graph_cli(pair: &str, pin_now: bool) -> Cli {
    let mut cli = Cli::new();
    cli.env("GRAPH_SECRET", graph_fake::CLIENT_SECRET);
    if pin_now {
        cli.env("CALSYNC_NOW", NOW);
    }
    cli.write(
        "calsync.toml",
        format!("state = \"calsync.db\"\n\n[[pair]]\nname = \"scale\"\n{pair}"),
    );
    cli
}

/// Direct requests of each kind since the last reset (batch items not counted twice).
fn graph_counts(fake: &GraphFake) -> BTreeMap<&'static str, usize> {
    [
        ("token", Kind::Token),
        ("calendars", Kind::ListCalendars),
        ("calendar", Kind::GetCalendar),
        ("delta", Kind::Delta),
        ("batch", Kind::Batch),
        ("tag query", Kind::TagQuery),
        ("instances", Kind::Instances),
        ("get", Kind::EventGet),
    ]
    .into_iter()
    .map(|(name, k)| (name, fake.count_direct(k)))
    .filter(|(_, n)| *n > 0)
    .collect()
}

fn graph_event(i: usize, subject: &str) -> Value {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 5, 2).unwrap()
        + chrono::Duration::days((i % 300) as i64);
    json!({
        "subject": subject,
        "sensitivity": if i % 20 == 19 { "private" } else { "normal" },
        "start": {"dateTime": format!("{day}T19:00:00"), "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": format!("{day}T20:00:00"), "timeZone": "W. Europe Standard Time"},
    })
}

#[test]
fn graph_to_ics_at_1000_events_reads_pages_of_100_then_one_delta_request_per_run() {
    let fake = GraphFake::start();
    fake.add_mailbox(USER);
    let calendar = fake.add_calendar(USER, "Public");
    let ids: Vec<String> = (0..N)
        .map(|i| fake.seed_event(USER, &calendar, graph_event(i, &title(i, false))))
        .collect();
    let cli = graph_cli(
        &format!(
            "[pair.source]\n{}[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
            graph_side(&fake)
        ),
        true,
    );

    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run).0, PUBLIC);
    assert_eq!(
        graph_counts(&fake),
        BTreeMap::from([("token", 1), ("calendars", 1), ("delta", 10)]),
        "a token, the calendar by name, and 1,000 events in delta pages of 100"
    );
    assert_eq!(fake.requests().len(), 12);

    fake.reset_counts();
    let before = fake.requests().len();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (0, 0, 0));
    assert_eq!(
        graph_counts(&fake),
        BTreeMap::from([("delta", 1)]),
        "nothing changed: one delta request, no token (kept), no calendar look-up (cached)"
    );
    assert_eq!(fake.requests().len() - before, 1);

    for (i, id) in ids.iter().enumerate().take(10) {
        fake.update_event(USER, id, json!({"subject": title(i, true)}));
    }
    for id in &ids[10..15] {
        fake.delete_event(USER, id);
    }
    for i in N..N + 5 {
        fake.seed_event(USER, &calendar, graph_event(i, &title(i, false)));
    }
    fake.reset_counts();
    let before = fake.requests().len();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (5, 10, 5));
    assert_eq!(
        graph_counts(&fake),
        BTreeMap::from([("delta", 1)]),
        "20 changes: one delta request carries them all"
    );
    assert_eq!(fake.requests().len() - before, 1);
}

#[test]
fn ics_to_graph_at_1000_events_writes_20_to_a_batch_and_costs_one_request_when_nothing_changed() {
    let fake = GraphFake::start();
    fake.add_mailbox(USER);
    fake.add_calendar(USER, "Public");
    let cli = graph_cli(
        &format!(
            "[pair.source]\nkind = \"ics\"\npath = \"feed.ics\"\n[pair.target]\n{}",
            graph_side(&fake)
        ),
        false,
    );
    cli.write("feed.ics", source_feed(false));

    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (PUBLIC, 0, 0));
    assert_eq!(
        graph_counts(&fake),
        BTreeMap::from([
            ("token", 1),
            ("calendars", 1),
            ("tag query", 2),
            ("batch", 52)
        ]),
        "950 creates in $batch requests of up to 20: the engine hands over 128 writes at a \
         time (7 batches each: 6 of 20 and one of 8), so 7 × 7 for 896 and 3 for the last 54; \
         behind a token, the calendar look-up and the search for calsync's own events"
    );
    assert_eq!(fake.count(Kind::EventCreate), 950);

    fake.reset_counts();
    let before = fake.requests().len();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (0, 0, 0));
    assert_eq!(
        graph_counts(&fake),
        BTreeMap::from([("calendar", 1)]),
        "nothing changed: one look at the target calendar"
    );
    assert_eq!(fake.requests().len() - before, 1);

    cli.write("feed.ics", source_feed(true));
    fake.reset_counts();
    let before = fake.requests().len();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (5, 10, 5));
    assert_eq!(
        graph_counts(&fake),
        BTreeMap::from([("calendar", 1), ("batch", 1)]),
        "20 writes: one batch, behind the look at the target calendar"
    );
    assert_eq!(fake.requests().len() - before, 2);
}

// ----------------------------------------------------------------------------------- Google

fn google_side(fake: &GoogleFake) -> String {
    format!(
        "kind = \"google\"\nservice_account_file = \"sa.json\"\ncalendar_id = \"{CALENDAR_ID}\"\nbase_url = \"{}\"\n",
        fake.api_base()
    )
}

fn google_cli(fake: &GoogleFake, pair: &str) -> Cli {
    let cli = Cli::new();
    fake.write_key_file(cli.dir(), "sa.json");
    cli.write(
        "calsync.toml",
        format!("state = \"calsync.db\"\n\n[[pair]]\nname = \"scale\"\n{pair}"),
    );
    cli
}

fn google_counts(fake: &GoogleFake) -> BTreeMap<String, usize> {
    use google_fake::Kind as G;
    [
        G::Token,
        G::Calendar,
        G::List,
        G::Instances,
        G::Get,
        G::Insert,
        G::Update,
        G::Patch,
        G::Delete,
        G::Batch,
        G::Other,
    ]
    .into_iter()
    .map(|k| (format!("{k:?}"), fake.count(k)))
    .filter(|(_, n)| *n > 0)
    .collect()
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

fn google_event(i: usize, summary: &str) -> Value {
    let d = support::ics::day(2 + (i % 300) as i64).format("%Y-%m-%d");
    json!({
        "summary": summary,
        "visibility": if i % 20 == 19 { "private" } else { "public" },
        "start": {"dateTime": format!("{d}T19:00:00"), "timeZone": "Europe/Berlin"},
        "end": {"dateTime": format!("{d}T20:00:00"), "timeZone": "Europe/Berlin"},
    })
}

#[test]
fn google_to_ics_at_1000_events_reads_one_page_then_one_list_request_per_run() {
    let fake = GoogleFake::start();
    let ids: Vec<String> = (0..N)
        .map(|i| {
            fake.seed_event(CALENDAR_ID, google_event(i, &title(i, false)))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let cli = google_cli(
        &fake,
        &format!(
            "[pair.source]\n{}\n[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
            google_side(&fake)
        ),
    );

    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run).0, PUBLIC);
    assert_eq!(
        google_counts(&fake),
        counts(&[("Token", 1), ("List", 1)]),
        "1,000 events fit one page of events.list (maxResults 2,500)"
    );
    assert_eq!(fake.http_count(), 2);

    fake.clear_calls();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (0, 0, 0));
    assert_eq!(
        google_counts(&fake),
        counts(&[("List", 1)]),
        "one list by sync token"
    );
    assert_eq!(fake.http_count(), 1);

    for (i, id) in ids.iter().enumerate().take(10) {
        fake.seed_patch(CALENDAR_ID, id, json!({"summary": title(i, true)}));
    }
    for id in &ids[10..15] {
        fake.seed_delete(CALENDAR_ID, id);
    }
    for i in N..N + 5 {
        fake.seed_event(CALENDAR_ID, google_event(i, &title(i, false)));
    }
    fake.clear_calls();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (5, 10, 5));
    assert_eq!(
        google_counts(&fake),
        counts(&[("List", 1)]),
        "20 changes come in the one list by sync token"
    );
    assert_eq!(fake.http_count(), 1);
}

#[test]
fn ics_to_google_at_1000_events_makes_one_request_per_write_and_one_when_nothing_changed() {
    let fake = GoogleFake::start();
    let cli = google_cli(
        &fake,
        &format!(
            "[pair.source]\nkind = \"ics\"\npath = \"feed.ics\"\n[pair.target]\n{}",
            google_side(&fake)
        ),
    );
    cli.write("feed.ics", source_feed(false));

    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (PUBLIC, 0, 0));
    assert_eq!(
        google_counts(&fake),
        counts(&[("Token", 1), ("Calendar", 1), ("List", 1), ("Insert", 950)]),
        "one insert per public event behind a token, the calendar and one look for \
         calsync's own events"
    );
    assert_eq!(fake.http_count(), 953);

    fake.clear_calls();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (0, 0, 0));
    assert_eq!(google_counts(&fake), counts(&[("Calendar", 1)]));
    assert_eq!(fake.http_count(), 1);

    cli.write("feed.ics", source_feed(true));
    fake.clear_calls();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (5, 10, 5));
    assert_eq!(
        google_counts(&fake),
        counts(&[
            ("Calendar", 1),
            ("Insert", 5),
            ("Update", 10),
            ("Delete", 5)
        ]),
        "one request per write, behind the look at the target calendar"
    );
    assert_eq!(fake.http_count(), 21);
}

// ----------------------------------------------------------------------------------- CalDAV

/// Writes resource `name` straight into Radicale's storage folder for `collection` (no
/// request, so no create cost at the server); Radicale reads the folder on every request.
fn put_file(radicale: &Radicale, collection: &str, name: &str, text: &str) {
    std::fs::write(radicale.collection_dir(collection).join(name), text).expect("a resource");
}

/// A source event for the CalDAV test: only every 20th (i % 20 == 0) is public, 50 of 1,000.
fn caldav_event(i: usize, changed: bool) -> String {
    let class = if i.is_multiple_of(20) {
        ""
    } else {
        "CLASS:PRIVATE"
    };
    let summary = if changed {
        format!("Event {i} (changed)")
    } else {
        format!("Event {i}")
    };
    feed(&[timed(
        &format!("ev{i}@intranet"),
        &summary,
        2 + (i % 300) as i64,
        class,
    )])
}

#[test]
fn caldav_to_caldav_reading_1000_events_costs_exact_requests_per_run() {
    let radicale = Radicale::start();
    radicale.mkcalendar("source");
    radicale.mkcalendar("target");
    for i in 0..N {
        put_file(
            &radicale,
            "source",
            &format!("e{i}.ics"),
            &caldav_event(i, false),
        );
    }
    let proxy = FaultProxy::start(&radicale.url());
    let mut cli = Cli::new();
    cli.env("RADICALE_PASSWORD", radicale.password());
    let endpoint = |c: &str| {
        format!(
            "kind = \"caldav\"\nurl = \"{}/test/{c}/\"\nusername = \"test\"\npassword_env = \"RADICALE_PASSWORD\"\n",
            proxy.url()
        )
    };
    cli.write(
        "calsync.toml",
        format!(
            "state = \"calsync.db\"\n\n[[pair]]\nname = \"scale\"\n[pair.source]\n{}\n[pair.target]\n{}",
            endpoint("source"),
            endpoint("target")
        ),
    );

    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (50, 0, 0));
    assert_eq!(
        proxy.counts_by_method(),
        BTreeMap::from([
            ("PROPFIND".to_string(), 2),
            ("REPORT".to_string(), 7),
            ("PUT".to_string(), 50)
        ]),
        "both calendars resolved; the sync-collection listing, five multigets of 200 and the \
         look for calsync's own events in the target; one PUT per public event"
    );

    proxy.clear();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (0, 0, 0));
    assert_eq!(
        proxy.counts_by_method(),
        BTreeMap::from([("PROPFIND".to_string(), 1), ("REPORT".to_string(), 1)]),
        "nothing changed: the source's changes (none) and whether the target is still there"
    );

    // 10 changed (0..10: only 0 is public), 5 deleted (10..15: none public), 5 added
    // (1000..1005: 1000 is public), 9 more private events changed (21..30)...
    for i in (0..10).chain(21..30) {
        put_file(
            &radicale,
            "source",
            &format!("e{i}.ics"),
            &caldav_event(i, true),
        );
    }
    for i in 10..15 {
        std::fs::remove_file(radicale.collection_dir("source").join(format!("e{i}.ics")))
            .expect("deleting a resource");
    }
    for i in N..N + 5 {
        put_file(
            &radicale,
            "source",
            &format!("e{i}.ics"),
            &caldav_event(i, false),
        );
    }
    // ...and public ones: 20 and 40 changed, 60 and 80 deleted. 28 changed, 7 deleted, 5 added
    // in the source; 3 updates, 2 deletes and 1 create in the target.
    for i in [20, 40] {
        put_file(
            &radicale,
            "source",
            &format!("e{i}.ics"),
            &caldav_event(i, true),
        );
    }
    for i in [60, 80] {
        std::fs::remove_file(radicale.collection_dir("source").join(format!("e{i}.ics")))
            .expect("deleting a resource");
    }
    proxy.clear();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(writes(&run), (1, 3, 2));
    assert_eq!(
        proxy.counts_by_method(),
        BTreeMap::from([
            ("PROPFIND".to_string(), 1),
            ("REPORT".to_string(), 1),
            ("PUT".to_string(), 4),
            ("DELETE".to_string(), 2)
        ]),
        "40 changes in the source: one REPORT reads them, one request per write"
    );
}
