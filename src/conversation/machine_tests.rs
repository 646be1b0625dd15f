use proptest::prelude::*;

use super::*;

/// The live screener, read from the shipped `intents/screener.toml`: these tests pin the
/// flow the service runs, not a copy of it.
fn flow() -> &'static ScreenFlow {
    static FLOW: std::sync::OnceLock<ScreenFlow> = std::sync::OnceLock::new();
    FLOW.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("intents");
        let content = crate::content::Content::load(&dir).expect("shipped content loads");
        ScreenFlow::from_screener(content.screener())
    })
}

fn q(id: &str) -> Question {
    id.to_owned()
}

fn msg(level: Level, intent: Option<&str>, answer: Answer) -> Event {
    let action = match level {
        Level::None | Level::Low => TriageAction::Answer,
        Level::Medium => TriageAction::OfferCounselor,
        Level::High => TriageAction::Handoff,
        Level::Imminent => TriageAction::UrgentHandoff,
    };
    Event::CitizenMessage {
        level,
        message_level: level,
        action,
        intent: intent.map(str::to_owned),
        answer,
        choice: Choice::Other,
    }
}

fn say(level: Level) -> Event {
    msg(level, None, Answer::Unclear)
}

fn answer(a: Answer) -> Event {
    msg(Level::Medium, None, a)
}

fn run(events: impl IntoIterator<Item = Event>) -> (Conversation, Vec<Action>) {
    let mut c = Conversation::default();
    let mut all = Vec::new();
    for e in events {
        let (next, actions) = step(flow(), c, e);
        c = next;
        all.extend(actions);
    }
    (c, all)
}

