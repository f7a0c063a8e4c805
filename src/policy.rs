//! What may be published: the rules of DESIGN.md that must never be wrong.
//!
//! Pure: a source item, the pair's rules, the window and the pair name in; a [`Decision`] out.
//! No I/O, no clock (the window carries `now`). Every privacy judgement in calsync is made by
//! [`is_public`], and it fails closed: only a value that positively means "public" publishes.

use crate::hashing;
use crate::model::{
    Details, ItemKey, Marking, Moment, PublicDetails, PublicEvent, PublicOverride, SourceEvent,
};
use crate::recurrence;
use crate::scrub;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use std::collections::BTreeSet;

/// A field that may travel besides the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Title,
    Location,
    Description,
    Categories,
}

impl Field {
    pub const ALL: [Field; 4] = [
        Field::Title,
        Field::Location,
        Field::Description,
        Field::Categories,
    ];
}

/// How a series reaches the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecurrenceMode {
    /// The series itself: RRULE, RDATE, EXDATE and overridden instances.
    #[default]
    Preserve,
    /// Each occurrence in the window as an event of its own.
    Expand,
}

/// How Google's `visibility: "default"` is read for a source calendar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Visibility {
    #[default]
    Private,
    Public,
}

/// A pair's publishing rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub fields: BTreeSet<Field>,
    pub exclude_categories: Vec<String>,
    pub recurrence: RecurrenceMode,
    pub default_visibility: Visibility,
    /// With `expand`, the most occurrences of one series mirrored (the earliest in the
    /// window).
    pub max_occurrences: usize,
}

/// The window of time a run mirrors, fixed at the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Events that ended before this are not mirrored.
    pub from: DateTime<Utc>,
    /// Events that start after this are not mirrored.
    pub to: DateTime<Utc>,
}

impl Window {
    pub fn around(now: DateTime<Utc>, past_days: u32, future_days: u32) -> Window {
        Window {
            from: now - Duration::days(i64::from(past_days)),
            to: now + Duration::days(i64::from(future_days)),
        }
    }
}

/// Why an item is not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Withheld {
    /// Not positively public (private, personal, confidential, unknown or missing marking).
    NotPublic,
    Cancelled,
    /// A category the pair excludes.
    Excluded,
    /// Starts after the window, or has no instance in it.
    OutOfWindow,
    /// The item cannot be read faithfully (e.g. an invalid recurrence rule).
    Invalid,
}

impl Withheld {
    /// Whether withholding this item withdraws it on the source's explicit word — marked
    /// private, personal or confidential, cancelled, or in an excluded category — rather than
    /// for want of something (an unknown or missing marking, an unreadable item, a move out
    /// of the window). A withdrawal is removed from the target however many there are; the
    /// deletion guard holds back only the other kind (DESIGN.md, "Never mass-delete").
    pub fn is_withdrawal(self, details: &Details, rules: &Rules) -> bool {
        match self {
            Withheld::Cancelled | Withheld::Excluded => true,
            Withheld::NotPublic => {
                is_explicitly_private(&details.marking, rules.default_visibility)
            }
            Withheld::OutOfWindow | Withheld::Invalid => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Withheld::NotPublic => "not_public",
            Withheld::Cancelled => "cancelled",
            Withheld::Excluded => "excluded",
            Withheld::OutOfWindow => "out_of_window",
            Withheld::Invalid => "invalid",
        }
    }
}

/// One item to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub item: ItemKey,
    pub event: PublicEvent,
    /// When the item's last instance ends; `None` for a series without end.
    pub ends_at: Option<DateTime<Utc>>,
}

/// What the policy decides for one source item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Publish these items (one, or one per occurrence with `expand`; never empty).
    Publish {
        items: Vec<Publish>,
        /// Overridden instances withheld from the series (each private/cancelled/excluded one).
        withheld_instances: usize,
        /// Occurrences in the window left out because the series has more than
        /// `max_occurrences` (`expand` only; the earliest are kept).
        capped: usize,
    },
    /// Publish nothing of this item; anything published of it must go.
    Withhold(Withheld),
    /// The item ended before the window: it is neither published anew nor changed; what was
    /// published of it stays until `cleanup` (unless it turns private, which is `Withhold`).
    Past,
}

