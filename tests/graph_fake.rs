//! Self-tests of `GraphFake` (tests/support/graph_fake.rs).
//!
//! calsync's Graph client will be judged by this fake, so each documented behaviour the fake
//! claims is proven here with plain reqwest calls: what Graph accepts, what it refuses and how,
//! and what the knobs change. Every wait is bounded.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::graph_fake::{
    CERTIFICATE_PEM, CLIENT_ID, CLIENT_SECRET, Expiry, Fault, GraphFake, Kind, TENANT,
};

const USER: &str = "office@example.org";
const CLIENT_KEY: &[u8] = include_bytes!("fixtures/graph-client-key.pem");
const WRONG_KEY: &[u8] = include_bytes!("fixtures/wrong-rsa-key.pem");
const TAG: &str = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calsyncKey";
const WINDOW: &str = "startDateTime=2026-05-01T00:00:00Z&endDateTime=2026-06-01T00:00:00Z";

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("building a reqwest client")
}

/// One answer: status, headers, body as JSON (`Null` when empty).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    fn ids(&self) -> Vec<String> {
        self.json["value"]
            .as_array()
            .expect("a collection")
            .iter()
            .map(|v| v["id"].as_str().expect("an id").to_string())
            .collect()
    }
}

/// A Graph client holding a token from the fake.
struct Api {
    base: String,
    client: Client,
    token: String,
}

impl Api {
    fn new(fake: &GraphFake) -> Api {
        Api {
            base: fake.graph_url(),
            client: client(),
            token: fake.issue_token(),
        }
    }

    /// Sends `method` to a path under `/v1.0` or to an absolute link.
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, url).bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().expect("an answer from the fake");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().expect("reading the body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("a JSON body")
        };
        Answer {
            status,
            headers,
            json,
        }
    }

    fn get(&self, url: &str) -> Answer {
        self.send("GET", url, &[], None)
    }

    fn post(&self, url: &str, body: &Value) -> Answer {
        self.send("POST", url, &[], Some(body))
    }

    /// Follows a delta round from `url` to its delta link; returns every item and the link.
    fn round(&self, url: &str, headers: &[(&str, &str)]) -> (Vec<Value>, String) {
        let mut items = Vec::new();
        let mut url = url.to_string();
        for _ in 0..100 {
            let page = self.send("GET", &url, headers, None);
            assert_eq!(page.status, 200, "{}", page.json);
            items.extend(
                page.json["value"]
                    .as_array()
                    .expect("a page")
                    .iter()
                    .cloned(),
            );
            if let Some(delta) = page.json["@odata.deltaLink"].as_str() {
                return (items, delta.to_string());
            }
            url = page.json["@odata.nextLink"]
                .as_str()
                .expect("a next link")
                .to_string();
        }
        panic!("a delta round of more than 100 pages");
    }
}

/// A single event of one hour starting at `start` (UTC wall clock).
fn event(subject: &str, start: &str) -> Value {
    let start = chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M").expect("a time");
    let wall = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    json!({
        "subject": subject,
        "start": {"dateTime": wall(start), "timeZone": "UTC"},
        "end": {"dateTime": wall(start + chrono::Duration::hours(1)), "timeZone": "UTC"},
    })
}

/// A fake with one mailbox; returns it with the default calendar's id.
fn fake_with_mailbox() -> (GraphFake, String) {
    let fake = GraphFake::start();
    fake.add_mailbox(USER);
    let calendar = fake.default_calendar(USER);
    (fake, calendar)
}

fn delta_url(calendar: &str) -> String {
    format!("/users/{USER}/calendars/{calendar}/calendarView/delta?{WINDOW}")
}

// --- token endpoint ---

fn token_request(fake: &GraphFake, fields: &[(&str, &str)]) -> Answer {
    token_request_at(&fake.token_url(), fields)
}

fn token_request_at(url: &str, fields: &[(&str, &str)]) -> Answer {
    let response = client().post(url).form(fields).send().expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let json = serde_json::from_str(&response.text().expect("a body")).expect("a JSON body");
    Answer {
        status,
        headers,
        json,
    }
}

fn secret_fields(secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", CLIENT_ID.into()),
        ("scope", "https://graph.microsoft.com/.default".into()),
        ("client_secret", secret.into()),
    ]
}

fn as_refs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// Asserts an AAD refusal: status, `error`, and an AADSTS code in description and codes.
fn assert_aad(answer: &Answer, status: u16, error: &str, code: u64) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["error"], error, "{}", answer.json);
    let description = answer.json["error_description"]
        .as_str()
        .expect("a description");
    assert!(
        description.starts_with(&format!("AADSTS{code}:")),
        "{description}"
    );
    assert_eq!(answer.json["error_codes"], json!([code]));
    assert!(answer.json["trace_id"].is_string() && answer.json["correlation_id"].is_string());
}

#[test]
fn secret_grant_issues_a_bearer_token_that_opens_graph() {
    let (fake, _) = fake_with_mailbox();
    fake.set_token_lifetime(Duration::from_secs(600));
    let answer = token_request(&fake, &as_refs(&secret_fields(CLIENT_SECRET)));
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["token_type"], "Bearer");
    assert_eq!(answer.json["expires_in"], 600);
    assert_eq!(answer.json["ext_expires_in"], 600);
    let token = answer.json["access_token"]
        .as_str()
        .expect("a token")
        .to_string();

    let api = Api {
        base: fake.graph_url(),
        client: client(),
        token,
    };
    assert_eq!(api.get(&format!("/users/{USER}/calendars")).status, 200);
    assert_eq!(fake.count(Kind::Token), 1);
    assert_eq!(fake.count(Kind::ListCalendars), 1);

    // The secret may also come as HTTP Basic client authentication (RFC 6749 §2.3.1).
    let basic = |secret: &str| {
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let answer = client()
            .post(fake.token_url())
            .basic_auth(CLIENT_ID, Some(secret))
            .form(&form)
            .send();
        answer.expect("an answer").status().as_u16()
    };
    assert_eq!((basic(CLIENT_SECRET), basic("wrong")), (200, 401));
}

#[test]
fn token_endpoint_refuses_each_wrong_field_with_its_aad_error() {
    let fake = GraphFake::start();
    let good = secret_fields(CLIENT_SECRET);
    let with = |name: &str, value: &str| {
        let mut fields = good.clone();
        fields
            .iter_mut()
            .filter(|(n, _)| *n == name)
            .for_each(|f| f.1 = value.to_string());
        token_request(&fake, &as_refs(&fields))
    };
    assert_aad(
        &with("grant_type", "password"),
        400,
        "unsupported_grant_type",
        70003,
    );
    assert_aad(
        &with("client_id", "someone-else"),
        400,
        "unauthorized_client",
        700016,
    );
    assert_aad(
        &with("scope", "https://graph.microsoft.com/Calendars.Read"),
        400,
        "invalid_scope",
        70011,
    );
    assert_aad(
        &with("client_secret", "wrong"),
        401,
        "invalid_client",
        7000215,
    );
    let no_secret: Vec<_> = good
        .iter()
        .filter(|(n, _)| *n != "client_secret")
        .cloned()
        .collect();
    assert_aad(
        &token_request(&fake, &as_refs(&no_secret)),
        401,
        "invalid_client",
        7000218,
    );
    let other_tenant = fake.token_url().replace(TENANT, "fabrikam.onmicrosoft.com");
    assert_aad(
        &token_request_at(&other_tenant, &as_refs(&good)),
        400,
        "invalid_request",
        90002,
    );
    assert_eq!(fake.tokens_issued(), 0);
}