fn asked(actions: &[Action]) -> Vec<Question> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bot(BotMessage::Ask { question, .. }) => Some(question.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn transition_table() {
    use Level::*;
    struct Row {
        name: &'static str,
        events: Vec<Event>,
        state: &'static str,
        level: Level,
    }
    let rows = vec![
        Row {
            name: "greeting is answered",
            events: vec![msg(None, Some("greeting"), Answer::Unclear)],
            state: "bot",
            level: None,
        },
        Row {
            name: "loneliness is answered",
            events: vec![say(Low)],
            state: "bot",
            level: Low,
        },
        Row {
            name: "medium starts screening",
            events: vec![say(Medium)],
            state: "screening",
            level: Medium,
        },
        Row {
            name: "high hands off",
            events: vec![say(High)],
            state: "queued",
            level: High,
        },
        Row {
            name: "imminent hands off",
            events: vec![say(Imminent)],
            state: "queued",
            level: Imminent,
        },
        Row {
            name: "asking for a person hands off",
            events: vec![Event::RequestHuman],
            state: "queued",
            level: None,
        },
        Row {
            name: "talk_to_human intent hands off",
            events: vec![msg(None, Some(TALK_TO_HUMAN), Answer::Unclear)],
            state: "queued",
            level: None,
        },
        Row {
            name: "counselor joins",
            events: vec![
                say(High),
                Event::CounselorJoined {
                    counselor: "kim".into(),
                },
            ],
            state: "with_counselor",
            level: High,
        },
        Row {
            name: "counselor closes",
            events: vec![
                say(High),
                Event::CounselorJoined {
                    counselor: "kim".into(),
                },
                Event::CounselorClose,
            ],
            state: "closed",
            level: High,
        },
        Row {
            name: "citizen closes in bot",
            events: vec![say(None), Event::CitizenClose],
            state: "closed",
            level: None,
        },
        Row {
            name: "citizen closes while queued",
            events: vec![say(High), Event::CitizenClose],
            state: "closed",
            level: High,
        },
        Row {
            name: "idle timeout closes",
            events: vec![say(Low), Event::IdleTimeout],
            state: "closed",
            level: Low,
        },
        Row {
            name: "return to queue",
            events: vec![
                say(High),
                Event::CounselorJoined {
                    counselor: "kim".into(),
                },
                Event::ReturnedToQueue,
            ],
            state: "queued",
            level: High,
        },
        Row {
            name: "transfer waits in the queue for the colleague",
            events: vec![
                say(High),
                Event::CounselorJoined {
                    counselor: "kim".into(),
                },
                Event::TransferredTo {
                    counselor: "lee".into(),
                },
            ],
            state: "queued",
            level: High,
        },
        Row {
            name: "screening yes to intent hands off",
            events: vec![
                say(Medium),
                answer(Answer::Yes),
                answer(Answer::Yes),
                answer(Answer::Yes),
                answer(Answer::Yes),
            ],
            state: "queued",
            level: High,
        },
        Row {
            name: "screening all no ends at medium and offers a safety plan",
            events: vec![
                say(Medium),
                answer(Answer::No),
                answer(Answer::No),
                answer(Answer::No),
            ],
            state: "plan_walk",
            level: Medium,
        },
        Row {
            name: "high message during screening hands off",
            events: vec![say(Medium), say(High)],
            state: "queued",
            level: High,
        },
        Row {
            name: "counselor join before handoff is ignored",
            events: vec![Event::CounselorJoined {
                counselor: "kim".into(),
            }],
            state: "bot",
            level: None,
        },
        Row {
            name: "closed ignores messages",
            events: vec![Event::CitizenClose, say(Imminent)],
            state: "closed",
            level: None,
        },
    ];
    for row in rows {
        let (c, _) = run(row.events);
        assert_eq!(c.state.name(), row.state, "{}", row.name);
        assert_eq!(c.level, row.level, "{}", row.name);
    }
}

#[test]
fn imminent_shows_emergency_resources_in_the_same_reply_and_is_urgent() {
    let (c, actions) = run([say(Level::Imminent)]);
    assert_eq!(
        c.state,
        State::Queued {
            urgent: true,
            bot_meanwhile: false
        }
    );
    assert_eq!(
        actions,
        vec![
            Action::Bot(BotMessage::Safety {
                level: Level::Imminent
            }),
            Action::Enqueue {
                level: Level::Imminent,
                urgent: true,
                reserved_for: None,
            },
            Action::Bot(BotMessage::Holding),
        ]
    );
}

#[test]
fn a_single_no_never_closes_the_screener() {
    let (c, actions) = run([say(Level::Medium), answer(Answer::No)]);
    assert!(matches!(c.state, State::Screening { .. }));
    assert_eq!(asked(&actions), vec![q("wish_dead"), q("thoughts")]);
    // No to thoughts still asks about behaviour.
    let (c, actions) = run([say(Level::Medium), answer(Answer::No), answer(Answer::No)]);
    assert!(matches!(c.state, State::Screening { .. }));
    assert_eq!(asked(&actions).last(), Some(&q("behavior")));
}

#[test]
fn the_full_yes_path_asks_in_order_and_hands_off_at_intent() {
    let (c, actions) = run([
        say(Level::Medium),
        answer(Answer::Yes),
        answer(Answer::Yes),
        answer(Answer::Yes),
        answer(Answer::Yes),
    ]);
    assert_eq!(
        asked(&actions),
        vec![q("wish_dead"), q("thoughts"), q("method"), q("intent")]
    );
    assert_eq!(c.level, Level::High);
    assert!(c.handed_off);
}

#[test]
fn past_behaviour_is_handed_off_even_if_not_recent() {
    let (c, _) = run([
        say(Level::Medium),
        answer(Answer::No),
        answer(Answer::No),
        answer(Answer::Yes),
        answer(Answer::No),
    ]);
    assert!(c.handed_off);
    assert_eq!(c.level, Level::Medium);
    let (c, _) = run([
        say(Level::Medium),
        answer(Answer::No),
        answer(Answer::No),
        answer(Answer::Yes),
        answer(Answer::Yes),
    ]);
    assert_eq!(c.level, Level::High);
}

#[test]
fn unclear_is_asked_again_once_then_moves_on() {
    let (c, actions) = run([
        say(Level::Medium),
        answer(Answer::Unclear),
        answer(Answer::Unclear),
    ]);
    assert_eq!(
        asked(&actions),
        vec![q("wish_dead"), q("wish_dead"), q("thoughts")]
    );
    assert!(matches!(
        c.state,
        State::Screening {
            any_unclear: true,
            ..
        }
    ));
}

/// While waiting, every message gets exactly one answer, and never counselling: a holding
/// line, or the safety answer when the message (or the rise it causes) is `medium` or above.
#[test]
fn while_waiting_every_message_is_answered_and_never_counselled() {
    use Level::*;
    // (the message's level, the conversation level it leaves, what answers it)
    let rows: &[(Level, Level, Action)] = &[
        (None, High, Action::Bot(BotMessage::Holding)),
        (Low, High, Action::Bot(BotMessage::Holding)),
        (Medium, High, Action::SafetyResources { level: Medium }),
        (High, High, Action::SafetyResources { level: High }),
        (
            Imminent,
            Imminent,
            Action::SafetyResources { level: Imminent },
        ),
    ];
    for (message, conversation, answer) in rows {
        let waiting = run([say(High)]).0;
        let e = Event::CitizenMessage {
            level: (*message).max(High),
            message_level: *message,
            action: TriageAction::Answer,
            intent: Option::None,
            choice: Choice::Other,
            answer: Answer::Unclear,
        };
        let (c, actions) = step(flow(), waiting, e);
        assert_eq!(c.state.name(), "queued", "{message:?}");
        assert_eq!(c.level, *conversation, "{message:?}");
        let answers: Vec<&Action> = actions
            .iter()
            .filter(|a| matches!(a, Action::Bot(_) | Action::SafetyResources { .. }))
            .collect();
        assert_eq!(answers, vec![answer], "{message:?}");
    }
    // Risk rising while waiting re-orders the queue at once, and imminent makes it urgent.
    let (c, actions) = run([Event::RequestHuman, say(Medium)]);
    assert_eq!(c.level, Medium);
    assert!(actions.contains(&Action::Escalated { level: Medium }));
    assert!(actions.contains(&Action::SafetyResources { level: Medium }));
    let (c, _) = run([Event::RequestHuman, say(Imminent)]);
    assert!(matches!(c.state, State::Queued { urgent: true, .. }));
}

#[test]
fn while_waiting_the_person_may_talk_with_the_bot_and_keep_their_place() {
    let (c, actions) = run([
        Event::RequestHuman,
        Event::WhileWaiting { talk: true },
        msg(Level::Low, Some("loneliness"), Answer::Unclear),
    ]);
    assert!(matches!(
        c.state,
        State::Queued {
            bot_meanwhile: true,
            ..
        }
    ));
    // Entered the queue once, and never left it.
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::Enqueue { .. }))
            .count(),
        1
    );
    assert!(!actions.contains(&Action::Dequeue));
    assert_eq!(
        actions.last(),
        Some(&Action::Bot(BotMessage::Intent {
            intent: Some("loneliness".into())
        }))
    );
    // Risk still gets the safety answer, not the bot's.
    let (_, a) = step(flow(), c.clone(), say(Level::High));
    assert!(a.contains(&Action::SafetyResources { level: Level::High }));
    assert!(!a.iter().any(|x| matches!(x, Action::Bot(_))));
    // Choosing to wait again: holding lines.
    let (c, _) = step(flow(), c, Event::WhileWaiting { talk: false });
    let (_, a) = step(flow(), c, say(Level::None));
    assert_eq!(a, vec![Action::Bot(BotMessage::Holding)]);
}