/// Is an event with this marking positively public? (DESIGN.md rule 1; fail closed.)
pub fn is_public(marking: &Marking, default_visibility: Visibility) -> bool {
    fn is(value: &str, word: &str) -> bool {
        value.trim().eq_ignore_ascii_case(word)
    }
    match marking {
        // RFC 5545 §3.8.1.3: absent means PUBLIC; unknown values are PRIVATE.
        Marking::Class(None) => true,
        Marking::Class(Some(v)) => is(v, "PUBLIC"),
        // Graph always sends sensitivity; a missing one is not a public one.
        Marking::Sensitivity(Some(v)) => is(v, "normal"),
        Marking::Sensitivity(None) => false,
        Marking::Visibility(Some(v)) if is(v, "public") => true,
        Marking::Visibility(Some(v)) if is(v, "default") => {
            default_visibility == Visibility::Public
        }
        // Google leaves visibility out when it is "default".
        Marking::Visibility(None) => default_visibility == Visibility::Public,
        Marking::Visibility(Some(_)) => false,
    }
}

/// Is a marking a known value that says "not public" — as opposed to one that is missing or
/// unknown? Google's `default` (written or, as Google does, left out) counts when the pair
/// reads the calendar's default as private: the documentation defines an absent visibility
/// as `default`, so it is a statement, not a gap.
pub fn is_explicitly_private(marking: &Marking, default_visibility: Visibility) -> bool {
    let any = |v: &str, words: &[&str]| words.iter().any(|w| v.trim().eq_ignore_ascii_case(w));
    match marking {
        Marking::Class(Some(v)) => any(v, &["PRIVATE", "CONFIDENTIAL"]),
        Marking::Sensitivity(Some(v)) => any(v, &["personal", "private", "confidential"]),
        Marking::Visibility(Some(v)) if any(v, &["private", "confidential"]) => true,
        Marking::Visibility(Some(v)) if any(v, &["default"]) => {
            default_visibility == Visibility::Private
        }
        Marking::Visibility(None) => default_visibility == Visibility::Private,
        Marking::Class(None) | Marking::Sensitivity(None) | Marking::Visibility(Some(_)) => false,
    }
}

/// Does a target event carry the explicit public marking calsync writes (DESIGN.md rule 4:
/// `CLASS:PUBLIC`, `sensitivity` normal, `visibility` public)? Stricter than [`is_public`]:
/// an absent marking, which a source may mean as public, is not what calsync writes, so a
/// target event without one was changed by someone else (or not written by calsync).
pub fn is_marked_public(marking: &Marking) -> bool {
    match marking {
        Marking::Class(Some(_)) | Marking::Sensitivity(Some(_)) => {
            is_public(marking, Visibility::Private)
        }
        Marking::Visibility(Some(v)) => v.trim().eq_ignore_ascii_case("public"),
        Marking::Class(None) | Marking::Sensitivity(None) | Marking::Visibility(None) => false,
    }
}

/// Why these details (of an event or an overridden instance) may not be published, if so.
pub fn withheld_reason(details: &Details, rules: &Rules) -> Option<Withheld> {
    if !is_public(&details.marking, rules.default_visibility) {
        return Some(Withheld::NotPublic);
    }
    if details.cancelled {
        return Some(Withheld::Cancelled);
    }
    let excluded = details.categories.iter().any(|c| {
        rules
            .exclude_categories
            .iter()
            .any(|x| x.trim().eq_ignore_ascii_case(c.trim()))
    });
    if excluded {
        return Some(Withheld::Excluded);
    }
    None
}

/// The published form of an event's fields: only the chosen fields, join links cut out.
fn public_details(
    details: &Details,
    start: Moment,
    end: Option<Moment>,
    rules: &Rules,
) -> PublicDetails {
    let chosen = |f: Field| rules.fields.contains(&f);
    let title = if chosen(Field::Title) {
        details
            .title
            .as_deref()
            .and_then(scrub::scrub_location)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Busy".to_string())
    } else {
        "Busy".to_string()
    };
    let location = if chosen(Field::Location) {
        details.location.as_deref().and_then(scrub::scrub_location)
    } else {
        None
    };
    let description = if chosen(Field::Description) {
        details.description.as_deref().and_then(scrub::scrub_text)
    } else {
        None
    };
    let categories = if chosen(Field::Categories) {
        let set: BTreeSet<String> = scrub::scrub_categories(&details.categories)
            .into_iter()
            .collect();
        set.into_iter().collect()
    } else {
        Vec::new()
    };
    PublicDetails {
        start,
        end,
        title,
        location,
        description,
        categories,
    }
}

