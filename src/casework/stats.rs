//! The city's statistics: counts per day, week or month, from the records alone.
//!
//! Everything here is computed from conversation records (state, level, outcome, district,
//! self-check score, waits) and casework records (follow-up and referral status): the
//! transcripts' text is never opened. Periods are Seoul days (KST, UTC+9); weeks are ISO
//! weeks. In anything exported, a count from 1 to 4 is shown as `"<5"`: a small count can
//! point at a person.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::{FollowupStatus, FollowupView, ReferralStatus, ReferralView};
use crate::conversation::ConversationMeta;
use crate::triage::Level;

/// Seoul's offset from UTC (no daylight saving).
const KST_MS: i64 = 9 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Seoul calendar days.
    Day,
    /// ISO weeks (Monday to Sunday, Seoul time).
    Week,
    /// Calendar months.
    Month,
}

impl Period {
    /// Parses `day`, `week` or `month`.
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// The label of the period holding `ms` (Unix ms): `2026-12-06`, `2026-W49`, `2026-12`.
    pub fn label(self, ms: u64) -> String {
        let days = (ms as i64 + KST_MS).div_euclid(DAY_MS);
        let (y, m, d) = civil_from_days(days);
        match self {
            Period::Day => format!("{y:04}-{m:02}-{d:02}"),
            Period::Month => format!("{y:04}-{m:02}"),
            Period::Week => {
                let weekday = (days + 3).rem_euclid(7); // 0 = Monday (1970-01-01 was a Thursday)
                let thursday = days - weekday + 3;
                let (wy, _, _) = civil_from_days(thursday);
                let week = (thursday - days_from_civil(wy, 1, 1)) / 7 + 1;
                format!("{wy:04}-W{week:02}")
            }
        }
    }
}

/// Unix ms of midnight in Seoul starting `YYYY-MM-DD`.
pub fn seoul_midnight(date: &str) -> Option<u64> {
    let mut it = date.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    u64::try_from(days_from_civil(y, m, d) * DAY_MS - KST_MS).ok()
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The loneliness self-check's bands (three-item UCLA scale, 3–9; 6 and above is commonly
/// read as lonely: `intents/selfcheck.toml`).
pub fn selfcheck_band(score: u8) -> &'static str {
    if score >= 6 { "6-9" } else { "3-5" }
}

/// Waits that reached a counselor, for one level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Waits {
    /// How many reached a counselor.
    pub reached: u64,
    /// How many within the level's target.
    pub within_target: u64,
    /// The median wait, seconds.
    pub median_secs: Option<u64>,
    /// The level's target, seconds (`escalation-rules.toml`), if it has one.
    pub target_secs: Option<u64>,
    #[serde(skip)]
    all: Vec<u64>,
}

/// One period's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The period's label.
    pub period: String,
    /// Conversations started.
    pub conversations: u64,
    /// By the highest level they reached.
    pub by_level: BTreeMap<String, u64>,
    /// By outcome (`open` while not closed; `none` closed without one).
    pub by_outcome: BTreeMap<String, u64>,
    /// By district, when the person said it (`unknown` otherwise).
    pub by_district: BTreeMap<String, u64>,
    /// Loneliness self-check scores in bands.
    pub selfcheck: BTreeMap<String, u64>,
    /// Conversations handed to the counselor queue.
    pub handoffs: u64,
    /// Time to a counselor, per level at handoff.
    pub time_to_counselor: BTreeMap<String, Waits>,
    /// Follow-ups by status, in the period they were due.
    pub followups: BTreeMap<String, u64>,
    /// Referrals by current status, in the period they were made.
    pub referrals: BTreeMap<String, u64>,
}

/// The statistics for `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// From, Unix ms (inclusive).
    pub from: u64,
    /// To, Unix ms (exclusive).
    pub to: u64,
    /// How rows are grouped.
    pub period: Period,
    /// One row per period with anything in it, oldest first.
    pub rows: Vec<Row>,
    /// The whole range.
    pub total: Row,
}

fn status_name(s: FollowupStatus) -> &'static str {
    match s {
        FollowupStatus::Scheduled => "scheduled",
        FollowupStatus::Due => "due",
        FollowupStatus::Escalated => "escalated",
        FollowupStatus::Done => "done",
        FollowupStatus::Declined => "declined",
        FollowupStatus::Failed => "failed",
        FollowupStatus::Cancelled => "cancelled",
    }
}

