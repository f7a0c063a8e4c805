//! `calsync validate`: is the target exactly what should be published?
//!
//! Reads the source in full and runs the policy on every item, which gives the set that should
//! be published now; reads the events in the target that carry calsync's tag; and compares the
//! two with the checks of DESIGN.md ([`check`], pure): counts match, no private event in the
//! target, every target event public, none older than the cutoff, no duplicates, recurring
//! series intact, published fields equal. Each check names the events involved by id only —
//! target ids, or the derived UID of an event that is missing — never by title.
//!
//! It only reads, so it takes no lock; a concurrent sync is undisturbed (the state file is
//! read for the mapping only, to trace target events to their source items). A failure is
//! appended to the audit log when a state file and audit key exist; nothing is created.

use super::cleanup::retention_horizon;
use super::report::{self, Table};
use crate::cli::{GlobalArgs, ReportArgs};
use crate::config::{Pair, Settings};
use crate::error::Error;
use crate::exit;
use crate::hashing;
use crate::mask::mask_emails;
use crate::model::{ItemKey, Moment, PublicDetails, PublicEvent, Recurrence};
use crate::net::Http;
use crate::policy::{self, Decision, RecurrenceMode, Window, Withheld};
use crate::providers::{self, Context, OwnedEvent, ProviderError, SourcePage};
use crate::store::{AuditKey, MappedRow, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What the source says should be in the target now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The items the policy publishes, by tag.
    pub items: BTreeMap<String, PublicEvent>,
    /// Tags of items withheld as private (not public, or an excluded category).
    pub private: BTreeSet<String>,
    /// Source keys withheld as private.
    pub private_sources: BTreeSet<String>,
    /// Source keys withheld for any reason (their items must not be in the target at all).
    pub withheld_sources: BTreeSet<String>,
    /// Per published series (by tag): instances withheld as private, by recurrence id.
    pub private_instances: BTreeMap<String, BTreeSet<Moment>>,
    /// Source items that could not be read (sync skips them too).
    pub unreadable: u64,
}

impl Expected {
    /// Adds what the policy decides for one source item.
    pub fn add(
        &mut self,
        pair: &Pair,
        event: &crate::model::SourceEvent,
        window: &Window,
        traced: &mut BTreeMap<String, String>,
    ) {
        let key = &event.key;
        let whole = hashing::item_tag(&pair.name, &ItemKey::whole(key));
        traced.insert(whole.clone(), key.0.clone());
        match policy::decide(&pair.name, event, &pair.rules, window) {
            Decision::Publish { items, .. } => {
                for item in items {
                    let tag = hashing::item_tag(&pair.name, &item.item);
                    traced.insert(tag.clone(), key.0.clone());
                    self.items.insert(tag, item.event);
                }
                for ov in &event.overrides {
                    if !is_private(policy::withheld_reason(&ov.details, &pair.rules)) {
                        continue;
                    }
                    match pair.rules.recurrence {
                        RecurrenceMode::Preserve => {
                            self.private_instances
                                .entry(whole.clone())
                                .or_default()
                                .insert(ov.recurrence_id.clone());
                        }
                        RecurrenceMode::Expand => {
                            let item = ItemKey::occurrence(key, &ov.recurrence_id);
                            self.private.insert(hashing::item_tag(&pair.name, &item));
                        }
                    }
                }
            }
            Decision::Withhold(reason) => {
                self.withheld_sources.insert(key.0.clone());
                if is_private(Some(reason)) {
                    self.private_sources.insert(key.0.clone());
                    self.private.insert(whole);
                }
            }
            Decision::Past => {}
        }
    }
}

fn is_private(reason: Option<Withheld>) -> bool {
    matches!(reason, Some(Withheld::NotPublic | Withheld::Excluded))
}