/// The most instances of one series looked at in one window (a bound on runaway rules).
pub const MAX_INSTANCES: usize = 20_000;

/// Decides what of one source item may be published (DESIGN.md rules 1–4 and the window).
pub fn decide(pair: &str, event: &SourceEvent, rules: &Rules, window: &Window) -> Decision {
    if let Some(reason) = withheld_reason(&event.main, rules) {
        return Decision::Withhold(reason);
    }
    match &event.recurrence {
        None => decide_single(pair, event, rules, window),
        Some(_) => decide_series(pair, event, rules, window),
    }
}

fn decide_single(pair: &str, event: &SourceEvent, rules: &Rules, window: &Window) -> Decision {
    let main = &event.main;
    let end = main.effective_end().to_utc();
    let start = main.start.to_utc();
    if start > window.to {
        return Decision::Withhold(Withheld::OutOfWindow);
    }
    if end < window.from {
        return Decision::Past;
    }
    let item = ItemKey::whole(&event.key);
    let public = PublicEvent {
        uid: hashing::target_uid(pair, &item),
        details: public_details(main, main.start.clone(), main.end.clone(), rules),
        rules: vec![],
        rdates: vec![],
        exdates: vec![],
        overrides: vec![],
        periods: vec![],
    };
    Decision::Publish {
        items: vec![Publish {
            item,
            event: public,
            ends_at: Some(end),
        }],
        withheld_instances: 0,
        capped: 0,
    }
}

