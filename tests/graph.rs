//! The Graph provider on the real binary, against `GraphFake`: graph→ics, ics→graph and
//! graph→caldav publish exactly the public events; a run with nothing to do costs one delta
//! request; writes go 20 to a `$batch`; expired deltas, throttled items, kills mid-batch,
//! lost state files, `health` and `validate`.
//!
//! "Now" is pinned (`CALSYNC_NOW`) so the seeded May 2026 events sit in the window.

mod support;

use calsync::exit;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::cli::{Cli, Run};
use support::graph_fake::{self, Expiry, GraphFake, Kind};

const USER: &str = "office@example.org";
const NOW: &str = "2026-05-01T06:00:00Z";

/// A fake with the parish mailbox and its "Public" calendar; returns the calendar id.
fn parish() -> (GraphFake, String) {
    let fake = GraphFake::start();
    fake.add_mailbox(USER);
    let calendar = fake.add_calendar(USER, "Public");
    (fake, calendar)
}

/// The `[pair.source]`/`[pair.target]` body of a Graph side.
fn graph_side(fake: &GraphFake, calendar: &str) -> String {
    format!(
        "kind = \"graph\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"GRAPH_SECRET\"\n\
         user = \"{USER}\"\ncalendar = \"{calendar}\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\n",
        graph_fake::TENANT,
        graph_fake::CLIENT_ID,
        fake.graph_url(),
        fake.url() + "/{tenant}/oauth2/v2.0/token",
    )
}

fn cli(config: &str) -> Cli {
    let mut cli = Cli::new();
    cli.env("GRAPH_SECRET", graph_fake::CLIENT_SECRET);
    cli.env("CALSYNC_NOW", NOW);
    cli.write(
        "calsync.toml",
        format!("state = \"calsync.db\"\n[net]\nretries = 2\nbackoff_ms = 10\n\n{config}"),
    );
    cli
}

fn graph_to_ics(fake: &GraphFake) -> Cli {
    cli(&format!(
        "[[pair]]\nname = \"parish\"\n[pair.source]\n{}[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
        graph_side(fake, "Public")
    ))
}

fn wall(t: &str) -> Value {
    json!({"dateTime": t, "timeZone": "W. Europe Standard Time"})
}

/// A one-hour event in Berlin time.
fn event(subject: &str, start: &str, sensitivity: &str) -> Value {
    let s = chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M").unwrap();
    let f = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    json!({
        "subject": subject, "sensitivity": sensitivity,
        "start": wall(&f(s)), "end": wall(&f(s + chrono::Duration::hours(1))),
    })
}

const TEAMS_BODY: &str = "<html><body><p>Agenda: the budget for the summer fair.</p>\
<div>________________________________________________________________________________</div>\
<div><b>Microsoft Teams meeting</b></div><div><b>Join on your computer or mobile app</b></div>\
<div><a href=\"https://teams.microsoft.com/l/meetup-join/19%3ameeting_Zjk%40thread.v2/0?context=%7b%7d\">Click here to join the meeting</a></div>\
<div>Meeting ID: 351 846 273 19</div><div>Passcode: Xy7pQ2</div>\
<div>________________________________________________________________________________</div></body></html>";

/// The parish calendar: the four sensitivity values and an unknown one, a weekly series with
/// a private exception and a cancelled occurrence, an all-day event and a Teams meeting.
/// Returns the series master's id.
fn seed_parish(fake: &GraphFake, calendar: &str) -> String {
    for (subject, sensitivity) in [
        ("Public concert", "normal"),
        ("Staff appraisal", "personal"),
        ("Confession schedule", "private"),
        ("Legal advice", "confidential"),
        ("Odd marking", "secretish"),
    ] {
        fake.seed_event(
            USER,
            calendar,
            event(subject, "2026-05-06T19:00", sensitivity),
        );
    }
    let master = fake.seed_event(
        USER,
        calendar,
        json!({
            "subject": "Choir rehearsal", "sensitivity": "normal",
            "location": {"displayName": "Parish hall"},
            "start": wall("2026-05-04T19:00:00"), "end": wall("2026-05-04T20:30:00"),
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                "range": {"type": "numbered", "startDate": "2026-05-04", "numberOfOccurrences": 6,
                          "recurrenceTimeZone": "W. Europe Standard Time"},
            },
        }),
    );
    let instances = fake.instances(
        USER,
        &master,
        "2026-05-01T00:00:00Z",
        "2026-07-01T00:00:00Z",
    );
    assert_eq!(instances.len(), 6);
    fake.make_exception(
        USER,
        instances[1]["id"].as_str().unwrap(),
        json!({"subject": "Choir: funeral of a parishioner", "sensitivity": "private"}),
    );
    fake.cancel_occurrence(USER, instances[2]["id"].as_str().unwrap());
    fake.seed_event(
        USER,
        calendar,
        json!({
            "subject": "Parish fair", "sensitivity": "normal", "isAllDay": true,
            "start": {"dateTime": "2026-06-13T00:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-06-14T00:00:00", "timeZone": "W. Europe Standard Time"},
        }),
    );
    let mut teams = event("Fair committee", "2026-05-07T18:00", "normal");
    teams["body"] = json!({"contentType": "html", "content": TEAMS_BODY});
    teams["isOnlineMeeting"] = json!(true);
    teams["onlineMeetingProvider"] = json!("teamsForBusiness");
    teams["onlineMeeting"] = json!({"joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_Zjk%40thread.v2/0"});
    teams["attendees"] = json!([{"emailAddress": {"address": "kantor@example.org", "name": "Kantor"}, "type": "required"}]);
    fake.seed_event(USER, calendar, teams);
    master
}

