//! Table tests for `plan`: what one event stores and does, in every state that matters.

use super::*;
use crate::conversation::machine::{Closer, Conversation};
use crate::conversation::words::Reply;
use crate::conversation::{Answer, Choice, SecondUnclear};
use crate::ids::ConversationId;
use crate::triage::{Action as TriageAction, Category, RuleHit};

fn note(rules: &[&str]) -> TriageNote {
    TriageNote {
        level: Level::None,
        conversation_level: Level::None,
        intent: None,
        rules: rules
            .iter()
            .map(|id| RuleHit {
                id: (*id).into(),
                category: Category::Ideation,
                level: Level::Low,
                lowered: false,
                spans: vec![(0, 1)],
                lowered_by: None,
                raised_by: None,
                parts: Vec::new(),
                typo: false,
            })
            .collect(),
        spans: vec![(0, 1)],
        ruleset: "t".into(),
    }
}

/// The summary keeps the first three lines and every rule once; a message that adds
/// nothing leaves it, and its shared copy, untouched.
#[test]
fn the_summary_changes_only_when_a_line_or_rule_is_new() {
    let mut s: Arc<Summary> = Arc::default();
    for (i, line) in ["하나", "둘", "셋"].iter().enumerate() {
        assert!(
            update_summary(&mut s, line, &note(&[]), Level::None),
            "line {i}"
        );
    }
    let before = Arc::clone(&s);
    assert!(!update_summary(&mut s, "넷", &note(&[]), Level::None));
    assert!(Arc::ptr_eq(&before, &s), "not copied");
    assert!(update_summary(
        &mut s,
        "다섯",
        &note(&["lonely", "lonely"]),
        Level::None
    ));
    assert!(!update_summary(
        &mut s,
        "여섯",
        &note(&["lonely"]),
        Level::None
    ));
    assert!(update_summary(
        &mut s,
        "일곱",
        &note(&["lonely", "plan"]),
        Level::None
    ));
    assert_eq!(s.first_lines, ["하나", "둘", "셋"]);
    assert_eq!(s.rules, ["lonely", "plan"]);
    assert_eq!(before.rules.len(), 0, "the old copy is unchanged");
}

/// A line that raises the level is kept, with the words that fired, even after the
/// first three lines are full; one that does not raise it is not.
#[test]
fn the_summary_keeps_the_lines_that_raised_the_level() {
    let mut s: Arc<Summary> = Arc::default();
    for line in ["하나", "둘", "셋"] {
        update_summary(&mut s, line, &note(&[]), Level::None);
    }
    let mut risky = note(&[]);
    risky.level = Level::High;
    risky.spans = vec![(0, 2)];
    assert!(update_summary(&mut s, "죽고 싶어요", &risky, Level::Low));
    assert_eq!(
        s.raised,
        [RaisedLine {
            text: "죽고 싶어요".into(),
            level: Level::High,
            spans: vec![(0, 2)],
        }]
    );
    // The same level again raises nothing.
    assert!(!update_summary(&mut s, "죽고 싶어요", &risky, Level::High));
    assert_eq!(s.raised.len(), 1);
    assert_eq!(s.first_lines, ["하나", "둘", "셋"]);
}

/// Words that say which message they are, so a test can see what was said.
struct Named;

fn said(text: String) -> Reply {
    Reply {
        text,
        ..Reply::default()
    }
}