#[test]
fn with_a_counselor_the_bot_is_silent_but_risk_gets_the_safety_answer() {
    let joined = run([
        say(Level::High),
        Event::CounselorJoined {
            counselor: "kim".into(),
        },
    ])
    .0;
    let (_, a) = step(flow(), joined.clone(), say(Level::None));
    assert_eq!(a, vec![Action::ForwardToCounselor]);
    let (_, a) = step(flow(), joined, say(Level::Imminent));
    assert_eq!(
        a,
        vec![
            Action::ForwardToCounselor,
            Action::Escalated {
                level: Level::Imminent
            },
            Action::SafetyResources {
                level: Level::Imminent
            },
        ]
    );
}

#[test]
fn back_to_the_queue_or_to_a_colleague_tells_the_person() {
    let joined = run([
        say(Level::High),
        Event::CounselorJoined {
            counselor: "kim".into(),
        },
    ])
    .0;
    let (c, a) = step(flow(), joined.clone(), Event::ReturnedToQueue);
    assert_eq!(c.state.name(), "queued");
    assert_eq!(c.level, Level::High);
    assert_eq!(
        a,
        vec![
            Action::Bot(BotMessage::CounselorChanging),
            Action::Enqueue {
                level: Level::High,
                urgent: false,
                reserved_for: None
            },
        ]
    );
    let (c, a) = step(
        flow(),
        joined,
        Event::TransferredTo {
            counselor: "lee".into(),
        },
    );
    assert_eq!(c.state.name(), "queued");
    assert!(a.contains(&Action::Enqueue {
        level: Level::High,
        urgent: false,
        reserved_for: Some("lee".into())
    }));
}

