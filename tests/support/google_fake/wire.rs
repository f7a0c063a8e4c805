//! The request side shared by single calls and batch items: routing, query parameters (decoded,
//! checked against each method's documented list), JSON bodies, and the `fields` partial
//! response mask.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Kind;
use super::errors::{ApiError, Reply};
use crate::support::http::{Headers, Request};

/// One API call, from an HTTP request or from a batch part.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub method: String,
    /// Path only, as sent (percent-encoded).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl ApiRequest {
    pub fn from_request(request: &Request) -> ApiRequest {
        ApiRequest {
            method: request.method.clone(),
            path: request.path_only().to_string(),
            query: parse_query(request.query().unwrap_or("")),
            headers: request.headers.clone(),
            body: request.body.clone(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated query parameter.
    pub fn params(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// What a path names.
#[derive(Clone, Debug)]
pub struct Route {
    pub kind: Kind,
    pub calendar: Option<String>,
    pub event: Option<String>,
}

impl Route {
    pub fn parse(method: &str, path: &str) -> Route {
        let other = Route {
            kind: Kind::Other,
            calendar: None,
            event: None,
        };
        let Some(rest) = path.strip_prefix("/calendar/v3/calendars/") else {
            return other;
        };
        let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let (kind, event) = match (method, segments.as_slice()) {
            ("GET", [_]) => (Kind::Calendar, None),
            ("GET", [_, "events"]) => (Kind::List, None),
            ("POST", [_, "events"]) => (Kind::Insert, None),
            ("GET", [_, "events", id]) => (Kind::Get, Some(*id)),
            ("PUT", [_, "events", id]) => (Kind::Update, Some(*id)),
            ("PATCH", [_, "events", id]) => (Kind::Patch, Some(*id)),
            ("DELETE", [_, "events", id]) => (Kind::Delete, Some(*id)),
            ("GET", [_, "events", id, "instances"]) => (Kind::Instances, Some(*id)),
            _ => return other,
        };
        if segments[0].is_empty() || event.is_some_and(str::is_empty) {
            return other;
        }
        Route {
            kind,
            calendar: Some(segments[0].to_string()),
            event: event.map(str::to_string),
        }
    }
}

/// Parameters every Google API method takes (discovery `parameters`).
const SYSTEM_PARAMS: &[&str] = &[
    "alt",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "userIp",
];

/// The documented query parameters of each method (discovery document, calendar v3).
fn method_params(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::List => &[
            "alwaysIncludeEmail",
            "eventTypes",
            "iCalUID",
            "maxAttendees",
            "maxResults",
            "orderBy",
            "pageToken",
            "privateExtendedProperty",
            "q",
            "sharedExtendedProperty",
            "showDeleted",
            "showHiddenInvitations",
            "singleEvents",
            "syncToken",
            "timeMax",
            "timeMin",
            "timeZone",
            "updatedMin",
        ],
        Kind::Instances => &[
            "alwaysIncludeEmail",
            "maxAttendees",
            "maxResults",
            "originalStart",
            "pageToken",
            "showDeleted",
            "timeMax",
            "timeMin",
            "timeZone",
        ],
        Kind::Get => &["alwaysIncludeEmail", "maxAttendees", "timeZone"],
        Kind::Insert => &[
            "conferenceDataVersion",
            "maxAttendees",
            "sendNotifications",
            "sendUpdates",
            "supportsAttachments",
        ],
        Kind::Update | Kind::Patch => &[
            "alwaysIncludeEmail",
            "conferenceDataVersion",
            "maxAttendees",
            "sendNotifications",
            "sendUpdates",
            "supportsAttachments",
        ],
        Kind::Delete => &["sendNotifications", "sendUpdates"],
        Kind::Calendar | Kind::Token | Kind::Batch | Kind::Other => &[],
    }
}

/// Refuses parameters the method does not document (unless lenient), and a non-JSON `alt`.
pub fn check_query(kind: Kind, query: &[(String, String)], lenient: bool) -> Result<(), ApiError> {
    for (name, value) in query {
        if name == "alt" && value != "json" {
            return Err(ApiError::invalid(format!(
                "Invalid value '{value}'. Values must match: json"
            ))
            .at("parameter", "alt"));
        }
        let known =
            SYSTEM_PARAMS.contains(&name.as_str()) || method_params(kind).contains(&name.as_str());
        if !known && !lenient {
            return Err(ApiError::unknown_parameter(name));
        }
    }
    Ok(())
}

/// A body that must be a JSON object (400 `parseError` otherwise).
pub fn json_body(request: &ApiRequest) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(ApiError::parse_error()),
    }
}

/// `a=1&b=x%40y+z` → pairs, decoded (`+` is a space in a query).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&name.replace('+', " ")),
                percent_decode(&value.replace('+', " ")),
            )
        })
        .collect()
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a path segment (unreserved characters stay).
pub fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Lower-case base32hex (RFC 4648 §7) of `bytes`, cut to `len` characters: Google's id alphabet.
pub fn base32hex(bytes: &[u8], len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out.truncate(len);
    out
}

