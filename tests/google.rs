//! The Google provider on the real binary, against `GoogleFake` (a Google Calendar API v3 and
//! service-account token endpoint written from Google's documentation, not from this client).
//!
//! Every series seeded here stays inside the fake's RRULE subset (weekly with COUNT): a rule
//! outside it is a case where the fake cannot tell what Google would do.

mod support;

use chrono::{NaiveDate, TimeZone};
use serde_json::{Value, json};
use support::cli::{Cli, Run};
use support::google_fake::{Access, CALENDAR_ID, Fault, GoogleFake, Kind, Restore};
use support::ics::{self, day, feed, timed, ymd};
use support::parish::{self, PUBLISHED, assert_nothing_private};
use support::proxy::{Fault as NetFault, FaultProxy, Matching};
use support::radicale::Radicale;

const BERLIN: chrono_tz::Tz = chrono_tz::Europe::Berlin;

/// A fake, a calsync folder with the fake's key file, and the pair's config.
struct G {
    fake: GoogleFake,
    cli: Cli,
}

impl G {
    fn start() -> G {
        let fake = GoogleFake::start();
        let cli = Cli::new();
        fake.write_key_file(cli.dir(), "sa.json");
        G { fake, cli }
    }

    /// The google endpoint keys, with `base_url` (the fake's, unless given).
    fn google(&self, extra: &str) -> String {
        self.google_at(&self.fake.api_base(), extra)
    }

    fn google_at(&self, base: &str, extra: &str) -> String {
        format!(
            "kind = \"google\"\nservice_account_file = \"sa.json\"\ncalendar_id = \"{CALENDAR_ID}\"\nbase_url = \"{base}\"\n{extra}\n"
        )
    }

    fn configure(&self, pair_extra: &str, source: &str, target: &str) {
        self.cli.write(
            "calsync.toml",
            format!(
                "state = \"calsync.db\"\n\n[net]\nretries = 3\nbackoff_ms = 10\n\n[[pair]]\nname = \"parish\"\n\
                 exclude_categories = [\"Staff only\"]\n{pair_extra}\n\n[pair.source]\n{source}\n[pair.target]\n{target}\n"
            ),
        );
    }

    fn google_to_ics(&self, source_extra: &str) {
        self.configure(
            "",
            &self.google(source_extra),
            "kind = \"ics\"\npath = \"public.ics\"\n",
        );
    }

    fn ics_to_google(&self, target_extra: &str) {
        self.configure(
            "",
            "kind = \"ics\"\npath = \"feed.ics\"\n",
            &self.google(target_extra),
        );
    }

    fn sync(&self) -> Run {
        self.cli.run(&["sync"])
    }

    fn sync_ok(&self) -> Run {
        let run = self.sync();
        assert_eq!(
            run.code,
            calsync::exit::OK,
            "sync failed:\n{}{}",
            run.stdout,
            run.stderr
        );
        run
    }

    /// Calls of each kind since the last [`GoogleFake::clear_calls`].
    fn counts(&self) -> Vec<(Kind, usize)> {
        [
            Kind::Token,
            Kind::Calendar,
            Kind::List,
            Kind::Instances,
            Kind::Get,
            Kind::Insert,
            Kind::Update,
            Kind::Patch,
            Kind::Delete,
            Kind::Batch,
            Kind::Other,
        ]
        .into_iter()
        .map(|k| (k, self.fake.count(k)))
        .filter(|(_, n)| *n > 0)
        .collect()
    }

    /// Live masters and single events (no instances), by title.
    fn live_masters(&self) -> Vec<Value> {
        let mut list: Vec<Value> = self
            .fake
            .live_events(CALENDAR_ID)
            .into_iter()
            .filter(|e| e.get("recurringEventId").is_none())
            .collect();
        list.sort_by_key(|e| e["summary"].as_str().unwrap_or("").to_string());
        list
    }

    fn published(&self) -> ics::Calendar {
        ics::parse(&self.cli.read("public.ics"))
    }
}

/// A wall-clock time in Berlin `days` from today, as a Google `start`/`end`.
fn berlin(days: i64, hour: u32, minute: u32) -> Value {
    json!({
        "dateTime": format!("{}T{hour:02}:{minute:02}:00", day(days).format("%Y-%m-%d")),
        "timeZone": "Europe/Berlin",
    })
}

/// The RFC 3339 instant of a Berlin wall-clock time (an instance's original start).
fn berlin_instant(date: NaiveDate, hour: u32) -> String {
    BERLIN
        .from_local_datetime(&date.and_hms_opt(hour, 0, 0).unwrap())
        .single()
        .unwrap()
        .to_rfc3339()
}