#[test]
fn a_second_unclear_answer_follows_the_file() {
    let mut handoff = flow().clone();
    handoff.second_unclear = SecondUnclear::HandOff;
    let mut c = Conversation::default();
    for e in [
        say(Level::Medium),
        answer(Answer::Unclear),
        answer(Answer::Unclear),
    ] {
        c = step(&handoff, c, e).0;
    }
    assert_eq!(c.state.name(), "queued");
    // The shipped file keeps the live behaviour: read as a no, and go on.
    assert_eq!(flow().second_unclear, SecondUnclear::Continue);
}

#[test]
fn rating_only_after_a_counselor_closes() {
    let (c, actions) = run([
        say(Level::High),
        Event::CounselorJoined {
            counselor: "kim".into(),
        },
        Event::CounselorClose,
        Event::Rating(5),
        Event::Rating(1),
    ]);
    assert_eq!(c.rating, Some(5));
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::Rated(_)))
            .count(),
        1
    );
    let (c, _) = run([Event::CitizenClose, Event::Rating(4)]);
    assert_eq!(c.rating, None);
    let (c, _) = run([
        say(Level::High),
        Event::CounselorJoined {
            counselor: "kim".into(),
        },
        Event::CounselorClose,
        Event::Rating(9),
    ]);
    assert_eq!(c.rating, None);
}

