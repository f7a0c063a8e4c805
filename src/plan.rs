//! The plan: what the source wants published against what is published → creates, updates,
//! deletes. And the deletion guard, judged on the plan before anything is applied.
//!
//! Pure: rows of keys and hashes in, a [`Plan`] value out, by one exhaustive `match` per item
//! ([`action_for`]); each arm is a row of DESIGN.md a reviewer can check. Equal input gives an
//! equal plan (rows arrive ordered by item key), so `--dry-run` output is reproducible.

/// The deletion guard's thresholds (DESIGN.md, "Never mass-delete"). The planner owns them;
/// the configuration fills them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardLimits {
    pub max_delete_percent: u32,
    pub max_delete_min: u32,
}

/// What the policy decided for one source item in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceOutcome {
    /// Its items are staged; any other item of it that is mapped must go.
    Publish,
    /// Nothing of it may be published, for want of something: a marking missing or unknown,
    /// an item that cannot be read, a move out of the window.
    Withhold,
    /// Nothing of it may be published, on the source's explicit word: private, personal or
    /// confidential, cancelled, or newly excluded. Never held back by the guard.
    Withdraw,
    /// Ended before the window: what is published of it stays as it is.
    Past,
    /// The source deleted it.
    Removed,
    /// The source listed it as exactly what it was when last read: what was decided and
    /// published of it stands.
    Unchanged,
}

impl SourceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceOutcome::Publish => "publish",
            SourceOutcome::Withhold => "withhold",
            SourceOutcome::Withdraw => "withdraw",
            SourceOutcome::Unchanged => "unchanged",
            SourceOutcome::Past => "past",
            SourceOutcome::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "publish" => SourceOutcome::Publish,
            "withhold" => SourceOutcome::Withhold,
            "withdraw" => SourceOutcome::Withdraw,
            "unchanged" => SourceOutcome::Unchanged,
            "past" => SourceOutcome::Past,
            "removed" => SourceOutcome::Removed,
            _ => return None,
        })
    }
}

/// One row of the plan query: an item that is staged, mapped, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub item_key: String,
    pub source_key: String,
    /// `(hash, ends_at)` when staged in this run.
    pub staged: Option<(String, Option<i64>)>,
    /// `(target_id, etag, hash, ends_at)` when mapped.
    pub mapped: Option<(String, Option<String>, String, Option<i64>)>,
    /// What this run decided for the item's source item, if it was read.
    pub source_outcome: Option<SourceOutcome>,
}

/// How the source was read this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// Everything the source holds was listed: an item not listed is gone.
    Full,
    /// Only changes were listed: an item not listed is unchanged.
    Delta,
    /// The source said nothing changed.
    Unchanged,
}

impl ReadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadKind::Full => "full",
            ReadKind::Delta => "delta",
            ReadKind::Unchanged => "unchanged",
        }
    }
}

/// What to do with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        item_key: String,
        source_key: String,
    },
    Update {
        item_key: String,
        source_key: String,
        target_id: String,
        etag: Option<String>,
    },
    Delete {
        item_key: String,
        target_id: String,
        etag: Option<String>,
        /// The source withdrew it explicitly (private, cancelled, excluded): applied first,
        /// never held back by the guard.
        withdrawn: bool,
    },
}

impl Action {
    pub fn item_key(&self) -> &str {
        match self {
            Action::Create { item_key, .. }
            | Action::Update { item_key, .. }
            | Action::Delete { item_key, .. } => item_key,
        }
    }

    pub fn verb(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Update { .. } => "update",
            Action::Delete { .. } => "delete",
        }
    }
}

/// The writes one run would make, in item-key order, and what it leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Published items that stay as they are.
    pub unchanged: u64,
    /// Published items kept although the source no longer lists them in the window, because
    /// they ended before it (`cleanup` removes them at the retention horizon).
    pub kept_past: u64,
}

impl Plan {
    pub fn count(&self, verb: &str) -> u64 {
        self.actions.iter().filter(|a| a.verb() == verb).count() as u64
    }

    pub fn deletes(&self) -> u64 {
        self.count("delete")
    }