fn decide_series(pair: &str, event: &SourceEvent, rules: &Rules, window: &Window) -> Decision {
    let main = &event.main;
    let rec = event
        .recurrence
        .as_ref()
        .expect("a series has a recurrence");
    let main_end = main.effective_end();

    // Overridden instances: a withheld one becomes an EXDATE; a public one is kept.
    let mut exdates: BTreeSet<Moment> = rec.exdates.iter().cloned().collect();
    let mut kept = Vec::new();
    let mut withheld_instances = 0;
    for ov in &event.overrides {
        if withheld_reason(&ov.details, rules).is_some() {
            exdates.insert(ov.recurrence_id.clone());
            withheld_instances += 1;
        } else {
            kept.push(ov);
        }
    }
    let effective = crate::model::Recurrence {
        rules: rec.rules.clone(),
        rdates: rec.rdates.clone(),
        exdates: exdates.iter().cloned().collect(),
        periods: rec.periods.clone(),
        exrules: rec.exrules.clone(),
    };
    // EXRULE occurrences are published as EXDATEs (many clients ignore EXRULE), up to the
    // end of the window: instances after it are not mirrored anyway.
    if !rec.exrules.is_empty() {
        let stop = match &main.start {
            Moment::Zoned(_, tz) => window.to.with_timezone(tz).naive_local(),
            Moment::Defined(_, zone) => zone.local(window.to),
            _ => window.to.naive_utc(),
        } + Duration::days(1);
        match recurrence::exrule_dates(&main.start, rec, stop) {
            Ok(dates) => exdates.extend(dates),
            Err(_) => return Decision::Withhold(Withheld::Invalid),
        }
    }

    let in_window = match recurrence::instances(
        &main.start,
        &main_end,
        &effective,
        window.from,
        window.to,
        MAX_INSTANCES,
    ) {
        Ok(list) => list,
        Err(_) => return Decision::Withhold(Withheld::Invalid),
    };
    let series_end = match recurrence::series_end(&main.start, &main_end, &effective) {
        Ok(end) => end,
        Err(_) => return Decision::Withhold(Withheld::Invalid),
    };
    let overlaps =
        |d: &Details| d.start.to_utc() <= window.to && d.effective_end().to_utc() >= window.from;
    let overridden: BTreeSet<&Moment> = kept.iter().map(|o| &o.recurrence_id).collect();
    // Rule instances replaced by a kept override count only through the override's own time.
    let rule_hits = in_window
        .iter()
        .filter(|i| !overridden.contains(&i.recurrence_id))
        .count();
    let override_hits = kept.iter().filter(|o| overlaps(&o.details)).count();
    if rule_hits + override_hits == 0 {
        let last_override_end = kept
            .iter()
            .map(|o| o.details.effective_end().to_utc())
            .max();
        let ended = match series_end {
            Some(end) => last_override_end.is_none_or(|o| o < window.from) && end < window.from,
            None => false,
        };
        return if ended {
            Decision::Past
        } else {
            Decision::Withhold(Withheld::OutOfWindow)
        };
    }

    match rules.recurrence {
        RecurrenceMode::Preserve => {
            let item = ItemKey::whole(&event.key);
            let mut overrides: Vec<PublicOverride> = kept
                .iter()
                .map(|o| PublicOverride {
                    recurrence_id: o.recurrence_id.clone(),
                    details: public_details(
                        &o.details,
                        o.details.start.clone(),
                        o.details.end.clone(),
                        rules,
                    ),
                })
                .collect();
            overrides.sort_by(|a, b| a.recurrence_id.cmp(&b.recurrence_id));
            let mut rdates: Vec<Moment> = rec.rdates.clone();
            rdates.sort();
            rdates.dedup();
            let mut periods = rec.periods.clone();
            periods.sort();
            periods.dedup();
            let ends_at = series_end.map(|e| {
                kept.iter()
                    .map(|o| o.details.effective_end().to_utc())
                    .fold(e, DateTime::max)
            });
            let public = PublicEvent {
                uid: hashing::target_uid(pair, &item),
                details: public_details(main, main.start.clone(), main.end.clone(), rules),
                rules: rec.rules.clone(),
                rdates,
                exdates: exdates.into_iter().collect(),
                overrides,
                periods,
            };
            Decision::Publish {
                items: vec![Publish {
                    item,
                    event: public,
                    ends_at,
                }],
                withheld_instances,
                capped: 0,
            }
        }
        RecurrenceMode::Expand => {
            let mut items = Vec::new();
            for inst in in_window
                .iter()
                .filter(|i| !overridden.contains(&i.recurrence_id))
            {
                let end = (inst.end != inst.start || main.end.is_some()).then(|| inst.end.clone());
                items.push(expanded(
                    pair,
                    event,
                    &inst.recurrence_id,
                    public_details(main, inst.start.clone(), end, rules),
                    inst.end.to_utc(),
                ));
            }
            for ov in kept.iter().filter(|o| overlaps(&o.details)) {
                items.push(expanded(
                    pair,
                    event,
                    &ov.recurrence_id,
                    public_details(
                        &ov.details,
                        ov.details.start.clone(),
                        ov.details.end.clone(),
                        rules,
                    ),
                    ov.details.effective_end().to_utc(),
                ));
            }
            // A bound on what one series may put in the target: the earliest occurrences.
            items.sort_by_key(|i| i.event.details.start.to_utc());
            let capped = items.len().saturating_sub(rules.max_occurrences);
            items.truncate(rules.max_occurrences);
            items.sort_by(|a, b| a.item.cmp(&b.item));
            Decision::Publish {
                items,
                withheld_instances,
                capped,
            }
        }
    }
}