fn ok(run: &Run) {
    assert_eq!(run.code, exit::OK, "{}\n{}", run.stdout, run.stderr);
}

fn masters_of(ics: &str) -> BTreeSet<String> {
    support::ics::parse(ics)
        .masters()
        .iter()
        .map(|e| e.summary().to_string())
        .collect()
}

#[test]
fn graph_to_ics_publishes_exactly_the_public_events() {
    let (fake, calendar) = parish();
    seed_parish(&fake, &calendar);
    let cli = graph_to_ics(&fake);
    let run = cli.run(&["sync"]);
    ok(&run);
    let text = cli.read("public.ics");
    assert_eq!(
        masters_of(&text),
        [
            "Choir rehearsal",
            "Fair committee",
            "Parish fair",
            "Public concert"
        ]
        .map(String::from)
        .into(),
        "{text}"
    );
    let cal = support::ics::parse(&text);
    let choir = cal
        .events()
        .into_iter()
        .find(|e| e.summary() == "Choir rehearsal")
        .unwrap();
    assert!(choir.get("RRULE").unwrap().contains("COUNT=6"), "{text}");
    let exdates: usize = choir
        .all("EXDATE")
        .iter()
        .map(|v| v.split(',').count())
        .sum();
    assert_eq!(
        exdates, 2,
        "private and cancelled occurrences withheld: {text}"
    );
    for forbidden in [
        "funeral",
        "teams.microsoft.com",
        "Passcode",
        "kantor",
        "351 846",
        "Confession",
        "appraisal",
        "Legal",
        "Odd",
    ] {
        assert!(
            !text.to_lowercase().contains(&forbidden.to_lowercase()),
            "{forbidden} leaked: {text}"
        );
    }
    assert!(text.contains("Agenda: the budget"), "{text}");
    let fair = cal
        .events()
        .into_iter()
        .find(|e| e.summary() == "Parish fair")
        .unwrap();
    assert_eq!(fair.get("DTSTART"), Some("20260613"));
    assert!(
        !run.all_output().contains(USER),
        "the mailbox is masked in logs"
    );

    // Nothing changed: one delta request, no token (cached), nothing else.
    fake.reset_counts();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(fake.count(Kind::Delta), 1);
    assert_eq!(fake.count_direct(Kind::Token), 0);
    assert_eq!(fake.count_direct(Kind::Batch), 0);
    assert_eq!(fake.count(Kind::EventGet) + fake.count(Kind::Instances), 0);

    // The fake forgot the token (revoked early): the call answered 401 is sent once more
    // with a fresh token.
    fake.expire_tokens();
    fake.reset_counts();
    ok(&cli.run(&["sync"]));
    assert_eq!(fake.count(Kind::Delta), 2, "the refused call and its retry");
    assert_eq!(fake.count_direct(Kind::Token), 1);

    // The cached token's own lifetime runs out: it is renewed before the call, one token
    // request and the one delta request.
    fake.set_token_lifetime(std::time::Duration::from_secs(120));
    fake.expire_tokens();
    ok(&cli.run(&["sync"]));
    fake.reset_counts();
    ok(&cli.run(&["sync"]));
    assert_eq!(fake.count(Kind::Delta), 1);
    assert_eq!(fake.count_direct(Kind::Token), 1);
    assert_eq!(fake.count_direct(Kind::Batch), 0);
}