/// A client assertion signed with `key`, after `edit` changed the header or claims.
fn assertion(
    fake: &GraphFake,
    key: &[u8],
    alg: Algorithm,
    edit: impl FnOnce(&mut Header, &mut Value),
) -> String {
    let now = Utc::now().timestamp();
    let mut header = Header::new(alg);
    header.x5t_s256 = fake.certificate_thumbprint();
    let mut claims = json!({
        "aud": fake.token_url(), "iss": CLIENT_ID, "sub": CLIENT_ID,
        "jti": format!("jti-{now}"), "nbf": now, "iat": now, "exp": now + 300,
    });
    edit(&mut header, &mut claims);
    let key = EncodingKey::from_rsa_pem(key).expect("an RSA key");
    jsonwebtoken::encode(&header, &claims, &key).expect("signing")
}

fn assertion_request(fake: &GraphFake, assertion: &str) -> Answer {
    token_request(
        fake,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("scope", "https://graph.microsoft.com/.default"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ],
    )
}

#[test]
fn certificate_assertion_is_verified_for_real() {
    let fake = GraphFake::start();
    for alg in [Algorithm::PS256, Algorithm::RS256] {
        let good = assertion(&fake, CLIENT_KEY, alg, |_, _| {});
        assert_eq!(assertion_request(&fake, &good).status, 200, "{alg:?}");
    }
    let now = Utc::now().timestamp();
    type Edit = Box<dyn FnOnce(&mut Header, &mut Value)>;
    let refusals: Vec<(&str, &[u8], Edit, u64)> = vec![
        (
            "signed with another key",
            WRONG_KEY,
            Box::new(|_, _| {}),
            700027,
        ),
        (
            "wrong thumbprint",
            CLIENT_KEY,
            Box::new(|h, _| h.x5t_s256 = Some(URL_SAFE_NO_PAD.encode([7; 32]))),
            700027,
        ),
        (
            "no thumbprint",
            CLIENT_KEY,
            Box::new(|h, _| h.x5t_s256 = None),
            700027,
        ),
        ("no typ", CLIENT_KEY, Box::new(|h, _| h.typ = None), 700027),
        (
            "aud of another host",
            CLIENT_KEY,
            Box::new(|_, c| {
                c["aud"] = json!(c["aud"].as_str().unwrap().replace("127.0.0.1", "localhost"))
            }),
            700027,
        ),
        (
            "iss is not the client",
            CLIENT_KEY,
            Box::new(|_, c| c["iss"] = json!("someone")),
            700021,
        ),
        (
            "sub is not the client",
            CLIENT_KEY,
            Box::new(|_, c| c["sub"] = json!("someone")),
            700021,
        ),
        (
            "no jti",
            CLIENT_KEY,
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            700027,
        ),
        (
            "expired",
            CLIENT_KEY,
            Box::new(move |_, c| {
                c["nbf"] = json!(now - 900);
                c["exp"] = json!(now - 600);
            }),
            700024,
        ),
        (
            "nbf in the future",
            CLIENT_KEY,
            Box::new(move |_, c| {
                c["nbf"] = json!(now + 900);
                c["exp"] = json!(now + 1000);
            }),
            700024,
        ),
        (
            "iat in the future",
            CLIENT_KEY,
            Box::new(move |_, c| c["iat"] = json!(now + 900)),
            700024,
        ),
        (
            "lives an hour",
            CLIENT_KEY,
            Box::new(move |_, c| c["exp"] = json!(now + 3600)),
            700024,
        ),
    ];
    for (why, key, edit, code) in refusals {
        let answer = assertion_request(&fake, &assertion(&fake, key, Algorithm::PS256, edit));
        assert_eq!(answer.status, 401, "{why}: {}", answer.json);
        assert_eq!(answer.json["error"], "invalid_client", "{why}");
        assert_eq!(
            answer.json["error_codes"],
            json!([code]),
            "{why}: {}",
            answer.json
        );
    }
    assert_eq!(fake.tokens_issued(), 2);
}

#[test]
fn thumbprint_is_the_sha256_of_the_certificate_der() {
    let fake = GraphFake::start();
    let body: String = CERTIFICATE_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body).expect("base64 DER");
    assert_eq!(
        fake.certificate_thumbprint(),
        Some(URL_SAFE_NO_PAD.encode(Sha256::digest(der)))
    );
    fake.set_certificate(None);
    let answer = assertion_request(
        &fake,
        &assertion(&fake, CLIENT_KEY, Algorithm::PS256, |_, _| {}),
    );
    assert_eq!(answer.status, 401, "no certificate is registered any more");
}

#[test]
fn expired_revoked_and_missing_tokens_are_refused_with_401() {
    let (fake, _) = fake_with_mailbox();
    let path = format!("/users/{USER}/calendars");
    let refused = |api: &Api| {
        let answer = api.get(&path);
        assert_eq!(answer.status, 401, "{}", answer.json);
        assert_eq!(answer.code(), "InvalidAuthenticationToken");
        assert!(answer.header("WWW-Authenticate").is_some());
    };
    let api = Api::new(&fake);
    assert_eq!(api.get(&path).status, 200);
    fake.expire_tokens();
    refused(&api);
    let api = Api::new(&fake);
    assert_eq!(api.get(&path).status, 200, "a new token works");
    fake.revoke_tokens(Some(&api.token));
    refused(&api);
    refused(&Api {
        token: "made-up".into(),
        ..Api::new(&fake)
    });
    let unauthenticated = client()
        .get(format!("{}{path}", fake.graph_url()))
        .send()
        .expect("an answer");
    assert_eq!(unauthenticated.status().as_u16(), 401);
}

#[test]
fn denied_mailbox_is_403_unknown_user_404_and_me_400() {
    let (fake, _) = fake_with_mailbox();
    let api = Api::new(&fake);
    fake.deny_mailbox(USER, true);
    let denied = api.get(&format!("/users/{USER}/calendars"));
    assert_eq!((denied.status, denied.code()), (403, "ErrorAccessDenied"));
    let unknown = api.get("/users/nobody@example.org/calendars");
    assert_eq!((unknown.status, unknown.code()), (404, "ErrorInvalidUser"));
    let me = api.get("/me/calendars");
    assert_eq!(me.status, 400);
    fake.deny_mailbox(USER, false);
    assert_eq!(api.get(&format!("/users/{USER}/calendars")).status, 200);
}

// --- calendars ---

#[test]
fn calendars_page_and_users_resolve_by_upn_or_id_in_any_case_and_encoding() {
    let (fake, default) = fake_with_mailbox();
    let user_id = fake.add_mailbox("second@example.org");
    for i in 0..11 {
        fake.add_calendar(USER, if i < 2 { "Public" } else { "Other" });
    }
    let api = Api::new(&fake);
    let first = api.get(&format!("/users/{USER}/calendars"));
    assert_eq!(first.ids().len(), 10);
    let next = first.json["@odata.nextLink"]
        .as_str()
        .expect("a second page");
    let second = api.get(next);
    assert_eq!(second.ids().len(), 2);
    assert!(second.json.get("@odata.nextLink").is_none());
    assert_eq!(first.json["value"][0]["id"], default.as_str());
    assert_eq!(first.json["value"][0]["isDefaultCalendar"], true);

    let publics = api.get(&format!(
        "/users/{USER}/calendars?$filter=name%20eq%20'public'"
    ));
    assert_eq!(publics.ids().len(), 2, "two calendars may share a name");
    let by_upn = api.get("/users/OFFICE%40Example.ORG/calendar");
    assert_eq!(by_upn.json["id"], default.as_str());
    let by_id = api.get(&format!("/users/{}/calendar", user_id.to_uppercase()));
    assert_eq!(by_id.json["owner"]["address"], "second@example.org");
    let one = api.get(&format!("/users/{USER}/calendars/{}", second.ids()[0]));
    assert_eq!(one.json["name"], "Other");
    let missing = api.get(&format!("/users/{USER}/calendars/AAMkNothing="));
    assert_eq!((missing.status, missing.code()), (404, "ErrorItemNotFound"));
    assert_eq!(fake.count(Kind::ListCalendars), 3);
    assert_eq!(fake.count(Kind::GetCalendar), 4);
}

