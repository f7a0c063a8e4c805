//! Self-tests of `GoogleFake` (`tests/support/google_fake.rs`).
//!
//! calsync's Google provider will be judged against this fake, so each behaviour the fake claims
//! is proven here with plain reqwest calls, the way any client would meet it: if the fake drifts
//! from what Google documents, one of these fails.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use support::google_fake::{
    Access, CALENDAR_ID, CLIENT_EMAIL, Fault, GoogleFake, Kind, PRIVATE_KEY_ID, Restore,
    SA_PRIVATE_KEY_PEM, SCOPE_CALENDAR, WRONG_PRIVATE_KEY_PEM, sign_assertion,
};

/// A client like calsync's: blocking, never routed through a system proxy.
fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building a reqwest client")
}

/// A fake plus an authorised client: what every API test starts from.
struct Api {
    fake: GoogleFake,
    client: Client,
    token: String,
}

impl Api {
    fn new() -> Api {
        let fake = GoogleFake::start();
        let token = fake.issue_token();
        Api {
            fake,
            client: client(),
            token,
        }
    }

    /// Sends `method path?query` (path relative to the API base) with the bearer token.
    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_with(method, path, body, &[])
    }

    fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.fake.api_base()))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        read(request.send().expect("a request to the fake"))
    }

    /// `…/calendars/{CALENDAR_ID}/events{suffix}`.
    fn events(&self, suffix: &str) -> String {
        format!("/calendars/{}/events{suffix}", enc(CALENDAR_ID))
    }

    /// Seeds an event into [`CALENDAR_ID`] as the human would.
    fn seed(&self, event: Value) -> Value {
        self.fake.seed_event(CALENDAR_ID, event)
    }

    fn list(&self, query: &str) -> (u16, Value) {
        self.call(Method::GET, &self.events(&format!("?{query}")), None)
    }

    fn insert(&self, event: &Value) -> (u16, Value) {
        self.call(Method::POST, &self.events(""), Some(event))
    }

    /// Follows `nextPageToken` (bounded) and returns all items and the final sync token.
    fn list_all(&self, query: &str) -> (Vec<Value>, String) {
        let mut items = Vec::new();
        let mut page = None::<String>;
        for _ in 0..100 {
            let q = match &page {
                Some(token) => format!("{query}&pageToken={}", enc(token)),
                None => query.to_string(),
            };
            let (status, body) = self.list(&q);
            assert_eq!(status, 200, "{body}");
            items.extend(body["items"].as_array().expect("items").iter().cloned());
            match body["nextPageToken"].as_str() {
                Some(token) => page = Some(token.to_string()),
                None => {
                    let sync = body["nextSyncToken"]
                        .as_str()
                        .expect("the last page has a sync token");
                    return (items, sync.to_string());
                }
            }
        }
        panic!("more than 100 pages");
    }
}

fn read(response: reqwest::blocking::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().expect("reading the answer");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `errors[0].reason` of a Google error body.
fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

fn ids(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|e| e["id"].as_str().unwrap_or(""))
        .collect()
}

fn timed(id: &str, summary: &str, start: &str, end: &str) -> Value {
    json!({
        "id": id,
        "summary": summary,
        "start": { "dateTime": start },
        "end": { "dateTime": end },
    })
}

/// A weekly Monday 10:00–11:00 Europe/Berlin series from 2026-05-04, `count` instances.
fn weekly(id: &str, count: u32) -> Value {
    json!({
        "id": id,
        "summary": "Choir rehearsal",
        "visibility": "public",
        "start": { "dateTime": "2026-05-04T10:00:00+02:00", "timeZone": "Europe/Berlin" },
        "end": { "dateTime": "2026-05-04T11:00:00+02:00", "timeZone": "Europe/Berlin" },
        "recurrence": [format!("RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT={count}")],
    })
}

fn post_token(fake: &GoogleFake, assertion: &str) -> (u16, Value) {
    let form = format!(
        "grant_type={}&assertion={assertion}",
        enc("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let response = client()
        .post(fake.token_url())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .expect("a token request");
    read(response)
}

fn claims_with(fake: &GoogleFake, change: impl FnOnce(&mut Value)) -> Value {
    let mut claims = fake.claims();
    change(&mut claims);
    claims
}

// ---------------------------------------------------------------------------------------------
// The token endpoint

#[test]
fn key_file_assertion_yields_a_bearer_token_that_opens_the_api() {
    let fake = GoogleFake::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = fake.write_key_file(dir.path(), "sa.json");
    let key: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("the key file"))
        .expect("key JSON");
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["token_uri"], fake.token_url());
    assert_eq!(key["client_email"], CLIENT_EMAIL);
    assert_eq!(key["private_key_id"], PRIVATE_KEY_ID);

    // A client's own signing: from the key file's fields only.
    let private_key = key["private_key"].as_str().expect("a PEM");
    let claims = fake.claims();
    let (status, body) = post_token(&fake, &sign_assertion(&claims, private_key, None));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let token = body["access_token"].as_str().expect("a token");

    let answer = client()
        .get(fake.events_url(CALENDAR_ID))
        .bearer_auth(token)
        .send()
        .expect("a list");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(fake.count(Kind::Token), 1);
    assert_eq!(fake.count(Kind::List), 1);
}

#[test]
fn signature_of_another_key_or_kid_or_algorithm_is_invalid_jwt_signature() {
    let fake = GoogleFake::start();
    let claims = fake.claims();
    let refusals = [
        sign_assertion(&claims, WRONG_PRIVATE_KEY_PEM, None),
        sign_assertion(&claims, SA_PRIVATE_KEY_PEM, Some("0000another0key0id")),
        // HS256 with some secret: never accepted, whatever the secret.
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"secret").expect("an HMAC key"),
        )
        .expect("an HS256 JWT"),
    ];
    for assertion in refusals {
        let (status, body) = post_token(&fake, &assertion);
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_description"], "Invalid JWT Signature.");
    }
    // A tampered payload under a genuine signature.
    let genuine = fake.assertion();
    let parts: Vec<&str> = genuine.split('.').collect();
    let other = sign_assertion(
        &claims_with(&fake, |c| c["scope"] = json!("x")),
        SA_PRIVATE_KEY_PEM,
        None,
    );
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert_eq!(
        post_token(&fake, &forged).1["error_description"],
        "Invalid JWT Signature."
    );
}

#[test]
fn assertion_must_be_short_lived_and_in_a_reasonable_timeframe() {
    let fake = GoogleFake::start();
    let now = chrono::Utc::now().timestamp();
    let cases = [
        ("over an hour", now, now + 3601),
        ("expired", now - 7200, now - 3600),
        ("issued in the future", now + 600, now + 1200),
        ("exp before iat", now, now - 1),
    ];
    for (case, iat, exp) in cases {
        let claims = claims_with(&fake, |c| {
            c["iat"] = json!(iat);
            c["exp"] = json!(exp);
        });
        let (status, body) = post_token(&fake, &sign_assertion(&claims, SA_PRIVATE_KEY_PEM, None));
        assert_eq!(status, 400, "{case}");
        assert_eq!(body["error"], "invalid_grant", "{case}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe"),
            "{case}: {body}"
        );
    }
    // Exactly an hour, issued a little in the future (within the skew): fine.
    let claims = claims_with(&fake, |c| {
        c["iat"] = json!(now + 30);
        c["exp"] = json!(now + 3630);
    });
    assert_eq!(
        post_token(&fake, &sign_assertion(&claims, SA_PRIVATE_KEY_PEM, None)).0,
        200
    );
}