fn event(summary: &str, days: i64, extra: Value) -> Value {
    let mut e = json!({
        "summary": summary,
        "start": berlin(days, 10, 0),
        "end": berlin(days, 11, 0),
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

/// What the Google source holds: every visibility (and an unknown one), `default` written and
/// left out, an all-day event, an out-of-office event, an event with Meet data, a deleted
/// event, and a series with a private, a cancelled and a moved instance.
fn seed_google_source(fake: &GoogleFake) {
    let seed = |e: Value| fake.seed_event(CALENDAR_ID, e);
    seed(event(
        "Open day",
        20,
        json!({"visibility": "public", "location": "School hall"}),
    ));
    seed(event("Staff lunch (default, left out)", 3, json!({})));
    seed(event(
        "Staff lunch (default, written)",
        4,
        json!({"visibility": "default"}),
    ));
    seed(event(
        "Salary review with J. Doe",
        5,
        json!({"visibility": "private", "description": "Raise for J. Doe"}),
    ));
    seed(event(
        "Disciplinary hearing M. Roe",
        6,
        json!({"visibility": "confidential"}),
    ));
    seed(event(
        "Staff gossip about X",
        8,
        json!({"visibility": "secret"}),
    ));
    seed(json!({
        "summary": "Summer fete",
        "visibility": "public",
        "start": {"date": day(30).format("%Y-%m-%d").to_string()},
        "end": {"date": day(32).format("%Y-%m-%d").to_string()},
    }));
    seed(event(
        "Therapy appointment Q. Public",
        9,
        json!({"visibility": "public", "eventType": "outOfOffice"}),
    ));
    seed(event(
        "Parish council",
        10,
        json!({
            "visibility": "public",
            "description": "Agenda: budget.\n\n-::~:~::~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~::~:~::-\nJoin with Google Meet: https://meet.google.com/abc-defg-hij\n-::~:~::~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~::~:~::-",
            "hangoutLink": "https://meet.google.com/abc-defg-hij",
            "conferenceData": {"conferenceId": "abc-defg-hij", "entryPoints": [{"entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij"}]},
            "attendees": [{"email": "anna@parish.example"}],
        }),
    ));
    let concert = seed(event(
        "Cancelled concert",
        12,
        json!({"visibility": "public"}),
    ));
    fake.seed_delete(CALENDAR_ID, concert["id"].as_str().unwrap());
    let choir = seed(json!({
        "summary": "Choir rehearsal",
        "visibility": "public",
        "start": berlin(7, 18, 0),
        "end": berlin(7, 19, 30),
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=6"],
    }));
    let id = choir["id"].as_str().unwrap();
    fake.seed_modify_instance(
        CALENDAR_ID,
        id,
        &berlin_instant(day(14), 18),
        json!({"summary": "Counselling session K. Miller", "visibility": "private"}),
    );
    fake.seed_cancel_instance(CALENDAR_ID, id, &berlin_instant(day(21), 18));
    fake.seed_modify_instance(
        CALENDAR_ID,
        id,
        &berlin_instant(day(28), 18),
        json!({"summary": "Choir rehearsal (moved)", "start": berlin(28, 19, 0), "end": berlin(28, 20, 30)}),
    );
}

const GOOGLE_PUBLISHED: &[&str] = &[
    "Choir rehearsal",
    "Open day",
    "Parish council",
    "Summer fete",
];

fn master_summaries(cal: &ics::Calendar) -> Vec<String> {
    let mut titles: Vec<String> = cal
        .masters()
        .iter()
        .map(|e| e.summary().to_string())
        .collect();
    titles.sort();
    titles
}

/// The published file holds exactly the public events of the seeded Google calendar.
fn assert_google_published(text: &str, extra: &[&str]) {
    let cal = ics::parse(text);
    assert_nothing_private(&[text]);
    assert_google_events(&cal.events(), text, extra);
}

/// Published events (from a file or CalDAV resources) hold exactly the seeded public events.
fn assert_google_events(events: &[&ics::Component], text: &str, extra: &[&str]) {
    let mut want: Vec<String> = GOOGLE_PUBLISHED
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    want.sort();
    let mut titles: Vec<String> = events
        .iter()
        .filter(|e| e.get("RECURRENCE-ID").is_none())
        .map(|e| e.summary().to_string())
        .collect();
    titles.sort();
    assert_eq!(titles, want);
    assert!(!text.contains("meet.google.com"), "a Meet link travelled");
    assert!(!text.contains("Cancelled concert"));
    let council = events
        .iter()
        .find(|e| e.summary() == "Parish council")
        .unwrap();
    assert_eq!(council.get("DESCRIPTION"), Some("Agenda: budget."));
    assert_eq!(council.param("DTSTART", "TZID"), Some("Europe/Berlin"));
    let fete = events
        .iter()
        .find(|e| e.summary() == "Summer fete")
        .unwrap();
    assert_eq!(fete.param("DTSTART", "VALUE"), Some("DATE"));
    assert_eq!(fete.get("DTEND"), Some(ymd(32).as_str()));
    let choir = events
        .iter()
        .find(|e| e.summary() == "Choir rehearsal" && e.get("RECURRENCE-ID").is_none())
        .unwrap();
    assert_eq!(choir.get("RRULE"), Some("FREQ=WEEKLY;COUNT=6"));
    let exdates = choir.all("EXDATE").join(",");
    for gone in [14, 21] {
        assert!(
            exdates.contains(&format!("{}T180000", ymd(gone))),
            "the instance on day {gone} is not excluded: {exdates:?}"
        );
    }
    let moved: Vec<_> = events
        .iter()
        .filter(|e| e.get("RECURRENCE-ID").is_some())
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].summary(), "Choir rehearsal (moved)");
    assert_eq!(moved[0].get("UID"), choir.get("UID"));
    for e in events {
        assert_eq!(e.get("CLASS"), Some("PUBLIC"));
        assert!(e.get("ATTENDEE").is_none());
    }
}

#[test]
fn google_to_ics_publishes_exactly_the_public_events_and_then_reads_only_changes() {
    let g = G::start();
    seed_google_source(&g.fake);
    g.google_to_ics("");
    let run = g.sync_ok();
    assert_google_published(&g.cli.read("public.ics"), &[]);
    assert_nothing_private(&[&run.stdout, &run.stderr]);
    let finished = run.event("pair.finished");
    assert_eq!(finished.str("read"), Some("full"));
    // A token, one windowed list, and the one series completed with all its instances.
    assert_eq!(
        g.counts(),
        [(Kind::Token, 1), (Kind::List, 2)],
        "{:?}",
        g.fake.calls()
    );
    let first = &g.fake.calls()[1];
    assert_eq!(first.param("singleEvents"), Some("false"));
    assert!(first.param("timeMin").is_some() && first.param("timeMax").is_some());

    // Nothing changed: one list by sync token, no token request, nothing else.
    g.fake.clear_calls();
    let before = g.cli.read("public.ics");
    let run = g.sync_ok();
    assert_eq!(g.counts(), [(Kind::List, 1)]);
    let call = &g.fake.calls()[0];
    assert!(call.param("syncToken").is_some());
    assert!(call.param("timeMin").is_none() && call.param("timeMax").is_none());
    assert_eq!(run.event("pair.finished").str("read"), Some("unchanged"));
    assert_eq!(g.cli.read("public.ics"), before);

    // Incremental: a public event turns private, an instance of the series turns private.
    g.fake.clear_calls();
    let open_day = g
        .fake
        .live_events(CALENDAR_ID)
        .into_iter()
        .find(|e| e["summary"] == "Open day")
        .unwrap();
    g.fake.seed_patch(
        CALENDAR_ID,
        open_day["id"].as_str().unwrap(),
        json!({"visibility": "private"}),
    );
    let choir = g
        .fake
        .live_events(CALENDAR_ID)
        .into_iter()
        .find(|e| e["summary"] == "Choir rehearsal" && e.get("recurringEventId").is_none())
        .unwrap();
    g.fake.seed_modify_instance(
        CALENDAR_ID,
        choir["id"].as_str().unwrap(),
        &berlin_instant(day(35), 18),
        json!({"visibility": "private"}),
    );
    let run = g.sync_ok();
    let finished = run.event("pair.finished");
    assert_eq!(finished.str("read"), Some("delta"));
    assert_eq!(finished.num("withdrawn"), 1);
    // The changes, then the series read whole once.
    assert_eq!(g.counts(), [(Kind::List, 2)]);
    let text = g.cli.read("public.ics");
    let cal = ics::parse(&text);
    assert!(!master_summaries(&cal).contains(&"Open day".to_string()));
    let choir = cal
        .events()
        .into_iter()
        .find(|e| e.summary() == "Choir rehearsal" && e.get("RECURRENCE-ID").is_none())
        .unwrap()
        .clone();
    assert!(
        choir
            .all("EXDATE")
            .join(",")
            .contains(&format!("{}T180000", ymd(35)))
    );
}

#[test]
fn default_visibility_public_publishes_default_events_and_nothing_else() {
    let g = G::start();
    seed_google_source(&g.fake);
    g.google_to_ics("default_visibility = \"public\"");
    g.sync_ok();
    assert_google_published(
        &g.cli.read("public.ics"),
        &[
            "Staff lunch (default, left out)",
            "Staff lunch (default, written)",
        ],
    );
}

#[test]
fn an_expired_sync_token_means_one_full_read_with_the_right_result() {
    let g = G::start();
    let open = g.fake.seed_event(
        CALENDAR_ID,
        event("Open day", 20, json!({"visibility": "public"})),
    );
    g.fake.seed_event(
        CALENDAR_ID,
        event("Parish council", 10, json!({"visibility": "public"})),
    );
    g.google_to_ics("");
    g.sync_ok();
    g.fake
        .seed_delete(CALENDAR_ID, open["id"].as_str().unwrap());
    g.fake.seed_event(
        CALENDAR_ID,
        event("Summer fete", 30, json!({"visibility": "public"})),
    );
    g.fake.invalidate_sync_tokens(CALENDAR_ID);
    g.fake.clear_calls();
    let run = g.sync_ok();
    assert_eq!(run.event("pair.finished").str("read"), Some("full"));
    assert!(run.has_event("google.sync_token_expired"));
    // The refused incremental list, then one windowed list.
    assert_eq!(g.counts(), [(Kind::List, 2)]);
    let statuses: Vec<u16> = g.fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [410, 200]);
    assert_eq!(
        master_summaries(&g.published()),
        ["Parish council", "Summer fete"]
    );
}