    /// Deletions the source asked for explicitly (withdrawals).
    pub fn withdrawals(&self) -> u64 {
        self.actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Delete {
                        withdrawn: true,
                        ..
                    }
                )
            })
            .count() as u64
    }

    /// Drops the deletions the guard judges (all but withdrawals); returns how many.
    pub fn withhold_deletions(&mut self) -> u64 {
        let before = self.actions.len();
        self.actions.retain(|a| {
            !matches!(
                a,
                Action::Delete {
                    withdrawn: false,
                    ..
                }
            )
        });
        (before - self.actions.len()) as u64
    }
}

/// What happens to one item, given what this run staged for it and what is mapped.
///
/// `window_from` is the window's start (Unix seconds): with a full read, a published item the
/// source no longer lists is deleted unless it ended before the window (it aged out, and
/// stays until `cleanup`).
pub fn action_for(row: &PlanRow, read: ReadKind, window_from: i64) -> Option<Action> {
    let create = || Action::Create {
        item_key: row.item_key.clone(),
        source_key: row.source_key.clone(),
    };
    match (&row.staged, &row.mapped, row.source_outcome, read) {
        // The source wants it and it is not published: create it.
        (Some(_), None, _, _) => Some(create()),
        // Published with the same content: nothing to do.
        (Some((want, _)), Some((_, _, have, _)), _, _) if want == have => None,
        // Published with other content: update it.
        (Some(_), Some((target_id, etag, _, _)), _, _) => Some(Action::Update {
            item_key: row.item_key.clone(),
            source_key: row.source_key.clone(),
            target_id: target_id.clone(),
            etag: etag.clone(),
        }),
        // Neither staged nor mapped cannot come out of the plan query.
        (None, None, _, _) => None,
        // The source withdrew it explicitly (private, cancelled, excluded): it goes, first.
        (None, Some((target_id, etag, _, _)), Some(SourceOutcome::Withdraw), _) => {
            Some(Action::Delete {
                item_key: row.item_key.clone(),
                target_id: target_id.clone(),
                etag: etag.clone(),
                withdrawn: true,
            })
        }
        // Its source item was read and published, withheld or removed, and this item is not
        // among what it publishes now (marking unknown, moved out, an occurrence gone).
        (
            None,
            Some((target_id, etag, _, _)),
            Some(SourceOutcome::Publish | SourceOutcome::Withhold | SourceOutcome::Removed),
            _,
        ) => Some(Action::Delete {
            item_key: row.item_key.clone(),
            target_id: target_id.clone(),
            etag: etag.clone(),
            withdrawn: false,
        }),
        // Its source item ended before the window, or is as it was: leave it.
        (None, Some(_), Some(SourceOutcome::Past | SourceOutcome::Unchanged), _) => None,
        // Not mentioned by a delta or an unchanged read: unchanged.
        (None, Some(_), None, ReadKind::Delta | ReadKind::Unchanged) => None,
        // Not listed by a full read: gone from the source, unless it aged out of the window.
        (None, Some((target_id, etag, _, ends_at)), None, ReadKind::Full) => {
            if ends_at.is_some_and(|end| end < window_from) {
                None
            } else {
                Some(Action::Delete {
                    item_key: row.item_key.clone(),
                    target_id: target_id.clone(),
                    etag: etag.clone(),
                    withdrawn: false,
                })
            }
        }
    }
}

/// Builds the plan from the plan query's rows (ordered by item key): withdrawals first, then
/// the rest in item-key order.
pub fn plan(rows: &[PlanRow], read: ReadKind, window_from: i64) -> Plan {
    let mut p = Plan::default();
    let mut rest = Vec::new();
    for row in rows {
        match action_for(row, read, window_from) {
            Some(
                action @ Action::Delete {
                    withdrawn: true, ..
                },
            ) => p.actions.push(action),
            Some(action) => rest.push(action),
            None if row.mapped.is_some() => {
                let aged_out = row.staged.is_none()
                    && (row.source_outcome == Some(SourceOutcome::Past)
                        || (row.source_outcome.is_none() && read == ReadKind::Full));
                if aged_out {
                    p.kept_past += 1;
                } else {
                    p.unchanged += 1;
                }
            }
            None => {}
        }
    }
    p.actions.extend(rest);
    p
}

