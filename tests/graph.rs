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
use support::graph_fake::{self, GraphFake, Kind};

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