// --- delta ---

#[test]
fn delta_first_call_needs_a_window_and_refuses_other_options() {
    let (fake, calendar) = fake_with_mailbox();
    let api = Api::new(&fake);
    let base = format!("/users/{USER}/calendars/{calendar}/calendarView/delta");
    let no_end = api.get(&format!("{base}?startDateTime=2026-05-01T00:00:00Z"));
    assert_eq!(
        (no_end.status, no_end.code()),
        (400, "ErrorInvalidParameter")
    );
    for option in [
        "$select=subject",
        "$filter=subject%20eq%20'x'",
        "$orderby=start",
        "$expand=instances",
        "$top=5",
    ] {
        assert_eq!(
            api.get(&format!("{base}?{WINDOW}&{option}")).status,
            400,
            "{option}"
        );
    }
    // Names are case-insensitive and the `$` is optional.
    let documented_spelling = api.get(&format!(
        "{base}?startdatetime=2026-05-01T00:00:00Z&ENDDATETIME=2026-06-01T00:00:00%2B02:00"
    ));
    assert_eq!(
        documented_spelling.status, 200,
        "{}",
        documented_spelling.json
    );
    let (_, delta) = api.round(&delta_url(&calendar), &[]);
    assert!(delta.contains("$deltatoken="));
    let with_window = api.get(&format!("{delta}&{WINDOW}"));
    assert_eq!(
        (with_window.status, with_window.code()),
        (400, "ErrorInvalidUrlQuery")
    );
    let forged = api.get(&format!("{base}?$deltatoken=forged"));
    assert_eq!(forged.status, 400);
    let other = fake.add_calendar(USER, "Other");
    let token = delta.split("$deltatoken=").nth(1).unwrap();
    let elsewhere = api.get(&format!(
        "/users/{USER}/calendars/{other}/calendarView/delta?$deltatoken={token}"
    ));
    assert_eq!(
        elsewhere.status, 400,
        "a token is bound to its calendar view"
    );
}

#[test]
fn delta_pages_follow_maxpagesize_and_end_in_a_delta_link() {
    let (fake, calendar) = fake_with_mailbox();
    for day in 1..=5 {
        fake.seed_event(
            USER,
            &calendar,
            event(&format!("E{day}"), &format!("2026-05-0{day}T10:00")),
        );
    }
    fake.seed_event(USER, &calendar, event("Outside", "2026-07-01T10:00"));
    let api = Api::new(&fake);
    let prefer = [("Prefer", "odata.maxpagesize=2")];
    let mut url = delta_url(&calendar);
    let mut sizes = Vec::new();
    for _ in 0..10 {
        let page = api.send("GET", &url, &prefer, None);
        assert_eq!(
            page.header("Preference-Applied"),
            Some("odata.maxpagesize=2")
        );
        sizes.push(page.ids().len());
        match page.json["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(&fake.graph_url()) && next.contains("?$skiptoken="),
                    "{next}"
                );
                url = next.to_string();
            }
            None => {
                assert!(
                    page.json["@odata.deltaLink"]
                        .as_str()
                        .unwrap()
                        .contains("?$deltatoken=")
                );
                break;
            }
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    fake.set_page_size(3);
    let (items, _) = api.round(&delta_url(&calendar), &[]);
    let subjects: Vec<&str> = items
        .iter()
        .map(|i| i["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["E1", "E2", "E3", "E4", "E5"]);
    assert_eq!(fake.count(Kind::Delta), 5);
}

#[test]
fn delta_times_follow_prefer_outlook_timezone() {
    let (fake, calendar) = fake_with_mailbox();
    fake.seed_event(USER, &calendar, event("Ten UTC", "2026-05-04T10:00"));
    let api = Api::new(&fake);
    let start_in = |zone: Option<&str>| {
        let header = zone.map(|z| format!("outlook.timezone=\"{z}\""));
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Prefer", h.as_str())).collect();
        let (items, _) = api.round(&delta_url(&calendar), &headers);
        items[0]["start"].clone()
    };
    assert_eq!(
        start_in(None),
        json!({"dateTime": "2026-05-04T10:00:00.0000000", "timeZone": "UTC"})
    );
    assert_eq!(
        start_in(Some("W. Europe Standard Time")),
        json!({"dateTime": "2026-05-04T12:00:00.0000000", "timeZone": "W. Europe Standard Time"})
    );
    assert_eq!(
        start_in(Some("America/New_York")),
        json!({"dateTime": "2026-05-04T06:00:00.0000000", "timeZone": "America/New_York"})
    );
    assert_eq!(start_in(Some("Mars/Olympus_Mons"))["timeZone"], "UTC");
}

#[test]
fn later_rounds_report_changes_deletions_and_moves_out_of_the_window() {
    let (fake, calendar) = fake_with_mailbox();
    let changed = fake.seed_event(USER, &calendar, event("Changed", "2026-05-04T10:00"));
    let deleted = fake.seed_event(USER, &calendar, event("Deleted", "2026-05-05T10:00"));
    let moved = fake.seed_event(USER, &calendar, event("Moved", "2026-05-06T10:00"));
    let kept = fake.seed_event(USER, &calendar, event("Kept", "2026-05-07T10:00"));
    let api = Api::new(&fake);
    let (items, delta) = api.round(&delta_url(&calendar), &[]);
    assert_eq!(items.len(), 4);

    fake.update_event(USER, &changed, json!({"subject": "Changed again"}));
    fake.delete_event(USER, &deleted);
    fake.update_event(USER, &moved, event("Moved", "2026-08-06T10:00"));
    let added = fake.seed_event(USER, &calendar, event("Added", "2026-05-08T10:00"));
    let outside = fake.seed_event(USER, &calendar, event("Outside", "2026-09-01T10:00"));
    let (items, delta) = api.round(&delta, &[]);
    let full: Vec<(&str, &str)> = items
        .iter()
        .filter(|i| i.get("@removed").is_none())
        .map(|i| (i["id"].as_str().unwrap(), i["subject"].as_str().unwrap()))
        .collect();
    assert_eq!(
        full,
        [
            (changed.as_str(), "Changed again"),
            (added.as_str(), "Added")
        ]
    );
    let mut removed: Vec<&str> = items
        .iter()
        .filter(|i| i["@removed"] == json!({"reason": "deleted"}))
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    removed.sort();
    let mut expected = vec![deleted.as_str(), moved.as_str(), outside.as_str()];
    expected.sort();
    assert_eq!(
        removed, expected,
        "deleted, moved out, and written outside the window"
    );
    assert!(items.iter().all(|i| i["id"] != kept.as_str()));
    let removal = items.iter().find(|i| i["id"] == deleted.as_str()).unwrap();
    assert_eq!(removal["@odata.type"], "#microsoft.graph.event");
    assert_eq!(removal.as_object().unwrap().len(), 3);

    let (quiet, _) = api.round(&delta, &[]);
    assert!(quiet.is_empty(), "nothing changed since: {quiet:?}");
}

fn weekly_series(days: &[&str], count: u32) -> Value {
    json!({
        "subject": "Choir", "sensitivity": "normal",
        "start": {"dateTime": "2026-05-04T19:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-05-04T20:30:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": days},
            "range": {"type": "numbered", "startDate": "2026-05-04", "numberOfOccurrences": count},
        },
    })
}

#[test]
fn series_occurrences_are_sparse_stable_and_masters_stay_hidden() {
    let (fake, calendar) = fake_with_mailbox();
    let master = fake.seed_event(USER, &calendar, weekly_series(&["monday"], 4));
    let api = Api::new(&fake);
    let (items, delta) = api.round(&delta_url(&calendar), &[]);
    assert_eq!(items.len(), 4, "four occurrences, no master: {items:?}");
    for item in &items {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "@odata.etag",
                "@odata.type",
                "end",
                "id",
                "seriesMasterId",
                "start",
                "type"
            ]
        );
        assert_eq!(item["type"], "occurrence");
        assert_eq!(item["seriesMasterId"], master.as_str());
    }
    assert_eq!(
        items[0]["start"]["dateTime"], "2026-05-04T17:00:00.0000000",
        "19:00 CEST in UTC"
    );
    let ids: Vec<Value> = items.iter().map(|i| i["id"].clone()).collect();
    let (again, _) = api.round(&delta_url(&calendar), &[]);
    assert_eq!(
        again.iter().map(|i| i["id"].clone()).collect::<Vec<_>>(),
        ids,
        "ids are stable"
    );

    let second = ids[1].as_str().unwrap();
    let exception = fake.make_exception(
        USER,
        second,
        json!({"subject": "Choir (private)", "sensitivity": "private"}),
    );
    assert_eq!(exception, second, "an exception keeps its occurrence's id");
    fake.delete_event(USER, ids[2].as_str().unwrap());
    let (items, delta) = api.round(&delta, &[]);
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0]["id"], second);
    assert_eq!(
        (items[0]["type"].as_str(), items[0]["sensitivity"].as_str()),
        (Some("exception"), Some("private"))
    );
    assert_eq!(items[0]["originalStart"], "2026-05-11T17:00:00Z");
    assert_eq!(
        items[1],
        json!({"@odata.type": "#microsoft.graph.event", "id": ids[2], "@removed": {"reason": "deleted"}})
    );

    fake.update_event(USER, &master, json!({"subject": "Choir rehearsal"}));
    let (items, _) = api.round(&delta, &[]);
    let relisted: Vec<&Value> = items.iter().map(|i| &i["id"]).collect();
    assert_eq!(
        relisted,
        [&ids[0], &ids[3]],
        "a master change relists its occurrences, sparse"
    );
    assert!(items.iter().all(|i| i.get("subject").is_none()));
    assert_eq!(
        fake.stored_event(USER, &master).unwrap()["subject"],
        "Choir rehearsal"
    );
}