/// The times the checks judge against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The window's start: an event that ended before it is kept as published (until
    /// `cleanup`), so it is not "unexpected".
    pub window_from: DateTime<Utc>,
    /// The retention horizon: nothing in the target should have ended before it.
    pub cutoff: DateTime<Utc>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub name: &'static str,
    pub passed: bool,
    /// The events involved: target ids, or the derived UID of a missing event.
    pub ids: Vec<String>,
    /// Counts, and per id the names of what differs; never event text.
    pub detail: serde_json::Value,
}

impl Outcome {
    fn new(name: &'static str, ids: BTreeSet<String>, detail: serde_json::Value) -> Outcome {
        Outcome {
            name,
            passed: ids.is_empty(),
            ids: ids.into_iter().collect(),
            detail,
        }
    }
}

/// Runs every check of the target's owned events against what should be published.
/// `traced` maps tags to the source key they were derived from (the mapping, and every
/// source item read).
pub fn check(
    expected: &Expected,
    traced: &BTreeMap<String, String>,
    owned: &[OwnedEvent],
    bounds: Bounds,
) -> Vec<Outcome> {
    let mut by_tag: BTreeMap<&str, Vec<&OwnedEvent>> = BTreeMap::new();
    for o in owned {
        by_tag.entry(o.tag.as_str()).or_default().push(o);
    }
    let source_of = |tag: &str| traced.get(tag).map(String::as_str);

    // Counts match: every expected item once; nothing else but items kept past the window.
    let mut missing = BTreeSet::new();
    for (tag, event) in &expected.items {
        if !by_tag.contains_key(tag.as_str()) {
            missing.insert(event.uid.clone());
        }
    }
    let mut unexpected = BTreeSet::new();
    let mut kept_past = 0u64;
    for o in owned {
        if expected.items.contains_key(&o.tag) {
            continue;
        }
        let withheld = source_of(&o.tag).is_some_and(|s| expected.withheld_sources.contains(s));
        let ended = ends_at(&o.event).is_some_and(|end| end < bounds.window_from);
        if ended && !withheld {
            kept_past += 1;
        } else {
            unexpected.insert(o.target_id.clone());
        }
    }
    // A tag found more than once: the copies beyond the first are too many.
    let mut surplus = BTreeSet::new();
    for list in by_tag.values() {
        surplus.extend(list.iter().skip(1).map(|o| o.target_id.clone()));
    }
    let mut counted: BTreeSet<String> = missing.union(&unexpected).cloned().collect();
    counted.extend(surplus);
    let counts = Outcome::new(
        "counts_match",
        counted,
        serde_json::json!({
            "expected": expected.items.len(),
            "found": owned.len(),
            "kept_past_window": kept_past,
            "missing": missing,
            "unexpected": unexpected,
            "unreadable_source_items": expected.unreadable,
        }),
    );

    // No private event: not an item withheld as private, nor a private instance in a series.
    let mut private_events = BTreeSet::new();
    let mut private_instances = BTreeSet::new();
    for o in owned {
        let private_source =
            source_of(&o.tag).is_some_and(|s| expected.private_sources.contains(s));
        if expected.private.contains(&o.tag) || private_source {
            private_events.insert(o.target_id.clone());
        }
        if let Some(instances) = expected.private_instances.get(&o.tag) {
            let leaked = instances.iter().any(|rid| {
                o.event
                    .overrides
                    .iter()
                    .any(|ov| same_moment(&ov.recurrence_id, rid))
                    || !o.event.exdates.iter().any(|x| same_moment(x, rid))
            });
            if leaked {
                private_instances.insert(o.target_id.clone());
            }
        }
    }
    let private = Outcome::new(
        "no_private_event",
        private_events.union(&private_instances).cloned().collect(),
        serde_json::json!({
            "private_events": private_events.len(),
            "series_with_private_instances": private_instances.len(),
        }),
    );

    // All public: every CLASS read back (master and overrides) is PUBLIC, written out as
    // calsync writes it, and nothing calsync never writes (attendees, alarms…) is there.
    let mut not_public = BTreeSet::new();
    let mut not_verified = 0u64;
    let mut forbidden = BTreeMap::new();
    for o in owned {
        if o.markings.is_empty() {
            not_verified += 1;
        }
        if !o.markings.iter().all(policy::is_marked_public) {
            not_public.insert(o.target_id.clone());
        }
        if !o.foreign.is_empty() {
            not_public.insert(o.target_id.clone());
            forbidden.insert(o.target_id.clone(), o.foreign.clone());
        }
    }
    let public = Outcome::new(
        "all_public",
        not_public,
        serde_json::json!({ "class_not_read_back": not_verified, "foreign_properties": forbidden }),
    );

    // None older than the cutoff.
    let old: BTreeSet<String> = owned
        .iter()
        .filter(|o| ends_at(&o.event).is_some_and(|end| end < bounds.cutoff))
        .map(|o| o.target_id.clone())
        .collect();
    let older = Outcome::new(
        "none_older_than_cutoff",
        old,
        serde_json::json!({ "cutoff": bounds.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }),
    );

    // No duplicates: one target event per tag, per target id and per UID (a target lists an
    // event once per copy it holds: two resources, or one component written twice).
    let mut dup = BTreeSet::new();
    for list in by_tag.values().filter(|l| l.len() > 1) {
        dup.extend(list.iter().map(|o| o.target_id.clone()));
    }
    let mut ids: BTreeMap<&str, u32> = BTreeMap::new();
    let mut uids: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in owned {
        *ids.entry(&o.target_id).or_default() += 1;
        uids.entry(&o.event.uid).or_default().push(&o.target_id);
    }
    dup.extend(
        ids.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(id, _)| id.to_string()),
    );
    let uids_twice = uids.values().filter(|l| l.len() > 1).count();
    for list in uids.values().filter(|l| l.len() > 1) {
        dup.extend(list.iter().map(|id| id.to_string()));
    }
    let duplicates = Outcome::new(
        "no_duplicates",
        dup,
        serde_json::json!({
            "tags_more_than_once": by_tag.values().filter(|l| l.len() > 1).count(),
            "uids_more_than_once": uids_twice,
        }),
    );

    // Series intact and fields equal, for every expected item in the target.
    let mut broken_series = BTreeSet::new();
    let mut series_detail = BTreeMap::new();
    let mut unequal = BTreeSet::new();
    let mut field_detail = BTreeMap::new();
    for (tag, want) in &expected.items {
        let Some(list) = by_tag.get(tag.as_str()) else {
            continue;
        };
        for have in list {
            let parts = series_differences(want, &have.event);
            if !parts.is_empty() {
                broken_series.insert(have.target_id.clone());
                series_detail.insert(have.target_id.clone(), parts);
            }
            let fields = field_differences(want, &have.event);
            if !fields.is_empty() {
                unequal.insert(have.target_id.clone());
                field_detail.insert(have.target_id.clone(), fields);
            }
        }
    }
    let series = Outcome::new(
        "series_intact",
        broken_series,
        serde_json::json!({
            "series": expected.items.values().filter(|e| e.is_series()).count(),
            "differences": series_detail,
        }),
    );
    let fields = Outcome::new(
        "fields_equal",
        unequal,
        serde_json::json!({ "differences": field_detail }),
    );
    vec![counts, private, public, older, duplicates, series, fields]
}

