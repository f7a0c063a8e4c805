//! The two deployments calsync was asked for, end to end in one pair: a Microsoft 365
//! calendar (GraphFake) published into a Google calendar (GoogleFake), on the real binary.
//! Exactly the public events arrive — the private, personal, confidential and unknown
//! sensitivities, a series' private exception and cancelled occurrence never do — and a run
//! with nothing changed reads one delta page and writes nothing.

mod support;

use calsync::exit;
use serde_json::{Value, json};
use support::cli::Cli;
use support::google_fake::{CALENDAR_ID, GoogleFake, Kind as GoogleKind};
use support::graph_fake::{self, GraphFake, Kind as GraphKind};

const USER: &str = "office@example.org";
const NOW: &str = "2026-05-01T06:00:00Z";

fn wall(t: &str) -> Value {
    json!({"dateTime": t, "timeZone": "W. Europe Standard Time"})
}

fn seed(graph: &GraphFake, calendar: &str) {
    for (subject, sensitivity) in [
        ("Public concert", "normal"),
        ("Staff appraisal", "personal"),
        ("Confession schedule", "private"),
        ("Legal advice", "confidential"),
        ("Odd marking", "secretish"),
    ] {
        graph.seed_event(
            USER,
            calendar,
            json!({
                "subject": subject, "sensitivity": sensitivity,
                "start": wall("2026-05-06T19:00:00"), "end": wall("2026-05-06T20:00:00"),
            }),
        );
    }
    let master = graph.seed_event(
        USER,
        calendar,
        json!({
            "subject": "Choir rehearsal", "sensitivity": "normal",
            "start": wall("2026-05-04T19:00:00"), "end": wall("2026-05-04T20:30:00"),
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                "range": {"type": "numbered", "startDate": "2026-05-04", "numberOfOccurrences": 4,
                          "recurrenceTimeZone": "W. Europe Standard Time"},
            },
        }),
    );
    let instances = graph.instances(
        USER,
        &master,
        "2026-05-01T00:00:00Z",
        "2026-07-01T00:00:00Z",
    );
    assert_eq!(instances.len(), 4);
    graph.make_exception(
        USER,
        instances[1]["id"].as_str().unwrap(),
        json!({"subject": "Choir: a private funeral", "sensitivity": "private"}),
    );
    graph.cancel_occurrence(USER, instances[2]["id"].as_str().unwrap());
}

#[test]
fn a_microsoft_365_calendar_is_published_into_google_with_exactly_its_public_events() {
    let graph = GraphFake::start();
    graph.add_mailbox(USER);
    let calendar = graph.add_calendar(USER, "Public");
    seed(&graph, &calendar);
    let google = GoogleFake::start();
    let mut cli = Cli::new();
    google.write_key_file(cli.dir(), "sa.json");
    cli.env("GRAPH_SECRET", graph_fake::CLIENT_SECRET);
    cli.env("CALSYNC_NOW", NOW);
    cli.write(
        "calsync.toml",
        format!(
            "state = \"calsync.db\"\n[net]\nretries = 2\nbackoff_ms = 10\n\n[[pair]]\nname = \"office\"\n\
             [pair.source]\nkind = \"graph\"\ntenant_id = \"{tenant}\"\nclient_id = \"{client}\"\n\
             client_secret_env = \"GRAPH_SECRET\"\nuser = \"{USER}\"\ncalendar = \"Public\"\n\
             base_url = \"{graph_base}\"\ntoken_url = \"{graph_token}\"\n\
             [pair.target]\nkind = \"google\"\nservice_account_file = \"sa.json\"\n\
             calendar_id = \"{CALENDAR_ID}\"\nbase_url = \"{google_base}\"\n",
            tenant = graph_fake::TENANT,
            client = graph_fake::CLIENT_ID,
            graph_base = graph.graph_url(),
            graph_token = graph.url() + "/{tenant}/oauth2/v2.0/token",
            google_base = google.api_base(),
        ),
    );
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, exit::OK, "{}{}", run.stdout, run.stderr);
    let out = run.all_output();
    for private in [
        "Staff appraisal",
        "Confession schedule",
        "Legal advice",
        "Odd marking",
        "funeral",
    ] {
        assert!(!out.contains(private), "{private} in the log");
    }

    let live = google.live_events(CALENDAR_ID);
    let masters: Vec<&Value> = live
        .iter()
        .filter(|e| e.get("recurringEventId").is_none())
        .collect();
    let mut titles: Vec<&str> = masters
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    titles.sort();
    assert_eq!(titles, ["Choir rehearsal", "Public concert"]);
    let stored = serde_json::to_string(&google.events(CALENDAR_ID)).unwrap();
    for private in [
        "Staff appraisal",
        "Confession",
        "Legal advice",
        "Odd marking",
        "funeral",
    ] {
        assert!(!stored.contains(private), "{private} reached Google");
    }
    for e in &masters {
        assert_eq!(e["visibility"], "public", "{e}");
        assert!(e.get("attendees").is_none(), "{e}");
    }
    // The series: 4 weekly occurrences, the private one and the cancelled one left out.
    let series = masters
        .iter()
        .find(|e| e["summary"] == "Choir rehearsal")
        .unwrap();
    let id = series["id"].as_str().unwrap();
    let shown: Vec<String> = google
        .instances(CALENDAR_ID, id)
        .iter()
        .filter(|i| i["status"] != "cancelled")
        .map(|i| i["start"]["dateTime"].as_str().unwrap()[..10].to_string())
        .collect();
    assert_eq!(shown, ["2026-05-04", "2026-05-25"], "{shown:?}");

    // Nothing changed: one delta request, no write.
    graph.reset_counts();
    google.clear_calls();
    let again = cli.run(&["sync"]);
    assert_eq!(again.code, exit::OK, "{}", again.stdout);
    assert_eq!(graph.count(GraphKind::Delta), 1);
    for kind in [
        GoogleKind::Insert,
        GoogleKind::Update,
        GoogleKind::Patch,
        GoogleKind::Delete,
    ] {
        assert_eq!(google.count(kind), 0, "{kind:?}");
    }
}
