//! CalDAV's XML, both ways, without I/O: request bodies are built here, and answers
//! (multistatus, sync-collection, error bodies) are parsed here by pure functions that the
//! unit tests feed with captured server XML.
//!
//! Names are matched by namespace and local name, never by prefix: servers pick any prefixes
//! (Radicale writes `D:`/`C:`, sabre `d:`/`cal:`, others a default namespace). An answer is
//! read as a stream; only one `D:response` at a time is held as a tree, so a listing of many
//! members costs its results, not a document tree of them.

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

pub const DAV: &str = "DAV:";
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const CALSERVER: &str = "http://calendarserver.org/ns/";

/// An answer that is not the XML it should be.
#[derive(Debug, thiserror::Error)]
#[error("unreadable WebDAV answer: {0}")]
pub struct XmlError(String);

/// A `D:multistatus` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multistatus {
    pub responses: Vec<DavResponse>,
    /// The top-level `D:sync-token` of a sync-collection answer.
    pub sync_token: Option<String>,
}

/// One `D:response`: a member (or the collection itself) and what the server says of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DavResponse {
    /// The href as the server wrote it (a path, or an absolute URL).
    pub href: String,
    /// The status of the response itself, when it has one instead of property results:
    /// 404 for a member a sync-collection reports removed, 507 for a truncated listing.
    pub status: Option<u16>,
    /// The properties found (those of `D:propstat`s whose status is 2xx).
    pub props: Props,
}

/// The properties calsync asks for, as found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props {
    pub etag: Option<String>,
    pub calendar_data: Option<String>,
    /// `D:resourcetype` holds `D:collection`.
    pub collection: bool,
    /// `D:resourcetype` holds `C:calendar`.
    pub calendar: bool,
    pub displayname: Option<String>,
    pub sync_token: Option<String>,
    pub ctag: Option<String>,
    pub current_user_principal: Option<String>,
    pub calendar_home_set: Option<String>,
    /// `C:supported-calendar-component-set`, when given (`None`: any component).
    pub components: Option<Vec<String>>,
}

// ------------------------------------------------------------------------------------------
// Request bodies.

const PREAMBLE: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// PROPFIND Depth 0 for discovery: what a URL is, and where to look next.
pub const PROPFIND_DISCOVER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"><D:prop><D:resourcetype/><D:displayname/><D:current-user-principal/><C:calendar-home-set/><D:sync-token/><CS:getctag/><C:supported-calendar-component-set/></D:prop></D:propfind>"#;

/// PROPFIND Depth 1 on a calendar home: its calendars.
pub const PROPFIND_CALENDARS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"><D:prop><D:resourcetype/><D:displayname/><D:sync-token/><CS:getctag/><C:supported-calendar-component-set/></D:prop></D:propfind>"#;

/// PROPFIND Depth 0 on a collection: has it changed?
pub const PROPFIND_CTAG: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/></D:prop></D:propfind>"#;

/// PROPFIND Depth 1 on a collection: its members' etags (and its own ctag).
pub const PROPFIND_ETAGS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><D:resourcetype/><D:getetag/><CS:getctag/></D:prop></D:propfind>"#;

/// PROPFIND Depth 0 on a resource: its etag.
pub const PROPFIND_ETAG: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#;

/// REPORT calendar-query Depth 1: every VEVENT resource with its data.
pub const CALENDAR_QUERY_EVENTS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter></C:filter></C:calendar-query>"#;

/// REPORT sync-collection (RFC 6578) from `token` (empty: everything), asking for etags and,
/// with `with_data`, the resources' iCalendar text.
pub fn sync_collection(token: &str, with_data: bool) -> String {
    format!(
        r#"{PREAMBLE}
<D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/>{}</D:prop></D:sync-collection>"#,
        quick_xml::escape::escape(token),
        if with_data { "<C:calendar-data/>" } else { "" }
    )
}

/// REPORT calendar-multiget (RFC 4791 §7.9) of `hrefs`, with etags and data.
pub fn calendar_multiget<'a>(hrefs: impl IntoIterator<Item = &'a str>) -> String {
    let mut body = format!(
        r#"{PREAMBLE}
<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>"#
    );
    for href in hrefs {
        body.push_str("<D:href>");
        body.push_str(&quick_xml::escape::escape(href));
        body.push_str("</D:href>");
    }
    body.push_str("</C:calendar-multiget>");
    body
}