fn expanded(
    pair: &str,
    event: &SourceEvent,
    recurrence_id: &Moment,
    details: PublicDetails,
    ends_at: DateTime<Utc>,
) -> Publish {
    let item = ItemKey::occurrence(&event.key, recurrence_id);
    Publish {
        event: PublicEvent {
            uid: hashing::target_uid(pair, &item),
            details,
            rules: vec![],
            rdates: vec![],
            exdates: vec![],
            overrides: vec![],
            periods: vec![],
        },
        item,
        ends_at: Some(ends_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_explicit_markings_withdraw() {
        use Marking::*;
        let s = |v: &str| Some(v.to_string());
        let private = super::Visibility::Private;
        let cases: &[(Marking, super::Visibility, bool)] = &[
            (Class(s("PRIVATE")), private, true),
            (Class(s("confidential")), private, true),
            (Class(s("X-SECRET")), private, false),
            (Class(None), private, false),
            (Sensitivity(s("personal")), private, true),
            (Sensitivity(s("private")), private, true),
            (Sensitivity(s("confidential")), private, true),
            (Sensitivity(s("secret")), private, false),
            (Sensitivity(None), private, false),
            (Visibility(s("private")), private, true),
            (Visibility(s("confidential")), private, true),
            (Visibility(s("default")), private, true),
            (Visibility(None), private, true),
            (Visibility(None), super::Visibility::Public, false),
            (Visibility(s("unheard-of")), private, false),
        ];
        for (m, default, want) in cases {
            assert_eq!(
                is_explicitly_private(m, *default),
                *want,
                "{m:?} {default:?}"
            );
        }
    }

    #[test]
    fn a_target_must_carry_the_explicit_public_marking() {
        use Marking::*;
        let s = |v: &str| Some(v.to_string());
        let cases: &[(Marking, bool)] = &[
            (Class(s("PUBLIC")), true),
            (Class(s("public")), true),
            (Class(None), false),
            (Class(s("PRIVATE")), false),
            (Sensitivity(s("normal")), true),
            (Sensitivity(None), false),
            (Sensitivity(s("personal")), false),
            (Visibility(s("public")), true),
            (Visibility(s("default")), false),
            (Visibility(None), false),
        ];
        for (m, want) in cases {
            assert_eq!(is_marked_public(m), *want, "{m:?}");
        }
    }
    use crate::model::{Override, Recurrence, SourceKey};
    use chrono::TimeZone;

    fn rules() -> Rules {
        Rules {
            fields: Field::ALL.iter().copied().collect(),
            exclude_categories: vec!["Staff only".into()],
            recurrence: RecurrenceMode::Preserve,
            default_visibility: Visibility::Private,
            max_occurrences: 1000,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    fn window() -> Window {
        Window::around(now(), 30, 365)
    }

    fn details(start: &str, end: &str, marking: Marking) -> Details {
        Details {
            start: start.parse().unwrap(),
            end: Some(end.parse().unwrap()),
            title: Some("Parish council".into()),
            location: Some("Parish hall".into()),
            description: Some("Agenda follows.".into()),
            categories: vec!["Community".into()],
            marking,
            cancelled: false,
        }
    }

    fn single(marking: Marking) -> SourceEvent {
        SourceEvent {
            key: SourceKey("uid-1@intranet.example".into()),
            main: details(
                "2026-12-03T19:00:00[Europe/Berlin]",
                "2026-12-03T21:00:00[Europe/Berlin]",
                marking,
            ),
            recurrence: None,
            overrides: vec![],
        }
    }

    fn class(v: Option<&str>) -> Marking {
        Marking::Class(v.map(str::to_string))
    }

    #[test]
    fn only_positively_public_markings_publish() {
        use super::Visibility::{Private as P, Public as U};
        use Marking::{Class, Sensitivity, Visibility as Vis};
        let s = |v: &str| Some(v.to_string());
        let cases: &[(Marking, super::Visibility, bool)] = &[
            (Class(None), P, true),
            (Class(s("PUBLIC")), P, true),
            (Class(s("public")), P, true),
            (Class(s("PRIVATE")), P, false),
            (Class(s("private")), P, false),
            (Class(s("CONFIDENTIAL")), P, false),
            (Class(s("X-STAFF")), P, false),
            (Class(s("")), P, false),
            (Sensitivity(s("normal")), P, true),
            (Sensitivity(s("personal")), P, false),
            (Sensitivity(s("private")), P, false),
            (Sensitivity(s("confidential")), P, false),
            (Sensitivity(s("unknownFutureValue")), P, false),
            (Sensitivity(None), P, false),
            (Vis(s("public")), P, true),
            (Vis(s("default")), P, false),
            (Vis(s("default")), U, true),
            (Vis(None), P, false),
            (Vis(None), U, true),
            (Vis(s("private")), U, false),
            (Vis(s("confidential")), U, false),
            (Vis(s("secret")), U, false),
        ];
        for (marking, default, want) in cases {
            assert_eq!(
                is_public(marking, *default),
                *want,
                "{marking:?} with default {default:?}"
            );
        }
    }

    #[test]
    fn private_cancelled_and_excluded_events_are_withheld() {
        let cases: &[(&str, SourceEvent, Withheld)] = &[
            (
                "private",
                single(class(Some("PRIVATE"))),
                Withheld::NotPublic,
            ),
            (
                "cancelled",
                {
                    let mut e = single(class(None));
                    e.main.cancelled = true;
                    e
                },
                Withheld::Cancelled,
            ),
            (
                "excluded",
                {
                    let mut e = single(class(None));
                    e.main.categories = vec!["staff ONLY ".into()];
                    e
                },
                Withheld::Excluded,
            ),
        ];
        for (what, event, want) in cases {
            assert_eq!(
                decide("p", event, &rules(), &window()),
                Decision::Withhold(*want),
                "{what}"
            );
        }
    }

    #[test]
    fn a_public_event_publishes_only_chosen_fields_under_a_derived_uid() {
        let mut r = rules();
        r.fields = [Field::Location].into_iter().collect();
        let Decision::Publish { items, .. } = decide("p", &single(class(None)), &r, &window())
        else {
            panic!("should publish")
        };
        let e = &items[0].event;
        assert_eq!(e.details.title, "Busy");
        assert_eq!(e.details.location.as_deref(), Some("Parish hall"));
        assert_eq!(e.details.description, None);
        assert!(e.details.categories.is_empty());
        assert!(!e.uid.contains("intranet"));
        assert_eq!(
            e.uid,
            hashing::target_uid("p", &ItemKey("uid-1@intranet.example".into()))
        );
    }

    #[test]
    fn the_window_bounds_what_is_mirrored() {
        let mut far = single(class(None));
        far.main = details("2028-01-10T10:00:00Z", "2028-01-10T11:00:00Z", class(None));
        assert_eq!(
            decide("p", &far, &rules(), &window()),
            Decision::Withhold(Withheld::OutOfWindow)
        );
        let mut old = single(class(None));
        old.main = details("2026-09-01T10:00:00Z", "2026-09-01T11:00:00Z", class(None));
        assert_eq!(decide("p", &old, &rules(), &window()), Decision::Past);
        // A private old event is still withheld (so it is removed), never "past".
        old.main.marking = class(Some("PRIVATE"));
        assert_eq!(
            decide("p", &old, &rules(), &window()),
            Decision::Withhold(Withheld::NotPublic)
        );
    }

    /// A weekly series (Europe/Berlin, crossing the 2027-03-28 DST change) with one PRIVATE
    /// overridden occurrence and one public moved occurrence.
    fn series() -> SourceEvent {
        let mut private = details(
            "2027-03-10T18:00:00[Europe/Berlin]",
            "2027-03-10T19:30:00[Europe/Berlin]",
            class(Some("PRIVATE")),
        );
        private.title = Some("Counselling session K. Miller".into());
        let moved = details(
            "2027-04-08T19:00:00[Europe/Berlin]",
            "2027-04-08T20:30:00[Europe/Berlin]",
            class(None),
        );
        SourceEvent {
            key: SourceKey("choir@parish".into()),
            main: details(
                "2027-03-03T18:00:00[Europe/Berlin]",
                "2027-03-03T19:30:00[Europe/Berlin]",
                class(Some("PUBLIC")),
            ),
            recurrence: Some(Recurrence {
                rules: vec!["FREQ=WEEKLY;COUNT=8".into()],
                rdates: vec![],
                exdates: vec![],
                periods: vec![],
                exrules: vec![],
            }),
            overrides: vec![
                Override {
                    recurrence_id: "2027-03-10T18:00:00[Europe/Berlin]".parse().unwrap(),
                    details: private,
                },
                Override {
                    recurrence_id: "2027-04-07T18:00:00[Europe/Berlin]".parse().unwrap(),
                    details: moved,
                },
            ],
        }
    }

    #[test]
    fn a_private_override_becomes_an_exdate_and_the_series_is_published() {
        let Decision::Publish {
            items,
            withheld_instances,
            ..
        } = decide("p", &series(), &rules(), &window())
        else {
            panic!("the series should publish")
        };
        assert_eq!(withheld_instances, 1);
        assert_eq!(items.len(), 1);
        let e = &items[0].event;
        assert_eq!(e.rules, vec!["FREQ=WEEKLY;COUNT=8".to_string()]);
        assert_eq!(
            e.exdates,
            vec![
                "2027-03-10T18:00:00[Europe/Berlin]"
                    .parse::<Moment>()
                    .unwrap()
            ]
        );
        assert_eq!(e.overrides.len(), 1);
        assert_eq!(
            e.overrides[0].details.start.to_string(),
            "2027-04-08T19:00:00[Europe/Berlin]"
        );
        assert!(!e.canonical_json().contains("Counselling"));
        // The series ends with its last (eighth) instance, 2027-04-21, after the DST change.
        let ends = items[0].ends_at.unwrap();
        assert_eq!(ends, Utc.with_ymd_and_hms(2027, 4, 21, 17, 30, 0).unwrap());
    }

    #[test]
    fn a_private_series_master_withholds_the_whole_series() {
        let mut s = series();
        s.main.marking = class(Some("CONFIDENTIAL"));
        s.overrides[1].details.marking = class(Some("PUBLIC"));
        assert_eq!(
            decide("p", &s, &rules(), &window()),
            Decision::Withhold(Withheld::NotPublic)
        );
    }

    #[test]
    fn expand_mirrors_each_public_occurrence_across_dst() {
        let mut r = rules();
        r.recurrence = RecurrenceMode::Expand;
        let Decision::Publish { items, .. } = decide("p", &series(), &r, &window()) else {
            panic!("should publish")
        };
        // 8 instances, one private (withheld), one moved (published at its new time).
        assert_eq!(items.len(), 7);
        let starts: BTreeSet<String> = items
            .iter()
            .map(|i| i.event.details.start.to_string())
            .collect();
        assert!(
            starts.contains("2027-03-24T18:00:00[Europe/Berlin]"),
            "{starts:?}"
        );
        // After the change to summer time the wall clock stays at 18:00.
        assert!(
            starts.contains("2027-03-31T18:00:00[Europe/Berlin]"),
            "{starts:?}"
        );
        assert!(
            starts.contains("2027-04-08T19:00:00[Europe/Berlin]"),
            "{starts:?}"
        );
        assert!(!starts.contains("2027-03-10T18:00:00[Europe/Berlin]"));
        assert!(!starts.contains("2027-04-07T18:00:00[Europe/Berlin]"));
        let keys: BTreeSet<&ItemKey> = items.iter().map(|i| &i.item).collect();
        assert_eq!(keys.len(), 7, "each occurrence has its own key");
    }

    #[test]
    fn expand_mirrors_at_most_max_occurrences_the_earliest() {
        let mut r = rules();
        r.recurrence = RecurrenceMode::Expand;
        r.max_occurrences = 3;
        let Decision::Publish { items, capped, .. } = decide("p", &series(), &r, &window()) else {
            panic!("should publish")
        };
        assert_eq!((items.len(), capped), (3, 4));
        let mut starts: Vec<DateTime<Utc>> = items
            .iter()
            .map(|i| i.event.details.start.to_utc())
            .collect();
        starts.sort();
        let Decision::Publish { items: all, .. } = decide(
            "p",
            &series(),
            &Rules {
                max_occurrences: 1000,
                ..r.clone()
            },
            &window(),
        ) else {
            panic!("should publish")
        };
        let mut every: Vec<DateTime<Utc>> =
            all.iter().map(|i| i.event.details.start.to_utc()).collect();
        every.sort();
        assert_eq!(starts, every[..3]);
    }

    #[test]
    fn a_series_without_instances_in_the_window_is_not_published() {
        let mut s = series();
        s.recurrence.as_mut().unwrap().rules = vec!["FREQ=WEEKLY;COUNT=2".into()];
        s.main = details(
            "2026-01-07T18:00:00[Europe/Berlin]",
            "2026-01-07T19:00:00[Europe/Berlin]",
            class(None),
        );
        s.overrides.clear();
        assert_eq!(decide("p", &s, &rules(), &window()), Decision::Past);
    }

    #[test]
    fn join_links_never_travel() {
        let mut e = single(class(None));
        e.main.description = Some(
            "Agenda.\nJoin Zoom Meeting\nhttps://us02web.zoom.us/j/8123?pwd=x\nMeeting ID: 8123\n"
                .into(),
        );
        e.main.location = Some("https://meet.google.com/abc-defg-hij".into());
        let Decision::Publish { items, .. } = decide("p", &e, &rules(), &window()) else {
            panic!()
        };
        let json = items[0].event.canonical_json();
        assert!(
            !json.contains("zoom.us") && !json.contains("meet.google.com"),
            "{json}"
        );
        assert_eq!(
            items[0].event.details.description.as_deref(),
            Some("Agenda.")
        );
        assert_eq!(items[0].event.details.location, None);
    }
}