impl Responder for Named {
    fn greeting(&self, _: Lang) -> Reply {
        said("greeting".into())
    }
    fn bot(&self, m: &BotMessage, _: &str, _: Lang, _: u32, level: Level) -> Reply {
        said(match m {
            BotMessage::Intent { intent } => format!("intent:{}", intent.as_deref().unwrap_or("-")),
            BotMessage::Safety { level } => format!("safety:{level}"),
            BotMessage::CounselorChanging => "changing".into(),
            BotMessage::AskRating => "ask_rating".into(),
            other => format!("{other:?}@{level}"),
        })
    }
    fn queue_notice(&self, p: &Position, _: Lang) -> Reply {
        said(format!("queue:{}", p.position))
    }
    fn safety_resources(&self, level: Level, _: Lang) -> Reply {
        said(format!("resources:{level}"))
    }
    fn holding(&self, _: Lang, _: u32, online: usize, p: Option<&Position>) -> Reply {
        said(format!(
            "holding:{online}:{}",
            p.map_or("-".to_owned(), |p| p.position.to_string())
        ))
    }
    fn counselor_changing(&self, _: Lang, _: u32) -> Reply {
        said("changing".into())
    }
    fn screener_answer(&self, _: &str) -> Answer {
        Answer::Unclear
    }
    fn plan_prefill(&self, _: Lang) -> Vec<String> {
        vec!["109".into(), "1577-0199".into()]
    }
}

fn flow() -> ScreenFlow {
    ScreenFlow {
        questions: Vec::new(),
        second_unclear: SecondUnclear::Continue,
    }
}

const NOW: u64 = 1_000_000;

fn record(state: State, level: Level) -> ConversationMeta {
    let mut r = ConversationMeta::new(ConversationId::random(), "ko", 0, String::new());
    r.conversation = Conversation {
        state,
        level,
        handed_off: level > Level::None,
        ..Conversation::default()
    };
    r.last_seq = 7;
    r
}

fn words(text: &str, level: Level) -> CitizenWords {
    let mut note = note(&[]);
    note.level = level;
    CitizenWords {
        id: "m1".into(),
        text: text.into(),
        note,
        risk: ConversationRisk::default(),
    }
}

fn message(level: Level, conversation: Level) -> Event {
    Event::CitizenMessage {
        level: conversation,
        message_level: level,
        action: match conversation {
            Level::High => TriageAction::Handoff,
            Level::Imminent => TriageAction::UrgentHandoff,
            _ => TriageAction::Answer,
        },
        intent: None,
        answer: Answer::Unclear,
        choice: Choice::Other,
    }
}

/// What an event list says, compactly: `type` or `type:text`.
fn kinds(p: &Plan) -> Vec<String> {
    p.events
        .iter()
        .map(|e| match &e.body {
            EventBody::Citizen { .. } => "citizen".to_owned(),
            EventBody::Bot { text, .. } => format!("bot:{text}"),
            EventBody::Safety { text, .. } => format!("safety:{text}"),
            EventBody::State { from, to, .. } => format!("state:{from}>{to}"),
            EventBody::Queued { level, urgent } => format!("queued:{level}:{urgent}"),
            EventBody::CounselorJoined { counselor, .. } => format!("joined:{counselor}"),
            EventBody::Counselor { .. } => "counselor".to_owned(),
            EventBody::Transferred { to, .. } => {
                format!("transferred:{}", to.as_deref().unwrap_or("-"))
            }
            EventBody::Closed { by, .. } => format!("closed:{by:?}"),
            EventBody::Rating { value } => format!("rating:{value}"),
            EventBody::Whisper { supervisor, .. } => format!("whisper:{supervisor}"),
            EventBody::CounselorChanged { from, to, .. } => format!("changed:{from}>{to}"),
            EventBody::PlanItem { step, text, by } => format!("plan:{step}:{by}:{text}"),
        })
        .collect()
}

fn queued() -> State {
    State::Queued {
        urgent: false,
        bot_meanwhile: false,
    }
}

fn with(c: &str) -> State {
    State::WithCounselor {
        counselor: c.into(),
    }
}

