//! The conversation state machine driven by arbitrary event sequences: no panic, and the
//! invariants hold (no bot message after a handoff, risk never goes down, closed is
//! terminal, a counselor joins only from the queue).
#![no_main]

use ieum::conversation::{
    Action, Answer, BotMessage, Choice, Conversation, Event, ScreenFlow, State, step,
};
use ieum::triage::{Action as TriageAction, Level};
use libfuzzer_sys::fuzz_target;

fn event(b: &[u8]) -> Event {
    let level = Level::ALL[(b[1] % 5) as usize];
    let action = [
        TriageAction::Answer,
        TriageAction::OfferCounselor,
        TriageAction::Handoff,
        TriageAction::UrgentHandoff,
    ][(b[2] % 4) as usize];
    let answer = [Answer::Yes, Answer::No, Answer::Unclear][(b[3] % 3) as usize];
    let choice = match b[3] % 5 {
        0 => Choice::Skip,
        1..=3 => Choice::Score(b[3] % 5),
        _ => Choice::Other,
    };
    let who = if b[2] % 2 == 0 { "kim" } else { "lee" };
    match b[0] % 10 {
        0..=3 => Event::CitizenMessage {
            level,
            message_level: Level::ALL[(b[2] % 5) as usize].min(level),
            action,
            intent: match b[3] % 3 {
                0 => None,
                1 => Some("greeting".into()),
                _ => Some(ieum::conversation::TALK_TO_HUMAN.into()),
            },
            answer,
            choice,
        },
        4 => Event::RequestHuman,
        5 => Event::CitizenClose,
        6 => Event::CounselorJoined {
            counselor: who.into(),
        },
        7 => Event::TransferredTo {
            counselor: who.into(),
        },
        8 => match b[1] % 3 {
            0 => Event::ReturnedToQueue,
            1 => Event::CounselorClose,
            2 if b[2] % 3 == 0 => Event::TakenOver {
                by: "boss".into(),
            },
            _ => Event::IdleTimeout,
        },
        _ => Event::Rating(b[1] % 8),
    }
}

/// The live screener, from the shipped `intents/` (the flow the service runs).
fn flow() -> &'static ScreenFlow {
    static FLOW: std::sync::OnceLock<ScreenFlow> = std::sync::OnceLock::new();
    FLOW.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../intents");
        let content = ieum::content::Content::load(&dir).expect("shipped content loads");
        ScreenFlow::from_screener(content.screener())
    })
}

fuzz_target!(|data: &[u8]| {
    let mut c = Conversation::default();
    let mut handed_off = false;
    let mut closed = false;
    for chunk in data.chunks_exact(4) {
        let e = event(chunk);
        let before = c.clone();
        let (next, actions) = step(flow(), c, e.clone());
        if handed_off && !closed {
            for a in &actions {
                assert!(
                    !matches!(a, Action::Bot(m) if *m != BotMessage::AskRating),
                    "bot after handoff"
                );
            }
        }
        assert!(next.level >= before.level);
        if closed {
            assert!(matches!(next.state, State::Closed { .. }));
        }
        if matches!(e, Event::CounselorJoined { .. }) && !matches!(before.state, State::Queued { .. }) {
            assert_eq!(next.state, before.state);
        }
        handed_off |= actions.iter().any(|a| matches!(a, Action::Enqueue { .. }));
        closed |= matches!(next.state, State::Closed { .. });
        c = next;
    }
});