/// The exclusive end of published details, with RFC 5545's defaults.
fn end_of(d: &PublicDetails) -> Moment {
    match (&d.end, &d.start) {
        (Some(end), _) => end.clone(),
        (None, Moment::Date(day)) => Moment::Date(day.succ_opt().unwrap_or(*day)),
        (None, start) => start.clone(),
    }
}

/// When a published event's last instance ends; `None` for a series without end (or one
/// whose rule cannot be read: it is never judged old).
pub fn ends_at(e: &PublicEvent) -> Option<DateTime<Utc>> {
    let end = end_of(&e.details);
    let main = if e.is_series() {
        let rec = Recurrence {
            rules: e.rules.clone(),
            rdates: e.rdates.clone(),
            exdates: e.exdates.clone(),
            periods: e.periods.clone(),
            exrules: vec![],
        };
        crate::recurrence::series_end(&e.details.start, &end, &rec).ok()??
    } else {
        end.to_utc()
    };
    Some(
        e.overrides
            .iter()
            .map(|o| end_of(&o.details).to_utc())
            .fold(main, DateTime::max),
    )
}

/// Two moments mean the same: the same date, or the same instant (a target may read a zoned
/// time back in UTC).
fn same_moment(a: &Moment, b: &Moment) -> bool {
    match (a, b) {
        (Moment::Date(x), Moment::Date(y)) => x == y,
        (Moment::Date(_), _) | (_, Moment::Date(_)) => false,
        _ => a.to_utc() == b.to_utc(),
    }
}