fn any_event() -> impl Strategy<Value = Event> {
    let level = prop_oneof![
        Just(Level::None),
        Just(Level::Low),
        Just(Level::Medium),
        Just(Level::High),
        Just(Level::Imminent)
    ];
    let ans = prop_oneof![Just(Answer::Yes), Just(Answer::No), Just(Answer::Unclear)];
    let intent = prop_oneof![
        Just(None),
        Just(Some("greeting".to_owned())),
        Just(Some(SELF_CHECK.to_owned())),
        Just(Some(TALK_TO_HUMAN.to_owned()))
    ];
    let choice = prop_oneof![
        Just(Choice::Other),
        Just(Choice::Skip),
        (0u8..5).prop_map(Choice::Score)
    ];
    let who = prop_oneof![Just("kim".to_owned()), Just("lee".to_owned())];
    prop_oneof![
        6 => (level, intent, ans, choice).prop_map(|(l, i, a, ch)| {
            let mut e = msg(l, i.as_deref(), a);
            if let Event::CitizenMessage { choice, .. } = &mut e {
                *choice = ch;
            }
            e
        }),
        1 => Just(Event::RequestHuman),
        1 => Just(Event::CitizenClose),
        1 => who.clone().prop_map(|counselor| Event::CounselorJoined { counselor }),
        1 => who.prop_map(|counselor| Event::TransferredTo { counselor }),
        1 => any::<bool>().prop_map(|talk| Event::WhileWaiting { talk }),
        1 => Just(Event::ReturnedToQueue),
        1 => Just(Event::CounselorClose),
        1 => Just(Event::IdleTimeout),
        1 => (0u8..8).prop_map(Event::Rating),
        1 => prop_oneof![Just("boss".to_owned()), Just("kim".to_owned())]
            .prop_map(|by| Event::TakenOver { by }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The invariants that matter most, over arbitrary event sequences.
    #[test]
    fn invariants_hold(events in proptest::collection::vec(any_event(), 0..40)) {
        let mut c = Conversation::default();
        let mut handed_off = false;
        let mut closed = false;
        for e in events {
            let before = c.clone();
            let (next, actions) = step(flow(), c, e.clone());
            // The bot never speaks while a counselor is in the conversation (closing asks
            // for a rating, after they left).
            if matches!(before.state, State::WithCounselor { .. }) {
                for a in &actions {
                    let allowed = matches!(
                        a,
                        Action::Bot(BotMessage::AskRating | BotMessage::CounselorChanging)
                    );
                    prop_assert!(!matches!(a, Action::Bot(_)) || allowed, "bot spoke with a counselor: {a:?} on {e:?}");
                }
            }
            // Once handed off, the bot never counsels or screens (holding lines, the
            // safety answer and what the person chose to talk about meanwhile only).
            let chose_to_talk = matches!(e, Event::WhileWaiting { talk: true });
            if handed_off && !closed && !chose_to_talk && !matches!(before.state, State::Queued { bot_meanwhile: true, .. }) {
                for a in &actions {
                    prop_assert!(!matches!(a, Action::Bot(BotMessage::Ask { .. } | BotMessage::Intent { .. } | BotMessage::ScreeningDone { .. } | BotMessage::SelfCheckAsk { .. } | BotMessage::PlanOffer | BotMessage::PlanAsk { .. })), "bot counselled after handoff: {a:?} on {e:?}");
                }
            }
            // While waiting, every citizen message gets an answer.
            if matches!(before.state, State::Queued { .. }) && matches!(e, Event::CitizenMessage { .. }) {
                prop_assert!(actions.iter().any(|a| matches!(a, Action::Bot(_) | Action::SafetyResources { .. })), "left in silence: {e:?}");
            }
            // Risk never goes down.
            prop_assert!(next.level >= before.level);
            // Risk always wins over a dialogue: a message at `medium` or above never leaves
            // the conversation in the self-check, and never adds a plan item.
            if let Event::CitizenMessage { action, .. } = &e {
                if *action != TriageAction::Answer && matches!(before.state, State::SelfCheck { .. } | State::PlanWalk { .. }) {
                    prop_assert!(!matches!(next.state, State::SelfCheck { .. } | State::PlanWalk { .. }), "{e:?}");
                    prop_assert!(!actions.iter().any(|a| matches!(a, Action::PlanItem { .. } | Action::SelfCheckScored(_))), "{e:?}");
                }
            }
            // Closed is terminal.
            if closed {
                prop_assert_eq!(next.state.name(), "closed");
            }
            // At most one counselor: the state names exactly one, and joining needs the queue.
            if let Event::CounselorJoined { .. } = e {
                if !matches!(before.state, State::Queued { .. }) {
                    prop_assert_eq!(&next.state, &before.state);
                }
            }
            // A take-over: only from the queue or a counselor, and then it is the taker's
            // alone (the bot stays silent: checked above).
            if let Event::TakenOver { by } = &e {
                if before.state.is_handed_off() {
                    prop_assert_eq!(&next.state, &State::WithCounselor { counselor: by.clone() });
                } else {
                    prop_assert_eq!(&next.state, &before.state);
                }
            }
            if actions.iter().any(|a| matches!(a, Action::Enqueue { .. })) {
                handed_off = true;
            }
            prop_assert_eq!(next.handed_off || !handed_off, true);
            if matches!(next.state, State::Closed { .. }) {
                closed = true;
            }
            c = next;
        }
    }
}

// ---- the loneliness self-check and the safety-plan walk.

/// A plain message (level none) that reads as `choice` (and `answer`), with an intent.
fn reply(intent: Option<&str>, answer: Answer, choice: Choice) -> Event {
    Event::CitizenMessage {
        level: Level::None,
        message_level: Level::None,
        action: TriageAction::Answer,
        intent: intent.map(str::to_owned),
        answer,
        choice,
    }
}

fn start_self_check() -> Event {
    reply(Some(SELF_CHECK), Answer::Unclear, Choice::Other)
}

fn score(n: u8) -> Event {
    reply(None, Answer::Unclear, Choice::Score(n))
}

fn bot_says(actions: &[Action]) -> Vec<BotMessage> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bot(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// The screener ended at `medium` with every answer "no": the plan is offered.
fn screened_medium() -> Vec<Event> {
    let mut events = vec![say(Level::Medium)];
    let (mut c, _) = run(events.clone());
    while matches!(c.state, State::Screening { .. }) {
        events.push(answer(Answer::No));
        c = run(events.clone()).0;
    }
    events
}

#[test]
fn self_check_table() {
    use Level::*;
    struct Row {
        name: &'static str,
        events: Vec<Event>,
        state: State,
        level: Level,
        scored: Option<u8>,
        last: Option<BotMessage>,
    }
    let full = |a: u8, b: u8, c: u8| vec![start_self_check(), score(a), score(b), score(c)];
    let rows = vec![
        Row {
            name: "asking starts it with the first item",
            events: vec![start_self_check()],
            state: State::SelfCheck {
                item: 0,
                total: 0,
                unclear: 0,
            },
            level: None,
            scored: Option::None,
            last: Some(BotMessage::SelfCheckAsk {
                item: 0,
                repeat: false,
            }),
        },
        Row {
            name: "three answers give the score (lowest)",
            events: full(1, 1, 1),
            state: State::Bot,
            level: None,
            scored: Some(3),
            last: Some(BotMessage::SelfCheckResult { score: 3 }),
        },
        Row {
            name: "three answers give the score (lonely band)",
            events: full(2, 3, 3),
            state: State::Bot,
            level: None,
            scored: Some(8),
            last: Some(BotMessage::SelfCheckResult { score: 8 }),
        },
        Row {
            name: "an unclear answer asks the same item again",
            events: vec![
                start_self_check(),
                score(2),
                reply(Option::None, Answer::Unclear, Choice::Other),
            ],
            state: State::SelfCheck {
                item: 1,
                total: 2,
                unclear: 1,
            },
            level: None,
            scored: Option::None,
            last: Some(BotMessage::SelfCheckAsk {
                item: 1,
                repeat: true,
            }),
        },
        Row {
            name: "a second unclear answer stops it without a score",
            events: vec![
                start_self_check(),
                reply(Option::None, Answer::Unclear, Choice::Other),
                reply(Option::None, Answer::Unclear, Choice::Other),
            ],
            state: State::Bot,
            level: None,
            scored: Option::None,
            last: Some(BotMessage::SelfCheckStopped),
        },
        Row {
            name: "medium mid-check interrupts it and starts the screener",
            events: vec![start_self_check(), score(3), say(Medium)],
            state: State::Screening {
                question: q("wish_dead"),
                unclear: 0,
                any_unclear: false,
            },
            level: Medium,
            scored: Option::None,
            last: Some(BotMessage::Ask {
                question: q("wish_dead"),
                repeat: false,
            }),
        },
        Row {
            name: "high mid-check hands off with the safety answer",
            events: vec![start_self_check(), say(High)],
            state: State::Queued {
                urgent: false,
                bot_meanwhile: false,
            },
            level: High,
            scored: Option::None,
            last: Some(BotMessage::Holding),
        },
        Row {
            name: "asking for a person mid-check hands off",
            events: vec![start_self_check(), Event::RequestHuman],
            state: State::Queued {
                urgent: false,
                bot_meanwhile: false,
            },
            level: None,
            scored: Option::None,
            last: Some(BotMessage::Holding),
        },
        Row {
            name: "the self-check intent at medium is risk first: the screener",
            events: vec![msg(Medium, Some(SELF_CHECK), Answer::Unclear)],
            state: State::Screening {
                question: q("wish_dead"),
                unclear: 0,
                any_unclear: false,
            },
            level: Medium,
            scored: Option::None,
            last: Some(BotMessage::Ask {
                question: q("wish_dead"),
                repeat: false,
            }),
        },
    ];
    for row in rows {
        let (c, actions) = run(row.events);
        assert_eq!(c.state, row.state, "{}", row.name);
        assert_eq!(c.level, row.level, "{}", row.name);
        let scored: Vec<u8> = actions
            .iter()
            .filter_map(|a| match a {
                Action::SelfCheckScored(s) => Some(*s),
                _ => Option::None,
            })
            .collect();
        assert_eq!(
            scored,
            row.scored.into_iter().collect::<Vec<_>>(),
            "{}",
            row.name
        );
        assert_eq!(bot_says(&actions).last(), row.last.as_ref(), "{}", row.name);
    }
    // The high interruption said the safety answer before the holding line.
    let (_, actions) = run([start_self_check(), say(High)]);
    assert!(bot_says(&actions).contains(&BotMessage::Safety { level: High }));
}

#[test]
fn plan_walk_table() {
    use Level::*;
    let offered = screened_medium();
    let (c, actions) = run(offered.clone());
    assert_eq!(c.state, State::PlanWalk { step: 0 });
    assert_eq!(
        &bot_says(&actions)[bot_says(&actions).len() - 2..],
        &[
            BotMessage::ScreeningDone { unclear: false },
            BotMessage::PlanOffer
        ]
    );
    let with = |more: Vec<Event>| {
        let mut e = offered.clone();
        e.extend(more);
        run(e)
    };
    let yes = || reply(Option::None, Answer::Yes, Choice::Other);
    let item = || reply(Option::None, Answer::Unclear, Choice::Other);
    let skip = || reply(Option::None, Answer::Unclear, Choice::Skip);
    let items = |actions: &[Action]| -> Vec<u8> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::PlanItem { step } => Some(*step),
                _ => Option::None,
            })
            .collect()
    };

    // No: a kind word, back with the bot, nothing written.
    let (c, actions) = with(vec![reply(Option::None, Answer::No, Choice::Other)]);
    assert_eq!(c.state, State::Bot);
    assert_eq!(bot_says(&actions).last(), Some(&BotMessage::PlanDeclined));
    assert!(items(&actions).is_empty());

    // Yes: step 1 is asked.
    let (c, actions) = with(vec![yes()]);
    assert_eq!(c.state, State::PlanWalk { step: 1 });
    assert_eq!(
        bot_says(&actions).last(),
        Some(&BotMessage::PlanAsk { step: 1 })
    );

    // The whole walk: six answers (one skipped), step 5 prefilled, then done.
    let (c, actions) = with(vec![yes(), item(), item(), skip(), item(), item(), item()]);
    assert_eq!(c.state, State::Bot);
    assert_eq!(items(&actions), vec![1, 2, 4, 5, 6]);
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::PlanPrefill))
            .count(),
        1
    );
    assert_eq!(bot_says(&actions).last(), Some(&BotMessage::PlanDone));
    let asked: Vec<u8> = bot_says(&actions)
        .iter()
        .filter_map(|m| match m {
            BotMessage::PlanAsk { step } => Some(*step),
            _ => Option::None,
        })
        .collect();
    assert_eq!(asked, vec![1, 2, 3, 4, 5, 6]);

    // High mid-walk: the walk stops, a counselor is asked for; what was written is kept
    // (no item is taken back, and the high words are not an item).
    let (c, actions) = with(vec![yes(), item(), say(High)]);
    assert!(matches!(c.state, State::Queued { .. }), "{:?}", c.state);
    assert_eq!(c.level, High);
    assert_eq!(items(&actions), vec![1]);
    assert!(bot_says(&actions).contains(&BotMessage::Safety { level: High }));

    // Medium mid-walk (already screened): the safety answer, the walk stops.
    let (c, actions) = with(vec![yes(), say(Medium)]);
    assert_eq!(c.state, State::Bot);
    assert_eq!(
        bot_says(&actions).last(),
        Some(&BotMessage::Safety { level: Medium })
    );

    // Asking for a person mid-walk hands off.
    let (c, _) = with(vec![yes(), Event::RequestHuman]);
    assert!(c.state.is_handed_off());

    // The screener ending at high never offers a plan: it hands off.
    let (_, actions) = run([
        say(Medium),
        answer(Answer::Yes),
        answer(Answer::Yes),
        answer(Answer::Yes),
        answer(Answer::Yes),
    ]);
    assert!(!bot_says(&actions).contains(&BotMessage::PlanOffer));
}
