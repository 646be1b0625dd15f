//! One event in, everything that follows from it out: the next record, the events to store
//! (in `seq` order, each stamped once), the `ack` owed and the effects on the queue and the
//! counselor's socket.
//!
//! Why a separate, pure step: the conversation actor is an I/O shell (store, sockets,
//! queue). Keeping *what happens* out of it means the rules that matter (the bot never
//! speaks with a counselor in the conversation; every message while waiting is answered;
//! the counselor is released exactly when they stop holding the conversation; the waiting
//! time survives a change of counselor; seq only increases) are table-tested here without
//! a runtime, and the actor only stores, sends and enqueues what the plan says, in order.

use std::sync::Arc;

use super::machine::{Action, BotMessage, Event, ScreenFlow, State, step};
use super::record::{
    ConversationMeta, EventBody, Position, RaisedLine, StoredEvent, Summary, TriageNote,
};
use super::words::Responder;
use crate::content::Lang;
use crate::triage::{ConversationRisk, Level, Span};

/// A citizen's message, already triaged by the actor.
#[derive(Debug, Clone)]
pub struct CitizenWords {
    /// The client's id for the message (acknowledged by it).
    pub id: String,
    /// The words (a resident registration number already removed).
    pub text: String,
    /// What triage said.
    pub note: TriageNote,
    /// Triage's memory of the conversation after this message.
    pub risk: ConversationRisk,
}

/// What the plan needs to know from outside, as values.
pub struct Context<'a> {
    /// The screener, as data.
    pub flow: &'a ScreenFlow,
    /// The bot's words.
    pub words: &'a dyn Responder,
    /// Now, Unix ms.
    pub now: u64,
    /// Counselors online (a holding line says truthfully whether anyone is).
    pub counselors_online: usize,
    /// The last place in line the queue gave, if any.
    pub place: Option<&'a Position>,
}

/// What the actor must do besides storing and sending, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Put the conversation in the queue, or update its level there.
    Enqueue {
        /// Alert every counselor.
        urgent: bool,
        /// Only this colleague may claim it for now.
        reserved_for: Option<String>,
    },
    /// Take it out of the queue.
    Dequeue,
    /// The counselor who held it no longer does (closed, back to the queue, passed on):
    /// free their place and tell their console.
    Release {
        /// Username.
        counselor: String,
    },
    /// It waits anew: the next place in line is news even if the number is the same.
    ForgetPlace,
}

/// The outcome of one event.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The record after the event (what to store if it differs from the old one).
    pub record: ConversationMeta,
    /// The events to store, in `seq` order.
    pub events: Vec<StoredEvent>,
    /// The citizen message to acknowledge once stored: (client id, seq).
    pub ack: Option<(String, u64)>,
    /// The queue card changed (the record's sealed copy must be renewed).
    pub summary_changed: bool,
    /// What to do after the store said yes.
    pub effects: Vec<Effect>,
}