/// A `fields` selector: which members to keep, each with its own sub-selection.
type Mask = BTreeMap<String, Option<Selection>>;
#[derive(Clone, Debug, Default)]
pub struct Selection(Mask);

/// Applies `fields=items(id,etag),nextPageToken` to a successful answer (Google's partial
/// response). A client that forgets `nextPageToken` or `nextSyncToken` in its mask loses them,
/// as it would against Google.
pub fn apply_fields_mask(mut reply: Reply, fields: Option<&str>) -> Reply {
    let Some(fields) = fields else {
        return reply;
    };
    let mut parser = Parser {
        text: fields.as_bytes(),
        at: 0,
    };
    let selection = parser.list().filter(|_| parser.at == parser.text.len());
    if let (Some(selection), Some(body)) = (selection, reply.body.take()) {
        reply.body = Some(select(body, &selection));
    }
    reply
}

fn select(value: Value, selection: &Selection) -> Value {
    match value {
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| select(v, selection)).collect())
        }
        Value::Object(map) => {
            let mut kept = Map::new();
            for (name, sub) in &selection.0 {
                if let Some(v) = map.get(name) {
                    kept.insert(
                        name.clone(),
                        match sub {
                            Some(sub) => select(v.clone(), sub),
                            None => v.clone(),
                        },
                    );
                }
            }
            Value::Object(kept)
        }
        other => other,
    }
}

/// `list := path (',' path)*`, `path := name ('/' path | '(' list ')')?`.
struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn list(&mut self) -> Option<Selection> {
        let mut selection = Selection::default();
        loop {
            let (name, sub) = self.path()?;
            merge(&mut selection, name, sub);
            if self.text.get(self.at) != Some(&b',') {
                return Some(selection);
            }
            self.at += 1;
        }
    }

    fn path(&mut self) -> Option<(String, Option<Selection>)> {
        let start = self.at;
        while self
            .text
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'@')
        {
            self.at += 1;
        }
        if self.at == start {
            return None;
        }
        let name = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
        match self.text.get(self.at) {
            Some(b'/') => {
                self.at += 1;
                let (inner, sub) = self.path()?;
                let mut selection = Selection::default();
                merge(&mut selection, inner, sub);
                Some((name, Some(selection)))
            }
            Some(b'(') => {
                self.at += 1;
                let selection = self.list()?;
                (self.text.get(self.at) == Some(&b')')).then_some(())?;
                self.at += 1;
                Some((name, Some(selection)))
            }
            _ => Some((name, None)),
        }
    }
}

/// Adds a member to a selection; selecting a member whole wins over a sub-selection.
fn merge(selection: &mut Selection, name: String, sub: Option<Selection>) {
    match (selection.0.get_mut(&name), sub) {
        (None, sub) => {
            selection.0.insert(name, sub);
        }
        (Some(slot), None) => *slot = None,
        (Some(None), Some(_)) => {}
        (Some(Some(existing)), Some(sub)) => {
            for (n, s) in sub.0 {
                merge(existing, n, s);
            }
        }
    }
}