// ------------------------------------------------------------------------------------------
// Answers.

/// Reads a `D:multistatus` answer.
///
/// A response carrying several hrefs with one status (RFC 4918 §14.24) becomes one
/// [`DavResponse`] per href. Properties of a `D:propstat` whose status is not 2xx (a 404 for
/// a property the server does not have) are left out.
///
/// # Errors
/// [`XmlError`] when the body is not well-formed XML or has no `D:multistatus` root.
pub fn parse_multistatus(body: &[u8]) -> Result<Multistatus, XmlError> {
    let mut out = Multistatus::default();
    let mut saw_root = false;
    walk(body, &mut |depth, element| {
        if depth == 0 {
            saw_root = element.is(DAV, "multistatus");
            return Keep::No;
        }
        if depth != 1 {
            return Keep::Yes;
        }
        if element.is(DAV, "response") {
            out.responses.extend(read_response(element));
        } else if element.is(DAV, "sync-token") {
            out.sync_token = Some(element.text.trim().to_string());
        }
        Keep::No
    })?;
    if !saw_root {
        return Err(XmlError("the root element is not DAV:multistatus".into()));
    }
    Ok(out)
}

/// True when an error body (`D:error`, RFC 4918 §16) names `DAV:valid-sync-token`: the sync
/// token sent is unknown or expired (RFC 6578 §3.2) and the client must read in full.
pub fn names_invalid_sync_token(body: &[u8]) -> bool {
    let mut found = false;
    let mut root_is_error = false;
    let parsed = walk(body, &mut |depth, element| {
        if depth == 0 {
            root_is_error = element.is(DAV, "error");
        } else if depth == 1 && element.is(DAV, "valid-sync-token") {
            found = true;
        }
        Keep::No
    });
    parsed.is_ok() && root_is_error && found
}

/// The status code of a `D:status` text (`HTTP/1.1 404 Not Found` → 404).
fn status_code(text: &str) -> Option<u16> {
    text.split_whitespace().nth(1)?.parse().ok()
}