#[test]
fn plan_table() {
    use Level::*;
    let place = Position {
        position: 2,
        expected_wait_secs: Some(300),
        counselors_online: 1,
    };
    struct Row {
        name: &'static str,
        record: ConversationMeta,
        event: Event,
        citizen: Option<CitizenWords>,
        extra: Option<EventBody>,
        events: &'static [&'static str],
        effects: Vec<Effect>,
        state: &'static str,
    }
    let enqueue = |reserved: Option<&str>| Effect::Enqueue {
        urgent: false,
        reserved_for: reserved.map(str::to_owned),
    };
    let release = || Effect::Release {
        counselor: "kim".into(),
    };
    let rows = vec![
        Row {
            name: "a supervisor takes over from the counselor: kim is released, one holder",
            record: record(with("kim"), High),
            event: Event::TakenOver { by: "boss".into() },
            citizen: Option::None,
            extra: Option::None,
            events: &["changed:kim>boss"],
            effects: vec![release()],
            state: "with_counselor",
        },
        Row {
            name: "a supervisor takes a waiting conversation: like a claim",
            record: record(queued(), High),
            event: Event::TakenOver { by: "boss".into() },
            citizen: Option::None,
            extra: Option::None,
            events: &["state:queued>with_counselor", "joined:boss"],
            effects: vec![],
            state: "with_counselor",
        },
        Row {
            name: "taking over from oneself changes nothing",
            record: record(with("boss"), High),
            event: Event::TakenOver { by: "boss".into() },
            citizen: Option::None,
            extra: Option::None,
            events: &[],
            effects: vec![],
            state: "with_counselor",
        },
        Row {
            name: "the bot answers",
            record: record(State::Bot, None),
            event: message(None, None),
            citizen: Some(words("안녕", None)),
            extra: Option::None,
            events: &["citizen", "bot:intent:-"],
            effects: vec![],
            state: "bot",
        },
        Row {
            name: "high hands off: state first, safety words, queued, a true holding line",
            record: record(State::Bot, None),
            event: message(High, High),
            citizen: Some(words("죽고 싶어요", High)),
            extra: Option::None,
            events: &[
                "citizen",
                "state:bot>queued",
                "bot:safety:high",
                "queued:high:false",
                "bot:holding:1:-",
            ],
            effects: vec![enqueue(Option::None)],
            state: "queued",
        },
        Row {
            name: "waiting: a holding line with the place",
            record: record(queued(), High),
            event: message(None, High),
            citizen: Some(words("아직이에요?", None)),
            extra: Option::None,
            events: &["citizen", "bot:holding:1:2"],
            effects: vec![],
            state: "queued",
        },
        Row {
            name: "waiting: risk gets the safety answer and re-orders the queue",
            record: record(queued(), Low),
            event: message(Medium, Medium),
            citizen: Some(words("사라지고 싶어", Medium)),
            extra: Option::None,
            events: &["citizen", "safety:resources:medium"],
            effects: vec![enqueue(Option::None)],
            state: "queued",
        },
        Row {
            name: "a counselor joins",
            record: record(queued(), High),
            event: Event::CounselorJoined {
                counselor: "kim".into(),
            },
            citizen: Option::None,
            extra: Option::None,
            events: &["state:queued>with_counselor", "joined:kim"],
            effects: vec![],
            state: "with_counselor",
        },
        Row {
            name: "with a counselor: forwarded, the bot silent",
            record: record(with("kim"), High),
            event: message(None, High),
            citizen: Some(words("고마워요", None)),
            extra: Option::None,
            events: &["citizen"],
            effects: vec![],
            state: "with_counselor",
        },
        Row {
            name: "the counselor closes: released once, rating asked",
            record: record(with("kim"), High),
            event: Event::CounselorClose,
            citizen: Option::None,
            extra: Option::None,
            events: &[
                "state:with_counselor>closed",
                "closed:Counselor",
                "bot:ask_rating",
            ],
            effects: vec![release()],
            state: "closed",
        },
        Row {
            name: "back to the queue: released, told, enqueued, the place news again",
            record: record(with("kim"), High),
            event: Event::ReturnedToQueue,
            citizen: Option::None,
            extra: Some(EventBody::Transferred {
                from: "kim".into(),
                to: Option::None,
            }),
            events: &[
                "transferred:-",
                "state:with_counselor>queued",
                "bot:changing",
                "queued:high:false",
            ],
            effects: vec![release(), enqueue(Option::None), Effect::ForgetPlace],
            state: "queued",
        },
        Row {
            name: "passed to a colleague: reserved for them",
            record: record(with("kim"), High),
            event: Event::TransferredTo {
                counselor: "lee".into(),
            },
            citizen: Option::None,
            extra: Some(EventBody::Transferred {
                from: "kim".into(),
                to: Some("lee".into()),
            }),
            events: &[
                "transferred:lee",
                "state:with_counselor>queued",
                "bot:changing",
                "queued:high:false",
            ],
            effects: vec![release(), enqueue(Some("lee")), Effect::ForgetPlace],
            state: "queued",
        },
        Row {
            name: "the citizen leaves the queue",
            record: record(queued(), High),
            event: Event::CitizenClose,
            citizen: Option::None,
            extra: Option::None,
            events: &["state:queued>closed", "closed:Citizen"],
            effects: vec![Effect::Dequeue],
            state: "closed",
        },
        Row {
            name: "a rating before the end changes nothing",
            record: record(State::Bot, None),
            event: Event::Rating(5),
            citizen: Option::None,
            extra: Option::None,
            events: &[],
            effects: vec![],
            state: "bot",
        },
    ];
    let flow = flow();
    for row in rows {
        let ctx = Context {
            flow: &flow,
            words: &Named,
            now: NOW,
            counselors_online: 1,
            place: Some(&place),
        };
        let before = row.record.clone();
        let p = plan(&row.record, row.event, row.citizen, row.extra, &ctx);
        assert_eq!(kinds(&p), row.events, "{}", row.name);
        assert_eq!(p.effects, row.effects, "{}", row.name);
        assert_eq!(
            p.record.conversation.state.name(),
            row.state,
            "{}",
            row.name
        );
        // seq continues from the record, one per event, with no gap.
        let seqs: Vec<u64> = p.events.iter().map(|e| e.seq).collect();
        let expect: Vec<u64> = (before.last_seq + 1..).take(seqs.len()).collect();
        assert_eq!(seqs, expect, "{}", row.name);
        if !p.events.is_empty() {
            assert_eq!(p.record.last_seq, *seqs.last().unwrap(), "{}", row.name);
            assert!(p.events.iter().all(|e| e.at == NOW));
        }
        // An ack only for the citizen's words, at their seq.
        match &p.ack {
            Some((id, seq)) => {
                assert_eq!(id, "m1");
                assert_eq!(p.events[0].seq, *seq);
            }
            Option::None => assert!(!kinds(&p).contains(&"citizen".to_owned())),
        }
        // The holder is the state's, and only the state's.
        assert_eq!(
            p.record.holder(),
            match &p.record.conversation.state {
                State::WithCounselor { counselor } => Some(counselor.as_str()),
                _ => Option::None,
            }
        );
    }
}