/// Plans `event` on `record`: `citizen` carries the words that caused it (if any), `extra`
/// an event the caller records before the state machine's (a transfer, say).
pub fn plan(
    record: &ConversationMeta,
    event: Event,
    citizen: Option<CitizenWords>,
    extra: Option<EventBody>,
    ctx: &Context<'_>,
) -> Plan {
    let old_state = record.conversation.state.clone();
    let (next, actions) = step(ctx.flow, record.conversation.clone(), event);
    let lang = Lang::parse(&record.lang);
    let now = ctx.now;
    let mut meta = record.clone();
    let mut seq = meta.last_seq;
    let mut events = Vec::new();
    let mut push = |body: EventBody, events: &mut Vec<StoredEvent>| {
        seq += 1;
        events.push(StoredEvent { seq, at: now, body });
    };
    let mut ack = None;
    let mut summary_changed = false;
    let mut effects = Vec::new();
    let text = citizen.as_ref().map_or("", |c| c.text.as_str()).to_owned();
    if let Some(c) = citizen {
        let before = meta.level();
        summary_changed = update_summary(&mut meta.summary, &c.text, &c.note, before);
        // The first district the person names, for the statistics: its name only.
        if meta.district.is_none() {
            meta.district = ctx.words.district(&c.text);
        }
        push(
            EventBody::Citizen {
                id: c.id.clone(),
                text: c.text,
                triage: c.note,
            },
            &mut events,
        );
        ack = Some((c.id, seq_of(&events)));
        meta.risk = c.risk;
    }
    if let Some(body) = extra {
        push(body, &mut events);
    }
    // The state change comes first: what is said next is said in the new state (a holding
    // line while queued, "the counselor is changing" after they left).
    if next.state.name() != old_state.name() {
        push(
            EventBody::State {
                from: old_state.name().into(),
                to: next.state.name().into(),
                level: next.level,
            },
            &mut events,
        );
    }
    let requeued = actions
        .iter()
        .any(|a| matches!(a, Action::Bot(BotMessage::CounselorChanging)));
    for action in actions {
        match action {
            Action::Bot(msg) => {
                let r = match msg {
                    // The place is given only while it is known and still true.
                    BotMessage::Holding => ctx.words.holding(
                        lang,
                        next.turn,
                        ctx.counselors_online,
                        ctx.place
                            .filter(|_| matches!(old_state, State::Queued { .. }) && !requeued),
                    ),
                    _ => ctx.words.bot(&msg, &text, lang, next.turn, next.level),
                };
                push(
                    EventBody::Bot {
                        text: r.text,
                        resources: r.resources,
                        quick_replies: r.quick_replies,
                    },
                    &mut events,
                );
            }
            Action::Enqueue {
                level,
                urgent,
                reserved_for,
            } => {
                push(EventBody::Queued { level, urgent }, &mut events);
                // Back in the queue after a counselor: the waiting time is kept.
                meta.enqueued_at.get_or_insert(now);
                meta.handoff_level.get_or_insert(level);
                effects.push(Effect::Enqueue {
                    urgent,
                    reserved_for,
                });
            }
            Action::Escalated { .. } => {
                if let State::Queued { urgent, .. } = next.state {
                    effects.push(Effect::Enqueue {
                        urgent,
                        reserved_for: None,
                    });
                }
            }
            Action::SafetyResources { level } => {
                let r = ctx.words.safety_resources(level, lang);
                push(
                    EventBody::Safety {
                        text: r.text,
                        resources: r.resources,
                    },
                    &mut events,
                );
            }
            Action::ForwardToCounselor => {}
            Action::CounselorJoined { counselor } => {
                let waited_secs = meta.enqueued_at.map_or(0, |t| now.saturating_sub(t) / 1000);
                meta.first_wait_secs.get_or_insert(waited_secs);
                if !meta.counselors.contains(&counselor) {
                    meta.counselors.push(counselor.clone());
                }
                push(
                    EventBody::CounselorJoined {
                        counselor,
                        waited_secs,
                    },
                    &mut events,
                );
            }
            Action::Dequeue => effects.push(Effect::Dequeue),
            Action::Closed { by } => {
                meta.closed_at = Some(now);
                push(
                    EventBody::Closed {
                        by,
                        outcome: meta.outcome.clone(),
                    },
                    &mut events,
                );
            }
            Action::Rated(value) => push(EventBody::Rating { value }, &mut events),
            Action::CounselorChanged { from, to } => {
                if !meta.counselors.contains(&to) {
                    meta.counselors.push(to.clone());
                }
                push(
                    EventBody::CounselorChanged {
                        from,
                        to,
                        text: ctx.words.counselor_changed(lang),
                    },
                    &mut events,
                );
            }
            Action::SelfCheckScored(score) => meta.selfcheck = Some(score),
            Action::PlanItem { step } => push(
                EventBody::PlanItem {
                    step,
                    text: text.clone(),
                    by: "citizen".into(),
                },
                &mut events,
            ),
            Action::PlanPrefill => {
                for line in ctx.words.plan_prefill(lang) {
                    push(
                        EventBody::PlanItem {
                            step: 5,
                            text: line,
                            by: "bot".into(),
                        },
                        &mut events,
                    );
                }
            }
        }
    }
    // One place where a counselor lets go: whenever they held it and no longer do.
    if let State::WithCounselor { counselor } = &old_state {
        if !matches!(&next.state, State::WithCounselor { counselor: c } if c == counselor) {
            effects.insert(
                0,
                Effect::Release {
                    counselor: counselor.clone(),
                },
            );
        }
    }
    if requeued {
        effects.push(Effect::ForgetPlace);
    }
    meta.conversation = next;
    if !events.is_empty() {
        meta.last_seq = seq;
        meta.updated_at = now;
    }
    Plan {
        record: meta,
        events,
        ack,
        summary_changed,
        effects,
    }
}

fn seq_of(events: &[StoredEvent]) -> u64 {
    events.last().map_or(0, |e| e.seq)
}

/// The longest line a queue card keeps, in characters.
const SUMMARY_LINE: usize = 200;

fn clipped(text: &str, spans: &[Span]) -> (String, Vec<Span>) {
    let line: String = text.chars().take(SUMMARY_LINE).collect();
    let spans = spans
        .iter()
        .filter(|(s, _)| *s < SUMMARY_LINE)
        .map(|&(s, e)| (s, e.min(SUMMARY_LINE)))
        .collect();
    (line, spans)
}

/// Adds what a counselor needs to see to the queue card: the message, if it raised the
/// conversation's level above `before`, and the first three lines, and every rule once.
/// Returns whether anything changed (a card that did not change is not copied).
pub fn update_summary(
    shared: &mut Arc<Summary>,
    text: &str,
    note: &TriageNote,
    before: Level,
) -> bool {
    let add_line = shared.first_lines.len() < 3;
    let raised = note.level > before && note.level > Level::None;
    let mut new_rules: Vec<&str> = Vec::new();
    for r in &note.rules {
        if !shared.rules.iter().any(|x| **x == *r.id) && !new_rules.contains(&&*r.id) {
            new_rules.push(&r.id);
        }
    }
    if !add_line && !raised && new_rules.is_empty() {
        return false;
    }
    // Copied only here, when it changes.
    let summary = Arc::make_mut(shared);
    if add_line {
        let (line, spans) = clipped(text, &note.spans);
        summary.first_lines.push(line);
        summary.spans.push(spans);
    }
    if raised {
        let (line, spans) = clipped(text, &note.spans);
        summary.raised.push(RaisedLine {
            text: line,
            level: note.level,
            spans,
        });
    }
    summary
        .rules
        .extend(new_rules.into_iter().map(str::to_owned));
    true
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