fn same_moments(a: &[Moment], b: &[Moment]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| b.iter().any(|y| same_moment(x, y)))
        && b.iter().all(|y| a.iter().any(|x| same_moment(x, y)))
}

/// An RRULE with its parts in a stable order (targets may reorder them).
fn normal_rule(rule: &str) -> String {
    let mut parts: Vec<String> = rule
        .trim()
        .trim_start_matches("RRULE:")
        .split(';')
        .filter(|p| !p.is_empty())
        .map(|p| p.trim().to_ascii_uppercase())
        .collect();
    parts.sort();
    parts.join(";")
}

/// What differs in the shape of a series: `rrule`, `rdate`, `exdate`, `overrides`.
fn series_differences(want: &PublicEvent, have: &PublicEvent) -> Vec<&'static str> {
    let mut out = Vec::new();
    let rules = |e: &PublicEvent| {
        let mut r: Vec<String> = e.rules.iter().map(|r| normal_rule(r)).collect();
        r.sort();
        r
    };
    if rules(want) != rules(have) {
        out.push("rrule");
    }
    if !same_moments(&want.rdates, &have.rdates) {
        out.push("rdate");
    }
    if !same_moments(&want.exdates, &have.exdates) {
        out.push("exdate");
    }
    let periods = |e: &PublicEvent| -> Vec<Moment> {
        e.periods
            .iter()
            .flat_map(|p| [p.start.clone(), p.end.clone()])
            .collect()
    };
    if !same_moments(&periods(want), &periods(have)) {
        out.push("rdate period");
    }
    let ids = |e: &PublicEvent| -> Vec<Moment> {
        e.overrides
            .iter()
            .map(|o| o.recurrence_id.clone())
            .collect()
    };
    if !same_moments(&ids(want), &ids(have)) {
        out.push("overrides");
    }
    out
}

/// Text as compared: line ends unified, outer blanks trimmed, empty as absent.
/// Control characters other than line breaks and tabs are dropped, as a target written by
/// calsync carries them (RFC 5545 forbids them in TEXT), so a source text holding one does not
/// fail the comparison forever.
fn normal_text(s: Option<&str>) -> Option<String> {
    s.map(|t| {
        t.replace("\r\n", "\n")
            .chars()
            .map(|c| if c == '\r' { '\n' } else { c })
            .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
            .collect::<String>()
            .trim()
            .to_string()
    })
    .filter(|t| !t.is_empty())
}

fn detail_differences(want: &PublicDetails, have: &PublicDetails, out: &mut Vec<String>, at: &str) {
    let mut differ = |name: &str, same: bool| {
        if !same {
            out.push(format!("{at}{name}"));
        }
    };
    differ(
        "title",
        normal_text(Some(&want.title)) == normal_text(Some(&have.title)),
    );
    differ("start", same_moment(&want.start, &have.start));
    differ("end", same_moment(&end_of(want), &end_of(have)));
    differ(
        "location",
        normal_text(want.location.as_deref()) == normal_text(have.location.as_deref()),
    );
    differ(
        "description",
        normal_text(want.description.as_deref()) == normal_text(have.description.as_deref()),
    );
    let cats = |d: &PublicDetails| -> BTreeSet<String> {
        d.categories
            .iter()
            .filter_map(|c| normal_text(Some(c)))
            .collect()
    };
    differ("categories", cats(want) == cats(have));
}