#[test]
fn graph_to_caldav_publishes_exactly_the_public_events() {
    let (fake, calendar) = parish();
    seed_parish(&fake, &calendar);
    let radicale = support::radicale::Radicale::start();
    radicale.mkcalendar("public");
    let mut cli = cli(&format!(
        "[[pair]]\nname = \"parish\"\n[pair.source]\n{}[pair.target]\nkind = \"caldav\"\n\
         url = \"{}/{}/public/\"\nusername = \"{}\"\npassword_env = \"RADICALE_PASSWORD\"\n",
        graph_side(&fake, "Public"),
        radicale.url(),
        radicale.user(),
        radicale.user()
    ));
    cli.env("RADICALE_PASSWORD", radicale.password());
    ok(&cli.run(&["sync"]));
    let objects = radicale.list("public");
    let mut summaries = BTreeSet::new();
    for o in &objects {
        let text = o.ics.to_lowercase();
        for forbidden in [
            "funeral",
            "teams.microsoft.com",
            "passcode",
            "kantor",
            "confession",
            "appraisal",
            "legal",
            "odd marking",
        ] {
            assert!(!text.contains(forbidden), "{forbidden} leaked: {}", o.ics);
        }
        summaries.extend(masters_of(&o.ics));
    }
    assert_eq!(
        summaries,
        [
            "Choir rehearsal",
            "Fair committee",
            "Parish fair",
            "Public concert"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(objects.len(), 4);
}

#[test]
fn an_expired_delta_is_a_full_resync_that_loses_nothing() {
    for how in [
        Expiry::SyncStateNotFound,
        Expiry::ResyncRequired,
        Expiry::GoneWithLocation,
        Expiry::BadRequest,
    ] {
        let (fake, calendar) = parish();
        seed_parish(&fake, &calendar);
        let cli = graph_to_ics(&fake);
        ok(&cli.run(&["sync"]));
        let before = masters_of(&cli.read("public.ics"));
        fake.seed_event(
            USER,
            &calendar,
            event("Added later", "2026-05-09T10:00", "normal"),
        );
        fake.expire_sync_state(how);
        let run = cli.run(&["sync"]);
        ok(&run);
        assert!(
            run.has_event("graph.delta_expired"),
            "{how:?}: {}",
            run.stdout
        );
        assert_eq!(run.event("pair.finished").str("read"), Some("full"));
        let mut want = before.clone();
        want.insert("Added later".into());
        assert_eq!(masters_of(&cli.read("public.ics")), want, "{how:?}");
        // The next run follows the new delta link.
        fake.reset_counts();
        ok(&cli.run(&["sync"]));
        assert_eq!(fake.count(Kind::Delta), 1, "{how:?}");
    }
}

#[test]
fn changes_in_the_source_reach_the_target_on_the_next_run() {
    let (fake, calendar) = parish();
    let master = seed_parish(&fake, &calendar);
    let cli = graph_to_ics(&fake);
    ok(&cli.run(&["sync"]));
    // A public event turns private; an occurrence is deleted; the series master is renamed.
    let concert = fake
        .stored_events(USER, &calendar)
        .into_iter()
        .find(|e| e["subject"] == "Public concert")
        .unwrap();
    fake.update_event(
        USER,
        concert["id"].as_str().unwrap(),
        json!({"sensitivity": "private"}),
    );
    let instances = fake.instances(
        USER,
        &master,
        "2026-05-01T00:00:00Z",
        "2026-07-01T00:00:00Z",
    );
    let fourth = instances
        .iter()
        .find(|i| {
            i["originalStart"]
                .as_str()
                .unwrap()
                .starts_with("2026-06-01")
        })
        .unwrap();
    fake.delete_event(USER, fourth["id"].as_str().unwrap());
    fake.reset_counts();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(run.event("pair.finished").str("read"), Some("delta"));
    assert_eq!(run.event("pair.finished").num("withdrawn"), 1);
    assert_eq!(fake.count(Kind::EventGet), 1, "the series master, once");
    assert_eq!(fake.count(Kind::Instances), 1);
    let text = cli.read("public.ics");
    assert!(!text.contains("Public concert"), "{text}");
    let cal = support::ics::parse(&text);
    let choir = cal
        .events()
        .into_iter()
        .find(|e| e.summary() == "Choir rehearsal")
        .unwrap();
    let exdates: usize = choir
        .all("EXDATE")
        .iter()
        .map(|v| v.split(',').count())
        .sum();
    assert_eq!(exdates, 3, "the deleted occurrence is excluded too: {text}");
}

#[test]
fn refused_credentials_and_a_denied_mailbox_are_77_without_the_secret() {
    let (fake, calendar) = parish();
    seed_parish(&fake, &calendar);
    let mut cli = graph_to_ics(&fake);
    cli.env("GRAPH_SECRET", "wrong-secret-value~42");
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::NOPERM, "{}", run.stdout);
    assert!(!run.all_output().contains("wrong-secret-value"));
    assert!(!run.all_output().contains(USER));
    assert!(
        run.all_output().contains("o***@example.org"),
        "{}",
        run.stdout
    );

    let cli = graph_to_ics(&fake);
    ok(&cli.run(&["sync"]));
    fake.deny_mailbox(USER, true);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::NOPERM, "{}", run.stdout);
}

#[test]
fn two_calendars_of_one_name_are_a_config_error_naming_both() {
    let (fake, calendar) = parish();
    let second = fake.add_calendar(USER, "Public");
    let cli = graph_to_ics(&fake);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::CONFIG, "{}", run.stdout);
    assert!(
        run.stdout.contains(&calendar) && run.stdout.contains(&second),
        "{}",
        run.stdout
    );
}