#[test]
fn audience_must_be_the_token_url_actually_requested() {
    let fake = GoogleFake::start();
    for aud in [
        "https://oauth2.googleapis.com/token",
        &format!("{}/", fake.token_url()),
    ] {
        let claims = claims_with(&fake, |c| c["aud"] = json!(aud));
        let (status, body) = post_token(&fake, &sign_assertion(&claims, SA_PRIVATE_KEY_PEM, None));
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("Failed audience check")
        );
    }
    // The same fake reached as `localhost` expects that URL as audience.
    let localhost = fake.token_url().replace("127.0.0.1", "localhost");
    let claims = claims_with(&fake, |c| c["aud"] = json!(localhost));
    let form = format!(
        "grant_type={}&assertion={}",
        enc("urn:ietf:params:oauth:grant-type:jwt-bearer"),
        sign_assertion(&claims, SA_PRIVATE_KEY_PEM, None)
    );
    let response = client()
        .post(&localhost)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .expect("a token request to localhost");
    assert_eq!(response.status().as_u16(), 200);
}

#[test]
fn grant_type_issuer_and_scope_are_checked() {
    let fake = GoogleFake::start();
    let response = client()
        .post(fake.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("assertion", &fake.assertion()),
        ])
        .send()
        .expect("a token request");
    let (status, body) = read(response);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    let stranger = claims_with(&fake, |c| {
        c["iss"] = json!("someone@else.iam.gserviceaccount.com")
    });
    let (status, body) = post_token(&fake, &sign_assertion(&stranger, SA_PRIVATE_KEY_PEM, None));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let no_scope = claims_with(&fake, |c| {
        c.as_object_mut().unwrap().remove("scope");
    });
    let (status, body) = post_token(&fake, &sign_assertion(&no_scope, SA_PRIVATE_KEY_PEM, None));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // A token for another Google scope is issued, but the calendar refuses it.
    let drive = claims_with(&fake, |c| {
        c["scope"] = json!("https://www.googleapis.com/auth/drive")
    });
    let (status, body) = post_token(&fake, &sign_assertion(&drive, SA_PRIVATE_KEY_PEM, None));
    assert_eq!(status, 200);
    let response = client()
        .get(fake.events_url(CALENDAR_ID))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .expect("a list");
    let (status, body) = read(response);
    assert_eq!(status, 403);
    assert_eq!(reason(&body), "insufficientPermissions");
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");

    // Several scopes, space-separated, one of them the calendar's: fine.
    let two = claims_with(&fake, |c| {
        c["scope"] = json!(format!(
            "https://www.googleapis.com/auth/drive {SCOPE_CALENDAR}"
        ))
    });
    assert_eq!(
        post_token(&fake, &sign_assertion(&two, SA_PRIVATE_KEY_PEM, None)).0,
        200
    );
}

#[test]
fn delegated_subject_needs_an_allowance_and_then_owns_primary() {
    let fake = GoogleFake::start();
    let as_office = claims_with(&fake, |c| c["sub"] = json!("office@example.org"));
    let assertion = sign_assertion(&as_office, SA_PRIVATE_KEY_PEM, Some(PRIVATE_KEY_ID));
    let (status, body) = post_token(&fake, &assertion);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized_client"))
    );
    fake.set_unauthorized_client_status(400);
    assert_eq!(post_token(&fake, &assertion).0, 400);

    fake.allow_subject("office@example.org");
    fake.add_calendar("office@example.org");
    let (status, body) = post_token(&fake, &assertion);
    assert_eq!(status, 200);
    let token = body["access_token"].as_str().unwrap();
    let event = timed(
        "primer001",
        "Mine",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    let response = client()
        .post(fake.events_url("primary"))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(event.to_string())
        .send()
        .expect("an insert");
    let (status, body) = read(response);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["creator"]["email"], "office@example.org");
    assert!(fake.event("office@example.org", "primer001").is_some());
}