#[test]
fn the_waiting_time_survives_a_change_of_counselor() {
    let flow = flow();
    let ctx = Context {
        flow: &flow,
        words: &Named,
        now: NOW,
        counselors_online: 1,
        place: Option::None,
    };
    let mut r = record(with("kim"), Level::High);
    r.enqueued_at = Some(NOW - 90_000);
    let p = plan(&r, Event::ReturnedToQueue, Option::None, Option::None, &ctx);
    assert_eq!(p.record.enqueued_at, Some(NOW - 90_000));
    // A first handoff starts the clock.
    let p = plan(
        &record(State::Bot, Level::None),
        Event::RequestHuman,
        Option::None,
        Option::None,
        &ctx,
    );
    assert_eq!(p.record.enqueued_at, Some(NOW));
    assert_eq!(p.record.handoff_level, Some(Level::None));
    // Joining says how long they waited.
    let mut q = record(queued(), Level::High);
    q.enqueued_at = Some(NOW - 42_000);
    let p = plan(
        &q,
        Event::CounselorJoined {
            counselor: "kim".into(),
        },
        Option::None,
        Option::None,
        &ctx,
    );
    assert!(p.events.iter().any(|e| matches!(
        e.body,
        EventBody::CounselorJoined {
            waited_secs: 42,
            ..
        }
    )));
    assert_eq!(p.record.counselors, ["kim"]);
    // The first wait is kept for the statistics, and a later one does not replace it.
    assert_eq!(p.record.first_wait_secs, Some(42));
    let mut again = p.record.clone();
    again.conversation.state = queued();
    again.enqueued_at = Some(NOW - 5_000);
    let p = plan(
        &again,
        Event::CounselorJoined {
            counselor: "lee".into(),
        },
        Option::None,
        Option::None,
        &ctx,
    );
    assert_eq!(p.record.first_wait_secs, Some(42));
}