#[test]
fn short_and_empty_pages_are_followed_to_the_end() {
    let g = G::start();
    for n in 0..5 {
        g.fake.seed_event(
            CALENDAR_ID,
            event(
                &format!("Event {n}"),
                3 + n,
                json!({"visibility": "public"}),
            ),
        );
    }
    g.fake.script_page_sizes(&[2, 0, 1]);
    g.google_to_ics("");
    g.sync_ok();
    assert_eq!(g.fake.count(Kind::List), 4);
    assert_eq!(g.published().masters().len(), 5);
}

#[test]
fn a_failed_page_deletes_nothing() {
    let g = G::start();
    for n in 0..3 {
        g.fake.seed_event(
            CALENDAR_ID,
            event(
                &format!("Event {n}"),
                3 + n,
                json!({"visibility": "public"}),
            ),
        );
    }
    g.google_to_ics("");
    g.sync_ok();
    g.fake.invalidate_sync_tokens(CALENDAR_ID);
    g.fake.script_page_sizes(&[1]);
    // The full read's second page fails for good (4 attempts).
    g.fake
        .inject(Fault::BackendError500.times(5).only(Kind::List));
    let run = g.sync();
    assert_eq!(run.code, calsync::exit::TEMPFAIL, "{}", run.stdout);
    assert_eq!(g.published().masters().len(), 3);
}