fn read_response(element: &Element) -> Vec<DavResponse> {
    let hrefs: Vec<String> = element
        .children_named(DAV, "href")
        .map(|h| h.text.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    let status = element
        .child(DAV, "status")
        .and_then(|s| status_code(&s.text));
    let mut props = Props::default();
    for propstat in element.children_named(DAV, "propstat") {
        let ok = propstat
            .child(DAV, "status")
            .and_then(|s| status_code(&s.text))
            .is_some_and(|c| (200..300).contains(&c));
        if !ok {
            continue;
        }
        for prop in propstat.children_named(DAV, "prop") {
            read_props(prop, &mut props);
        }
    }
    hrefs
        .into_iter()
        .map(|href| DavResponse {
            href,
            status,
            props: props.clone(),
        })
        .collect()
}

fn read_props(prop: &Element, props: &mut Props) {
    let text = |e: &Element| Some(e.text.trim().to_string()).filter(|t| !t.is_empty());
    let href = |e: &Element| e.child(DAV, "href").and_then(text);
    for p in &prop.children {
        match (p.ns.as_str(), p.name.as_str()) {
            (DAV, "getetag") => props.etag = text(p),
            // The iCalendar text as it is (the parser unfolds and accepts any line end).
            (CALDAV, "calendar-data") => props.calendar_data = Some(p.text.clone()),
            (DAV, "resourcetype") => {
                props.collection = p.child(DAV, "collection").is_some();
                props.calendar = p.child(CALDAV, "calendar").is_some();
            }
            (DAV, "displayname") => props.displayname = text(p),
            (DAV, "sync-token") => props.sync_token = text(p),
            (CALSERVER, "getctag") => props.ctag = text(p),
            (DAV, "current-user-principal") => props.current_user_principal = href(p),
            (CALDAV, "calendar-home-set") => props.calendar_home_set = href(p),
            (CALDAV, "supported-calendar-component-set") => {
                props.components = Some(
                    p.children_named(CALDAV, "comp")
                        .filter_map(|c| c.attr("name"))
                        .map(|n| n.to_ascii_uppercase())
                        .collect(),
                );
            }
            _ => {}
        }
    }
}

// ------------------------------------------------------------------------------------------
// A small streaming tree reader.

/// An element with its namespace resolved; text is the concatenation of its character data.
#[derive(Debug, Default)]
struct Element {
    ns: String,
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether a closed element stays attached to its parent.
enum Keep {
    Yes,
    No,
}

/// Reads `body`, calling `closed(depth, element)` for every element as it ends (the root at
/// depth 0, complete with what its children kept) and dropping those it answers [`Keep::No`].
/// The root is also announced when it starts (with no children yet), so callers can tell
/// what the document is before reading it all.
fn walk(body: &[u8], closed: &mut dyn FnMut(usize, &Element) -> Keep) -> Result<(), XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| XmlError(format!("not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut saw_root = false;
    let bad = |e: &dyn std::fmt::Display| XmlError(e.to_string());
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|e| bad(&e))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let empty = matches!(event, Event::Empty(_));
                let ns = match ns {
                    ResolveResult::Bound(n) => n.0.to_string(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(prefix) => {
                        return Err(XmlError(format!("undeclared namespace prefix {prefix:?}")));
                    }
                };
                let mut attrs = Vec::new();
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| bad(&e))?;
                    let value = attr
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| bad(&e))?;
                    attrs.push((
                        attr.key.local_name().as_ref().to_string(),
                        value.into_owned(),
                    ));
                }
                let element = Element {
                    ns,
                    name: start.local_name().as_ref().to_string(),
                    attrs,
                    ..Element::default()
                };
                if stack.is_empty() {
                    if saw_root {
                        return Err(XmlError("more than one root element".into()));
                    }
                    saw_root = true;
                    closed(0, &element);
                }
                stack.push(element);
                if empty {
                    close(&mut stack, closed);
                }
            }
            Event::End(_) => close(&mut stack, closed),
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_xml_entity(&r)
                        .ok_or_else(|| XmlError(format!("unknown entity &{};", &*r)))?
                        .to_string(),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("the document ends inside an element".into()));
    }
    if !saw_root {
        return Err(XmlError("no root element".into()));
    }
    Ok(())
}

fn close(stack: &mut Vec<Element>, closed: &mut dyn FnMut(usize, &Element) -> Keep) {
    let Some(element) = stack.pop() else { return };
    let depth = stack.len();
    if depth == 0 {
        closed(0, &element);
        return;
    }
    if let Keep::Yes = closed(depth, &element) {
        stack
            .last_mut()
            .expect("a parent below a closed element")
            .children
            .push(element);
    }
}

// ------------------------------------------------------------------------------------------
// Hrefs.