#[test]
fn a_certificate_credential_works() {
    let (fake, calendar) = parish();
    seed_parish(&fake, &calendar);
    let cli = graph_to_ics(&fake);
    cli.write("client.pem", graph_fake::CERTIFICATE_PEM);
    cli.write("client.key", include_str!("fixtures/graph-client-key.pem"));
    let config = cli.read("calsync.toml").replace(
        "client_secret_env = \"GRAPH_SECRET\"",
        "client_certificate_file = \"client.pem\"\nclient_key_file = \"client.key\"",
    );
    cli.write("calsync.toml", config);
    ok(&cli.run(&["sync"]));
    assert!(cli.read("public.ics").contains("Public concert"));
}

// ------------------------------------------------------------------------------------------
// Graph as a target.

use support::ics::{feed, timed, ymd};

/// The source feed: `n` public events (titles `Event i` + `suffix`), two private ones, a
/// weekly series with an EXDATE and an overridden instance, an all-day event.
fn source_feed(n: usize, suffix: &str) -> String {
    let mut events: Vec<String> = (0..n)
        .map(|i| {
            timed(
                &format!("ev{i}@intranet"),
                &format!("Event {i}{suffix}"),
                2 + (i as i64 % 40),
                "",
            )
        })
        .collect();
    events.push(timed("p1@intranet", "Private one", 3, "CLASS:PRIVATE"));
    events.push(timed("p2@intranet", "Private two", 4, "CLASS:CONFIDENTIAL"));
    events.push(format!(
        "UID:choir@intranet\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{d}T190000\n\
         DTEND;TZID=Europe/Berlin:{d}T203000\nSUMMARY:Choir\nRRULE:FREQ=WEEKLY;COUNT=5\n\
         EXDATE;TZID=Europe/Berlin:{x}T190000",
        d = ymd(7),
        x = ymd(14)
    ));
    events.push(format!(
        "UID:choir@intranet\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{r}T190000\n\
         DTSTART;TZID=Europe/Berlin:{r}T200000\nDTEND;TZID=Europe/Berlin:{r}T213000\nSUMMARY:Choir (late)",
        r = ymd(21)
    ));
    events.push(format!(
        "UID:fair@intranet\nDTSTAMP:20260101T000000Z\nDTSTART;VALUE=DATE:{d}\nDTEND;VALUE=DATE:{e}\nSUMMARY:Fair",
        d = ymd(30),
        e = ymd(31)
    ));
    feed(&events)
}

fn ics_to_graph(fake: &GraphFake, feed_text: &str) -> Cli {
    let mut cli = Cli::new();
    cli.env("GRAPH_SECRET", graph_fake::CLIENT_SECRET);
    cli.write("feed.ics", feed_text);
    cli.write(
        "calsync.toml",
        format!(
            "state = \"calsync.db\"\n[net]\nretries = 2\nbackoff_ms = 10\n\n[[pair]]\nname = \"parish\"\n\
             [pair.source]\nkind = \"ics\"\npath = \"feed.ics\"\n[pair.target]\n{}",
            graph_side(fake, "Public")
        ),
    );
    cli
}

/// Stored singles and masters (not exceptions) of the target calendar.
fn stored(fake: &GraphFake, calendar: &str) -> Vec<Value> {
    fake.stored_events(USER, calendar)
        .into_iter()
        .filter(|e| e["type"] != "exception")
        .collect()
}

fn subjects(fake: &GraphFake, calendar: &str) -> BTreeSet<String> {
    stored(fake, calendar)
        .iter()
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect()
}