#[test]
fn ics_to_google_publishes_exactly_the_public_events() {
    let g = G::start();
    g.cli.write("feed.ics", parish::parish_feed());
    g.ics_to_google("");
    let run = g.sync_ok();
    assert_nothing_private(&[&run.stdout, &run.stderr]);
    let masters = g.live_masters();
    let titles: Vec<&str> = masters
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(titles, PUBLISHED);
    let stored = serde_json::to_string(&g.fake.events(CALENDAR_ID)).unwrap();
    assert_nothing_private(&[&stored]);
    for e in g.fake.live_events(CALENDAR_ID) {
        let id = e["id"].as_str().unwrap();
        if e.get("recurringEventId").is_none() {
            assert_eq!(id.len(), 52, "{id}");
            assert!(
                id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v')),
                "{id}"
            );
        }
        assert_eq!(e["visibility"], "public", "{e}");
        assert_eq!(e["reminders"], json!({"useDefault": false}), "{e}");
        assert!(e.get("attendees").is_none(), "{e}");
        assert!(
            e["extendedProperties"]["private"]["calsyncTag"].is_string(),
            "{e}"
        );
        assert!(!e["iCalUID"].as_str().unwrap().contains("intranet"));
    }
    for call in g.fake.calls() {
        if matches!(
            call.kind,
            Kind::Insert | Kind::Update | Kind::Patch | Kind::Delete
        ) {
            assert_eq!(call.param("sendUpdates"), Some("none"), "{call:?}");
        }
    }
    let council = masters
        .iter()
        .find(|e| e["summary"] == "Parish council")
        .unwrap();
    assert_eq!(council["description"], "Agenda: budget.");
    assert_eq!(council["location"], "Parish hall");
    assert_eq!(council["start"]["timeZone"], "Europe/Berlin");
    let fete = masters
        .iter()
        .find(|e| e["summary"] == "Summer fete")
        .unwrap();
    assert_eq!(
        fete["start"]["date"],
        day(30).format("%Y-%m-%d").to_string()
    );
    assert_eq!(fete["end"]["date"], day(32).format("%Y-%m-%d").to_string());
    let choir = masters
        .iter()
        .find(|e| e["summary"] == "Choir rehearsal")
        .unwrap();
    let recurrence = choir["recurrence"].to_string();
    assert!(
        recurrence.contains("RRULE:FREQ=WEEKLY;COUNT=6"),
        "{recurrence}"
    );
    assert!(
        recurrence.contains(&format!("EXDATE;TZID=Europe/Berlin:{}T180000", ymd(14))),
        "{recurrence}"
    );
    // The private occurrence is not shown; the moved one is, at its own time.
    let instances = g.fake.instances(CALENDAR_ID, choir["id"].as_str().unwrap());
    let shown: Vec<(String, String)> = instances
        .iter()
        .filter(|i| i["status"] != "cancelled")
        .map(|i| {
            (
                i["summary"].as_str().unwrap().to_string(),
                i["start"]["dateTime"].as_str().unwrap()[..16].to_string(),
            )
        })
        .collect();
    assert_eq!(shown.len(), 5, "{shown:?}");
    assert!(shown.contains(&(
        "Choir rehearsal (moved)".into(),
        format!("{}T19:00", day(21).format("%Y-%m-%d"))
    )));
    assert!(
        !shown
            .iter()
            .any(|(_, s)| s.starts_with(&day(14).format("%Y-%m-%d").to_string()))
    );

    // Nothing changed: the target is checked once, nothing is listed or written.
    g.fake.clear_calls();
    g.sync_ok();
    assert_eq!(g.counts(), [(Kind::Calendar, 1)]);

    // validate reads both sides and finds the target exactly right; health passes.
    let validate = g.cli.run(&["validate", "--format", "json"]);
    assert_eq!(
        validate.code,
        calsync::exit::OK,
        "{}{}",
        validate.stdout,
        validate.stderr
    );
    let health = g.cli.run(&["health", "--format", "json"]);
    assert_eq!(
        health.code,
        calsync::exit::health::PASS,
        "{}{}",
        health.stdout,
        health.stderr
    );
}