#[test]
fn the_level_is_kept_once_and_never_lowered() {
    let flow = flow();
    let ctx = Context {
        flow: &flow,
        words: &Named,
        now: NOW,
        counselors_online: 0,
        place: Option::None,
    };
    let r = record(queued(), Level::High);
    let p = plan(
        &r,
        message(Level::None, Level::High),
        Some(words("안녕", Level::None)),
        Option::None,
        &ctx,
    );
    assert_eq!(p.record.level(), Level::High);
    let p = plan(
        &r,
        message(Level::Imminent, Level::Imminent),
        Some(words("x", Level::Imminent)),
        Option::None,
        &ctx,
    );
    assert_eq!(p.record.level(), Level::Imminent);
    assert!(matches!(
        p.record.conversation.state,
        State::Queued { urgent: true, .. }
    ));
    assert_eq!(
        p.effects,
        vec![Effect::Enqueue {
            urgent: true,
            reserved_for: Option::None
        }]
    );
    // The card keeps the line that raised it.
    assert!(p.summary_changed);
    assert_eq!(p.record.summary.raised[0].level, Level::Imminent);
    // Nobody online: the holding line says so.
    let p = plan(
        &r,
        message(Level::None, Level::High),
        Some(words("안녕", Level::None)),
        Option::None,
        &ctx,
    );
    assert!(kinds(&p).contains(&"bot:holding:0:-".to_owned()));
    let _ = Closer::Citizen;
}

fn answer_with(choice: Choice) -> Event {
    Event::CitizenMessage {
        level: Level::None,
        message_level: Level::None,
        action: TriageAction::Answer,
        intent: Option::None,
        answer: Answer::Unclear,
        choice,
    }
}

/// The dialogues' outcomes become data: the self-check score a number in the record, each
/// plan answer a `plan_item` event in the citizen's words, the prefill the bot's items.
#[test]
fn self_check_scores_and_plan_items_are_stored() {
    let flow = flow();
    let ctx = Context {
        flow: &flow,
        words: &Named,
        now: NOW,
        counselors_online: 0,
        place: Option::None,
    };
    // The last self-check answer: the score goes into the record, as a number.
    let r = record(
        State::SelfCheck {
            item: 2,
            total: 4,
            unclear: 0,
        },
        Level::None,
    );
    let p = plan(
        &r,
        answer_with(Choice::Score(3)),
        Some(words("3 자주", Level::None)),
        Option::None,
        &ctx,
    );
    assert_eq!(p.record.selfcheck, Some(7));
    assert_eq!(p.record.conversation.state, State::Bot);
    // More than the progress changed: the conversation record is rewritten.
    assert!(r.clone().differs_beyond_progress(&p.record));
    // A plan answer at step 4: a `plan_item` by the citizen, then step 5's prefill and
    // its question.
    let r = record(State::PlanWalk { step: 4 }, Level::Medium);
    let p = plan(
        &r,
        answer_with(Choice::Other),
        Some(words("언니", Level::None)),
        Option::None,
        &ctx,
    );
    let k = kinds(&p);
    assert_eq!(k[0], "citizen");
    assert_eq!(k[1], "plan:4:citizen:언니");
    assert_eq!(k[2], "plan:5:bot:109");
    assert_eq!(k[3], "plan:5:bot:1577-0199");
    assert!(k[4].starts_with("bot:PlanAsk { step: 5 }"), "{k:?}");
    // Skipped: no item.
    let p = plan(
        &r,
        answer_with(Choice::Skip),
        Some(words("건너뛰기", Level::None)),
        Option::None,
        &ctx,
    );
    assert!(
        !kinds(&p).iter().any(|k| k.starts_with("plan:4")),
        "{:?}",
        kinds(&p)
    );
}