fn tags(fake: &GraphFake, calendar: &str) -> Vec<String> {
    stored(fake, calendar)
        .iter()
        .map(|e| {
            e["singleValueExtendedProperties"][0]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn expected_subjects(n: usize, suffix: &str) -> BTreeSet<String> {
    let mut want: BTreeSet<String> = (0..n).map(|i| format!("Event {i}{suffix}")).collect();
    want.extend(["Choir".to_string(), "Fair".to_string()]);
    want
}

#[test]
fn ics_to_graph_writes_public_events_in_batches_and_keeps_their_shape() {
    let (fake, calendar) = parish();
    let cli = ics_to_graph(&fake, &source_feed(45, ""));
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(subjects(&fake, &calendar), expected_subjects(45, ""));
    for e in stored(&fake, &calendar) {
        assert_eq!(e["sensitivity"], "normal");
        assert_eq!(e["isReminderOn"], false);
        assert_eq!(e["attendees"], json!([]));
        assert!(e["transactionId"].as_str().is_some_and(|t| !t.is_empty()));
    }
    let all = tags(&fake, &calendar);
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>().len(),
        all.len(),
        "one event per tag"
    );
    assert!(
        fake.count(Kind::EventCreate) == 47,
        "{}",
        fake.count(Kind::EventCreate)
    );
    assert_eq!(
        fake.count_direct(Kind::EventCreate),
        0,
        "creates go in batches only"
    );

    // The series: a Graph series with the excluded instance deleted and the override patched.
    let master = stored(&fake, &calendar)
        .into_iter()
        .find(|e| e["subject"] == "Choir")
        .unwrap();
    assert_eq!(master["type"], "seriesMaster");
    assert_eq!(master["recurrence"]["pattern"]["type"], "weekly");
    let instances = fake.instances(
        USER,
        master["id"].as_str().unwrap(),
        "2020-01-01T00:00:00Z",
        "2030-01-01T00:00:00Z",
    );
    assert_eq!(instances.len(), 4, "five, one excluded: {instances:#?}");
    let late: Vec<&Value> = instances
        .iter()
        .filter(|i| i["subject"] == "Choir (late)")
        .collect();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["type"], "exception");
    let fair = stored(&fake, &calendar)
        .into_iter()
        .find(|e| e["subject"] == "Fair")
        .unwrap();
    assert_eq!(fair["isAllDay"], true);

    // Validate reads the target back and finds it right.
    let run = cli.run(&["validate", "--format", "json"]);
    assert_eq!(run.code, exit::OK, "{}\n{}", run.stdout, run.stderr);

    // Nothing changed: no write, no batch; one look at the calendar at most.
    fake.reset_counts();
    ok(&cli.run(&["sync"]));
    assert_eq!(fake.count_direct(Kind::Batch), 0);
    assert!(fake.requests().len() <= 50, "sanity");
    let graph_calls = fake.count_direct(Kind::GetCalendar)
        + fake.count_direct(Kind::ListCalendars)
        + fake.count_direct(Kind::Token);
    assert!(graph_calls <= 1, "{graph_calls}");

    // 45 changed events: three batches of updates (20, 20, 5).
    cli.write("feed.ics", source_feed(45, " (moved)"));
    fake.reset_counts();
    ok(&cli.run(&["sync"]));
    assert_eq!(fake.count_direct(Kind::Batch), 3);
    assert_eq!(fake.count(Kind::EventUpdate), 45);
    assert_eq!(
        subjects(&fake, &calendar),
        expected_subjects(45, " (moved)")
    );

    // Two items throttled inside a batch: only those two are sent again.
    fake.throttle_batch_writes(2, 1);
    cli.write("feed.ics", source_feed(45, " (again)"));
    fake.reset_counts();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(
        fake.count(Kind::EventUpdate),
        47,
        "45 and the 2 throttled once more"
    );
    assert_eq!(
        fake.count_direct(Kind::Batch),
        4,
        "three, then one with the two throttled items"
    );
    assert_eq!(
        subjects(&fake, &calendar),
        expected_subjects(45, " (again)")
    );

    // A source event turns private: it is deleted from the target.
    let mut text = source_feed(45, " (again)");
    text = text.replace(
        "SUMMARY:Event 3 (again)\r\n",
        "SUMMARY:Event 3 (again)\r\nCLASS:PRIVATE\r\n",
    );
    cli.write("feed.ics", &text);
    let run = cli.run(&["sync"]);
    ok(&run);
    assert_eq!(run.event("pair.finished").num("withdrawn"), 1);
    assert!(!subjects(&fake, &calendar).contains("Event 3 (again)"));

    // The state file is lost: the mapping is rebuilt from the tags, nothing is duplicated
    // or created.
    for f in ["calsync.db", "calsync.db-wal", "calsync.db-shm"] {
        let _ = std::fs::remove_file(cli.path(f));
    }
    fake.reset_counts();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert!(run.has_event("state.rebuilt"), "{}", run.stdout);
    assert_eq!(fake.count(Kind::EventCreate), 0);
    let all = tags(&fake, &calendar);
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>().len(),
        all.len(),
        "one event per tag"
    );
    assert_eq!(all.len(), 46);
}

#[test]
fn events_without_our_tag_and_other_calendars_are_never_touched() {
    let (fake, calendar) = parish();
    let other = fake.add_calendar(USER, "Staff");
    let foreign = fake.seed_event(
        USER,
        &calendar,
        event("Put there by a person", "2026-05-06T10:00", "normal"),
    );
    let elsewhere = fake.seed_event(
        USER,
        &other,
        event("Staff meeting", "2026-05-06T10:00", "private"),
    );
    let cli = ics_to_graph(&fake, &source_feed(5, ""));
    ok(&cli.run(&["sync"]));
    // Everything goes from the source: our events are deleted (the guard allows it with
    // --allow-mass-delete), the person's stay.
    cli.write("feed.ics", feed(&[]));
    ok(&cli.run(&["sync", "--allow-mass-delete"]));
    let left: Vec<String> = fake
        .stored_events(USER, &calendar)
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![foreign]);
    assert!(fake.stored_event(USER, &elsewhere).is_some());
}