#[test]
fn a_retried_insert_after_a_lost_answer_yields_one_event() {
    let g = G::start();
    let proxy = FaultProxy::start(&g.fake.url());
    g.cli.write(
        "feed.ics",
        feed(&[
            timed("a@intranet", "Open day", 3, ""),
            timed("b@intranet", "Summer fete", 4, ""),
        ]),
    );
    g.configure(
        "",
        "kind = \"ics\"\npath = \"feed.ics\"\n",
        &g.google_at(&format!("{}/calendar/v3", proxy.url()), ""),
    );
    // Google makes the event; its answer never arrives; net sends the insert again.
    proxy.inject(
        NetFault::LoseResponse,
        1,
        Matching::any().method("POST").path_containing("/events"),
    );
    g.sync_ok();
    assert_eq!(g.live_masters().len(), 2);
    let inserts: Vec<u16> = g
        .fake
        .calls()
        .iter()
        .filter(|c| c.kind == Kind::Insert)
        .map(|c| c.status)
        .collect();
    assert_eq!(
        inserts.iter().filter(|s| **s == 409).count(),
        1,
        "{inserts:?}"
    );
    assert_eq!(inserts.len(), 3);
    // The 409 was settled by reading the event, already as wanted: no rewrite.
    assert_eq!(g.fake.count(Kind::Get), 1);
    assert_eq!(g.fake.count(Kind::Update), 0);
    let validate = g.cli.run(&["validate"]);
    assert_eq!(validate.code, calsync::exit::OK, "{}", validate.stdout);
}

#[test]
fn a_lost_state_file_is_rebuilt_from_the_tags_without_duplicates() {
    let g = G::start();
    g.cli.write("feed.ics", parish::parish_feed());
    g.ics_to_google("");
    g.sync_ok();
    let before = g.fake.live_events(CALENDAR_ID).len();
    std::fs::remove_file(g.cli.path("calsync.db")).unwrap();
    g.fake.clear_calls();
    let run = g.sync_ok();
    assert!(run.has_event("state.rebuilt"));
    assert_eq!(g.fake.live_events(CALENDAR_ID).len(), before);
    assert_eq!(g.fake.count(Kind::Insert), 0);
}