/// The deletion guard's verdict (DESIGN.md, "Never mass-delete").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    Pass,
    /// Deletions must be withheld.
    Tripped {
        deletes: u64,
        mapped: u64,
        /// The source listed nothing at all.
        source_empty: bool,
    },
}

/// Judges a plan before it runs. Withdrawals are not judged: they are neither counted among
/// the deletions nor among the mapped items the percentage is taken over. Over the rest, it
/// trips only while more than `max_delete_min` items are mapped, when the plan deletes more
/// than `max_delete_percent` of them, or when a full read found the source empty and the
/// plan would delete anything.
pub fn guard(plan: &Plan, mapped: u64, source_empty: bool, limits: GuardLimits) -> Guard {
    let withdrawals = plan.withdrawals();
    let deletes = plan.deletes() - withdrawals;
    let mapped = mapped.saturating_sub(withdrawals);
    if deletes == 0 || mapped <= u64::from(limits.max_delete_min) {
        return Guard::Pass;
    }
    let too_many = deletes * 100 > u64::from(limits.max_delete_percent) * mapped;
    if too_many || source_empty {
        Guard::Tripped {
            deletes,
            mapped,
            source_empty,
        }
    } else {
        Guard::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        staged: Option<&str>,
        mapped: Option<(&str, Option<i64>)>,
        outcome: Option<SourceOutcome>,
    ) -> PlanRow {
        PlanRow {
            item_key: "k".into(),
            source_key: "s".into(),
            staged: staged.map(|h| (h.to_string(), Some(1000))),
            mapped: mapped.map(|(h, end)| {
                (
                    "t1".to_string(),
                    Some("\"e1\"".to_string()),
                    h.to_string(),
                    end,
                )
            }),
            source_outcome: outcome,
        }
    }

    const FROM: i64 = 500;

    #[test]
    fn each_case_of_the_table() {
        use ReadKind::*;
        use SourceOutcome::*;
        let cases: &[(&str, PlanRow, ReadKind, Option<&str>)] = &[
            (
                "new item",
                row(Some("h"), None, Some(Publish)),
                Full,
                Some("create"),
            ),
            (
                "same content",
                row(Some("h"), Some(("h", Some(900))), Some(Publish)),
                Delta,
                None,
            ),
            (
                "changed content",
                row(Some("h2"), Some(("h", Some(900))), Some(Publish)),
                Delta,
                Some("update"),
            ),
            (
                "became private",
                row(None, Some(("h", Some(900))), Some(Withhold)),
                Delta,
                Some("delete"),
            ),
            (
                "deleted at source",
                row(None, Some(("h", Some(900))), Some(Removed)),
                Delta,
                Some("delete"),
            ),
            (
                "occurrence gone",
                row(None, Some(("h", Some(900))), Some(Publish)),
                Delta,
                Some("delete"),
            ),
            (
                "aged out, still listed",
                row(None, Some(("h", Some(100))), Some(Past)),
                Full,
                None,
            ),
            (
                "not mentioned by delta",
                row(None, Some(("h", Some(900))), None),
                Delta,
                None,
            ),
            (
                "nothing changed",
                row(None, Some(("h", Some(900))), None),
                ReadKind::Unchanged,
                None,
            ),
            (
                "not listed by full read",
                row(None, Some(("h", Some(900))), None),
                Full,
                Some("delete"),
            ),
            (
                "unbounded series not listed",
                row(None, Some(("h", None)), None),
                Full,
                Some("delete"),
            ),
            (
                "aged out, not listed",
                row(None, Some(("h", Some(100))), None),
                Full,
                None,
            ),
            (
                "private even when past",
                row(None, Some(("h", Some(100))), Some(Withhold)),
                Full,
                Some("delete"),
            ),
            (
                "withdrawn",
                row(None, Some(("h", Some(900))), Some(Withdraw)),
                Delta,
                Some("delete"),
            ),
            (
                "listed unchanged by a full read",
                row(None, Some(("h", Some(900))), Some(SourceOutcome::Unchanged)),
                Full,
                None,
            ),
        ];
        for (what, r, read, want) in cases {
            let got = action_for(r, *read, FROM);
            assert_eq!(got.as_ref().map(Action::verb), *want, "{what}");
        }
    }

    #[test]
    fn plans_count_what_stays() {
        let rows = vec![
            row(
                Some("h"),
                Some(("h", Some(900))),
                Some(SourceOutcome::Publish),
            ),
            row(None, Some(("h", Some(100))), None),
            row(Some("h"), None, Some(SourceOutcome::Publish)),
        ];
        let p = plan(&rows, ReadKind::Full, FROM);
        assert_eq!((p.count("create"), p.unchanged, p.kept_past), (1, 1, 1));
    }

    fn plan_deleting(n: usize) -> Plan {
        plan_with(n, 0)
    }

    fn plan_with(absent: usize, withdrawn: usize) -> Plan {
        let delete = |i: usize, withdrawn: bool| Action::Delete {
            item_key: format!("k{i}"),
            target_id: format!("t{i}"),
            etag: None,
            withdrawn,
        };
        Plan {
            actions: (0..withdrawn)
                .map(|i| delete(i, true))
                .chain((withdrawn..withdrawn + absent).map(|i| delete(i, false)))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn withdrawals_are_never_held_back_and_not_counted_by_the_guard() {
        let limits = GuardLimits {
            max_delete_percent: 50,
            max_delete_min: 10,
        };
        // 15 of 20 turned private: all go, the guard does not trip.
        assert_eq!(guard(&plan_with(0, 15), 20, false, limits), Guard::Pass);
        // 15 withdrawn and 3 absent of 20: the 3 are judged against the 5 not withdrawn…
        assert!(matches!(
            guard(&plan_with(3, 15), 20, false, limits),
            Guard::Pass
        ));
        // …and 8 absent of 30 with 15 withdrawn: 8 of 15 is over half.
        assert_eq!(
            guard(&plan_with(8, 15), 30, false, limits),
            Guard::Tripped {
                deletes: 8,
                mapped: 15,
                source_empty: false
            }
        );
        let mut p = plan_with(8, 15);
        assert_eq!(p.withhold_deletions(), 8);
        assert_eq!(p.withdrawals(), 15);
        assert_eq!(p.deletes(), 15);
    }

    #[test]
    fn withdrawals_come_first_in_a_plan() {
        let mut withdrawn = row(None, Some(("h", Some(900))), Some(SourceOutcome::Withdraw));
        withdrawn.item_key = "z".into();
        let mut created = row(Some("h"), None, Some(SourceOutcome::Publish));
        created.item_key = "a".into();
        let p = plan(&[created, withdrawn], ReadKind::Delta, FROM);
        let keys: Vec<&str> = p.actions.iter().map(Action::item_key).collect();
        assert_eq!(keys, ["z", "a"]);
    }

    #[test]
    fn the_guard_trips_on_mass_deletion_only_above_the_minimum() {
        let limits = GuardLimits {
            max_delete_percent: 50,
            max_delete_min: 10,
        };
        let cases: &[(&str, usize, u64, bool, bool)] = &[
            ("half of 20 is allowed", 10, 20, false, false),
            ("more than half trips", 11, 20, false, true),
            ("all of 10 is below the minimum", 10, 10, false, false),
            ("all of 11 trips", 11, 11, false, true),
            ("an emptied source trips", 3, 20, true, true),
            (
                "an emptied source below the minimum passes",
                5,
                5,
                true,
                false,
            ),
            ("no deletes never trips", 0, 1000, true, false),
        ];
        for (what, deletes, mapped, empty, trips) in cases {
            let g = guard(&plan_deleting(*deletes), *mapped, *empty, limits);
            assert_eq!(matches!(g, Guard::Tripped { .. }), *trips, "{what}: {g:?}");
        }
    }
}
