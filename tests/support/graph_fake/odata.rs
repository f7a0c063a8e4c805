//! The slices of OData URL syntax the fake reads: query options, `Prefer`, and the one
//! `$filter`/`$expand` form calsync uses to find its tag (a single-value extended property).
//!
//! Query option names are matched case-insensitively with the `$` optional, as Graph v1.0 does
//! (its own examples write `startdatetime`). A syntax the fake does not implement is answered
//! with 501 naming the fake, so a test never mistakes the fake's limit for Graph's verdict.

use regex::Regex;
use std::sync::LazyLock;

use super::{Reply, percent_decode};

/// The query options of one request, names normalised (lower case, no `$`), values decoded.
pub struct Query {
    params: Vec<(String, String)>,
    raw: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string; a malformed escape or a repeated option is a 400.
    pub fn parse(raw: Option<&str>) -> Result<Query, Reply> {
        let mut params: Vec<(String, String)> = Vec::new();
        let mut raw_pairs = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || Reply::error(400, "BadRequest", "Malformed query string.");
            let name = percent_decode(name, true).ok_or_else(bad)?;
            let value = percent_decode(value, true).ok_or_else(bad)?;
            let normal = name.trim_start_matches('$').to_ascii_lowercase();
            if params.iter().any(|(n, _)| *n == normal) {
                return Err(Reply::error(
                    400,
                    "BadRequest",
                    &format!("Query option '{name}' was specified more than once."),
                ));
            }
            raw_pairs.push((normal.clone(), pair.to_string()));
            params.push((normal, value));
        }
        Ok(Query {
            params,
            raw: raw_pairs,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Refuses every option not in `allowed` (normalised names) with Graph's 400.
    pub fn allow_only(&self, allowed: &[&str]) -> Result<(), Reply> {
        match self
            .params
            .iter()
            .find(|(n, _)| !allowed.contains(&n.as_str()))
        {
            None => Ok(()),
            Some((name, _)) => Err(Reply::error(
                400,
                "ErrorInvalidUrlQuery",
                &format!("The query parameter '{name}' is not supported with this request."),
            )),
        }
    }

    /// The query as sent, minus option `name`, for building a next link.
    pub fn raw_without(&self, name: &str) -> String {
        self.raw
            .iter()
            .filter(|(n, _)| n != name)
            .map(|(_, pair)| pair.as_str())
            .collect::<Vec<_>>()
            .join("&")
    }

    /// `$top` (default `default`, at most 1000) and `$skip` (default 0).
    pub fn top_skip(&self, default: usize) -> Result<(usize, usize), Reply> {
        let number = |name: &str, default: usize| match self.get(name) {
            None => Ok(default),
            Some(text) => text.parse::<usize>().map_err(|_| {
                Reply::error(
                    400,
                    "BadRequest",
                    &format!("Invalid value '{text}' for ${name}."),
                )
            }),
        };
        Ok((number("top", default)?.clamp(1, 1000), number("skip", 0)?))
    }
}

/// What the `Prefer` header(s) ask for.
#[derive(Default)]
pub struct Prefer {
    pub max_page_size: Option<usize>,
    pub time_zone: Option<String>,
}

static MAX_PAGE_SIZE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)odata\.maxpagesize\s*=\s*(\d+)").expect("a valid regex"));
static TIME_ZONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)outlook\.timezone\s*=\s*"([^"]*)""#).expect("a valid regex")
});

impl Prefer {
    pub fn parse<'a>(values: impl Iterator<Item = &'a str>) -> Prefer {
        let mut prefer = Prefer::default();
        for value in values {
            if let Some(size) = MAX_PAGE_SIZE.captures(value) {
                prefer.max_page_size = size[1].parse().ok().filter(|n| *n > 0);
            }
            if let Some(zone) = TIME_ZONE.captures(value) {
                prefer.time_zone = Some(zone[1].to_string());
            }
        }
        prefer
    }
}

/// The identity of a single-value extended property, compared as Graph documents: the type,
/// the property-set GUID and the `Name`/`Id` keywords case-insensitively, the name itself
/// case-sensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyId {
    kind: String,
    set: String,
    name: String,
}

/// The MAPI types an extended property id may name (extended-properties overview).
const PROPERTY_TYPES: &[&str] = &[
    "ApplicationTime",
    "Binary",
    "Boolean",
    "CLSID",
    "Currency",
    "Double",
    "Error",
    "Float",
    "Integer",
    "Long",
    "Null",
    "Object",
    "Short",
    "String",
    "SystemTime",
];