#[test]
fn a_deleted_then_recreated_source_event_ends_as_one_visible_event() {
    for restore in [Restore::Allowed, Restore::Forbidden] {
        let g = G::start();
        g.fake.set_restore(restore);
        let both = feed(&[
            timed("a@intranet", "Open day", 3, ""),
            timed("b@intranet", "Summer fete", 4, ""),
        ]);
        g.cli.write("feed.ics", &both);
        g.ics_to_google("");
        g.sync_ok();
        g.cli.write(
            "feed.ics",
            feed(&[timed("b@intranet", "Summer fete", 4, "")]),
        );
        g.sync_ok();
        assert_eq!(g.live_masters().len(), 1);
        g.cli.write("feed.ics", &both);
        let run = g.sync_ok();
        let live = g.live_masters();
        let titles: Vec<&str> = live
            .iter()
            .map(|e| e["summary"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["Open day", "Summer fete"], "{restore:?}");
        let open = &live[0];
        match restore {
            Restore::Allowed => {
                assert_eq!(open["id"].as_str().unwrap().len(), 52);
                assert!(run.has_event("google.restored"));
            }
            Restore::Forbidden => {
                assert!(open["id"].as_str().unwrap().ends_with("r1"), "{open}");
                assert!(run.has_event("google.restore_refused"));
            }
        }
        let validate = g.cli.run(&["validate"]);
        assert_eq!(validate.code, calsync::exit::OK, "{}", validate.stdout);
    }
}

#[test]
fn quota_answers_are_retried_and_the_usage_limit_is_not_hammered() {
    let g = G::start();
    g.cli.write(
        "feed.ics",
        feed(&[
            timed("a@intranet", "Open day", 3, ""),
            timed("b@intranet", "Summer fete", 4, ""),
            timed("c@intranet", "Parish council", 5, ""),
        ]),
    );
    g.ics_to_google("concurrency = 1");
    g.fake
        .inject(Fault::RateLimit403.times(1).only(Kind::Insert));
    g.fake
        .inject(Fault::UserRateLimit403.times(1).only(Kind::Insert));
    g.fake.inject(
        Fault::RateLimit429
            .times(1)
            .only(Kind::Insert)
            .retry_after(0),
    );
    g.sync_ok();
    assert_eq!(g.live_masters().len(), 3);
    assert_eq!(g.fake.count(Kind::Insert), 6);

    let g = G::start();
    g.cli.write(
        "feed.ics",
        feed(&[
            timed("a@intranet", "Open day", 3, ""),
            timed("b@intranet", "Summer fete", 4, ""),
            timed("c@intranet", "Parish council", 5, ""),
        ]),
    );
    g.ics_to_google("concurrency = 1");
    g.fake
        .inject(Fault::QuotaExceeded403.times(1).only(Kind::Insert));
    let run = g.sync();
    assert_eq!(run.code, calsync::exit::FAILED, "{}", run.stdout);
    // One refused insert, and nothing more sent after it.
    assert_eq!(g.fake.count(Kind::Insert), 1);
    g.sync_ok();
    assert_eq!(g.live_masters().len(), 3);
}

#[test]
fn refused_credentials_are_77_and_an_unusable_key_is_78_without_the_key_in_any_log() {
    // Domain-wide delegation the admin never granted.
    let g = G::start();
    g.cli
        .write("feed.ics", feed(&[timed("a@intranet", "Open day", 3, "")]));
    g.ics_to_google("subject = \"office@parish.example\"");
    let run = g.sync();
    assert_eq!(run.code, calsync::exit::NOPERM, "{}", run.stdout);
    let key = &serde_json::from_str::<Value>(&g.cli.read("sa.json")).unwrap();
    let body_line = key["private_key"]
        .as_str()
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(&body_line) && !text.contains("PRIVATE KEY"));
        assert!(
            !text.contains("office@parish.example"),
            "an address in the log"
        );
    }
    let audit = g.cli.run(&["audit-verify", "--format", "json"]);
    assert_eq!(audit.code, calsync::exit::OK);

    // The calendar is not shared with the account.
    let g = G::start();
    g.fake.set_access(CALENDAR_ID, Access::Hidden);
    g.cli
        .write("feed.ics", feed(&[timed("a@intranet", "Open day", 3, "")]));
    g.ics_to_google("");
    let run = g.sync();
    assert_eq!(run.code, calsync::exit::NOPERM, "{}", run.stdout);
    assert!(run.stdout.contains("not shared"), "{}", run.stdout);
    let health = g.cli.run(&["health", "--format", "json"]);
    assert_eq!(
        health.code,
        calsync::exit::health::FAIL,
        "{}",
        health.stdout
    );

    // A key file whose private key is not an RSA key.
    let g = G::start();
    let mut bad = key.clone();
    bad["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    g.cli.write("sa.json", bad.to_string());
    g.cli
        .write("feed.ics", feed(&[timed("a@intranet", "Open day", 3, "")]));
    g.ics_to_google("");
    let run = g.sync();
    assert_eq!(run.code, calsync::exit::CONFIG);
    let all = run.all_output();
    assert!(all.contains("service_account_file"), "{all}");
    assert!(!all.contains("AAAA"), "{all}");
    assert_eq!(g.fake.count(Kind::Token), 0);
}