#[test]
fn masters_knob_lists_series_masters_in_delta() {
    let (fake, calendar) = fake_with_mailbox();
    let master = fake.seed_event(USER, &calendar, weekly_series(&["monday"], 2));
    fake.set_masters_in_delta(true);
    let (items, _) = Api::new(&fake).round(&delta_url(&calendar), &[]);
    let types: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["seriesMaster", "occurrence", "occurrence"]);
    assert_eq!(items[0]["id"], master.as_str());
    assert_eq!(items[0]["recurrence"]["pattern"]["type"], "weekly");
}

#[test]
fn replay_and_empty_page_knobs_shape_rounds() {
    let (fake, calendar) = fake_with_mailbox();
    for day in 1..=4 {
        fake.seed_event(
            USER,
            &calendar,
            event("E", &format!("2026-05-0{day}T10:00")),
        );
    }
    fake.set_empty_delta_pages(2);
    fake.set_delta_replays(true);
    let api = Api::new(&fake);
    let prefer = [("Prefer", "odata.maxpagesize=2")];
    let mut url = delta_url(&calendar);
    let mut pages: Vec<Vec<String>> = Vec::new();
    for _ in 0..20 {
        let page = api.send("GET", &url, &prefer, None);
        pages.push(page.ids());
        match page.json["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert!(
        pages[0].is_empty() && pages[1].is_empty(),
        "two empty pages with next links"
    );
    let listed: Vec<String> = pages.concat();
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4);
    assert!(
        listed.len() > 4,
        "an item is listed twice across pages: {pages:?}"
    );
    assert_eq!(pages[2][1], pages[3][0]);
}

#[test]
fn expired_sync_state_fails_old_links_and_fresh_rounds_work() {
    let cases = [
        (Expiry::SyncStateNotFound, 410, "syncStateNotFound"),
        (Expiry::ResyncRequired, 410, "resyncRequired"),
        (Expiry::GoneWithLocation, 410, "syncStateInvalid"),
        (Expiry::BadRequest, 400, "syncStateNotFound"),
    ];
    for (how, status, code) in cases {
        let (fake, calendar) = fake_with_mailbox();
        for day in 1..=3 {
            fake.seed_event(
                USER,
                &calendar,
                event("E", &format!("2026-05-0{day}T10:00")),
            );
        }
        let api = Api::new(&fake);
        let prefer = [("Prefer", "odata.maxpagesize=2")];
        let (_, delta) = api.round(&delta_url(&calendar), &prefer);
        let first = api.send("GET", &delta_url(&calendar), &prefer, None);
        let skip = first.json["@odata.nextLink"].as_str().unwrap().to_string();
        fake.expire_sync_state(how);
        for link in [&delta, &skip] {
            let failed = api.get(link);
            assert_eq!((failed.status, failed.code()), (status, code), "{how:?}");
        }
        if how == Expiry::GoneWithLocation {
            let location = api
                .get(&delta)
                .header("Location")
                .expect("a Location")
                .to_string();
            let (items, _) = api.round(&location, &[]);
            assert_eq!(
                items.len(),
                3,
                "the Location starts a fresh round of the same window"
            );
        }
        let (items, delta) = api.round(&delta_url(&calendar), &[]);
        assert_eq!(items.len(), 3);
        assert_eq!(
            api.get(&delta).status,
            200,
            "{how:?}: links of a fresh round work"
        );
    }
}

#[test]
fn default_calendar_delta_path_lists_only_the_default_calendar() {
    let (fake, calendar) = fake_with_mailbox();
    let other = fake.add_calendar(USER, "Other");
    fake.seed_event(USER, &calendar, event("Default", "2026-05-04T10:00"));
    fake.seed_event(USER, &other, event("Other", "2026-05-04T10:00"));
    let api = Api::new(&fake);
    let (items, _) = api.round(&format!("/users/{USER}/calendarView/delta?{WINDOW}"), &[]);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["subject"], "Default");
}

// --- recurrence ---

fn starts(fake: &GraphFake, master: &str, from: &str, to: &str) -> Vec<String> {
    fake.instances(USER, master, from, to)
        .iter()
        .map(|i| i["start"]["dateTime"].as_str().unwrap()[..16].to_string())
        .collect()
}

fn series(pattern: Value, range: Value, start: &str, zone: &str) -> Value {
    json!({
        "subject": "S",
        "start": {"dateTime": format!("{start}:00"), "timeZone": zone},
        "end": {"dateTime": format!("{start}:00"), "timeZone": zone},
        "recurrence": {"pattern": pattern, "range": range},
    })
}