static NAMED_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\w+) \{([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\} (?i:(Name) (.+)|(Id) (0x[0-9A-Fa-f]+))$")
        .expect("a valid regex")
});
static TAG_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\w+) (0x[0-9A-Fa-f]+)$").expect("a valid regex"));

impl PropertyId {
    /// Reads one of the documented id forms: `{type} {guid} Name {name}`,
    /// `{type} {guid} Id 0x…`, `{type} 0x…`.
    pub fn parse(text: &str) -> Option<PropertyId> {
        let known = |kind: &str| {
            PROPERTY_TYPES
                .iter()
                .find(|t| t.eq_ignore_ascii_case(kind))
                .map(|t| t.to_string())
        };
        if let Some(c) = NAMED_ID.captures(text) {
            let name = match (c.get(4), c.get(6)) {
                (Some(name), _) => format!("name:{}", name.as_str()),
                (None, Some(id)) => format!("id:{}", id.as_str().to_ascii_lowercase()),
                (None, None) => return None,
            };
            return Some(PropertyId {
                kind: known(&c[1])?,
                set: c[2].to_ascii_lowercase(),
                name,
            });
        }
        let c = TAG_ID.captures(text)?;
        Some(PropertyId {
            kind: known(&c[1])?,
            set: String::new(),
            name: format!("tag:{}", c[2].to_ascii_lowercase()),
        })
    }
}

/// `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')`, the value
/// clause optional.
pub struct TagFilter {
    pub id: PropertyId,
    pub value: Option<String>,
}

const QUOTED: &str = r"'((?:[^']|'')*)'";

static ANY_FILTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*(\w+)/id\s+eq\s+{QUOTED}(?:\s+and\s+(\w+)/value\s+eq\s+{QUOTED})?\s*\)\s*$"
    ))
    .expect("a valid regex")
});
static EXPAND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)^\s*singleValueExtendedProperties\s*\(\s*\$?filter\s*=\s*id\s+eq\s+{QUOTED}\s*\)\s*$"
    ))
    .expect("a valid regex")
});

/// An OData string literal's content with `''` read as `'`.
fn unquote(text: &str) -> String {
    text.replace("''", "'")
}

fn property_id(text: &str) -> Result<PropertyId, Reply> {
    PropertyId::parse(text).ok_or_else(|| {
        Reply::error(
            400,
            "ErrorInvalidProperty",
            &format!("The extended property id '{text}' is not of a supported format."),
        )
    })
}

fn not_in_fake(what: &str, text: &str) -> Reply {
    Reply::error(
        501,
        "NotImplementedInFake",
        &format!("graph fake: this {what} is not implemented: {text}"),
    )
}

impl TagFilter {
    pub fn parse(text: &str) -> Result<TagFilter, Reply> {
        let c = ANY_FILTER
            .captures(text)
            .ok_or_else(|| not_in_fake("$filter", text))?;
        let variable = &c[1];
        if &c[2] != variable || c.get(4).is_some_and(|v| v.as_str() != variable) {
            return Err(Reply::error(
                400,
                "BadRequest",
                &format!(
                    "Invalid filter clause: the lambda variable '{variable}' is not used consistently."
                ),
            ));
        }
        Ok(TagFilter {
            id: property_id(&unquote(&c[3]))?,
            value: c.get(5).map(|v| unquote(v.as_str())),
        })
    }

    /// Whether an event's properties satisfy the filter (value compared case-insensitively).
    pub fn matches(&self, properties: &[(String, String)]) -> bool {
        properties.iter().any(|(id, value)| {
            PropertyId::parse(id).as_ref() == Some(&self.id)
                && self
                    .value
                    .as_ref()
                    .is_none_or(|wanted| wanted.to_lowercase() == value.to_lowercase())
        })
    }
}

/// Reads `$expand=singleValueExtendedProperties($filter=id eq '…')`.
pub fn parse_expand(text: &str) -> Result<PropertyId, Reply> {
    let c = EXPAND
        .captures(text)
        .ok_or_else(|| not_in_fake("$expand", text))?;
    property_id(&unquote(&c[1]))
}

/// Reads `$filter=name eq '…'` on calendars (compared case-insensitively, like Exchange).
pub fn parse_name_filter(text: &str) -> Result<String, Reply> {
    static NAME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(r"(?i)^\s*name\s+eq\s+{QUOTED}\s*$")).expect("a valid regex")
    });
    let c = NAME
        .captures(text)
        .ok_or_else(|| not_in_fake("$filter", text))?;
    Ok(unquote(&c[1]))
}
