use proptest::prelude::*;

use super::*;

fn msg(level: Level, intent: Option<&str>, answer: Answer) -> Event {
    let action = match level {
        Level::None | Level::Low => TriageAction::Answer,
        Level::Medium => TriageAction::OfferCounselor,
        Level::High => TriageAction::Handoff,
        Level::Imminent => TriageAction::UrgentHandoff,
    };
    Event::CitizenMessage {
        level,
        action,
        intent: intent.map(str::to_owned),
        answer,
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
        let (next, actions) = step(c, e);
        c = next;
        all.extend(actions);
    }
    (c, all)
}

fn asked(actions: &[Action]) -> Vec<Question> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bot(BotMessage::Ask { question, .. }) => Some(*question),
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
            name: "transfer keeps with_counselor",
            events: vec![
                say(High),
                Event::CounselorJoined {
                    counselor: "kim".into(),
                },
                Event::TransferredTo {
                    counselor: "lee".into(),
                },
            ],
            state: "with_counselor",
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
            name: "screening all no returns to bot",
            events: vec![
                say(Medium),
                answer(Answer::No),
                answer(Answer::No),
                answer(Answer::No),
            ],
            state: "bot",
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
    assert_eq!(c.state, State::Queued { urgent: true });
    assert_eq!(
        actions,
        vec![
            Action::Bot(BotMessage::Safety {
                level: Level::Imminent
            }),
            Action::Enqueue {
                level: Level::Imminent,
                urgent: true
            },
        ]
    );
}

#[test]
fn a_single_no_never_closes_the_screener() {
    let (c, actions) = run([say(Level::Medium), answer(Answer::No)]);
    assert!(matches!(c.state, State::Screening { .. }));
    assert_eq!(
        asked(&actions),
        vec![Question::WishDead, Question::Thoughts]
    );
    // No to thoughts still asks about behaviour.
    let (c, actions) = run([say(Level::Medium), answer(Answer::No), answer(Answer::No)]);
    assert!(matches!(c.state, State::Screening { .. }));
    assert_eq!(asked(&actions).last(), Some(&Question::Behaviour));
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
        vec![
            Question::WishDead,
            Question::Thoughts,
            Question::Method,
            Question::Intent
        ]
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
        vec![Question::WishDead, Question::WishDead, Question::Thoughts]
    );
    assert!(matches!(
        c.state,
        State::Screening {
            any_unclear: true,
            ..
        }
    ));
}

#[test]
fn queued_citizen_gets_no_bot_answer_only_escalation_and_safety() {
    let (_, actions) = run([say(Level::High), say(Level::None), say(Level::Imminent)]);
    let after: Vec<&Action> = actions
        .iter()
        .skip_while(|a| !matches!(a, Action::Enqueue { .. }))
        .collect();
    assert!(after.iter().all(|a| !matches!(a, Action::Bot(_))));
    assert!(after.contains(&&Action::SafetyResources {
        level: Level::Imminent
    }));
    assert!(after.contains(&&Action::Escalated {
        level: Level::Imminent
    }));
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
        Just(Some(TALK_TO_HUMAN.to_owned()))
    ];
    let who = prop_oneof![Just("kim".to_owned()), Just("lee".to_owned())];
    prop_oneof![
        6 => (level, intent, ans).prop_map(|(l, i, a)| msg(l, i.as_deref(), a)),
        1 => Just(Event::RequestHuman),
        1 => Just(Event::CitizenClose),
        1 => who.clone().prop_map(|counselor| Event::CounselorJoined { counselor }),
        1 => who.prop_map(|counselor| Event::TransferredTo { counselor }),
        1 => Just(Event::ReturnedToQueue),
        1 => Just(Event::CounselorClose),
        1 => Just(Event::IdleTimeout),
        1 => (0u8..8).prop_map(Event::Rating),
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
            let (next, actions) = step(c, e.clone());
            // No bot message after a handoff, except the closing rating exchange.
            if handed_off && !closed {
                for a in &actions {
                    let allowed = matches!(a, Action::Bot(BotMessage::AskRating));
                    prop_assert!(!matches!(a, Action::Bot(_)) || allowed, "bot spoke after handoff: {a:?} on {e:?}");
                }
            }
            // Risk never goes down.
            prop_assert!(next.level >= before.level);
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