/// The path of an href (a path, or an absolute URL), percent-decoded: the form hrefs are
/// compared and keyed in, since servers encode the same path differently in different answers.
pub fn href_path(href: &str) -> String {
    let path = match href.find("://") {
        Some(i) => {
            let rest = &href[i + 3..];
            rest.find('/').map_or("/", |p| &rest[p..])
        }
        None => href,
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    percent_decode(path)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Radicale 3.9.0, sync-collection with an empty token, etags only (captured).
    const RADICALE_SYNC_INITIAL: &str = r#"<?xml version='1.0' encoding='utf-8'?>
<multistatus xmlns="DAV:"><sync-token>http://radicale.org/ns/sync/17592575efb2637a7a8261093c7c90f4e3644dd6785593e156deaf1573b50d47</sync-token><response><href>/test/source/council.ics</href><propstat><prop><getetag>"362d7995262cd220271ad140a0c42cb8aaec417392a97e723d8253862f0e8416"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response><response><href>/test/source/a%20b.ics</href><propstat><prop><getetag>"89264377b27df146c4c4f3974cd35f22b62b53bd1c13082d3af56676b19a021e"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;

    /// Radicale 3.9.0 from that token after one deletion and one change, calendar-data asked
    /// for (captured; its calendar-data keeps CRLF line ends).
    const RADICALE_SYNC_DELTA: &str = "<?xml version='1.0' encoding='utf-8'?>\n<multistatus xmlns=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><sync-token>http://radicale.org/ns/sync/4a2c72e9ae10153be0fa86423ed9571522958a2acd282d2cadc29a122df0ff39</sync-token><response><href>/test/source/council.ics</href><status>HTTP/1.1 404 Not Found</status></response><response><href>/test/source/a%20b.ics</href><propstat><prop><getetag>\"0161603339e511f14f43b625781d7e0c50d9dc424f9ff0607935ec7ec28f38e3\"</getetag><C:calendar-data>BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260105T100000Z\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Tom &amp; Jerry &lt;4\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n</C:calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>";

    /// Radicale 3.9.0's answer (403) to a sync token it does not know (captured).
    const RADICALE_INVALID_TOKEN: &str = "<?xml version='1.0' encoding='utf-8'?>\n<error xmlns=\"DAV:\"><valid-sync-token /></error>";

    /// sabre/dav (Nextcloud) style: other prefixes, a truncated listing (507 for the
    /// collection itself), a property not found in its own propstat.
    const SABRE_TRUNCATED: &str = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:cal="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">
 <d:response>
  <d:href>/remote.php/dav/calendars/office/public/1.ics</d:href>
  <d:propstat>
   <d:prop>
    <d:getetag>&quot;e1&quot;</d:getetag>
   </d:prop>
   <d:status>HTTP/1.1 200 OK</d:status>
  </d:propstat>
  <d:propstat>
   <d:prop>
    <cal:calendar-data/>
   </d:prop>
   <d:status>HTTP/1.1 404 Not Found</d:status>
  </d:propstat>
 </d:response>
 <d:response>
  <d:href>/remote.php/dav/calendars/office/public/</d:href>
  <d:status>HTTP/1.1 507 Insufficient Storage</d:status>
 </d:response>
 <d:sync-token>http://sabre.io/ns/sync/17</d:sync-token>
</d:multistatus>
"#;

    #[test]
    fn radicale_initial_listing() {
        let m = parse_multistatus(RADICALE_SYNC_INITIAL.as_bytes()).unwrap();
        assert!(
            m.sync_token
                .unwrap()
                .starts_with("http://radicale.org/ns/sync/1759")
        );
        assert_eq!(m.responses.len(), 2);
        let member = &m.responses[1];
        assert_eq!(member.href, "/test/source/a%20b.ics");
        assert_eq!(href_path(&member.href), "/test/source/a b.ics");
        assert_eq!(member.status, None);
        assert_eq!(
            member.props.etag.as_deref(),
            Some("\"89264377b27df146c4c4f3974cd35f22b62b53bd1c13082d3af56676b19a021e\"")
        );
        assert_eq!(member.props.calendar_data, None);
    }

    #[test]
    fn radicale_delta_with_data_and_a_removed_member() {
        let m = parse_multistatus(RADICALE_SYNC_DELTA.as_bytes()).unwrap();
        assert!(
            m.sync_token
                .unwrap()
                .ends_with("/4a2c72e9ae10153be0fa86423ed9571522958a2acd282d2cadc29a122df0ff39")
        );
        let removed = &m.responses[0];
        assert_eq!(removed.href, "/test/source/council.ics");
        assert_eq!(removed.status, Some(404));
        assert_eq!(removed.props, Props::default());
        let changed = &m.responses[1];
        assert_eq!(changed.status, None);
        assert!(changed.props.etag.as_deref().unwrap().starts_with("\"0161"));
        let data = changed.props.calendar_data.as_deref().unwrap();
        assert!(data.starts_with("BEGIN:VCALENDAR"), "{data:?}");
        assert!(data.contains("SUMMARY:Tom & Jerry <4"), "{data:?}");
        assert!(data.ends_with("END:VCALENDAR\n"), "{data:?}");
    }

    #[test]
    fn sabre_truncation_other_prefixes_and_a_missing_property() {
        let m = parse_multistatus(SABRE_TRUNCATED.as_bytes()).unwrap();
        assert_eq!(m.sync_token.as_deref(), Some("http://sabre.io/ns/sync/17"));
        assert_eq!(m.responses.len(), 2);
        assert_eq!(m.responses[0].props.etag.as_deref(), Some("\"e1\""));
        // The 404 propstat's (empty) calendar-data is not taken for an empty calendar.
        assert_eq!(m.responses[0].props.calendar_data, None);
        assert_eq!(
            m.responses[1].href,
            "/remote.php/dav/calendars/office/public/"
        );
        assert_eq!(m.responses[1].status, Some(507));
    }

    #[test]
    fn discovery_properties() {
        // Radicale 3.9.0 on / and on a calendar (captured), and a sabre calendar home listing.
        let root = r#"<?xml version='1.0' encoding='utf-8'?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"><response><href>/</href><propstat><prop><resourcetype><collection /></resourcetype><current-user-principal><href>/test/</href></current-user-principal></prop><status>HTTP/1.1 200 OK</status></propstat><propstat><prop><displayname /><C:calendar-home-set /><sync-token /><CS:getctag /><C:supported-calendar-component-set /></prop><status>HTTP/1.1 404 Not Found</status></propstat></response></multistatus>"#;
        let m = parse_multistatus(root.as_bytes()).unwrap();
        let p = &m.responses[0].props;
        assert_eq!(p.current_user_principal.as_deref(), Some("/test/"));
        assert_eq!(p.calendar_home_set, None);
        assert_eq!(p.sync_token, None);
        assert!(p.collection && !p.calendar);
        let calendar = r#"<?xml version='1.0' encoding='utf-8'?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"><response><href>/test/source/</href><propstat><prop><resourcetype><C:calendar /><collection /></resourcetype><displayname>test/source</displayname><current-user-principal><href>/test/</href></current-user-principal><sync-token>http://radicale.org/ns/sync/17592575efb2637a7a8261093c7c90f4e3644dd6785593e156deaf1573b50d47</sync-token><CS:getctag>"b775161367dbc3a03eac65a6b72a22d0ed1a6d0493632b0275f6acdbcc50163e"</CS:getctag><C:supported-calendar-component-set><C:comp name="VTODO" /><C:comp name="VEVENT" /><C:comp name="VJOURNAL" /></C:supported-calendar-component-set></prop><status>HTTP/1.1 200 OK</status></propstat><propstat><prop><C:calendar-home-set /></prop><status>HTTP/1.1 404 Not Found</status></propstat></response></multistatus>"#;
        let p = &parse_multistatus(calendar.as_bytes()).unwrap().responses[0].props;
        assert!(p.calendar && p.collection);
        assert!(
            p.sync_token
                .as_deref()
                .unwrap()
                .starts_with("http://radicale.org/ns/sync/")
        );
        assert!(p.ctag.as_deref().unwrap().starts_with("\"b775"));
        assert_eq!(p.components.as_ref().unwrap().len(), 3);
        // QUIRK: Radicale names a calendar without a display name by its path.
        assert_eq!(p.displayname.as_deref(), Some("test/source"));

        let home = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/">
 <d:response><d:href>/remote.php/dav/calendars/office/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
 <d:response><d:href>/remote.php/dav/calendars/office/public/</d:href><d:propstat><d:prop>
   <d:resourcetype><d:collection/><cal:calendar/></d:resourcetype><d:displayname>Public &amp; open</d:displayname>
   <d:sync-token>http://sabre.io/ns/sync/3</d:sync-token><cs:getctag>http://sabre.io/ns/sync/3</cs:getctag>
   <cal:supported-calendar-component-set><cal:comp name="VEVENT"/><cal:comp name="vtodo"/></cal:supported-calendar-component-set>
 </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>"#;
        let m = parse_multistatus(home.as_bytes()).unwrap();
        let cal = &m.responses[1].props;
        assert!(cal.calendar && cal.collection);
        assert_eq!(cal.displayname.as_deref(), Some("Public & open"));
        assert_eq!(cal.sync_token.as_deref(), Some("http://sabre.io/ns/sync/3"));
        assert_eq!(cal.ctag.as_deref(), Some("http://sabre.io/ns/sync/3"));
        assert_eq!(
            cal.components.as_deref(),
            Some(&["VEVENT".to_string(), "VTODO".to_string()][..])
        );
        let p = parse_multistatus(
            br#"<m:multistatus xmlns:m="DAV:"><m:response><m:href>/p/</m:href><m:propstat><m:prop><x:calendar-home-set xmlns:x="urn:ietf:params:xml:ns:caldav"><m:href>https://dav.example.org/home/</m:href></x:calendar-home-set></m:prop><m:status>HTTP/1.1 200 OK</m:status></m:propstat></m:response></m:multistatus>"#,
        )
        .unwrap();
        assert_eq!(
            p.responses[0].props.calendar_home_set.as_deref(),
            Some("https://dav.example.org/home/")
        );
    }

    #[test]
    fn a_response_with_several_hrefs_and_one_status() {
        let m = parse_multistatus(
            br#"<multistatus xmlns="DAV:"><response><href>/c/a.ics</href><href>/c/b.ics</href><status>HTTP/1.1 404 Not Found</status></response></multistatus>"#,
        )
        .unwrap();
        let got: Vec<_> = m
            .responses
            .iter()
            .map(|r| (r.href.as_str(), r.status))
            .collect();
        assert_eq!(got, [("/c/a.ics", Some(404)), ("/c/b.ics", Some(404))]);
    }

    #[test]
    fn valid_sync_token_error_bodies() {
        // Radicale (default namespace) and sabre (prefixed).
        assert!(names_invalid_sync_token(RADICALE_INVALID_TOKEN.as_bytes()));
        assert!(names_invalid_sync_token(
            br#"<?xml version="1.0" encoding="utf-8"?>
<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">
  <d:valid-sync-token/>
  <s:exception>Sabre\DAV\Exception\InvalidSyncToken</s:exception>
  <s:message>Invalid or unknown sync token</s:message>
</d:error>"#
        ));
        assert!(!names_invalid_sync_token(
            b"<D:error xmlns:D=\"DAV:\"><D:supported-report/></D:error>"
        ));
        assert!(!names_invalid_sync_token(b"Forbidden"));
        assert!(!names_invalid_sync_token(b""));
        // The right name in the wrong namespace is not it.
        assert!(!names_invalid_sync_token(
            b"<D:error xmlns:D=\"DAV:\" xmlns:X=\"urn:x\"><X:valid-sync-token/></D:error>"
        ));
    }

    #[test]
    fn malformed_answers_are_errors() {
        for bad in [
            &b""[..],
            b"<html><body>Login</body></html>",
            b"<D:multistatus xmlns:D=\"DAV:\"><D:response>",
            b"<X:multistatus><X:response/></X:multistatus>",
            b"\xff\xfe<multistatus/>",
        ] {
            assert!(
                parse_multistatus(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn request_bodies_escape_what_they_carry() {
        let body = sync_collection("http://x/sync?a=1&b=<2>", true);
        assert!(body.contains("<D:sync-token>http://x/sync?a=1&amp;b=&lt;2&gt;</D:sync-token>"));
        assert!(body.contains("<C:calendar-data/>"));
        assert!(!sync_collection("", false).contains("calendar-data"));
        let body = calendar_multiget(["/c/a&b.ics", "/c/x.ics"]);
        assert!(body.contains("<D:href>/c/a&amp;b.ics</D:href><D:href>/c/x.ics</D:href>"));
        // Every body is well-formed and names its namespaces.
        for body in [
            PROPFIND_DISCOVER,
            PROPFIND_CALENDARS,
            PROPFIND_CTAG,
            PROPFIND_ETAGS,
            PROPFIND_ETAG,
            CALENDAR_QUERY_EVENTS,
            &sync_collection("t", true),
            &calendar_multiget(["/a"]),
        ] {
            walk(body.as_bytes(), &mut |_, _| Keep::No).unwrap();
        }
    }

    #[test]
    fn hrefs_compare_by_decoded_path() {
        assert_eq!(href_path("/c/a%20b.ics"), "/c/a b.ics");
        assert_eq!(
            href_path("https://h.example:8443/c/a%2Fb.ics"),
            "/c/a/b.ics"
        );
        assert_eq!(href_path("http://h.example"), "/");
        assert_eq!(href_path("/c/%zz%4"), "/c/%zz%4");
        assert_eq!(href_path("/c/%C3%A9.ics"), "/c/é.ics");
    }
}