#[test]
fn google_to_caldav_publishes_exactly_the_public_events() {
    let g = G::start();
    seed_google_source(&g.fake);
    let radicale = Radicale::start();
    radicale.mkcalendar("target");
    let mut cli = g.cli;
    cli.env("RADICALE_PASSWORD", radicale.password());
    let g = G { fake: g.fake, cli };
    g.configure(
        "",
        &g.google(""),
        &format!(
            "kind = \"caldav\"\nurl = \"{}/test/target/\"\nusername = \"test\"\npassword_env = \"RADICALE_PASSWORD\"\n",
            radicale.url()
        ),
    );
    g.sync_ok();
    let objects = radicale.list("target");
    assert_eq!(objects.len(), GOOGLE_PUBLISHED.len());
    let all: String = objects.iter().map(|o| o.ics.as_str()).collect();
    let parsed: Vec<ics::Calendar> = objects.iter().map(|o| ics::parse(&o.ics)).collect();
    let events: Vec<&ics::Component> = parsed.iter().flat_map(|c| c.events()).collect();
    assert_google_events(&events, &all, &[]);
    assert_nothing_private(&[&all]);
}

#[test]
fn changes_outside_the_window_and_deletions_reach_the_target() {
    let g = G::start();
    let open = g.fake.seed_event(
        CALENDAR_ID,
        event("Open day", 20, json!({"visibility": "public"})),
    );
    let council = g.fake.seed_event(
        CALENDAR_ID,
        event("Parish council", 10, json!({"visibility": "public"})),
    );
    g.google_to_ics("");
    g.sync_ok();
    // Moved far beyond future_days (365), and deleted: both leave the target.
    g.fake.seed_patch(
        CALENDAR_ID,
        open["id"].as_str().unwrap(),
        json!({"start": berlin(500, 10, 0), "end": berlin(500, 11, 0)}),
    );
    g.fake
        .seed_delete(CALENDAR_ID, council["id"].as_str().unwrap());
    g.fake.clear_calls();
    let run = g.sync_ok();
    assert_eq!(run.event("pair.finished").str("read"), Some("delta"));
    assert_eq!(g.counts(), [(Kind::List, 1)]);
    assert!(g.published().masters().is_empty());
}

#[test]
fn delegation_and_a_token_url_override_sign_for_the_url_used() {
    let g = G::start();
    g.fake.allow_subject("office@parish.example");
    // The key file names Google's real endpoint; token_url points at the fake, and the
    // assertion's audience must follow it.
    let mut key: Value = serde_json::from_str(&g.cli.read("sa.json")).unwrap();
    key["token_uri"] = json!("https://oauth2.googleapis.com/token");
    g.cli.write("sa.json", key.to_string());
    g.cli
        .write("feed.ics", feed(&[timed("a@intranet", "Open day", 3, "")]));
    g.ics_to_google(&format!(
        "subject = \"office@parish.example\"\ntoken_url = \"{}\"",
        g.fake.token_url()
    ));
    let run = g.sync_ok();
    assert_eq!(g.live_masters().len(), 1);
    let token = g
        .fake
        .calls()
        .into_iter()
        .find(|c| c.kind == Kind::Token)
        .unwrap();
    let assertion = token.param("assertion").unwrap().to_string();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            assertion.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], g.fake.token_url());
    assert_eq!(claims["sub"], "office@parish.example");
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/calendar");
    assert!(!run.all_output().contains("office@parish.example"));
}

#[test]
fn health_and_validate_read_a_google_source() {
    let g = G::start();
    seed_google_source(&g.fake);
    g.google_to_ics("");
    g.sync_ok();
    let health = g.cli.run(&["health", "--format", "json"]);
    assert_eq!(
        health.code,
        calsync::exit::health::PASS,
        "{}",
        health.stdout
    );
    let validate = g.cli.run(&["validate", "--format", "json"]);
    assert_eq!(validate.code, calsync::exit::OK, "{}", validate.stdout);
}