#[test]
fn recurrence_patterns_and_ranges_expand_as_documented() {
    let (fake, calendar) = fake_with_mailbox();
    let seed = |pattern: Value, range: Value, start: &str| {
        fake.seed_event(USER, &calendar, series(pattern, range, start, "UTC"))
    };
    let numbered = |start: &str, n: u32| json!({"type": "numbered", "startDate": start, "numberOfOccurrences": n});
    let (from, to) = ("2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z");

    let daily = seed(
        json!({"type": "daily", "interval": 2}),
        numbered("2026-05-01", 3),
        "2026-05-01T08:00",
    );
    assert_eq!(
        starts(&fake, &daily, from, to),
        ["2026-05-01T08:00", "2026-05-03T08:00", "2026-05-05T08:00"]
    );
    let weekly = seed(
        json!({"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "monday"}),
        numbered("2026-05-04", 4),
        "2026-05-04T08:00",
    );
    assert_eq!(
        starts(&fake, &weekly, from, to),
        [
            "2026-05-04T08:00",
            "2026-05-06T08:00",
            "2026-05-18T08:00",
            "2026-05-20T08:00"
        ]
    );
    let monthly = seed(
        json!({"type": "absoluteMonthly", "dayOfMonth": 31}),
        numbered("2026-05-31", 3),
        "2026-05-31T08:00",
    );
    assert_eq!(
        starts(&fake, &monthly, from, to),
        ["2026-05-31T08:00", "2026-07-31T08:00", "2026-08-31T08:00"]
    );
    let last_friday = seed(
        json!({"type": "relativeMonthly", "daysOfWeek": ["friday"], "index": "last"}),
        json!({"type": "endDate", "startDate": "2026-05-01", "endDate": "2026-07-31"}),
        "2026-05-29T08:00",
    );
    assert_eq!(
        starts(&fake, &last_friday, from, to),
        ["2026-05-29T08:00", "2026-06-26T08:00", "2026-07-31T08:00"]
    );
    let yearly = seed(
        json!({"type": "absoluteYearly", "dayOfMonth": 29, "month": 2}),
        numbered("2026-01-01", 1),
        "2028-02-29T08:00",
    );
    assert_eq!(
        starts(&fake, &yearly, from, "2029-01-01T00:00:00Z"),
        ["2028-02-29T08:00"]
    );
    let second_tuesday = seed(
        json!({"type": "relativeYearly", "daysOfWeek": ["tuesday"], "index": "second", "month": 3}),
        json!({"type": "noEnd", "startDate": "2026-01-01"}),
        "2026-03-10T08:00",
    );
    assert_eq!(
        starts(&fake, &second_tuesday, from, to),
        ["2026-03-10T08:00", "2027-03-09T08:00"]
    );
    // An occurrence id names the series and an original start; only real starts resolve.
    let api = Api::new(&fake);
    let occurrence = &fake.instances(USER, &second_tuesday, from, to)[1]["id"];
    let got = api.get(&format!(
        "/users/{USER}/events/{}",
        occurrence.as_str().unwrap()
    ));
    assert_eq!(
        (got.status, got.json["originalStart"].as_str()),
        (200, Some("2027-03-09T08:00:00Z"))
    );
    let forged = URL_SAFE_NO_PAD.encode(format!("{second_tuesday}|{}", 1_804_492_800)); // 2027-03-08T08:00Z, a Monday
    assert_eq!(
        api.get(&format!("/users/{USER}/events/AAMkOcc{forged}="))
            .status,
        404
    );

    // Dates are counted in the recurrence zone: 10:00 in Berlin is 08:00 UTC in summer,
    // 09:00 in winter.
    let berlin = fake.seed_event(
        USER,
        &calendar,
        series(
            json!({"type": "weekly", "daysOfWeek": ["sunday"]}),
            json!({"type": "numbered", "startDate": "2026-10-18", "numberOfOccurrences": 3, "recurrenceTimeZone": "Europe/Berlin"}),
            "2026-10-18T10:00",
            "Europe/Berlin",
        ),
    );
    let utc: Vec<String> = fake
        .instances(USER, &berlin, from, to)
        .iter()
        .map(|i| i["start"]["dateTime"].as_str().unwrap()[..16].to_string())
        .collect();
    assert_eq!(
        utc,
        ["2026-10-18T08:00", "2026-10-25T09:00", "2026-11-01T09:00"]
    );
}

#[test]
fn instances_list_occurrences_and_exceptions_but_not_deleted_ones() {
    let (fake, calendar) = fake_with_mailbox();
    let master = fake.seed_event(USER, &calendar, weekly_series(&["monday"], 4));
    let api = Api::new(&fake);
    let path = format!("/users/{USER}/events/{master}/instances");
    assert_eq!(api.get(&path).status, 400, "the window is required");
    let before = api.get(&format!("{path}?{WINDOW}"));
    let ids = before.ids();
    assert_eq!(ids.len(), 4);
    assert_eq!(
        before.json["value"][0]["subject"], "Choir",
        "instances are full events"
    );
    fake.make_exception(USER, &ids[0], json!({"subject": "Moved", "start": {"dateTime": "2026-05-05T19:00:00", "timeZone": "W. Europe Standard Time"}, "end": {"dateTime": "2026-05-05T20:00:00", "timeZone": "W. Europe Standard Time"}}));
    fake.delete_event(USER, &ids[1]);
    let after = api.get(&format!("{path}?{WINDOW}"));
    assert_eq!(
        after.ids(),
        [ids[0].clone(), ids[2].clone(), ids[3].clone()]
    );
    assert_eq!(after.json["value"][0]["type"], "exception");
    assert_eq!(
        after.json["value"][0]["start"]["dateTime"],
        "2026-05-05T17:00:00.0000000"
    );
    let occurrence = api.get(&format!("/users/{USER}/events/{}", ids[2]));
    assert_eq!(
        (
            occurrence.json["type"].as_str(),
            occurrence.json["seriesMasterId"].as_str()
        ),
        (Some("occurrence"), Some(master.as_str()))
    );
    let gone = api.get(&format!("/users/{USER}/events/{}", ids[1]));
    assert_eq!((gone.status, gone.code()), (404, "ErrorItemNotFound"));

    // Re-timing the series drops its exceptions and deleted occurrences, as Outlook does.
    let later = |t: &str| json!({"dateTime": format!("2026-05-04T{t}:00"), "timeZone": "W. Europe Standard Time"});
    fake.update_event(
        USER,
        &master,
        json!({"start": later("20:00"), "end": later("21:00")}),
    );
    let retimed = api.get(&format!("{path}?{WINDOW}"));
    let types: Vec<&str> = retimed.json["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["occurrence"; 4]);
    assert!(
        retimed.ids().iter().all(|id| !ids.contains(id)),
        "new starts, new occurrence ids"
    );
    assert!(
        fake.stored_event(USER, &ids[0]).is_none(),
        "the exception is gone"
    );
}

// --- events ---

fn tagged(subject: &str, tag: &str) -> Value {
    let mut body = event(subject, "2026-05-04T10:00");
    body["singleValueExtendedProperties"] = json!([{"id": TAG, "value": tag}]);
    body
}

#[test]
fn create_answers_201_with_graph_fields_and_keeps_the_tag_for_expand_only() {
    let (fake, calendar) = fake_with_mailbox();
    let api = Api::new(&fake);
    let mut body = tagged("Concert", "pair/abc");
    body["transactionId"] = json!("txn-1");
    body["body"] = json!({"contentType": "html", "content": "<p>Bring   <b>music</b></p>"});
    let created = api.post(&format!("/users/{USER}/calendars/{calendar}/events"), &body);
    assert_eq!(created.status, 201, "{}", created.json);
    let media = created.header("Content-Type").unwrap();
    assert!(
        media.starts_with("application/json;odata.metadata=minimal"),
        "Graph's own: {media}"
    );
    let e = &created.json;
    for field in [
        "id",
        "iCalUId",
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
    ] {
        assert!(
            e[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {e}"
        );
    }
    assert_eq!(
        e["@odata.etag"],
        format!("W/\"{}\"", e["changeKey"].as_str().unwrap())
    );
    assert_eq!(
        e["start"],
        json!({"dateTime": "2026-05-04T10:00:00.0000000", "timeZone": "UTC"})
    );
    assert_eq!(
        (
            e["type"].as_str(),
            e["sensitivity"].as_str(),
            e["showAs"].as_str()
        ),
        (Some("singleInstance"), Some("normal"), Some("busy"))
    );
    assert_eq!(
        (e["transactionId"].as_str(), e["bodyPreview"].as_str()),
        (Some("txn-1"), Some("Bring music"))
    );
    assert!(e.get("singleValueExtendedProperties").is_none());
    let id = e["id"].as_str().unwrap();

    let stored = fake.stored_events(USER, &calendar);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0]["singleValueExtendedProperties"],
        json!([{"id": TAG, "value": "pair/abc"}])
    );
    let plain = api.get(&format!("/users/{USER}/events/{id}"));
    assert!(plain.json.get("singleValueExtendedProperties").is_none());
    let expand = format!(
        "$expand=singleValueExtendedProperties($filter=id%20eq%20'{}')",
        TAG.replace(' ', "%20")
    );
    let expanded = api.get(&format!(
        "/users/{USER}/events/{id}?{expand}&$select=subject"
    ));
    assert_eq!(
        expanded.json["singleValueExtendedProperties"],
        json!([{"id": TAG, "value": "pair/abc"}])
    );
    let mut keys: Vec<&str> = expanded
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "@odata.etag",
            "@odata.type",
            "id",
            "singleValueExtendedProperties",
            "subject"
        ]
    );
    let plain_event = api.post(
        &format!("/users/{USER}/events"),
        &event("No txn", "2026-05-05T10:00"),
    );
    assert!(
        plain_event.json.get("transactionId").is_none(),
        "transactionId only when set"
    );
}