#[test]
fn only_a_delegated_service_account_may_invite_attendees() {
    let fake = GoogleFake::start();
    let mut event = timed(
        "invite001",
        "x",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    event["attendees"] = json!([{ "email": "anna@example.org" }]);
    let insert = |token: &str, event: &Value| {
        read(
            client()
                .post(fake.events_url(CALENDAR_ID))
                .bearer_auth(token)
                .header("Content-Type", "application/json")
                .body(event.to_string())
                .send()
                .expect("an insert"),
        )
    };
    let (status, body) = insert(&fake.issue_token(), &event);
    assert_eq!(
        (status, reason(&body)),
        (403, "forbiddenForServiceAccounts")
    );
    event["attendees"] = json!([]);
    assert_eq!(
        insert(&fake.issue_token(), &event).0,
        200,
        "an empty list invites nobody"
    );

    fake.allow_subject("office@example.org");
    let as_office = claims_with(&fake, |c| c["sub"] = json!("office@example.org"));
    let (_, grant) = post_token(&fake, &sign_assertion(&as_office, SA_PRIVATE_KEY_PEM, None));
    event["id"] = json!("invite002");
    event["attendees"] = json!([{ "email": "anna@example.org" }]);
    let (status, body) = insert(grant["access_token"].as_str().unwrap(), &event);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attendees"][0]["email"], "anna@example.org");
}

#[test]
fn api_calls_need_a_live_bearer_token() {
    let api = Api::new();
    let url = api.fake.events_url(CALENDAR_ID);
    let (status, body) = read(client().get(&url).send().expect("a list"));
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(body["error"]["errors"][0]["domain"], "global");
    assert_eq!(reason(&body), "required");

    let (status, body) = read(
        client()
            .get(&url)
            .bearer_auth("ya29.made-up")
            .send()
            .expect("a list"),
    );
    assert_eq!((status, reason(&body)), (401, "authError"));

    assert_eq!(api.list("").0, 200);
    api.fake.expire_tokens();
    let (status, body) = api.list("");
    assert_eq!((status, reason(&body)), (401, "authError"));

    let fresh = api.fake.issue_token();
    let ok = client()
        .get(&url)
        .bearer_auth(&fresh)
        .send()
        .expect("a list");
    assert_eq!(ok.status().as_u16(), 200);
    api.fake.revoke_token(&fresh);
    let (status, _) = read(
        client()
            .get(&url)
            .bearer_auth(&fresh)
            .send()
            .expect("a list"),
    );
    assert_eq!(status, 401);

    api.fake.set_token_lifetime(120);
    let (status, body) = post_token(&api.fake, &api.fake.assertion());
    assert_eq!((status, body["expires_in"].as_u64()), (200, Some(120)));
}

#[test]
fn calendars_the_account_cannot_see_are_not_found_or_refused_by_knob() {
    let api = Api::new();
    api.fake
        .set_calendar_time_zone(CALENDAR_ID, "Europe/Berlin");
    let (status, calendar) = api.call(
        Method::GET,
        &format!("/calendars/{}", enc(CALENDAR_ID)),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(calendar["kind"], "calendar#calendar");
    assert_eq!(
        (calendar["id"].as_str(), calendar["timeZone"].as_str()),
        (Some(CALENDAR_ID), Some("Europe/Berlin"))
    );
    assert_eq!(api.fake.count(Kind::Calendar), 1);
    let event = timed(
        "visible01",
        "x",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    let missing = format!(
        "/calendars/{}/events",
        enc("c_other@group.calendar.google.com")
    );
    let (status, body) = api.call(Method::GET, &missing, None);
    assert_eq!((status, reason(&body)), (404, "notFound"));

    api.fake.set_access(CALENDAR_ID, Access::Hidden);
    assert_eq!(api.list("").0, 404);
    api.fake.set_access(CALENDAR_ID, Access::Refused);
    let (status, body) = api.list("");
    assert_eq!((status, reason(&body)), (403, "forbidden"));
    api.fake.set_access(CALENDAR_ID, Access::Reader);
    assert_eq!(api.list("").0, 200);
    let (status, body) = api.insert(&event);
    assert_eq!((status, reason(&body)), (403, "requiredAccessLevel"));
    api.fake.set_access(CALENDAR_ID, Access::Writer);
    assert_eq!(api.insert(&event).0, 200);
}

// ---------------------------------------------------------------------------------------------
// events.list: paging, window, filters

#[test]
fn pages_hold_at_most_max_results_and_only_the_last_has_a_sync_token() {
    let api = Api::new();
    for i in 0..7 {
        let start = format!("2026-05-{:02}T10:00:00Z", i + 1);
        let end = format!("2026-05-{:02}T11:00:00Z", i + 1);
        api.seed(timed(&format!("event{i:04}"), "e", &start, &end));
    }
    let (status, first) = api.list("maxResults=3");
    assert_eq!(status, 200);
    assert_eq!(first["kind"], "calendar#events");
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert!(first["nextPageToken"].is_string() && first["nextSyncToken"].is_null());
    let (items, sync) = api.list_all("maxResults=3");
    assert_eq!(items.len(), 7);
    assert!(!sync.is_empty());

    assert_eq!(api.list("maxResults=0").0, 400);
    assert_eq!(api.list("maxResults=many").0, 400);
    // More than 2500 is clamped (documented as a ceiling), not refused.
    assert_eq!(api.list("maxResults=9999").0, 200);
}

#[test]
fn page_size_defaults_to_250_and_is_clamped_to_2500() {
    let api = Api::new();
    for i in 0..2501 {
        let event = json!({ "id": format!("bulk{i:05}"), "start": { "date": "2026-05-04" }, "end": { "date": "2026-05-05" } });
        api.seed(event);
    }
    let (_, page) = api.list("");
    assert_eq!(page["items"].as_array().unwrap().len(), 250);
    let (_, page) = api.list("maxResults=9999");
    assert_eq!(page["items"].as_array().unwrap().len(), 2500);
    assert!(page["nextPageToken"].is_string());
}

#[test]
fn scripted_pages_may_be_short_or_empty_yet_carry_a_page_token() {
    let api = Api::new();
    for i in 0..3 {
        let day = format!("2026-06-0{}", i + 1);
        api.seed(json!({ "id": format!("allday{i:03}"), "start": { "date": day }, "end": { "date": format!("2026-06-0{}", i + 2) } }),
        );
    }
    api.fake.script_page_sizes(&[0, 1]);
    let (first_status, first) = api.list("");
    assert_eq!(first_status, 200);
    assert_eq!(first["items"], json!([]));
    let token = first["nextPageToken"]
        .as_str()
        .expect("an empty page still has a page token");
    let (_, second) = api.list(&format!("pageToken={}", enc(token)));
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["nextPageToken"].is_string());
    // A page token stays valid: retrying it serves the same items again (the script is used
    // up, so this time as many as maxResults allows).
    let (_, retried) = api.list(&format!("pageToken={}", enc(token)));
    assert_eq!(retried["items"][0]["id"], second["items"][0]["id"]);
    assert_eq!(retried["items"].as_array().unwrap().len(), 3);
    let (items, _) = api.list_all("");
    assert_eq!(items.len(), 3);
}

#[test]
fn page_token_needs_the_parameters_of_its_first_request() {
    let api = Api::new();
    for i in 0..3 {
        let start = format!("2026-05-0{}T10:00:00Z", i + 1);
        let end = format!("2026-05-0{}T11:00:00Z", i + 1);
        api.seed(timed(&format!("paged{i:03}"), "p", &start, &end));
    }
    let (_, first) = api.list("singleEvents=true&maxResults=1");
    let token = enc(first["nextPageToken"].as_str().unwrap());
    let (status, body) = api.list(&format!("pageToken={token}&maxResults=1"));
    assert_eq!((status, reason(&body)), (400, "invalid"));
    let (status, _) = api.list(&format!("singleEvents=true&pageToken={token}&maxResults=2"));
    assert_eq!(status, 200);
    // An unknown page token, or one mangled by a client that did not percent-encode it.
    let raw = first["nextPageToken"].as_str().unwrap();
    assert!(raw.contains('+') || raw.contains('/') || raw.contains('='));
    assert_eq!(
        api.list(&format!("singleEvents=true&pageToken={raw}")).0,
        400
    );
}

#[test]
fn time_min_bounds_the_end_and_time_max_the_start_both_exclusive() {
    let api = Api::new();
    api.fake
        .set_calendar_time_zone(CALENDAR_ID, "Europe/Berlin");
    api.seed(timed(
        "early0001",
        "ends at 10",
        "2026-05-04T09:00:00Z",
        "2026-05-04T10:00:00Z",
    ));
    api.seed(timed(
        "inside001",
        "inside",
        "2026-05-04T10:30:00Z",
        "2026-05-04T11:00:00Z",
    ));
    api.seed(timed(
        "late00001",
        "starts at 12",
        "2026-05-04T12:00:00Z",
        "2026-05-04T13:00:00Z",
    ));
    // All-day on 2026-05-05 in Berlin = 2026-05-04T22:00Z .. 2026-05-05T22:00Z.
    api.seed(json!({ "id": "allday001", "start": { "date": "2026-05-05" }, "end": { "date": "2026-05-06" } }));

    let window = format!(
        "timeMin={}&timeMax={}",
        enc("2026-05-04T10:00:00Z"),
        enc("2026-05-04T14:00:00+02:00")
    );
    let (items, _) = api.list_all(&window);
    assert_eq!(ids(&items), ["inside001"]);
    let late = format!("timeMin={}", enc("2026-05-04T21:59:00Z"));
    assert_eq!(ids(&api.list_all(&late).0), ["allday001"]);

    let (status, body) = api.list(&format!(
        "timeMin={}&timeMax={}",
        enc("2026-05-04T10:00:00Z"),
        enc("2026-05-04T10:00:00Z")
    ));
    assert_eq!((status, reason(&body)), (400, "timeRangeEmpty"));
    assert_eq!(body["error"]["errors"][0]["domain"], "calendar");
    // The offset is mandatory.
    assert_eq!(
        api.list(&format!("timeMin={}", enc("2026-05-04T10:00:00")))
            .0,
        400
    );
}

#[test]
fn private_extended_property_filter_matches_exactly() {
    let api = Api::new();
    let mut tagged = timed(
        "tagged001",
        "mine",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    tagged["extendedProperties"] = json!({ "private": { "calsyncKey": "abc", "pair": "parish" } });
    assert_eq!(api.insert(&tagged).0, 200);
    let mut other = timed(
        "other0001",
        "theirs",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    other["extendedProperties"] = json!({ "shared": { "calsyncKey": "abc" } });
    assert_eq!(api.insert(&other).0, 200);

    let found = |query: &str| {
        ids(&api.list_all(query).0)
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        found(&format!(
            "privateExtendedProperty={}",
            enc("calsyncKey=abc")
        )),
        ["tagged001"]
    );
    assert_eq!(
        found(&format!("privateExtendedProperty={}", enc("calsyncKey=ab"))),
        Vec::<String>::new()
    );
    let both = format!(
        "privateExtendedProperty={}&privateExtendedProperty={}",
        enc("calsyncKey=abc"),
        enc("pair=parish")
    );
    assert_eq!(found(&both), ["tagged001"]);
    assert_eq!(
        found(&format!("sharedExtendedProperty={}", enc("calsyncKey=abc"))),
        ["other0001"]
    );
    assert_eq!(api.list("privateExtendedProperty=novalue").0, 400);
}

#[test]
fn fields_mask_returns_only_what_was_asked_for() {
    let api = Api::new();
    api.seed(timed(
        "masked001",
        "m",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    ));
    api.seed(timed(
        "masked002",
        "m",
        "2026-05-05T10:00:00Z",
        "2026-05-05T11:00:00Z",
    ));
    let (_, body) = api.list(&format!(
        "maxResults=1&fields={}",
        enc("items(id,etag),nextPageToken")
    ));
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(body["items"][0].as_object().unwrap().len(), 2);
    // A mask without nextPageToken loses it, exactly as with Google.
    let (_, body) = api.list(&format!("maxResults=1&fields={}", enc("items(id)")));
    assert!(body["nextPageToken"].is_null());
}

// ---------------------------------------------------------------------------------------------
// Incremental sync

#[test]
fn sync_token_refuses_the_documented_restrictions() {
    let api = Api::new();
    let (_, sync) = api.list_all("");
    let token = enc(&sync);
    for extra in [
        "iCalUID=x",
        "orderBy=updated",
        "privateExtendedProperty=a%3Db",
        "q=choir",
        "sharedExtendedProperty=a%3Db",
        "timeMin=2026-01-01T00%3A00%3A00Z",
        "timeMax=2027-01-01T00%3A00%3A00Z",
        "updatedMin=2026-01-01T00%3A00%3A00Z",
        "showDeleted=false",
    ] {
        let (status, body) = api.list(&format!("syncToken={token}&{extra}"));
        assert_eq!(status, 400, "{extra}");
        assert_eq!(
            body["error"]["message"], "Sync token cannot be used with other request restrictions.",
            "{extra}"
        );
    }
    assert_eq!(
        api.list(&format!("syncToken={token}&showDeleted=true")).0,
        400,
        "showDeleted must match too"
    );
    assert_eq!(api.list(&format!("syncToken={token}&maxResults=10")).0, 200);
}

#[test]
fn incremental_sync_returns_every_change_since_its_token_beyond_the_window() {
    let api = Api::new();
    api.seed(timed(
        "still0001",
        "stays",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    ));
    api.seed(timed(
        "changes01",
        "before",
        "2026-05-05T10:00:00Z",
        "2026-05-05T11:00:00Z",
    ));
    api.seed(timed(
        "goes00001",
        "goes",
        "2026-05-06T10:00:00Z",
        "2026-05-06T11:00:00Z",
    ));
    // A windowed first list still yields a usable token (Google's own sync guide does this).
    let window = format!(
        "timeMin={}&timeMax={}",
        enc("2026-05-01T00:00:00Z"),
        enc("2026-06-01T00:00:00Z")
    );
    let (first, sync) = api.list_all(&window);
    assert_eq!(first.len(), 3);

    api.fake
        .seed_patch(CALENDAR_ID, "changes01", json!({ "summary": "after" }));
    api.fake.seed_delete(CALENDAR_ID, "goes00001");
    api.seed(timed(
        "farfut001",
        "next year",
        "2027-09-01T10:00:00Z",
        "2027-09-01T11:00:00Z",
    ));

    let (changes, next) = api.list_all(&format!("syncToken={}", enc(&sync)));
    assert_eq!(ids(&changes), ["changes01", "goes00001", "farfut001"]);
    assert_eq!(changes[0]["summary"], "after");
    // A deletion is a minimal cancelled item: no details leak.
    let gone = &changes[1];
    assert_eq!(gone["status"], "cancelled");
    let mut keys: Vec<&str> = gone
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["etag", "id", "kind", "status"]);
    assert_ne!(next, sync);

    // No change since: no items, and the same token back.
    let (status, body) = api.list(&format!("syncToken={}", enc(&next)));
    assert_eq!(status, 200);
    assert_eq!(body["items"], json!([]));
    assert_eq!(body["nextSyncToken"], next.as_str());
}

#[test]
fn stale_unknown_or_mismatched_sync_tokens_fail_as_documented() {
    let api = Api::new();
    let (_, plain) = api.list_all("");
    let (_, single) = api.list_all("singleEvents=true");
    // The token of a singleEvents=true list must be used with singleEvents=true.
    assert_eq!(api.list(&format!("syncToken={}", enc(&single))).0, 400);
    assert_eq!(
        api.list(&format!("syncToken={}&singleEvents=true", enc(&single)))
            .0,
        200
    );

    let (status, body) = api.list(&format!("syncToken={}", enc("CPmadeup==")));
    assert_eq!((status, reason(&body)), (410, "fullSyncRequired"));
    assert_eq!(body["error"]["code"], 410);
    assert_eq!(body["error"]["errors"][0]["domain"], "calendar");

    api.fake.invalidate_sync_tokens(CALENDAR_ID);
    let (status, body) = api.list(&format!("syncToken={}", enc(&plain)));
    assert_eq!((status, reason(&body)), (410, "fullSyncRequired"));
    // A new full list gives a working token again.
    let (_, fresh) = api.list_all("");
    assert_eq!(api.list(&format!("syncToken={}", enc(&fresh))).0, 200);
}

// ---------------------------------------------------------------------------------------------
// Series

#[test]
fn single_events_expand_a_series_with_its_modified_and_cancelled_instances() {
    let api = Api::new();
    assert_eq!(api.insert(&weekly("series001", 4)).0, 200);
    let moved = api.fake.seed_modify_instance(
        CALENDAR_ID,
        "series001",
        "2026-05-11T10:00:00+02:00",
        json!({ "summary": "Choir (moved)", "visibility": "private",
                "start": { "dateTime": "2026-05-12T18:00:00+02:00" }, "end": { "dateTime": "2026-05-12T19:00:00+02:00" } }),
    );
    assert_eq!(moved["id"], "series001_20260511T080000Z");
    assert_eq!(moved["recurringEventId"], "series001");
    api.fake
        .seed_cancel_instance(CALENDAR_ID, "series001", "2026-05-18T10:00:00+02:00");

    let (items, _) = api.list_all("singleEvents=true");
    assert_eq!(
        ids(&items),
        [
            "series001_20260504T080000Z",
            "series001_20260511T080000Z",
            "series001_20260525T080000Z"
        ]
    );
    assert_eq!(items[0]["recurringEventId"], "series001");
    assert_eq!(
        items[0]["originalStartTime"]["dateTime"],
        "2026-05-04T10:00:00+02:00"
    );
    assert_eq!(items[0]["start"]["timeZone"], "Europe/Berlin");
    assert!(items[0]["recurrence"].is_null());
    assert_eq!(items[1]["summary"], "Choir (moved)");
    assert_eq!(items[1]["visibility"], "private");

    let (with_deleted, _) = api.list_all("singleEvents=true&showDeleted=true");
    assert_eq!(with_deleted.len(), 4);
    assert_eq!(with_deleted[2]["status"], "cancelled");

    // orderBy=startTime is for single events only.
    assert_eq!(api.list("singleEvents=true&orderBy=startTime").0, 200);
    assert_eq!(api.list("orderBy=startTime").0, 400);
}

#[test]
fn without_single_events_a_series_is_its_master_plus_exceptions() {
    let api = Api::new();
    api.seed(weekly("series002", 4));
    api.fake.seed_modify_instance(
        CALENDAR_ID,
        "series002",
        "2026-05-11T08:00:00Z",
        json!({ "summary": "Moved" }),
    );
    api.fake
        .seed_cancel_instance(CALENDAR_ID, "series002", "2026-05-18T08:00:00Z");

    // Both flags false: the cancelled instance of the live series is listed anyway (minimal).
    let (items, _) = api.list_all("");
    assert_eq!(
        ids(&items),
        [
            "series002",
            "series002_20260511T080000Z",
            "series002_20260518T080000Z"
        ]
    );
    assert_eq!(
        items[0]["recurrence"],
        json!(["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4"])
    );
    assert_eq!(items[2]["status"], "cancelled");
    assert_eq!(items[2]["recurringEventId"], "series002");
    assert_eq!(
        items[2]["originalStartTime"]["dateTime"],
        "2026-05-18T10:00:00+02:00"
    );
    assert!(items[2]["summary"].is_null());

    // Deleting the series cancels its exceptions too; all three come back as cancelled items
    // from an incremental sync, and a plain list shows none of them.
    let (_, sync) = api.list_all("");
    api.fake.seed_delete(CALENDAR_ID, "series002");
    assert!(api.list_all("").0.is_empty());
    let (changes, _) = api.list_all(&format!("syncToken={}", enc(&sync)));
    assert_eq!(ids(&changes), ["series002", "series002_20260511T080000Z"]);
    assert!(changes.iter().all(|c| c["status"] == "cancelled"));
    let (all, _) = api.list_all("showDeleted=true");
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|c| c["status"] == "cancelled"));
}

#[test]
fn incremental_sync_reports_a_cancelled_instance_minimally() {
    let api = Api::new();
    api.seed(weekly("series003", 3));
    let (_, plain) = api.list_all("");
    let (_, single) = api.list_all("singleEvents=true");
    api.fake
        .seed_cancel_instance(CALENDAR_ID, "series003", "2026-05-11T10:00:00+02:00");

    for (query, sync) in [("", plain), ("singleEvents=true&", single)] {
        let (changes, _) = api.list_all(&format!("{query}syncToken={}", enc(&sync)));
        assert_eq!(changes.len(), 1, "{query}");
        let item = &changes[0];
        assert_eq!(item["id"], "series003_20260511T080000Z");
        assert_eq!(item["status"], "cancelled");
        assert_eq!(item["recurringEventId"], "series003");
        assert_eq!(
            item["originalStartTime"]["dateTime"],
            "2026-05-11T10:00:00+02:00"
        );
        assert!(item["summary"].is_null());
    }
}

#[test]
fn instances_endpoint_lists_pages_and_filters_one_series() {
    let api = Api::new();
    api.seed(weekly("series004", 5));
    api.fake
        .seed_cancel_instance(CALENDAR_ID, "series004", "2026-05-11T10:00:00+02:00");
    let path = |q: &str| api.events(&format!("/series004/instances?{q}"));

    let (status, page) = api.call(Method::GET, &path("maxResults=2"), None);
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let token = enc(page["nextPageToken"].as_str().unwrap());
    let (_, rest) = api.call(
        Method::GET,
        &path(&format!("maxResults=10&pageToken={token}")),
        None,
    );
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest["nextSyncToken"].is_null());

    let (_, all) = api.call(Method::GET, &path("showDeleted=true"), None);
    assert_eq!(all["items"].as_array().unwrap().len(), 5);
    // timeMin is inclusive for instances: an instance ending exactly then is kept.
    let (_, from) = api.call(
        Method::GET,
        &path(&format!("timeMin={}", enc("2026-05-25T11:00:00+02:00"))),
        None,
    );
    assert_eq!(
        ids(from["items"].as_array().unwrap()),
        ["series004_20260525T080000Z", "series004_20260601T080000Z"]
    );
    let (_, one) = api.call(
        Method::GET,
        &path(&format!(
            "originalStart={}",
            enc("2026-06-01T10:00:00+02:00")
        )),
        None,
    );
    assert_eq!(
        ids(one["items"].as_array().unwrap()),
        ["series004_20260601T080000Z"]
    );

    let instance = api.events("/series004_20260601T080000Z");
    let (status, body) = api.call(Method::GET, &instance, None);
    assert_eq!(
        (status, body["recurringEventId"].as_str()),
        (200, Some("series004"))
    );
    let off_rule = api.events("/series004_20260602T080000Z");
    assert_eq!(api.call(Method::GET, &off_rule, None).0, 404);
}