/// Computes the report. `targets[level]` is each level's wait target in seconds.
pub fn report(
    metas: &[ConversationMeta],
    followups: &[FollowupView],
    referrals: &[ReferralView],
    targets: [Option<u64>; 5],
    from: u64,
    to: u64,
    period: Period,
) -> Report {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut total = Row {
        period: "total".into(),
        ..Row::default()
    };
    let in_range = |t: u64| t >= from && t < to;
    let mut touch = |t: u64, f: &mut dyn FnMut(&mut Row)| {
        let label = period.label(t);
        let row = rows.entry(label.clone()).or_insert_with(|| Row {
            period: label,
            ..Row::default()
        });
        f(row);
        f(&mut total);
    };
    for m in metas.iter().filter(|m| in_range(m.created_at)) {
        touch(m.created_at, &mut |r: &mut Row| {
            r.conversations += 1;
            *r.by_level.entry(m.level().as_str().into()).or_default() += 1;
            let outcome = match (&m.outcome, m.closed_at) {
                (Some(o), _) => o.clone(),
                (None, Some(_)) => "none".into(),
                (None, None) => "open".into(),
            };
            *r.by_outcome.entry(outcome).or_default() += 1;
            let district = m.district.clone().unwrap_or_else(|| "unknown".into());
            *r.by_district.entry(district).or_default() += 1;
            if let Some(score) = m.selfcheck_score() {
                *r.selfcheck.entry(selfcheck_band(score).into()).or_default() += 1;
            }
            if m.conversation.handed_off {
                r.handoffs += 1;
            }
            if let (Some(level), Some(wait)) = (m.handoff_level, m.first_wait_secs) {
                let w = r
                    .time_to_counselor
                    .entry(level.as_str().into())
                    .or_default();
                w.target_secs = targets[level.index()];
                w.reached += 1;
                w.all.push(wait);
                if w.target_secs.is_some_and(|t| wait <= t) {
                    w.within_target += 1;
                }
            }
        });
    }
    for f in followups.iter().filter(|f| in_range(f.followup.due_at)) {
        touch(f.followup.due_at, &mut |r: &mut Row| {
            *r.followups.entry(status_name(f.status).into()).or_default() += 1;
        });
    }
    for v in referrals.iter().filter(|v| in_range(v.referral.created_at)) {
        touch(v.referral.created_at, &mut |r: &mut Row| {
            *r.referrals.entry(v.status.as_str().into()).or_default() += 1;
            if v.check_due {
                *r.referrals.entry("check_due".into()).or_default() += 1;
            }
        });
    }
    let finish = |r: &mut Row| {
        for w in r.time_to_counselor.values_mut() {
            w.all.sort_unstable();
            w.median_secs = w.all.get(w.all.len() / 2).copied();
        }
    };
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.iter_mut().for_each(finish);
    finish(&mut total);
    // Every status and level is present in the total, so a chart or a sheet has its columns.
    for l in Level::ALL {
        total.by_level.entry(l.as_str().into()).or_default();
    }
    for s in ReferralStatus::ALL {
        total.referrals.entry(s.as_str().into()).or_default();
    }
    Report {
        from,
        to,
        period,
        rows,
        total,
    }
}

/// A count as exported: `"<5"` from 1 to 4.
pub fn cell(n: u64) -> Value {
    if (1..5).contains(&n) {
        Value::String("<5".into())
    } else {
        Value::from(n)
    }
}

fn counts(m: &BTreeMap<String, u64>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), cell(*v))).collect())
}

fn row_json(r: &Row) -> Value {
    json!({
        "period": r.period,
        "conversations": cell(r.conversations),
        "by_level": counts(&r.by_level),
        "by_outcome": counts(&r.by_outcome),
        "by_district": counts(&r.by_district),
        "selfcheck": counts(&r.selfcheck),
        "handoffs": cell(r.handoffs),
        "time_to_counselor": r.time_to_counselor.iter().map(|(k, w)| (k.clone(), json!({
            "reached": cell(w.reached),
            "within_target": cell(w.within_target),
            // A median of fewer than five waits could point at a person too.
            "median_secs": if w.reached >= 5 { json!(w.median_secs) } else { json!(null) },
            "target_secs": w.target_secs,
        }))).collect::<serde_json::Map<_, _>>(),
        "followups": counts(&r.followups),
        "referrals": counts(&r.referrals),
    })
}

impl Report {
    /// The report as exported JSON (small counts shown as `"<5"`).
    pub fn to_json(&self) -> Value {
        json!({
            "from": self.from,
            "to": self.to,
            "period": self.period,
            "suppressed_below": 5,
            "rows": self.rows.iter().map(row_json).collect::<Vec<_>>(),
            "total": row_json(&self.total),
        })
    }