#[test]
fn repeated_transaction_id_returns_the_first_event_and_creates_nothing() {
    let (fake, calendar) = fake_with_mailbox();
    let api = Api::new(&fake);
    let path = format!("/users/{USER}/calendars/{calendar}/events");
    let mut body = event("Once", "2026-05-04T10:00");
    body["transactionId"] = json!("7b0c…retry");
    let first = api.post(&path, &body);
    body["subject"] = json!("Twice?");
    let second = api.post(&path, &body);
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(second.json["id"], first.json["id"]);
    assert_eq!(second.json["subject"], "Once");
    fake.set_duplicate_create_status(200);
    assert_eq!(api.post(&path, &body).status, 200);
    assert_eq!(fake.stored_events(USER, &calendar).len(), 1);
    assert_eq!(fake.count(Kind::EventCreate), 3);
}

#[test]
fn tag_query_matches_name_case_sensitively_and_value_case_insensitively() {
    let (fake, calendar) = fake_with_mailbox();
    let other = fake.add_calendar(USER, "Other");
    let wanted = fake.seed_event(USER, &calendar, tagged("Wanted", "Pair/ABC"));
    fake.seed_event(USER, &calendar, tagged("Else", "pair/xyz"));
    let api = Api::new(&fake);
    let query = |scope: &str, id: &str, value: &str| {
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{id}' and ep/value eq '{value}')"
        );
        let encoded: String = filter
            .replace(' ', "%20")
            .replace('{', "%7B")
            .replace('}', "%7D");
        api.get(&format!("/users/{USER}{scope}/events?$filter={encoded}"))
    };
    let found = query("", TAG, "pair/abc");
    assert_eq!(found.ids(), [wanted.as_str()]);
    assert!(
        found.json["value"][0]
            .get("singleValueExtendedProperties")
            .is_none()
    );
    assert_eq!(
        query(&format!("/calendars/{calendar}"), TAG, "PAIR/ABC").ids(),
        [wanted.as_str()]
    );
    assert!(
        query(&format!("/calendars/{other}"), TAG, "pair/abc")
            .ids()
            .is_empty()
    );
    let guid_upper = TAG.replace(
        "66f5a359-4659-4830-9070-00047ec6ac6e",
        "66F5A359-4659-4830-9070-00047EC6AC6E",
    );
    assert_eq!(query("", &guid_upper, "pair/abc").ids(), [wanted.as_str()]);
    assert!(
        query("", &TAG.replace("calsyncKey", "CalsyncKey"), "pair/abc")
            .ids()
            .is_empty()
    );
    assert_eq!(query("", "String calsyncKey", "x").status, 400);
    assert_eq!(fake.count(Kind::TagQuery), 6);
    assert_eq!(
        api.get(&format!("/users/{USER}/events")).ids().len(),
        2,
        "no filter: all"
    );
    assert_eq!(fake.count(Kind::EventList), 1);
}

#[test]
fn writes_change_the_etag_and_a_stale_if_match_is_412() {
    let (fake, calendar) = fake_with_mailbox();
    let api = Api::new(&fake);
    let created = api.post(
        &format!("/users/{USER}/calendars/{calendar}/events"),
        &event("A", "2026-05-04T10:00"),
    );
    let id = created.json["id"].as_str().unwrap().to_string();
    let path = format!("/users/{USER}/events/{id}");
    let old = created.json["@odata.etag"].as_str().unwrap().to_string();
    let patched = api.send(
        "PATCH",
        &path,
        &[("If-Match", old.as_str())],
        Some(&json!({"subject": "B", "sensitivity": "normal"})),
    );
    assert_eq!(patched.status, 200, "{}", patched.json);
    assert_eq!(patched.json["subject"], "B");
    assert_ne!(patched.json["@odata.etag"], old.as_str());
    assert_ne!(patched.json["changeKey"], created.json["changeKey"]);
    let stale = api.send(
        "PATCH",
        &path,
        &[("If-Match", old.as_str())],
        Some(&json!({"subject": "C"})),
    );
    assert_eq!(stale.status, 412);
    assert_eq!(
        api.send("DELETE", &path, &[("If-Match", old.as_str())], None)
            .status,
        412
    );
    assert_eq!(api.send("DELETE", &path, &[], None).status, 204);
    let gone = api.get(&path);
    assert_eq!((gone.status, gone.code()), (404, "ErrorItemNotFound"));
    assert_eq!(api.send("DELETE", &path, &[], None).status, 404);
    assert_eq!(
        (fake.count(Kind::EventUpdate), fake.count(Kind::EventDelete)),
        (2, 3)
    );
}