/// The names of published fields that differ (an override's as `override[<recurrence
/// id>].<field>`).
fn field_differences(want: &PublicEvent, have: &PublicEvent) -> Vec<String> {
    let mut out = Vec::new();
    detail_differences(&want.details, &have.details, &mut out, "");
    for wo in &want.overrides {
        if let Some(ho) = have
            .overrides
            .iter()
            .find(|h| same_moment(&h.recurrence_id, &wo.recurrence_id))
        {
            let at = format!("override[{}].", wo.recurrence_id);
            detail_differences(&wo.details, &ho.details, &mut out, &at);
        }
    }
    out
}

/// Runs `validate`; 0 when every check passed, 1 otherwise.
///
/// # Errors
/// Config (78), an unknown pair (64), no HTTP client (75).
pub fn run(global: &GlobalArgs, args: &ReportArgs) -> Result<i32, Error> {
    let now = crate::clock::run_now().map_err(Error::Usage)?;
    let (settings, selected) = report::load(global)?;
    let http = Http::new(&settings.net).map_err(Error::Setup)?;
    let store = match Store::open_existing(&settings.state) {
        Ok(store) => Some(store),
        Err(StoreError::Missing { .. }) => None,
        Err(e) => {
            log::warn!(event = "state.unusable"; "{e}; validating without the mapping");
            None
        }
    };
    let mut results: Vec<(String, Outcome)> = Vec::new();
    for name in &selected {
        let pair = report::pair(&settings, name);
        for outcome in validate_pair(&settings, pair, &http, store.as_ref(), now) {
            results.push((pair.name.clone(), outcome));
        }
    }
    let failed: Vec<&(String, Outcome)> = results.iter().filter(|(_, o)| !o.passed).collect();
    for (pair, o) in &failed {
        log::warn!(event = "validate.failed_check", pair = pair.as_str(), check = o.name,
                   events = o.ids.len() as u64; "check failed");
    }
    if !failed.is_empty() {
        audit_failures(&settings, store.as_ref(), &failed, now);
    }
    log::info!(event = "validate.finished", checks = results.len() as u64,
               failed = failed.len() as u64; "validate finished");

    let status = if failed.is_empty() { "pass" } else { "fail" };
    let document = serde_json::json!({
        "status": status,
        "checks": results.iter().map(|(pair, o)| serde_json::json!({
            "pair": pair,
            "name": o.name,
            "status": if o.passed { "pass" } else { "fail" },
            "ids": o.ids,
            "detail": o.detail,
        })).collect::<Vec<_>>(),
    });
    report::print(report::wants_json(args.format), &document, || {
        let mut t = Table::new(&["PAIR", "CHECK", "STATUS", "EVENTS"]);
        for (pair, o) in &results {
            t.row(vec![
                pair.clone(),
                o.name.into(),
                if o.passed { "pass" } else { "FAIL" }.into(),
                o.ids.len().to_string(),
            ]);
        }
        let mut out = format!("calsync validate: {status}\n");
        out.push_str(&t.render());
        for (pair, o) in failed.iter().filter(|(_, o)| !o.ids.is_empty()) {
            out.push_str(&format!("\n{pair} {}:\n", o.name));
            for id in &o.ids {
                out.push_str(&format!("  {id}\n"));
            }
        }
        out
    });
    Ok(if failed.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn validate_pair(
    settings: &Settings,
    pair: &Pair,
    http: &Http,
    store: Option<&Store>,
    now: DateTime<Utc>,
) -> Vec<Outcome> {
    let scratch;
    let cache = match store {
        Some(store) => store,
        None => match Store::in_memory() {
            Ok(s) => {
                scratch = s;
                &scratch
            }
            Err(e) => return vec![unreadable("source_read", &ProviderError::State(e))],
        },
    };
    let ctx = Context::new(settings, pair, http, cache, now);
    let window = ctx.window;
    let mut expected = Expected::default();
    let mut traced = BTreeMap::new();
    let read = providers::build_source(&ctx).and_then(|mut source| {
        let mut sink = |page: SourcePage| {
            expected.unreadable += page.skipped.len() as u64;
            for event in &page.events {
                expected.add(pair, event, &window, &mut traced);
            }
            Ok(())
        };
        source.read(None, &mut sink).map(|_| ())
    });
    if let Err(e) = read {
        return vec![unreadable("source_read", &e)];
    }
    let owned = match providers::build_target(&ctx).and_then(|mut t| t.list_owned()) {
        Ok(owned) => owned,
        Err(e) => return vec![unreadable("target_read", &e)],
    };
    if let Some(store) = store {
        let mapped = store.for_each_mapped(&pair.name, |row: MappedRow| {
            let tag = hashing::item_tag(&pair.name, &ItemKey(row.item_key));
            traced.entry(tag).or_insert(row.source_key);
            Ok::<_, StoreError>(())
        });
        if let Err(e) = mapped {
            log::warn!(event = "state.error", pair = pair.name.as_str(); "{e}; validating without the mapping");
        }
    }
    let bounds = Bounds {
        window_from: window.from,
        cutoff: retention_horizon(now, pair.retention_days, pair.window.past_days),
    };
    check(&expected, &traced, &owned, bounds)
}

fn unreadable(name: &'static str, e: &ProviderError) -> Outcome {
    Outcome {
        name,
        passed: false,
        ids: Vec::new(),
        detail: serde_json::json!({ "error": mask_emails(&e.to_string()), "exit_code": e.exit_code() }),
    }
}

/// Appends the failed checks to the audit log, when there is a state file and a key (names
/// and counts only).
fn audit_failures(
    settings: &Settings,
    store: Option<&Store>,
    failed: &[&(String, Outcome)],
    now: DateTime<Utc>,
) {
    let Some(store) = store else {
        return;
    };
    let key = match AuditKey::load_existing(settings.audit_key_file.as_deref(), &settings.state) {
        Ok(Some(key)) => key,
        Ok(None) => return,
        Err(e) => {
            log::error!(event = "audit.append_failed", kind = "validate.failed"; "{e}");
            return;
        }
    };
    let mut by_pair: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for (pair, o) in failed {
        by_pair.entry(pair.as_str()).or_default().push(o);
    }
    let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for (pair, outcomes) in by_pair {
        let detail = serde_json::json!({
            "failed": outcomes.iter().map(|o| o.name).collect::<Vec<_>>(),
            "events": outcomes.iter().map(|o| serde_json::json!([o.name, o.ids.len()])).collect::<Vec<_>>(),
        });
        match store.append_audit(&key, &ts, "validate.failed", Some(pair), &detail) {
            Ok(head) => log::info!(event = "audit.head", seq = head.seq, mac = head.mac.as_str(),
                                   head = head.to_string().as_str(); "audit chain head"),
            Err(e) => log::error!(event = "audit.append_failed", kind = "validate.failed"; "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Marking;
    use crate::model::PublicOverride;

    fn details(title: &str, start: &str, end: &str) -> PublicDetails {
        PublicDetails {
            start: start.parse().unwrap(),
            end: Some(end.parse().unwrap()),
            title: title.into(),
            location: None,
            description: None,
            categories: vec![],
        }
    }

    fn event(uid: &str, start: &str, end: &str) -> PublicEvent {
        PublicEvent {
            uid: uid.into(),
            details: details("Concert", start, end),
            rules: vec![],
            rdates: vec![],
            exdates: vec![],
            overrides: vec![],
            periods: vec![],
        }
    }

    fn owned(tag: &str, event: PublicEvent) -> OwnedEvent {
        OwnedEvent {
            target_id: format!("{tag}@calsync"),
            tag: tag.into(),
            etag: None,
            markings: vec![Marking::Class(Some("PUBLIC".into()))],
            foreign: vec![],
            dtstamp: None,
            event,
        }
    }

    fn bounds() -> Bounds {
        Bounds {
            window_from: "2026-11-01T00:00:00Z".parse().unwrap(),
            cutoff: "2026-06-01T00:00:00Z".parse().unwrap(),
        }
    }

    /// Two published events (one a weekly series with a private instance), both in the
    /// target as they should be.
    fn good() -> (Expected, BTreeMap<String, String>, Vec<OwnedEvent>) {
        let a = event("a@calsync", "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z");
        let mut b = event(
            "b@calsync",
            "2026-12-02T18:00:00[Europe/Berlin]",
            "2026-12-02T19:00:00[Europe/Berlin]",
        );
        b.rules = vec!["FREQ=WEEKLY;COUNT=5".into()];
        b.exdates = vec!["2026-12-09T18:00:00[Europe/Berlin]".parse().unwrap()];
        b.overrides = vec![PublicOverride {
            recurrence_id: "2026-12-16T18:00:00[Europe/Berlin]".parse().unwrap(),
            details: details(
                "Concert (moved)",
                "2026-12-16T19:00:00[Europe/Berlin]",
                "2026-12-16T20:00:00[Europe/Berlin]",
            ),
        }];
        let mut expected = Expected::default();
        expected.items.insert("a".into(), a.clone());
        expected.items.insert("b".into(), b.clone());
        expected.private.insert("p".into());
        expected.private_sources.insert("SRC-P".into());
        expected.withheld_sources.insert("SRC-P".into());
        expected.withheld_sources.insert("SRC-C".into());
        expected.private_instances.insert(
            "b".into(),
            ["2026-12-09T18:00:00[Europe/Berlin]".parse().unwrap()].into(),
        );
        let traced: BTreeMap<String, String> = [
            ("a", "SRC-A"),
            ("b", "SRC-B"),
            ("p", "SRC-P"),
            ("p2", "SRC-P"),
            ("c", "SRC-C"),
        ]
        .into_iter()
        .map(|(t, s)| (t.to_string(), s.to_string()))
        .collect();
        // The target reads a zoned time back in UTC: still the same.
        let mut a_back = a;
        a_back.details.start = "2026-12-01T10:00:00Z".parse().unwrap();
        (expected, traced, vec![owned("a", a_back), owned("b", b)])
    }

    fn failing(outcomes: &[Outcome]) -> Vec<(&'static str, Vec<String>)> {
        outcomes
            .iter()
            .filter(|o| !o.passed)
            .map(|o| (o.name, o.ids.clone()))
            .collect()
    }

    #[test]
    fn a_faithful_target_passes_every_check() {
        let (expected, traced, target) = good();
        let outcomes = check(&expected, &traced, &target, bounds());
        assert_eq!(outcomes.len(), 7);
        assert_eq!(failing(&outcomes), vec![]);
    }

    #[test]
    fn each_fault_fails_the_check_that_names_it() {
        type Tamper = fn(&mut Vec<OwnedEvent>);
        /// What is done to a faithful target, and the checks that must fail, with their ids.
        type Case = (
            &'static str,
            Tamper,
            &'static [(&'static str, &'static [&'static str])],
        );
        let cases: &[Case] = &[
            (
                "a title altered",
                |t| t[0].event.details.title = "Hacked".into(),
                &[("fields_equal", &["a@calsync"])],
            ),
            (
                "an override's location altered",
                |t| t[1].event.overrides[0].details.location = Some("Crypt".into()),
                &[("fields_equal", &["b@calsync"])],
            ),
            (
                "an event duplicated under another id",
                |t| {
                    let mut copy = t[0].clone();
                    copy.target_id = "copy-of-a".into();
                    t.push(copy);
                },
                &[
                    ("counts_match", &["copy-of-a"]),
                    ("no_duplicates", &["a@calsync", "copy-of-a"]),
                ],
            ),
            (
                "a private event injected",
                |t| {
                    t.push(owned(
                        "p",
                        event("p@calsync", "2026-12-05T10:00:00Z", "2026-12-05T11:00:00Z"),
                    ))
                },
                &[
                    ("counts_match", &["p@calsync"]),
                    ("no_private_event", &["p@calsync"]),
                ],
            ),
            (
                "an occurrence of a private series (traced by the mapping)",
                |t| {
                    t.push(owned(
                        "p2",
                        event("p2@calsync", "2026-12-05T10:00:00Z", "2026-12-05T11:00:00Z"),
                    ))
                },
                &[
                    ("counts_match", &["p2@calsync"]),
                    ("no_private_event", &["p2@calsync"]),
                ],
            ),
            (
                "a private instance put back into the series",
                |t| t[1].event.exdates.clear(),
                &[
                    ("no_private_event", &["b@calsync"]),
                    ("series_intact", &["b@calsync"]),
                ],
            ),
            (
                "an event deleted from the target",
                |t| {
                    t.remove(0);
                },
                &[("counts_match", &["a@calsync"])],
            ),
            (
                "an event marked private in the target",
                |t| t[0].markings = vec![Marking::Class(Some("PRIVATE".into()))],
                &[("all_public", &["a@calsync"])],
            ),
            (
                "attendees in the target",
                |t| t[0].foreign = vec!["ATTENDEE".into()],
                &[("all_public", &["a@calsync"])],
            ),
            (
                "the rule changed",
                |t| t[1].event.rules = vec!["FREQ=DAILY;COUNT=5".into()],
                &[("series_intact", &["b@calsync"])],
            ),
            (
                "a kept-past event older than the cutoff",
                |t| {
                    t.push(owned(
                        "old",
                        event(
                            "old@calsync",
                            "2026-01-01T10:00:00Z",
                            "2026-01-01T11:00:00Z",
                        ),
                    ))
                },
                &[("none_older_than_cutoff", &["old@calsync"])],
            ),
            (
                "a past event of a cancelled source item",
                |t| {
                    t.push(owned(
                        "c",
                        event("c@calsync", "2026-10-01T10:00:00Z", "2026-10-01T11:00:00Z"),
                    ))
                },
                &[("counts_match", &["c@calsync"])],
            ),
        ];
        for (what, tamper, want) in cases {
            let (expected, traced, mut target) = good();
            tamper(&mut target);
            let outcomes = check(&expected, &traced, &target, bounds());
            let want: Vec<(&str, Vec<String>)> = want
                .iter()
                .map(|(n, ids)| (*n, ids.iter().map(|s| s.to_string()).collect()))
                .collect();
            assert_eq!(failing(&outcomes), want, "{what}");
        }
    }

    #[test]
    fn an_event_kept_past_the_window_is_expected_until_the_cutoff() {
        let (expected, traced, mut target) = good();
        target.push(owned(
            "past",
            event(
                "past@calsync",
                "2026-10-01T10:00:00Z",
                "2026-10-01T11:00:00Z",
            ),
        ));
        let outcomes = check(&expected, &traced, &target, bounds());
        assert_eq!(failing(&outcomes), vec![]);
        assert_eq!(outcomes[0].detail["kept_past_window"], 1);
    }

    #[test]
    fn classes_not_read_back_are_counted_and_an_absent_class_fails() {
        let (expected, traced, mut target) = good();
        target[0].markings = vec![];
        let outcomes = check(&expected, &traced, &target, bounds());
        assert_eq!(failing(&outcomes), vec![]);
        assert_eq!(outcomes[2].detail["class_not_read_back"], 1);
        target[1].markings = vec![Marking::Class(Some("PUBLIC".into())), Marking::Class(None)];
        let outcomes = check(&expected, &traced, &target, bounds());
        assert_eq!(
            failing(&outcomes),
            vec![("all_public", vec!["b@calsync".to_string()])]
        );
    }

    #[test]
    fn rules_compare_without_part_order_and_texts_without_line_end_style() {
        assert_eq!(
            normal_rule("RRULE:BYDAY=MO;FREQ=WEEKLY"),
            normal_rule("FREQ=WEEKLY;BYDAY=MO")
        );
        assert_eq!(normal_text(Some("a\r\nb \n")), normal_text(Some("a\nb")));
        assert_eq!(normal_text(Some("  ")), None);
    }
}