    /// The report as CSV, one measure per line: `period,measure,key,value` (a UTF-8 byte
    /// order mark first, so spreadsheet programs read Korean right).
    pub fn to_csv(&self) -> String {
        fn push(out: &mut String, period: &str, measure: &str, key: &str, value: &Value) {
            let v = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let q = |s: &str| {
                if s.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s.to_owned()
                }
            };
            out.push_str(&format!(
                "{},{},{},{}\r\n",
                q(period),
                q(measure),
                q(key),
                q(&v)
            ));
        }
        let mut out = String::from("\u{feff}period,measure,key,value\r\n");
        for r in self.rows.iter().chain(std::iter::once(&self.total)) {
            let j = row_json(r);
            let p = r.period.as_str();
            push(&mut out, p, "conversations", "", &j["conversations"]);
            push(&mut out, p, "handoffs", "", &j["handoffs"]);
            for measure in [
                "by_level",
                "by_outcome",
                "by_district",
                "selfcheck",
                "followups",
                "referrals",
            ] {
                if let Value::Object(m) = &j[measure] {
                    for (k, v) in m {
                        push(&mut out, p, measure, k, v);
                    }
                }
            }
            if let Value::Object(m) = &j["time_to_counselor"] {
                for (level, w) in m {
                    for field in ["reached", "within_target", "median_secs", "target_secs"] {
                        push(
                            &mut out,
                            p,
                            &format!("time_to_counselor.{field}"),
                            level,
                            &w[field],
                        );
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConversationId;

    #[test]
    fn labels_are_seoul_days_iso_weeks_and_months() {
        // 2026-12-06 15:30 UTC is 2026-12-07 00:30 in Seoul (a Monday).
        let t = seoul_midnight("2026-12-07").unwrap() + 30 * 60 * 1000;
        assert_eq!(Period::Day.label(t), "2026-12-07");
        assert_eq!(Period::Week.label(t), "2026-W50");
        assert_eq!(Period::Month.label(t), "2026-12");
        // One minute before Seoul's midnight is the day before, and the week before.
        let before = seoul_midnight("2026-12-07").unwrap() - 60_000;
        assert_eq!(Period::Day.label(before), "2026-12-06");
        assert_eq!(Period::Week.label(before), "2026-W49");
        // ISO weeks at year ends: 2021-01-03 is in 2020-W53; 2024-12-30 is in 2025-W01.
        assert_eq!(
            Period::Week.label(seoul_midnight("2021-01-03").unwrap()),
            "2020-W53"
        );
        assert_eq!(
            Period::Week.label(seoul_midnight("2024-12-30").unwrap()),
            "2025-W01"
        );
        assert_eq!(seoul_midnight("2026-13-01"), None);
        assert_eq!(seoul_midnight("x"), None);
    }

    #[test]
    fn civil_round_trips() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    fn meta(at: u64, level: Level, district: Option<&str>, score: Option<u8>) -> ConversationMeta {
        let mut m = ConversationMeta::new(ConversationId::random(), "ko", at, String::new());
        m.conversation.level = level;
        m.district = district.map(str::to_owned);
        m.set_selfcheck_score(score);
        m
    }

    #[test]
    fn counts_group_by_period_and_small_counts_are_hidden_in_exports() {
        let d1 = seoul_midnight("2026-12-01").unwrap() + 3_600_000;
        let d2 = seoul_midnight("2026-12-02").unwrap() + 3_600_000;
        let mut metas: Vec<ConversationMeta> = (0..6)
            .map(|_| meta(d1, Level::Low, Some("마포구"), Some(7)))
            .collect();
        let mut waited = meta(d2, Level::High, None, Some(4));
        waited.conversation.handed_off = true;
        waited.handoff_level = Some(Level::High);
        waited.first_wait_secs = Some(30);
        waited.outcome = Some("safety_plan".into());
        waited.closed_at = Some(d2 + 1);
        metas.push(waited);
        // Outside the range: not counted.
        metas.push(meta(d2 + 5 * DAY_MS as u64, Level::Imminent, None, None));
        let from = seoul_midnight("2026-12-01").unwrap();
        let to = seoul_midnight("2026-12-03").unwrap();
        let targets = [None, Some(1800), Some(600), Some(120), Some(0)];
        let r = report(&metas, &[], &[], targets, from, to, Period::Day);
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.total.conversations, 7);
        assert_eq!(r.rows[0].by_district["마포구"], 6);
        assert_eq!(r.rows[0].selfcheck["6-9"], 6);
        assert_eq!(r.rows[1].selfcheck["3-5"], 1);
        assert_eq!(r.total.handoffs, 1);
        let w = &r.total.time_to_counselor["high"];
        assert_eq!(
            (w.reached, w.within_target, w.median_secs),
            (1, 1, Some(30))
        );
        let j = r.to_json();
        assert_eq!(j["rows"][0]["conversations"], 6);
        assert_eq!(j["rows"][1]["conversations"], "<5");
        assert_eq!(j["total"]["by_level"]["imminent"], 0);
        assert_eq!(
            j["total"]["time_to_counselor"]["high"]["median_secs"],
            Value::Null
        );
        let csv = r.to_csv();
        assert!(csv.starts_with('\u{feff}'));
        assert!(csv.contains("2026-12-01,by_district,마포구,6\r\n"), "{csv}");
        assert!(csv.contains("2026-12-02,conversations,,<5\r\n"), "{csv}");
        assert!(!csv.contains(",1\r\n"), "a count under 5 leaked: {csv}");
    }
}