#[test]
fn event_bodies_are_validated_like_graph() {
    let (fake, calendar) = fake_with_mailbox();
    let api = Api::new(&fake);
    let path = format!("/users/{USER}/calendars/{calendar}/events");
    let with = |name: &str, value: Value| {
        let mut body = event("X", "2026-05-04T10:00");
        body[name] = value;
        api.post(&path, &body)
    };
    let cases = [
        (with("colour", json!("red")), 400, "RequestBodyRead"),
        (
            with("start", json!({"dateTime": "2026-05-04T10:00:00"})),
            400,
            "TimeZoneNotSupportedException",
        ),
        (
            with(
                "start",
                json!({"dateTime": "2026-05-04T10:00:00", "timeZone": "Middle Earth"}),
            ),
            400,
            "TimeZoneNotSupportedException",
        ),
        (
            with(
                "start",
                json!({"dateTime": "2026-05-04T10:00:00Z", "timeZone": "UTC"}),
            ),
            400,
            "ErrorInvalidRequest",
        ),
        (with("sensitivity", json!("secret")), 400, "RequestBodyRead"),
        (with("showAs", json!("away")), 400, "RequestBodyRead"),
        (
            with(
                "singleValueExtendedProperties",
                json!([{"id": "String calsyncKey", "value": "x"}]),
            ),
            400,
            "ErrorInvalidProperty",
        ),
        (with("id", json!("AAMk")), 400, "ErrorInvalidPropertySet"),
        (
            with("isCancelled", json!(true)),
            400,
            "ErrorInvalidPropertySet",
        ),
        (
            with("isAllDay", json!(true)),
            400,
            "ErrorPropertyValidationFailure",
        ),
        (
            with(
                "recurrence",
                json!({"pattern": {"type": "weekly"}, "range": {"type": "noEnd", "startDate": "2026-05-04"}}),
            ),
            400,
            "ErrorInvalidRequest",
        ),
    ];
    for (i, (answer, status, code)) in cases.iter().enumerate() {
        assert_eq!(
            (answer.status, answer.code()),
            (*status, *code),
            "case {i}: {}",
            answer.json
        );
    }
    let text = api
        .client
        .post(format!("{}{path}", fake.graph_url()))
        .bearer_auth(&api.token)
        .body(event("X", "2026-05-04T10:00").to_string())
        .send()
        .unwrap();
    assert_eq!(
        text.status().as_u16(),
        415,
        "no Content-Type: application/json"
    );
    let created = api.post(&path, &event("Y", "2026-05-04T10:00"));
    let patch = api.send(
        "PATCH",
        &format!(
            "/users/{USER}/events/{}",
            created.json["id"].as_str().unwrap()
        ),
        &[],
        Some(&json!({"transactionId": "late"})),
    );
    assert_eq!(patch.status, 400, "transactionId is immutable");
    assert_eq!(
        fake.stored_events(USER, &calendar).len(),
        1,
        "nothing else was created"
    );
}

#[test]
fn seeded_fields_show_as_written_and_series_pass_sensitivity_to_occurrences() {
    let (fake, calendar) = fake_with_mailbox();
    let mut odd = event("Odd", "2026-05-04T10:00");
    for (name, value) in [
        ("sensitivity", json!("topSecret")),
        ("showAs", json!("oof")),
        ("isCancelled", json!(true)),
        ("categories", json!(["Public"])),
        ("location", json!({"displayName": "Hall"})),
        ("isOnlineMeeting", json!(true)),
        (
            "onlineMeeting",
            json!({"joinUrl": "https://teams.example/join"}),
        ),
        (
            "attendees",
            json!([{"type": "required", "emailAddress": {"address": "a@example.org", "name": "A"}}]),
        ),
    ] {
        odd[name] = value;
    }
    let odd = fake.seed_event(USER, &calendar, odd);
    let mut private = weekly_series(&["monday"], 2);
    private["sensitivity"] = json!("private");
    let master = fake.seed_event(USER, &calendar, private);
    let api = Api::new(&fake);
    let shown = api.get(&format!("/users/{USER}/events/{odd}")).json;
    assert_eq!(
        (
            shown["sensitivity"].as_str(),
            shown["showAs"].as_str(),
            shown["isCancelled"].as_bool()
        ),
        (Some("topSecret"), Some("oof"), Some(true))
    );
    assert_eq!(shown["location"]["displayName"], "Hall");
    assert_eq!(
        shown["onlineMeeting"]["joinUrl"],
        "https://teams.example/join"
    );
    assert_eq!(
        shown["attendees"][0]["emailAddress"]["address"],
        "a@example.org"
    );
    assert_eq!(shown["organizer"]["emailAddress"]["address"], USER);
    let occurrences = fake.instances(
        USER,
        &master,
        "2026-05-01T00:00:00Z",
        "2026-06-01T00:00:00Z",
    );
    assert!(occurrences.iter().all(|o| o["sensitivity"] == "private"));
    let public = fake.make_exception(
        USER,
        occurrences[1]["id"].as_str().unwrap(),
        json!({"sensitivity": "normal"}),
    );
    assert_eq!(
        fake.stored_event(USER, &public).unwrap()["sensitivity"],
        "normal"
    );
    let cancelled = fake.cancel_occurrence(USER, occurrences[0]["id"].as_str().unwrap());
    assert_eq!(
        fake.stored_event(USER, &cancelled).unwrap()["isCancelled"],
        true
    );
}

// --- $batch ---

fn batch(api: &Api, requests: Value) -> Answer {
    api.post("/$batch", &json!({"requests": requests}))
}