#[test]
fn a_changed_series_keeps_its_instances_right_in_the_target() {
    let g = G::start();
    let series = |overrides: &str| {
        let start = ymd(7);
        feed(&[format!(
            "UID:choir@intranet\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{start}T180000\n\
             DTEND;TZID=Europe/Berlin:{start}T193000\nRRULE:FREQ=WEEKLY;COUNT=6\nSUMMARY:Choir rehearsal\n{overrides}"
        )])
    };
    let moved = format!(
        "END:VEVENT\nBEGIN:VEVENT\nUID:choir@intranet\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{d}T180000\n\
         DTSTART;TZID=Europe/Berlin:{d}T190000\nDTEND;TZID=Europe/Berlin:{d}T203000\nSUMMARY:Choir rehearsal (moved)",
        d = ymd(21)
    );
    let private = format!(
        "END:VEVENT\nBEGIN:VEVENT\nUID:choir@intranet\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{d}T180000\n\
         DTSTART;TZID=Europe/Berlin:{d}T180000\nDTEND;TZID=Europe/Berlin:{d}T193000\nSUMMARY:Private\nCLASS:PRIVATE",
        d = ymd(28)
    );
    g.cli.write("feed.ics", series(&moved));
    g.ics_to_google("");
    g.sync_ok();
    let shown = |g: &G| -> Vec<String> {
        let master = &g.live_masters()[0];
        g.fake
            .instances(CALENDAR_ID, master["id"].as_str().unwrap())
            .iter()
            .filter(|i| i["status"] != "cancelled")
            .map(|i| {
                format!(
                    "{} {}",
                    &i["start"]["dateTime"].as_str().unwrap()[..16],
                    i["summary"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert!(shown(&g).contains(&format!(
        "{}T19:00 Choir rehearsal (moved)",
        day(21).format("%Y-%m-%d")
    )));
    // The move is undone and another instance turns private.
    g.cli.write("feed.ics", series(&private));
    let run = g.sync_ok();
    assert_eq!(run.event("pair.finished").num("updated"), 1);
    let now_shown = shown(&g);
    assert_eq!(now_shown.len(), 5, "{now_shown:?}");
    assert!(now_shown.contains(&format!(
        "{}T18:00 Choir rehearsal",
        day(21).format("%Y-%m-%d")
    )));
    assert!(
        !now_shown
            .iter()
            .any(|s| s.starts_with(&day(28).format("%Y-%m-%d").to_string())),
        "{now_shown:?}"
    );
    let validate = g.cli.run(&["validate"]);
    assert_eq!(validate.code, calsync::exit::OK, "{}", validate.stdout);
}

/// A series in a time zone only its feed defines cannot be held by Google (its instances
/// would follow Google's idea of the zone): the write fails naming the item, nothing is
/// approximated; a single event in that zone goes in at its instant; with
/// `recurrence = "expand"` the series' occurrences are published.
#[test]
fn a_series_in_a_zone_only_its_feed_defines_is_refused_unless_expanded() {
    let zone = "BEGIN:VTIMEZONE\nTZID:Parish Time\nBEGIN:STANDARD\nDTSTART:19700101T000000\n\
                TZOFFSETFROM:+0300\nTZOFFSETTO:+0300\nTZNAME:PT\nEND:STANDARD\nEND:VTIMEZONE\n";
    let day = ics::ymd(3);
    let text = feed(&[
        format!(
            "UID:weekly@x\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Parish Time:{day}T100000\n\
             DTEND;TZID=Parish Time:{day}T110000\nSUMMARY:Weekly\nRRULE:FREQ=WEEKLY;COUNT=3"
        ),
        format!(
            "UID:once@x\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Parish Time:{day}T150000\n\
             DTEND;TZID=Parish Time:{day}T160000\nSUMMARY:Once"
        ),
    ])
    .replacen(
        "BEGIN:VEVENT",
        &format!("{}BEGIN:VEVENT", zone.replace('\n', "\r\n")),
        1,
    );
    let g = G::start();
    g.cli.write("feed.ics", &text);
    g.ics_to_google("");
    let run = g.sync();
    assert_eq!(run.code, calsync::exit::FAILED, "{}", run.stdout);
    let failed = run
        .log()
        .into_iter()
        .find(|l| l.event.as_deref() == Some("write.failed"))
        .expect("the series' write failed");
    assert_eq!(failed.str("item"), Some("weekly@x"));
    assert!(
        failed.msg.contains("recurrence = \"expand\""),
        "{}",
        failed.msg
    );
    let masters = g.live_masters();
    assert_eq!(masters.len(), 1, "{masters:?}");
    assert_eq!(masters[0]["summary"], "Once");
    // 15:00 at +03:00 is 12:00 UTC.
    assert_eq!(
        masters[0]["start"]["dateTime"],
        format!("{}-{}-{}T12:00:00Z", &day[..4], &day[4..6], &day[6..])
    );

    let config = g.cli.read("calsync.toml").replace(
        "name = \"parish\"\n",
        "name = \"parish\"\nrecurrence = \"expand\"\n",
    );
    g.cli.write("calsync.toml", config);
    let run = g.sync_ok();
    assert!(!run.has_event("write.failed"));
    assert_eq!(
        g.live_masters().len(),
        4,
        "the three occurrences and the single event"
    );
}