#[test]
fn recurrence_rules_expand_in_the_series_zone() {
    let fake = GoogleFake::start();
    let starts = |id: &str, start: Value, end: Value, rules: &[&str]| -> Vec<String> {
        fake.seed_event(
            CALENDAR_ID,
            json!({ "id": id, "start": start, "end": end, "recurrence": rules }),
        );
        fake.instances(CALENDAR_ID, id)
            .iter()
            .map(|i| {
                let s = &i["start"];
                s["dateTime"]
                    .as_str()
                    .or(s["date"].as_str())
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let berlin = |t: &str| json!({ "dateTime": t, "timeZone": "Europe/Berlin" });
    let day = |d: &str| json!({ "date": d });

    // DST: 10:00 local on both sides of 2026-03-29.
    assert_eq!(
        starts(
            "dst000001",
            berlin("2026-03-23T10:00:00+01:00"),
            berlin("2026-03-23T11:00:00+01:00"),
            &["RRULE:FREQ=WEEKLY;COUNT=3"]
        ),
        [
            "2026-03-23T10:00:00+01:00",
            "2026-03-30T10:00:00+02:00",
            "2026-04-06T10:00:00+02:00"
        ]
    );
    // Last Friday of the month, UNTIL in UTC.
    assert_eq!(
        starts(
            "lastfri01",
            berlin("2026-01-30T18:00:00+01:00"),
            berlin("2026-01-30T19:00:00+01:00"),
            &["RRULE:FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20260401T000000Z"]
        ),
        [
            "2026-01-30T18:00:00+01:00",
            "2026-02-27T18:00:00+01:00",
            "2026-03-27T18:00:00+01:00"
        ]
    );
    // Every other day, an EXDATE in another zone, an RDATE.
    assert_eq!(
        starts(
            "interval1",
            berlin("2026-05-01T09:00:00+02:00"),
            berlin("2026-05-01T09:30:00+02:00"),
            &[
                "RRULE:FREQ=DAILY;INTERVAL=2;COUNT=4",
                "EXDATE:20260503T070000Z",
                "RDATE;TZID=Europe/Berlin:20260510T090000"
            ]
        ),
        [
            "2026-05-01T09:00:00+02:00",
            "2026-05-05T09:00:00+02:00",
            "2026-05-07T09:00:00+02:00",
            "2026-05-10T09:00:00+02:00"
        ]
    );
    // Yearly: second Sunday of May; last day of February (BYMONTHDAY=-1), all-day.
    assert_eq!(
        starts(
            "mothers01",
            day("2026-05-10"),
            day("2026-05-11"),
            &["RRULE:FREQ=YEARLY;BYMONTH=5;BYDAY=2SU;COUNT=3"]
        ),
        ["2026-05-10", "2027-05-09", "2028-05-14"]
    );
    assert_eq!(
        starts(
            "febend001",
            day("2026-02-28"),
            day("2026-03-01"),
            &["RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1;COUNT=3"]
        ),
        ["2026-02-28", "2027-02-28", "2028-02-29"]
    );
    // Monthly on the 31st skips short months; an EXRULE removes Sundays of a daily rule.
    assert_eq!(
        starts(
            "day31s001",
            day("2026-01-31"),
            day("2026-02-01"),
            &["RRULE:FREQ=MONTHLY;COUNT=3"]
        ),
        ["2026-01-31", "2026-03-31", "2026-05-31"]
    );
    assert_eq!(
        starts(
            "nosunday1",
            day("2026-05-01"),
            day("2026-05-02"),
            &[
                "RRULE:FREQ=DAILY;COUNT=4",
                "EXRULE:FREQ=WEEKLY;BYDAY=SU",
                "EXDATE;VALUE=DATE:20260502"
            ]
        ),
        ["2026-05-01", "2026-05-04"]
    );
}

#[test]
fn recurrence_the_fake_cannot_expand_exactly_is_refused() {
    let api = Api::new();
    let mut series = weekly("refused01", 3);
    for rule in [
        "RRULE:FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=-1",
        "RRULE:FREQ=HOURLY;COUNT=3",
        "RRULE:FREQ=WEEKLY;COUNT=2;UNTIL=20260601T000000Z",
        "DTSTART:20260504T080000Z",
        "RRULE:FREQ=DAILY;BYDAY=1MO",
        "EXDATE;VALUE=DATE:20260511",
    ] {
        series["recurrence"] = json!([rule]);
        let (status, body) = api.insert(&series);
        assert_eq!((status, reason(&body)), (400, "invalid"), "{rule}: {body}");
    }
    // A timed series needs its time zone.
    let mut no_zone = weekly("refused02", 3);
    no_zone["start"] = json!({ "dateTime": "2026-05-04T10:00:00+02:00" });
    no_zone["end"] = json!({ "dateTime": "2026-05-04T11:00:00+02:00" });
    let (status, body) = api.insert(&no_zone);
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Missing time zone definition for start time."
    );
    assert!(api.fake.events(CALENDAR_ID).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Writes

#[test]
fn client_ids_must_be_lowercase_base32hex_of_5_to_1024_characters() {
    let api = Api::new();
    let event = |id: &str| timed(id, "x", "2026-05-04T10:00:00Z", "2026-05-04T11:00:00Z");
    let long_ok = "a".repeat(1024);
    let too_long = "a".repeat(1025);
    for bad in [
        "ABCDEF",
        "abcw1",
        "abcd",
        "abc-de",
        "abc_de",
        too_long.as_str(),
    ] {
        let (status, body) = api.insert(&event(bad));
        assert_eq!(status, 400, "{bad}");
        assert_eq!(
            body["error"]["message"], "Invalid resource id value.",
            "{bad}"
        );
    }
    for good in [
        "abcde",
        "0123456789abcdefghijklmnopqrstuv",
        long_ok.as_str(),
    ] {
        assert_eq!(api.insert(&event(good)).0, 200, "{good}");
    }
    // Without an id, the server makes one in the same alphabet.
    let (status, body) =
        api.insert(&json!({ "start": { "date": "2026-05-04" }, "end": { "date": "2026-05-05" } }));
    assert_eq!(status, 200);
    let id = body["id"].as_str().unwrap();
    assert!(id.bytes().all(|b| matches!(b, b'a'..=b'v' | b'0'..=b'9')) && id.len() >= 5);
    assert_eq!(body["iCalUID"], format!("{id}@google.com"));
}

#[test]
fn an_id_taken_by_a_live_or_deleted_event_is_409_duplicate() {
    let api = Api::new();
    let event = timed(
        "dupe00001",
        "x",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    assert_eq!(api.insert(&event).0, 200);
    let (status, body) = api.insert(&event);
    assert_eq!((status, reason(&body)), (409, "duplicate"));
    assert_eq!(
        api.call(Method::DELETE, &api.events("/dupe00001"), None).0,
        204
    );
    let (status, body) = api.insert(&event);
    assert_eq!((status, reason(&body)), (409, "duplicate"));

    // id and iCalUID together: refused by default (docs: supply only one), a knob accepts it.
    let mut both = timed(
        "both00001",
        "x",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    both["iCalUID"] = json!("source-uid@example.org");
    assert_eq!(api.insert(&both).0, 400);
    api.fake.set_reject_id_with_ical_uid(false);
    let (status, body) = api.insert(&both);
    assert_eq!(
        (status, body["iCalUID"].as_str()),
        (200, Some("source-uid@example.org"))
    );
}

#[test]
fn delete_cancels_get_still_shows_it_a_second_delete_is_410() {
    let api = Api::new();
    let mut event = timed(
        "deleted01",
        "Secret title",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    event["extendedProperties"] = json!({ "private": { "calsyncKey": "k1" } });
    api.insert(&event);
    let (status, body) = api.call_with(
        Method::DELETE,
        &api.events("/deleted01?sendUpdates=none"),
        None,
        &[],
    );
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = api.call(Method::GET, &api.events("/deleted01"), None);
    assert_eq!(status, 200);
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["summary"], "Secret title");
    let (status, body) = api.call(Method::DELETE, &api.events("/deleted01"), None);
    assert_eq!((status, reason(&body)), (410, "deleted"));
    let (status, body) = api.call(Method::DELETE, &api.events("/neverwas1"), None);
    assert_eq!((status, reason(&body)), (404, "notFound"));
    assert_eq!(
        api.call(Method::GET, &api.events("/neverwas1"), None).0,
        404
    );

    // Inspection sees cancelled events with their properties.
    let stored = api.fake.events(CALENDAR_ID);
    assert_eq!(stored[0]["status"], "cancelled");
    assert_eq!(
        stored[0]["extendedProperties"]["private"]["calsyncKey"],
        "k1"
    );
    assert!(api.fake.live_events(CALENDAR_ID).is_empty());
    assert_eq!(api.fake.count(Kind::Delete), 3);
    assert_eq!(api.fake.count(Kind::Get), 2);
}

#[test]
fn put_replaces_the_event_and_patch_merges_with_null_deleting() {
    let api = Api::new();
    let mut event = timed(
        "replace01",
        "Title",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    event["location"] = json!("Hall");
    event["visibility"] = json!("public");
    event["extendedProperties"] = json!({ "private": { "calsyncKey": "k", "other": "o" } });
    api.insert(&event);

    let patch = json!({ "location": null, "extendedProperties": { "private": { "other": null, "added": "a" } } });
    let (status, patched) = api.call(Method::PATCH, &api.events("/replace01"), Some(&patch));
    assert_eq!(status, 200, "{patched}");
    assert!(patched["location"].is_null());
    assert_eq!(patched["summary"], "Title");
    assert_eq!(
        patched["extendedProperties"]["private"],
        json!({ "calsyncKey": "k", "added": "a" })
    );

    let put = timed(
        "replace01",
        "New title",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    let (status, replaced) = api.call(Method::PUT, &api.events("/replace01"), Some(&put));
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["summary"], "New title");
    assert!(
        replaced["extendedProperties"].is_null(),
        "PUT drops omitted properties"
    );
    assert!(replaced["visibility"].is_null());
    assert_eq!(replaced["id"], "replace01");
    assert_eq!(replaced["created"], patched["created"]);
    assert_eq!(api.fake.count(Kind::Patch), 1);
    assert_eq!(api.fake.count(Kind::Update), 1);

    // PUT needs start and end like insert.
    let (status, body) = api.call(
        Method::PUT,
        &api.events("/replace01"),
        Some(&json!({ "summary": "x" })),
    );
    assert_eq!((status, reason(&body)), (400, "required"));
}

#[test]
fn if_match_guards_writes_and_every_write_changes_the_etag() {
    let api = Api::new();
    let (_, created) = api.insert(&timed(
        "etagged01",
        "v1",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    ));
    let first = created["etag"].as_str().unwrap().to_string();
    assert!(first.starts_with('"') && first.ends_with('"'));
    assert_eq!(created["sequence"], 0);

    let (status, body) = api.call_with(
        Method::PATCH,
        &api.events("/etagged01"),
        Some(&json!({ "summary": "v2" })),
        &[("If-Match", "\"1\"")],
    );
    assert_eq!((status, reason(&body)), (412, "conditionNotMet"));
    let (status, second) = api.call_with(
        Method::PATCH,
        &api.events("/etagged01"),
        Some(&json!({ "summary": "v2" })),
        &[("If-Match", &first)],
    );
    assert_eq!(status, 200);
    let second_etag = second["etag"].as_str().unwrap();
    assert_ne!(second_etag, first);
    assert_eq!(second["sequence"], 0, "a title change is not significant");

    let moved = json!({ "start": { "dateTime": "2026-05-04T12:00:00Z" }, "end": { "dateTime": "2026-05-04T13:00:00Z" } });
    let (_, third) = api.call(Method::PATCH, &api.events("/etagged01"), Some(&moved));
    assert_eq!(third["sequence"], 1);
    let (status, body) = api.call(
        Method::PATCH,
        &api.events("/etagged01"),
        Some(&json!({ "sequence": 0 })),
    );
    assert_eq!((status, reason(&body)), (400, "invalid"));

    let (status, _) = api.call_with(
        Method::DELETE,
        &api.events("/etagged01"),
        None,
        &[("If-Match", second_etag)],
    );
    assert_eq!(status, 412);
    let current = third["etag"].as_str().unwrap();
    let (status, _) = api.call_with(
        Method::GET,
        &api.events("/etagged01"),
        None,
        &[("If-None-Match", current)],
    );
    assert_eq!(status, 304);
    assert_eq!(
        api.call_with(
            Method::DELETE,
            &api.events("/etagged01"),
            None,
            &[("If-Match", current)]
        )
        .0,
        204
    );
}

#[test]
fn a_cancelled_event_is_restored_by_status_confirmed_unless_the_knob_forbids() {
    let api = Api::new();
    api.insert(&timed(
        "restore01",
        "x",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    ));
    api.call(Method::DELETE, &api.events("/restore01"), None);
    // A PUT without status keeps the event cancelled: only an explicit status restores.
    let put = timed(
        "restore01",
        "y",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    let (_, kept) = api.call(Method::PUT, &api.events("/restore01"), Some(&put));
    assert_eq!(kept["status"], "cancelled");

    api.fake.set_restore(Restore::Forbidden);
    let restore = json!({ "status": "confirmed" });
    let (status, body) = api.call(Method::PATCH, &api.events("/restore01"), Some(&restore));
    assert_eq!((status, reason(&body)), (403, "forbidden"));
    api.fake.set_restore(Restore::Allowed);
    let (status, body) = api.call(Method::PATCH, &api.events("/restore01"), Some(&restore));
    assert_eq!((status, body["status"].as_str()), (200, Some("confirmed")));
    assert_eq!(api.list_all("").0.len(), 1);
}

#[test]
fn visibility_default_is_omitted_and_seeds_keep_whatever_a_human_set() {
    let api = Api::new();
    let mut event = timed(
        "visible01",
        "x",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    event["visibility"] = json!("default");
    event["transparency"] = json!("opaque");
    let (_, stored) = api.insert(&event);
    assert!(stored["visibility"].is_null() && stored["transparency"].is_null());
    assert_eq!(stored["eventType"], "default");
    for (field, value) in [
        ("visibility", "secret"),
        ("status", "done"),
        ("transparency", "clear"),
        ("eventType", "party"),
    ] {
        let mut bad = timed(
            "visible02",
            "x",
            "2026-05-04T10:00:00Z",
            "2026-05-04T11:00:00Z",
        );
        bad[field] = json!(value);
        assert_eq!(api.insert(&bad).0, 400, "{field}");
    }
    for value in ["public", "private", "confidential"] {
        let mut ok = timed(
            &format!("vis{value}"),
            "x",
            "2026-05-04T10:00:00Z",
            "2026-05-04T11:00:00Z",
        );
        ok["visibility"] = json!(value);
        assert_eq!(api.insert(&ok).1["visibility"], value);
    }

    let seeded = api.seed(json!({
            "id": "human0001", "summary": "Board", "visibility": "someday-new-value", "eventType": "outOfOffice",
            "start": { "dateTime": "2026-05-04T10:00:00Z" }, "end": { "dateTime": "2026-05-04T11:00:00Z" },
            "hangoutLink": "https://meet.google.com/abc-defg-hij",
            "conferenceData": { "conferenceId": "abc-defg-hij" },
            "attendees": [{ "email": "anna@example.org", "responseStatus": "accepted" }],
        }),
    );
    assert_eq!(
        seeded["creator"]["email"],
        support::google_fake::SEED_CREATOR
    );
    let (_, got) = api.call(Method::GET, &api.events("/human0001"), None);
    assert_eq!(got["visibility"], "someday-new-value");
    assert_eq!(got["eventType"], "outOfOffice");
    assert_eq!(got["hangoutLink"], "https://meet.google.com/abc-defg-hij");
    assert_eq!(got["attendees"][0]["email"], "anna@example.org");
}

#[test]
fn bodies_are_validated_like_google_and_read_only_fields_ignored() {
    let api = Api::new();
    let (status, body) =
        api.insert(&json!({ "id": "noend0001", "start": { "dateTime": "2026-05-04T10:00:00Z" } }));
    assert_eq!((status, reason(&body)), (400, "required"));
    assert_eq!(body["error"]["message"], "Missing end time.");
    let local = json!({ "start": { "dateTime": "2026-05-04T10:00:00" }, "end": { "dateTime": "2026-05-04T11:00:00" } });
    let (status, body) = api.insert(&local);
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Missing time zone definition for start time."
    );
    let backwards = timed(
        "reversed1",
        "x",
        "2026-05-04T11:00:00Z",
        "2026-05-04T10:00:00Z",
    );
    assert_eq!(reason(&api.insert(&backwards).1), "timeRangeEmpty");
    let zone = json!({ "start": { "dateTime": "2026-05-04T10:00:00", "timeZone": "Mars/Olympus" }, "end": { "dateTime": "2026-05-04T11:00:00", "timeZone": "Mars/Olympus" } });
    assert_eq!(api.insert(&zone).0, 400);
    assert_eq!(reason(&api.insert(&json!({ "summary": 5, "start": {"date": "2026-05-04"}, "end": {"date": "2026-05-05"} })).1), "parseError");
    let response = client()
        .post(api.fake.events_url(CALENDAR_ID))
        .bearer_auth(&api.token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .expect("an insert");
    assert_eq!(reason(&read(response).1), "parseError");

    // A local time with its zone is stored with the offset; unknown and read-only fields are
    // dropped; conference data is ignored unless conferenceDataVersion=1.
    let event = json!({
        "id": "readfld01", "summary": "x", "colour": "red", "htmlLink": "https://evil.example",
        "organizer": { "email": "ceo@example.org" }, "hangoutLink": "https://meet.google.com/x",
        "conferenceData": { "conferenceId": "x" },
        "start": { "dateTime": "2026-07-01T10:00:00", "timeZone": "Europe/Berlin" },
        "end": { "dateTime": "2026-07-01T11:00:00", "timeZone": "Europe/Berlin" },
    });
    let (status, stored) = api.insert(&event);
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["start"]["dateTime"], "2026-07-01T10:00:00+02:00");
    assert!(
        stored["colour"].is_null()
            && stored["hangoutLink"].is_null()
            && stored["conferenceData"].is_null()
    );
    assert!(
        stored["htmlLink"]
            .as_str()
            .unwrap()
            .starts_with("https://www.google.com/calendar/event?eid=")
    );
    assert_eq!(stored["organizer"]["email"], CALENDAR_ID);
    let mut with_conference = event.clone();
    with_conference["id"] = json!("readfld02");
    let path = api.events("?conferenceDataVersion=1");
    assert_eq!(
        api.call(Method::POST, &path, Some(&with_conference)).1["conferenceData"]["conferenceId"],
        "x"
    );
}

#[test]
fn send_updates_is_validated_and_recorded() {
    let api = Api::new();
    let event = timed(
        "notice001",
        "x",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    let (status, body) = api.call(
        Method::POST,
        &api.events("?sendUpdates=nobody"),
        Some(&event),
    );
    assert_eq!((status, reason(&body)), (400, "invalid"));
    assert_eq!(
        api.call(Method::POST, &api.events("?sendUpdates=none"), Some(&event))
            .0,
        200
    );
    let inserts: Vec<_> = api
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.kind == Kind::Insert)
        .collect();
    assert_eq!(inserts.len(), 2);
    assert_eq!(inserts[1].param("sendUpdates"), Some("none"));
    assert_eq!(inserts[1].status, 200);
    assert_eq!(inserts[1].body.as_ref().unwrap()["id"], "notice001");
}

#[test]
fn unknown_query_parameters_are_refused_unless_lenient() {
    let api = Api::new();
    let (status, body) = api.list("singleEvent=true");
    assert_eq!((status, reason(&body)), (400, "invalidParameter"));
    assert_eq!(api.list("prettyPrint=false&alt=json&quotaUser=x").0, 200);
    api.fake.set_lenient_query(true);
    assert_eq!(api.list("singleEvent=true").0, 200);
}

// ---------------------------------------------------------------------------------------------
// Faults, latency

#[test]
fn injected_faults_answer_with_googles_error_shapes() {
    let api = Api::new();
    let cases = [
        (Fault::RateLimit403, 403, "usageLimits", "rateLimitExceeded"),
        (
            Fault::UserRateLimit403,
            403,
            "usageLimits",
            "userRateLimitExceeded",
        ),
        (Fault::RateLimit429, 429, "usageLimits", "rateLimitExceeded"),
        (Fault::QuotaExceeded403, 403, "usageLimits", "quotaExceeded"),
        (
            Fault::ForbiddenForNonOrganizer403,
            403,
            "calendar",
            "forbiddenForNonOrganizer",
        ),
        (Fault::BackendError500, 500, "global", "backendError"),
    ];
    for (fault, status, domain, why) in cases {
        api.fake.inject(fault.times(1));
        let (got, body) = api.list("");
        assert_eq!(got, status, "{fault:?}");
        assert_eq!(body["error"]["code"], status, "{fault:?}");
        assert_eq!(body["error"]["errors"][0]["domain"], domain, "{fault:?}");
        assert_eq!(reason(&body), why, "{fault:?}");
        assert!(body["error"]["message"].is_string());
        assert_eq!(api.list("").0, 200, "{fault:?} applies once");
    }

    // Only inserts, twice, with Retry-After; a list in between is untouched.
    api.fake.inject(
        Fault::RateLimit429
            .times(2)
            .only(Kind::Insert)
            .retry_after(7),
    );
    assert_eq!(api.list("").0, 200);
    let event = timed(
        "throttle1",
        "x",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    );
    for _ in 0..2 {
        let response = client()
            .post(api.fake.events_url(CALENDAR_ID))
            .bearer_auth(&api.token)
            .header("Content-Type", "application/json")
            .body(event.to_string())
            .send()
            .expect("an insert");
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(response.headers()["Retry-After"], "7");
    }
    assert_eq!(api.insert(&event).0, 200);
    assert_eq!(
        api.fake.live_events(CALENDAR_ID).len(),
        1,
        "a refused insert stores nothing"
    );
}

#[test]
fn latency_delays_each_request_without_serialising_concurrent_ones() {
    const LATENCY: Duration = Duration::from_millis(400);
    const IN_FLIGHT: u32 = 4;
    let api = Api::new();
    api.fake.set_latency(LATENCY);
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|_| scope.spawn(|| api.list("").0))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a client thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    assert_eq!(statuses, [200; IN_FLIGHT as usize]);
    assert!(
        elapsed >= LATENCY,
        "each request waits the latency ({elapsed:?})"
    );
    assert!(
        elapsed < LATENCY * IN_FLIGHT - LATENCY,
        "requests overlap ({elapsed:?})"
    );
}

// ---------------------------------------------------------------------------------------------
// Batch

/// A multipart batch body of `(Content-ID, request text)` parts.
fn batch_body(boundary: &str, parts: &[(&str, String)]) -> String {
    let mut body = String::new();
    for (id, request) in parts {
        body.push_str(&format!("--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <{id}>\r\n\r\n{request}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

fn inner(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    match body {
        Some(body) => {
            let json = body.to_string();
            text.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            ));
        }
        None => text.push_str("\r\n"),
    }
    text
}

/// The answer parts: (Content-ID, status, JSON body).
fn batch_answer(response: reqwest::blocking::Response) -> Vec<(String, u16, Value)> {
    let content_type = response.headers()["Content-Type"]
        .to_str()
        .unwrap()
        .to_string();
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a boundary")
        .to_string();
    let text = response.text().unwrap();
    text.split(&format!("--{boundary}"))
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .map(|part| {
            let id = part
                .lines()
                .find_map(|l| l.strip_prefix("Content-ID: "))
                .unwrap_or("")
                .to_string();
            let status_line = part
                .lines()
                .find(|l| l.starts_with("HTTP/1.1 "))
                .expect("a status line");
            let status = status_line[9..12].parse().unwrap();
            let json = part
                .find("\r\n\r\n{")
                .map(|at| &part[at + 4..])
                .unwrap_or("");
            (
                id,
                status,
                serde_json::from_str(json.trim_end()).unwrap_or(Value::Null),
            )
        })
        .collect()
}

#[test]
fn batch_answers_every_part_in_request_order_with_its_own_status() {
    let api = Api::new();
    let (_, existing) = api.insert(&timed(
        "present01",
        "x",
        "2026-05-04T10:00:00Z",
        "2026-05-04T11:00:00Z",
    ));
    api.fake.set_reverse_batch_execution(true);
    let events = format!("/calendar/v3/calendars/{}/events", enc(CALENDAR_ID));
    let new = timed(
        "batched01",
        "new",
        "2026-05-05T10:00:00Z",
        "2026-05-05T11:00:00Z",
    );
    let parts = [
        (
            "item1",
            inner(
                "POST",
                &format!("{events}?sendUpdates=none"),
                &[],
                Some(&new),
            ),
        ),
        (
            "item2",
            inner(
                "POST",
                &events,
                &[],
                Some(&timed(
                    "present01",
                    "again",
                    "2026-05-04T10:00:00Z",
                    "2026-05-04T11:00:00Z",
                )),
            ),
        ),
        (
            "item3",
            inner(
                "PATCH",
                &format!("{events}/present01"),
                &[("If-Match", "\"0\"")],
                Some(&json!({ "summary": "y" })),
            ),
        ),
        (
            "item4",
            inner("DELETE", &format!("{events}/nosuchone"), &[], None),
        ),
        (
            "item5",
            inner("GET", &format!("{events}/present01"), &[], None),
        ),
    ];
    let response = client()
        .post(api.fake.batch_url())
        .bearer_auth(&api.token)
        .header(
            "Content-Type",
            "multipart/mixed; boundary=calsync_batch_boundary",
        )
        .body(batch_body("calsync_batch_boundary", &parts))
        .send()
        .expect("a batch");
    assert_eq!(response.status().as_u16(), 200);
    let answers = batch_answer(response);
    let summary: Vec<(&str, u16)> = answers.iter().map(|(id, s, _)| (id.as_str(), *s)).collect();
    assert_eq!(
        summary,
        [
            ("<response-item1>", 200),
            ("<response-item2>", 409),
            ("<response-item3>", 412),
            ("<response-item4>", 404),
            ("<response-item5>", 200)
        ]
    );
    assert_eq!(answers[0].2["id"], "batched01");
    assert_eq!(reason(&answers[1].2), "duplicate");
    assert_eq!(reason(&answers[2].2), "conditionNotMet");
    assert_eq!(answers[4].2["etag"], existing["etag"]);

    assert_eq!(api.fake.count(Kind::Batch), 1);
    assert_eq!(api.fake.count(Kind::Insert), 3);
    let batched: Vec<_> = api
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.in_batch)
        .collect();
    assert_eq!(batched.len(), 5);
    // Executed last to first (the knob), answered first to last.
    assert_eq!(batched[0].kind, Kind::Get);
    assert_eq!(batched[4].param("sendUpdates"), Some("none"));
}

#[test]
fn batch_parts_use_the_outer_credentials_unless_they_bring_their_own() {
    let api = Api::new();
    let events = format!("/calendar/v3/calendars/{}/events", enc(CALENDAR_ID));
    let parts = [
        ("a", inner("GET", &events, &[], None)),
        (
            "b",
            inner(
                "GET",
                &events,
                &[("Authorization", "Bearer ya29.not-a-token")],
                None,
            ),
        ),
        (
            "c",
            inner("GET", &format!("http://127.0.0.1{events}"), &[], None),
        ),
    ];
    let response = client()
        .post(api.fake.batch_url())
        .bearer_auth(&api.token)
        .header("Content-Type", "multipart/mixed; boundary=xyz")
        .body(batch_body("xyz", &parts))
        .send()
        .expect("a batch");
    let statuses: Vec<u16> = batch_answer(response)
        .into_iter()
        .map(|(_, s, _)| s)
        .collect();
    assert_eq!(statuses, [200, 401, 400]);
}

#[test]
fn batch_of_more_than_1000_calls_is_refused_whole() {
    let api = Api::new();
    let events = format!("/calendar/v3/calendars/{}/events", enc(CALENDAR_ID));
    let one = inner("GET", &events, &[], None);
    let parts: Vec<(String, String)> = (0..1001).map(|i| (format!("p{i}"), one.clone())).collect();
    let parts: Vec<(&str, String)> = parts
        .iter()
        .map(|(id, r)| (id.as_str(), r.clone()))
        .collect();
    let send = |parts: &[(&str, String)]| {
        client()
            .post(api.fake.batch_url())
            .bearer_auth(&api.token)
            .header("Content-Type", "multipart/mixed; boundary=b1000")
            .body(batch_body("b1000", parts))
            .send()
            .expect("a batch")
    };
    let response = send(&parts);
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        api.fake.count(Kind::List),
        0,
        "nothing of a refused batch runs"
    );
    let response = send(&parts[..1000]);
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(batch_answer(response).len(), 1000);
    assert_eq!(api.fake.count(Kind::List), 1000);
    assert_eq!(api.fake.http_count(), 2);
}