fn by_id(answer: &Answer) -> std::collections::BTreeMap<String, Value> {
    answer.json["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

#[test]
fn batch_items_run_like_direct_calls_with_mixed_statuses_in_a_seeded_order() {
    let (fake, calendar) = fake_with_mailbox();
    let keep = fake.seed_event(USER, &calendar, event("Keep", "2026-05-04T10:00"));
    let drop = fake.seed_event(USER, &calendar, event("Drop", "2026-05-05T10:00"));
    let api = Api::new(&fake);
    let json_header = json!({"Content-Type": "application/json"});
    let requests = json!([
        {"id": "1", "method": "POST", "url": format!("/users/{USER}/calendars/{calendar}/events"), "headers": json_header, "body": event("New", "2026-05-06T10:00")},
        {"id": "2", "method": "PATCH", "url": format!("/users/{USER}/events/{keep}"), "headers": json_header, "body": {"subject": "Kept"}},
        {"id": "3", "method": "DELETE", "url": format!("users/{USER}/events/{drop}")},
        {"id": "4", "method": "GET", "url": format!("/users/{USER}/events/AAMkMissing=")},
        {"id": "5", "method": "PATCH", "url": format!("/users/{USER}/events/{keep}"), "headers": {"Content-Type": "application/json", "If-Match": "W/\"stale\""}, "body": {"subject": "No"}},
        {"id": "6", "method": "POST", "url": format!("/users/{USER}/events"), "dependsOn": ["4"], "headers": json_header, "body": event("Never", "2026-05-07T10:00")},
        {"id": "7", "method": "POST", "url": format!("/users/{USER}/events"), "body": event("No type", "2026-05-07T10:00")},
    ]);
    let answer = batch(&api, requests.clone());
    assert_eq!(answer.status, 200);
    let statuses: Vec<(String, u64)> = by_id(&answer)
        .into_iter()
        .map(|(id, r)| (id, r["status"].as_u64().unwrap()))
        .collect();
    let expected = [
        ("1", 201),
        ("2", 200),
        ("3", 204),
        ("4", 404),
        ("5", 412),
        ("6", 424),
        ("7", 400),
    ];
    assert_eq!(statuses, expected.map(|(i, s)| (i.to_string(), s)));
    let responses = by_id(&answer);
    assert_eq!(responses["1"]["body"]["subject"], "New");
    assert_eq!(responses["4"]["body"]["error"]["code"], "ErrorItemNotFound");
    assert!(responses["3"].get("body").is_none());
    assert_eq!(fake.stored_event(USER, &keep).unwrap()["subject"], "Kept");
    assert!(fake.stored_event(USER, &drop).is_none());

    let order = |answer: &Answer| -> Vec<String> {
        answer.json["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_ne!(
        order(&answer),
        ["1", "2", "3", "4", "5", "6", "7"],
        "responses come shuffled"
    );
    let (twin, twin_calendar) = fake_with_mailbox();
    twin.seed_event(USER, &twin_calendar, event("Keep", "2026-05-04T10:00"));
    twin.seed_event(USER, &twin_calendar, event("Drop", "2026-05-05T10:00"));
    let same_seed = batch(&Api::new(&twin), requests);
    assert_eq!(
        order(&same_seed),
        order(&answer),
        "the same seed gives the same order"
    );

    assert_eq!(
        (fake.count(Kind::Batch), fake.count(Kind::BatchItem)),
        (1, 7)
    );
    assert_eq!(
        (
            fake.count(Kind::EventCreate),
            fake.count_direct(Kind::EventCreate)
        ),
        (3, 0)
    );
}

#[test]
fn oversized_or_ambiguous_batches_fail_whole() {
    let (fake, calendar) = fake_with_mailbox();
    let api = Api::new(&fake);
    let create = |id: String| json!({"id": id, "method": "POST", "url": format!("/users/{USER}/events"), "headers": {"Content-Type": "application/json"}, "body": event("E", "2026-05-04T10:00")});
    let twenty_one: Vec<Value> = (0..21).map(|i| create(i.to_string())).collect();
    assert_eq!(batch(&api, json!(twenty_one)).status, 400);
    assert_eq!(
        batch(&api, json!([create("a".into()), create("A".into())])).status,
        400,
        "ids are case-insensitive"
    );
    let mut orphan = create("1".into());
    orphan["dependsOn"] = json!(["9"]);
    assert_eq!(batch(&api, json!([orphan])).status, 400);
    let (mut a, mut b) = (create("a".into()), create("b".into()));
    a["dependsOn"] = json!(["b"]);
    b["dependsOn"] = json!(["a"]);
    assert_eq!(batch(&api, json!([a, b])).status, 400, "a dependency cycle");
    assert!(fake.stored_events(USER, &calendar).is_empty());
    let twenty: Vec<Value> = (0..20).map(|i| create(i.to_string())).collect();
    assert_eq!(batch(&api, json!(twenty)).status, 200);
    assert_eq!(fake.stored_events(USER, &calendar).len(), 20);
}

#[test]
fn batch_write_items_can_be_throttled_with_retry_after() {
    let (fake, calendar) = fake_with_mailbox();
    let api = Api::new(&fake);
    fake.throttle_batch_writes(2, 7);
    let item = |id: &str, method: &str| {
        let mut item = json!({"id": id, "method": method, "url": format!("/users/{USER}/calendars/{calendar}/events")});
        if method == "POST" {
            item["headers"] = json!({"Content-Type": "application/json"});
            item["body"] = event(id, "2026-05-04T10:00");
        }
        item
    };
    let answer = batch(
        &api,
        json!([
            item("a", "POST"),
            item("b", "GET"),
            item("c", "POST"),
            item("d", "POST")
        ]),
    );
    assert_eq!(answer.status, 200, "the batch itself is not throttled");
    let responses = by_id(&answer);
    let statuses: Vec<u64> = ["a", "b", "c", "d"]
        .iter()
        .map(|i| responses[*i]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [429, 200, 429, 201]);
    assert_eq!(responses["a"]["headers"]["Retry-After"], "7");
    assert_eq!(responses["a"]["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(fake.stored_events(USER, &calendar).len(), 1);
}

// --- throttling, faults, latency ---

#[test]
fn injected_faults_answer_429_or_503_with_retry_after_then_serve() {
    let (fake, calendar) = fake_with_mailbox();
    let api = Api::new(&fake);
    fake.fail_next(2, Fault::Throttle { retry_after: 5 }, Some(Kind::Delta));
    fake.fail_next(1, Fault::Unavailable { retry_after: 2 }, None);
    let calendars = api.get(&format!("/users/{USER}/calendars"));
    assert_eq!(
        (calendars.status, calendars.header("Retry-After")),
        (503, Some("2"))
    );
    for _ in 0..2 {
        let throttled = api.get(&delta_url(&calendar));
        assert_eq!(
            (throttled.status, throttled.header("Retry-After")),
            (429, Some("5"))
        );
        assert_eq!(throttled.code(), "TooManyRequests");
        assert_eq!(throttled.json["error"]["innerError"]["code"], "429");
    }
    assert_eq!(api.get(&delta_url(&calendar)).status, 200);
    assert_eq!(api.get(&format!("/users/{USER}/calendars")).status, 200);
    fake.fail_next(1, Fault::Unavailable { retry_after: 1 }, Some(Kind::Token));
    assert_eq!(
        token_request(&fake, &as_refs(&secret_fields(CLIENT_SECRET))).status,
        503
    );
}

/// Polls (bounded) until `done` holds; false when 10 s passed first.
fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn a_fifth_concurrent_request_to_one_mailbox_is_throttled() {
    let (fake, _) = fake_with_mailbox();
    fake.add_mailbox("other@example.org");
    let api = Api::new(&fake);
    let calendars = format!("/users/{USER}/calendars");
    let hold = fake.hold();
    let (answers, other, batched) = thread::scope(|scope| {
        let workers: Vec<_> = (0..5)
            .map(|_| scope.spawn(|| api.get(&calendars)))
            .collect();
        let other = scope.spawn(|| api.get("/users/other@example.org/calendars"));
        // Four of USER and the other mailbox's request wait inside, holding their slots; the
        // fifth of USER was answered at once.
        assert!(hold.wait_for(5, Duration::from_secs(10)));
        assert!(eventually(|| fake.count_direct(Kind::ListCalendars) == 6));
        // A batch touching USER now finds no free slot either: its item is throttled.
        let items = json!([{"id": "1", "method": "GET", "url": calendars}]);
        let api = &api;
        let batched = scope.spawn(move || batch(api, items));
        assert!(hold.wait_for(6, Duration::from_secs(10)));
        drop(hold);
        let answers: Vec<Answer> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        (answers, other.join().unwrap(), batched.join().unwrap())
    });
    assert_eq!(other.status, 200, "the cap is per mailbox");
    let mut codes: Vec<(u16, &str)> = answers.iter().map(|a| (a.status, a.code())).collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            (200, ""),
            (200, ""),
            (200, ""),
            (200, ""),
            (429, "ApplicationThrottled")
        ]
    );
    assert_eq!(batched.status, 200);
    let item = &batched.json["responses"][0];
    assert_eq!(
        (
            item["status"].as_u64(),
            item["body"]["error"]["code"].as_str()
        ),
        (Some(429), Some("ApplicationThrottled"))
    );
    assert_eq!(api.get(&calendars).status, 200, "slots are given back");
}

#[test]
fn latency_delays_each_request_without_serialising_them() {
    const LATENCY: Duration = Duration::from_millis(400);
    let (fake, _) = fake_with_mailbox();
    let api = Api::new(&fake);
    fake.set_latency(LATENCY);
    let began = Instant::now();
    let took: Vec<Duration> = thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let start = Instant::now();
                    assert_eq!(api.get(&format!("/users/{USER}/calendars")).status, 200);
                    start.elapsed()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(took.iter().all(|t| *t >= LATENCY), "{took:?}");
    assert!(
        began.elapsed() < LATENCY * 4,
        "four requests overlapped: {:?}",
        began.elapsed()
    );
}