#[test]
fn health_and_validate_work_on_a_graph_target() {
    let (fake, _) = parish();
    let cli = ics_to_graph(&fake, &source_feed(3, ""));
    ok(&cli.run(&["sync"]));
    let run = cli.run(&["health", "--format", "json"]);
    assert_eq!(
        run.code,
        exit::health::PASS,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    for check in ["parish:target:auth", "parish:target:calendar"] {
        assert_eq!(
            report["checks"][check][0]["status"], "pass",
            "{check}: {report:#}"
        );
    }
    fake.deny_mailbox(USER, true);
    // The calendar id is cached for an hour; the access check still asks the calendar.
    let run = cli.run(&["health", "--format", "json"]);
    assert_eq!(run.code, exit::health::FAIL, "{}", run.stdout);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        report["checks"]["parish:target:auth"][0]["status"], "fail",
        "{report:#}"
    );
    assert!(!run.stdout.contains(USER), "the mailbox is masked");
    fake.deny_mailbox(USER, false);
    let run = cli.run(&["validate", "--format", "json"]);
    assert_eq!(run.code, exit::OK, "{}\n{}", run.stdout, run.stderr);

    // A Graph source: its probe is a delta read from the stored link.
    let calendar = fake.add_calendar(USER, "Office");
    fake.seed_event(
        USER,
        &calendar,
        event("Public concert", "2026-05-06T19:00", "normal"),
    );
    let source = cli_with(&fake, "Office");
    ok(&source.run(&["sync"]));
    fake.reset_counts();
    let run = source.run(&["health", "--format", "json"]);
    // (The cursor, made on the pinned day, is old for health's wall clock: a warning.)
    assert_eq!(
        run.code,
        exit::health::WARN,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    for check in ["parish:source:auth", "parish:source:calendar"] {
        assert_eq!(
            report["checks"][check][0]["status"], "pass",
            "{check}: {report:#}"
        );
    }
    assert_eq!(fake.count(Kind::Delta), 1);
    let run = source.run(&["validate", "--format", "json"]);
    assert_eq!(run.code, exit::OK, "{}\n{}", run.stdout, run.stderr);
}

fn cli_with(fake: &GraphFake, calendar: &str) -> Cli {
    cli(&format!(
        "[[pair]]\nname = \"parish\"\n[pair.source]\n{}[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
        graph_side(fake, calendar)
    ))
}

#[test]
fn killed_while_a_batch_is_in_flight_each_event_lands_exactly_once() {
    use std::time::{Duration, Instant};
    use support::cli::{finish, signal};
    let (fake, calendar) = parish();
    let cli = ics_to_graph(&fake, &source_feed(3, ""));
    ok(&cli.run(&["sync"]));
    // 55 events to create: three batches go out together; the fake answers them slowly.
    cli.write("feed.ics", source_feed(58, ""));
    fake.set_latency(Duration::from_millis(700));
    fake.reset_counts();
    let child = cli.spawn(&["sync"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.count_direct(Kind::Batch) < 3 {
        assert!(Instant::now() < deadline, "no batch went out");
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(&child, "KILL");
    let run = finish(child);
    assert_eq!(run.code, 137, "killed by SIGKILL");
    // The batches in flight are served after the client died: their events land unseen.
    fake.set_latency(Duration::ZERO);
    let landed = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = stored(&fake, &calendar).len();
            if n >= 3 + 2 + 55 || Instant::now() > deadline {
                break n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(landed, 60, "the three batches landed after the kill");
    fake.reset_counts();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert!(run.has_event("intents.pending"), "{}", run.stdout);
    assert_eq!(
        fake.count(Kind::EventCreate),
        0,
        "found by their tags, not created again"
    );
    assert!(fake.count(Kind::TagQuery) > 0);
    assert_eq!(subjects(&fake, &calendar), expected_subjects(58, ""));
    let all = tags(&fake, &calendar);
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>().len(),
        all.len(),
        "one event per tag"
    );
    assert_eq!(all.len(), 60);
}

#[test]
fn a_series_graph_cannot_hold_is_written_expanded_and_read_back_whole() {
    let (fake, calendar) = parish();
    let office = |title: &str, class: &str| {
        format!(
            "UID:office@intranet\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{d}T090000\n\
             DTEND;TZID=Europe/Berlin:{d}T100000\nSUMMARY:{title}\nRRULE:FREQ=DAILY;BYHOUR=9,17;COUNT=6\n{class}",
            d = ymd(5)
        )
    };
    let cli = ics_to_graph(&fake, &feed(&[office("Office hours", "")]));
    let run = cli.run(&["sync"]);
    ok(&run);
    let warning = run.event("graph.series_expanded");
    assert_eq!(warning.str("item"), Some("office@intranet"));
    let parts = fake.stored_events(USER, &calendar);
    assert_eq!(parts.len(), 6, "one event per occurrence: {parts:#?}");
    assert!(
        parts
            .iter()
            .all(|e| e["subject"] == "Office hours" && e["type"] == "singleInstance")
    );
    let hours: BTreeSet<String> = parts
        .iter()
        .map(|e| e["start"]["dateTime"].as_str().unwrap()[11..13].to_string())
        .collect();
    let utc_hour = |h: u32| {
        use chrono::TimeZone;
        let local = support::ics::day(5).and_hms_opt(h, 0, 0).unwrap();
        let at = chrono_tz::Europe::Berlin
            .from_local_datetime(&local)
            .unwrap();
        at.with_timezone(&chrono::Utc).format("%H").to_string()
    };
    assert_eq!(
        hours,
        [utc_hour(9), utc_hour(17)].into(),
        "09:00 and 17:00 Berlin, in UTC"
    );
    let run = cli.run(&["validate", "--format", "json"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);

    cli.write("feed.ics", feed(&[office("Office hours (new room)", "")]));
    ok(&cli.run(&["sync"]));
    let parts = fake.stored_events(USER, &calendar);
    assert_eq!(parts.len(), 6);
    assert!(
        parts
            .iter()
            .all(|e| e["subject"] == "Office hours (new room)")
    );

    cli.write(
        "feed.ics",
        feed(&[office("Office hours (new room)", "CLASS:PRIVATE")]),
    );
    ok(&cli.run(&["sync"]));
    assert!(fake.stored_events(USER, &calendar).is_empty());
}

#[test]
fn delta_oddities_read_the_same() {
    // Masters listed in delta, pages replaying their last item, empty pages with next links,
    // pages of one item: the same calendar comes out.
    let (fake, calendar) = parish();
    seed_parish(&fake, &calendar);
    let plain = graph_to_ics(&fake);
    ok(&plain.run(&["sync"]));
    let want = masters_of(&plain.read("public.ics"));
    fake.set_masters_in_delta(true);
    fake.set_delta_replays(true);
    fake.set_empty_delta_pages(2);
    let odd = graph_to_ics(&fake);
    ok(&odd.run(&["sync"]));
    assert_eq!(masters_of(&odd.read("public.ics")), want);
    assert_eq!(
        plain
            .read("public.ics")
            .lines()
            .filter(|l| l.starts_with("EXDATE"))
            .count(),
        odd.read("public.ics")
            .lines()
            .filter(|l| l.starts_with("EXDATE"))
            .count()
    );
}

#[test]
fn a_changed_window_starts_a_new_delta_round() {
    let (fake, calendar) = parish();
    seed_parish(&fake, &calendar);
    let cli = graph_to_ics(&fake);
    ok(&cli.run(&["sync"]));
    let run = cli.run(&["sync"]);
    assert_eq!(run.event("pair.finished").str("read"), Some("unchanged"));
    let config = cli
        .read("calsync.toml")
        .replace("name = \"parish\"\n", "name = \"parish\"\npast_days = 10\n");
    cli.write("calsync.toml", config);
    let started = fake.requests().len();
    let run = cli.run(&["sync"]);
    ok(&run);
    assert!(run.has_event("graph.delta_new_round"), "{}", run.stdout);
    assert_eq!(run.event("pair.finished").str("read"), Some("full"));
    let first = fake.requests()[started..]
        .iter()
        .find(|r| r.path.contains("/delta"))
        .cloned()
        .unwrap();
    assert!(
        first.path.contains("startDateTime=2026-04-21T00:00:00Z"),
        "{}",
        first.path
    );
}

#[test]
fn ics_to_graph_publishes_exactly_the_public_events() {
    let (fake, calendar) = parish();
    let series = |extra: &str| {
        format!(
            "UID:mass@intranet\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{d}T100000\n\
             DTEND;TZID=Europe/Berlin:{d}T110000\nSUMMARY:Sunday mass\nRRULE:FREQ=WEEKLY;COUNT=6\n{extra}",
            d = ymd(6)
        )
    };
    let instance = |week: i64, extra: &str| {
        format!(
            "UID:mass@intranet\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{r}T100000\n\
             DTSTART;TZID=Europe/Berlin:{r}T100000\nDTEND;TZID=Europe/Berlin:{r}T110000\n{extra}",
            r = ymd(6 + 7 * week)
        )
    };
    let teams = "Agenda: the fair.\\n\\n________________________________________________________________________________\\n\
                 Microsoft Teams meeting\\nJoin on your computer or mobile app\\n\
                 Click here to join the meeting <https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0>\\n\
                 Meeting ID: 351 846 273 19\\nPasscode: Xy7pQ2\\n\
                 ________________________________________________________________________________";
    let text = feed(&[
        timed("a@intranet", "Public concert", 3, "CLASS:PUBLIC"),
        timed("b@intranet", "No class at all", 3, ""),
        timed("c@intranet", "Confession schedule", 3, "CLASS:PRIVATE"),
        timed("d@intranet", "Legal advice", 3, "CLASS:CONFIDENTIAL"),
        timed("e@intranet", "Odd marking", 3, "CLASS:X-SECRET"),
        timed(
            "f@intranet",
            "Fair committee",
            4,
            &format!("DESCRIPTION:{teams}\nATTENDEE;CN=Kantor:mailto:kantor@example.org"),
        ),
        series(""),
        instance(1, "SUMMARY:Funeral mass\nCLASS:PRIVATE"),
        instance(2, "SUMMARY:Sunday mass\nSTATUS:CANCELLED"),
        format!(
            "UID:fair@intranet\nDTSTAMP:20260101T000000Z\nDTSTART;VALUE=DATE:{}\nSUMMARY:Parish fair",
            ymd(20)
        ),
    ]);
    let cli = ics_to_graph(&fake, &text);
    ok(&cli.run(&["sync"]));
    assert_eq!(
        subjects(&fake, &calendar),
        [
            "Public concert",
            "No class at all",
            "Fair committee",
            "Sunday mass",
            "Parish fair"
        ]
        .map(String::from)
        .into()
    );
    let everything = serde_json::to_string(&fake.stored_events(USER, &calendar))
        .unwrap()
        .to_lowercase();
    for forbidden in [
        "funeral",
        "teams.microsoft.com",
        "passcode",
        "kantor",
        "confession",
        "legal",
        "odd marking",
    ] {
        assert!(
            !everything.contains(forbidden),
            "{forbidden} reached the target"
        );
    }
    let committee = stored(&fake, &calendar)
        .into_iter()
        .find(|e| e["subject"] == "Fair committee")
        .unwrap();
    assert!(
        committee["body"]["content"]
            .as_str()
            .unwrap()
            .contains("Agenda: the fair.")
    );
    assert_eq!(committee["attendees"], json!([]));
    let mass = stored(&fake, &calendar)
        .into_iter()
        .find(|e| e["subject"] == "Sunday mass")
        .unwrap();
    let instances = fake.instances(
        USER,
        mass["id"].as_str().unwrap(),
        "2020-01-01T00:00:00Z",
        "2030-01-01T00:00:00Z",
    );
    assert_eq!(
        instances.len(),
        4,
        "six, the private and the cancelled one left out"
    );
    let run = cli.run(&["validate", "--format", "json"]);
    assert_eq!(run.code, exit::OK, "{}", run.stdout);
}

/// A series Graph holds only as its occurrences in the window is written anew as the window
/// moves, so occurrences entering the window reach the target (and an unchanged run on the
/// same day writes nothing).
#[test]
fn an_expanded_series_follows_the_window_day_by_day() {
    let (fake, calendar) = parish();
    let start = support::ics::day(1);
    let series = format!(
        "UID:office@intranet\nDTSTAMP:20260101T000000Z\nDTSTART:{d}T090000Z\nDTEND:{d}T100000Z\n\
         SUMMARY:Office hours\nRRULE:FREQ=DAILY;BYHOUR=9,17",
        d = start.format("%Y%m%d")
    );
    let mut cli = ics_to_graph(&fake, &feed(&[series]));
    let config = cli.read("calsync.toml").replace(
        "name = \"parish\"\n",
        "name = \"parish\"\npast_days = 0\nfuture_days = 3\n",
    );
    cli.write("calsync.toml", config);
    let day = |offset: i64| format!("{}T06:00:00Z", support::ics::day(offset).format("%Y-%m-%d"));
    cli.env("CALSYNC_NOW", &day(0));
    ok(&cli.run(&["sync"]));
    let days = |fake: &GraphFake| -> BTreeSet<String> {
        fake.stored_events(USER, &calendar)
            .iter()
            .map(|e| e["start"]["dateTime"].as_str().unwrap()[..10].to_string())
            .collect()
    };
    let first = days(&fake);
    let last_day = support::ics::day(3).format("%Y-%m-%d").to_string();
    assert!(first.iter().all(|d| *d <= last_day), "{first:?}");

    // Later the same day: nothing to write.
    fake.reset_counts();
    ok(&cli.run(&["sync"]));
    assert_eq!(fake.count(Kind::Batch), 0);

    // Two days on, the window reaches two more days of occurrences.
    cli.env("CALSYNC_NOW", &day(2));
    ok(&cli.run(&["sync"]));
    let later = days(&fake);
    let entered = support::ics::day(4).format("%Y-%m-%d").to_string();
    assert!(!first.contains(&entered), "{first:?}");
    assert!(later.contains(&entered), "{later:?}");
}
