//! The conversation state machine: `step(policy, state, event) -> (state, actions)`.
//!
//! Pure: no I/O, no clock (time arrives inside events), no randomness. The conversation
//! actor feeds it events and carries out the actions (store, send, enqueue). Keeping it pure
//! is what lets table tests and property tests pin down the promises that matter most:
//!
//! * **Once a human is requested, the bot stops answering.** The most-reported failure of
//!   existing chat tools is the bot talking over the counselor. After a handoff the only
//!   things the citizen gets are queue updates, safety resources and the counselor.
//! * **A single "no" never closes the screening.** Risk once seen is never lowered: the
//!   conversation level only goes up.
//! * At `imminent`, the handoff is urgent and the emergency resources go out in the same
//!   reply.
//!
//! States: `bot`, `screening`, `queued`, `with_counselor`, `closed`.

use serde::{Deserialize, Serialize};

use crate::triage::{Action as TriageAction, Level};

/// Screener questions, modelled on the C-SSRS screener (past month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Question {
    /// Wished you were dead, or to sleep and not wake up.
    WishDead,
    /// Actual thoughts of killing yourself.
    Thoughts,
    /// Thought about how.
    Method,
    /// Some intention of acting on them.
    Intent,
    /// Worked out the details; intend to carry out the plan.
    Plan,
    /// Ever done, started or prepared anything to end your life.
    Behaviour,
    /// (After a yes to behaviour) within the past three months.
    Recent,
}

impl Question {
    /// The id used in the screener data file.
    pub fn id(self) -> &'static str {
        match self {
            Question::WishDead => "wish_dead",
            Question::Thoughts => "thoughts",
            Question::Method => "method",
            Question::Intent => "intent",
            Question::Plan => "plan",
            Question::Behaviour => "behavior",
            Question::Recent => "recent",
        }
    }
}

/// How a screener answer was understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Yes.
    Yes,
    /// No.
    No,
    /// Neither (or not an answer at all).
    Unclear,
}

/// Who closed a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closer {
    /// The citizen ended it.
    Citizen,
    /// The counselor closed it.
    Counselor,
    /// Nobody spoke for too long.
    Timeout,
}

/// Where a conversation is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// The bot answers.
    Bot,
    /// The bot asks the screener questions, one at a time.
    Screening {
        /// The question waiting for an answer.
        question: Question,
        /// Unclear answers so far (a second unclear answer moves on).
        unclear: u8,
        /// Whether any answer so far was unclear.
        any_unclear: bool,
    },
    /// Waiting for a counselor. The bot is silent.
    Queued {
        /// Handed off at `imminent`.
        urgent: bool,
    },
    /// A counselor is in the conversation. The bot is silent.
    WithCounselor {
        /// The counselor's username.
        counselor: String,
    },
    /// Ended.
    Closed {
        /// Who ended it.
        by: Closer,
        /// A 1–5 rating may still be given (after a counselor closes).
        rating_open: bool,
    },
}

impl State {
    /// The state's name as on the wire (`bot`, `screening`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            State::Bot => "bot",
            State::Screening { .. } => "screening",
            State::Queued { .. } => "queued",
            State::WithCounselor { .. } => "with_counselor",
            State::Closed { .. } => "closed",
        }
    }

    /// Whether a human has been asked for: from here on the bot never answers.
    pub fn is_handed_off(&self) -> bool {
        matches!(self, State::Queued { .. } | State::WithCounselor { .. })
    }
}

/// Everything the state machine remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Where it is.
    pub state: State,
    /// The conversation's risk level (never goes down).
    pub level: Level,
    /// Whether it was ever handed off: the bot stays silent for good once it was.
    pub handed_off: bool,
    /// Whether the screener has run to its end once.
    pub screened: bool,
    /// Citizen messages so far (picks response variants).
    pub turn: u32,
    /// The rating given, if any.
    pub rating: Option<u8>,
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            state: State::Bot,
            level: Level::None,
            handed_off: false,
            screened: false,
            turn: 0,
            rating: None,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The citizen wrote something. Triage ran outside: `level` is the conversation's level
    /// after this message, `action` what that level calls for.
    CitizenMessage {
        /// The conversation level after this message.
        level: Level,
        /// The action the rules file gives that level.
        action: TriageAction,
        /// The top intent, if any.
        intent: Option<String>,
        /// How the text reads as a screener answer (asked only while screening).
        answer: Answer,
    },
    /// The citizen asked for a person (button, or the `talk_to_human` intent).
    RequestHuman,
    /// The citizen ended the conversation.
    CitizenClose,
    /// A counselor claimed the conversation.
    CounselorJoined {
        /// Username.
        counselor: String,
    },
    /// A counselor sent the queue this conversation back (or to nobody in particular).
    ReturnedToQueue,
    /// Handed to another counselor directly.
    TransferredTo {
        /// Username.
        counselor: String,
    },
    /// The counselor closed the conversation.
    CounselorClose,
    /// Nobody spoke for the state's idle limit.
    IdleTimeout,
    /// The citizen rated the conversation.
    Rating(u8),
}

/// Which bot message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BotMessage {
    /// The intent's response (`None`: the fallback).
    Intent {
        /// The intent id.
        intent: Option<String>,
    },
    /// The safety response for a level (medium and above carry 109).
    Safety {
        /// The level.
        level: Level,
    },
    /// A screener question.
    Ask {
        /// Which.
        question: Question,
        /// Asked again after an unclear answer.
        #[serde(default)]
        repeat: bool,
    },
    /// Screening ended without a handoff: stay, give 109, offer a counselor (more firmly
    /// when some answers were unclear).
    ScreeningDone {
        /// Whether any answer was unclear.
        unclear: bool,
    },
    /// Asks for an optional 1–5 rating.
    AskRating,
    /// Thanks for a rating.
    ThanksForRating,
}

/// What the actor must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a bot message. Never emitted once the conversation was handed off.
    Bot(BotMessage),
    /// Put the conversation in the counselor queue (or raise its level there).
    Enqueue {
        /// The level it waits at.
        level: Level,
        /// Handed off at `imminent`: alert every counselor.
        urgent: bool,
    },
    /// While queued or with a counselor: the level went up (re-order, alert).
    Escalated {
        /// The new level.
        level: Level,
    },
    /// Send the emergency resources (while queued or with a counselor, this is the only
    /// thing other than queue updates the system itself sends).
    SafetyResources {
        /// The level that called for them.
        level: Level,
    },
    /// Pass the citizen's message to the counselor.
    ForwardToCounselor,
    /// Tell the citizen a counselor joined.
    CounselorJoined {
        /// Username.
        counselor: String,
    },
    /// Take the conversation out of the queue.
    Dequeue,
    /// The conversation ended.
    Closed {
        /// Who ended it.
        by: Closer,
    },
    /// Store the rating.
    Rated(u8),
}

/// Per-state idle limits, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdlePolicy {
    /// Talking to the bot.
    pub bot: u64,
    /// In the screener.
    pub screening: u64,
    /// Waiting for a counselor: long, so nobody at risk is dropped from the queue.
    pub queued: u64,
    /// With a counselor.
    pub with_counselor: u64,
    /// After closing, while a rating may still come.
    pub closed: u64,
}

impl Default for IdlePolicy {
    fn default() -> Self {
        IdlePolicy {
            bot: 30 * 60,
            screening: 60 * 60,
            queued: 6 * 60 * 60,
            with_counselor: 60 * 60,
            closed: 10 * 60,
        }
    }
}

impl IdlePolicy {
    /// The idle limit of a state, in seconds.
    pub fn limit(&self, state: &State) -> u64 {
        match state {
            State::Bot => self.bot,
            State::Screening { .. } => self.screening,
            State::Queued { .. } => self.queued,
            State::WithCounselor { .. } => self.with_counselor,
            State::Closed { .. } => self.closed,
        }
    }
}

/// The state machine. Returns the next conversation and the actions to carry out, in order.
pub fn step(mut c: Conversation, event: Event) -> (Conversation, Vec<Action>) {
    let mut actions = Vec::new();
    match (c.state.clone(), event) {
        // ---- closed is terminal; only a rating may still arrive.
        (
            State::Closed {
                by,
                rating_open: true,
            },
            Event::Rating(r),
        ) if (1..=5).contains(&r) => {
            c.rating = Some(r);
            c.state = State::Closed {
                by,
                rating_open: false,
            };
            actions.push(Action::Rated(r));
            actions.push(Action::Bot(BotMessage::ThanksForRating));
        }
        (State::Closed { .. }, _) => {}

        // ---- the citizen can always end it.
        (state, Event::CitizenClose) => {
            if matches!(state, State::Queued { .. }) {
                actions.push(Action::Dequeue);
            }
            c.state = State::Closed {
                by: Closer::Citizen,
                rating_open: false,
            };
            actions.push(Action::Closed {
                by: Closer::Citizen,
            });
        }
        (state, Event::IdleTimeout) => {
            if matches!(state, State::Queued { .. }) {
                actions.push(Action::Dequeue);
            }
            c.state = State::Closed {
                by: Closer::Timeout,
                rating_open: false,
            };
            actions.push(Action::Closed {
                by: Closer::Timeout,
            });
        }

        // ---- citizen messages.
        (
            State::Bot,
            Event::CitizenMessage {
                level,
                action,
                intent,
                ..
            },
        ) => {
            c.turn += 1;
            c.level = c.level.max(level);
            if intent.as_deref() == Some(TALK_TO_HUMAN) {
                hand_off(&mut c, &mut actions, false);
            } else {
                bot_turn(&mut c, &mut actions, action, intent);
            }
        }
        (
            State::Screening {
                question,
                unclear,
                any_unclear,
            },
            Event::CitizenMessage {
                level,
                action,
                intent,
                answer,
            },
        ) => {
            c.turn += 1;
            c.level = c.level.max(level);
            if matches!(action, TriageAction::Handoff | TriageAction::UrgentHandoff)
                || intent.as_deref() == Some(TALK_TO_HUMAN)
            {
                bot_turn(&mut c, &mut actions, action, intent);
                if !c.state.is_handed_off() {
                    hand_off(&mut c, &mut actions, false);
                }
            } else {
                screen(&mut c, &mut actions, question, answer, unclear, any_unclear);
            }
        }
        (State::Queued { urgent }, Event::CitizenMessage { level, .. }) => {
            c.turn += 1;
            if level > c.level {
                c.level = level;
                actions.push(Action::Escalated { level });
                if level == Level::Imminent {
                    actions.push(Action::SafetyResources { level });
                }
                c.state = State::Queued {
                    urgent: urgent || level == Level::Imminent,
                };
            }
        }
        (State::WithCounselor { .. }, Event::CitizenMessage { level, .. }) => {
            c.turn += 1;
            actions.push(Action::ForwardToCounselor);
            if level > c.level {
                c.level = level;
                actions.push(Action::Escalated { level });
            }
        }

        // ---- asking for a person.
        (State::Bot | State::Screening { .. }, Event::RequestHuman) => {
            hand_off(&mut c, &mut actions, false);
        }
        (State::Queued { .. } | State::WithCounselor { .. }, Event::RequestHuman) => {}

        // ---- counselors.
        (State::Queued { .. }, Event::CounselorJoined { counselor }) => {
            c.state = State::WithCounselor {
                counselor: counselor.clone(),
            };
            actions.push(Action::CounselorJoined { counselor });
        }
        (State::WithCounselor { .. }, Event::TransferredTo { counselor }) => {
            c.state = State::WithCounselor {
                counselor: counselor.clone(),
            };
            actions.push(Action::CounselorJoined { counselor });
        }
        (State::WithCounselor { .. }, Event::ReturnedToQueue) => {
            let urgent = c.level == Level::Imminent;
            c.state = State::Queued { urgent };
            actions.push(Action::Enqueue {
                level: c.level,
                urgent,
            });
        }
        (State::WithCounselor { .. }, Event::CounselorClose) => {
            c.state = State::Closed {
                by: Closer::Counselor,
                rating_open: true,
            };
            actions.push(Action::Closed {
                by: Closer::Counselor,
            });
            actions.push(Action::Bot(BotMessage::AskRating));
        }

        // Anything else (a counselor event for a conversation not in their hands, a
        // rating before the end) changes nothing.
        (_, _) => {}
    }
    (c, actions)
}

/// The intent id that means "I want to talk to a person".
pub const TALK_TO_HUMAN: &str = "talk_to_human";

fn bot_turn(
    c: &mut Conversation,
    actions: &mut Vec<Action>,
    action: TriageAction,
    intent: Option<String>,
) {
    // The triage action is for the message; the conversation level may be higher.
    let level = c.level;
    match action {
        TriageAction::UrgentHandoff => {
            actions.push(Action::Bot(BotMessage::Safety {
                level: Level::Imminent,
            }));
            hand_off(c, actions, true);
        }
        TriageAction::Handoff => {
            actions.push(Action::Bot(BotMessage::Safety { level }));
            hand_off(c, actions, level == Level::Imminent);
        }
        TriageAction::OfferCounselor => {
            if c.screened {
                actions.push(Action::Bot(BotMessage::Safety { level }));
            } else {
                // One message, not two: the screener's opening (why we ask, 109) and its
                // first question.
                c.state = State::Screening {
                    question: Question::WishDead,
                    unclear: 0,
                    any_unclear: false,
                };
                actions.push(Action::Bot(BotMessage::Ask {
                    question: Question::WishDead,
                    repeat: false,
                }));
            }
        }
        TriageAction::Answer => {
            actions.push(Action::Bot(BotMessage::Intent { intent }));
        }
    }
}

fn hand_off(c: &mut Conversation, actions: &mut Vec<Action>, urgent: bool) {
    let urgent = urgent || c.level == Level::Imminent;
    c.handed_off = true;
    c.state = State::Queued { urgent };
    actions.push(Action::Enqueue {
        level: c.level,
        urgent,
    });
}

/// One screener step. Yes to intent, plan or behaviour hands off; a single "no" never ends
/// the check: after "no" to the wish-to-be-dead question the direct question still comes,
/// and after "no" to thoughts the behaviour question still comes.
fn screen(
    c: &mut Conversation,
    actions: &mut Vec<Action>,
    question: Question,
    answer: Answer,
    unclear: u8,
    any_unclear: bool,
) {
    use Question::*;
    if answer == Answer::Unclear && unclear == 0 {
        // Ask once more, gently; a second unclear answer moves on (counted as unclear).
        c.state = State::Screening {
            question,
            unclear: 1,
            any_unclear: true,
        };
        actions.push(Action::Bot(BotMessage::Ask {
            question,
            repeat: true,
        }));
        return;
    }
    let yes = answer == Answer::Yes;
    let any_unclear = any_unclear || answer == Answer::Unclear;
    // `None` ends the screener; `Some(Err(level))` hands off at that level.
    let next: Option<Result<Question, Level>> = match (question, yes) {
        (WishDead, _) => Some(Ok(Thoughts)),
        (Thoughts, true) => Some(Ok(Method)),
        (Thoughts, false) => Some(Ok(Behaviour)),
        (Method, _) => Some(Ok(Intent)),
        (Intent, true) | (Plan, true) => Some(Err(Level::High)),
        (Intent, false) => Some(Ok(Plan)),
        (Plan, false) => Some(Ok(Behaviour)),
        // Any past attempt or preparation is handed off; within three months it is high.
        (Behaviour, true) => Some(Ok(Recent)),
        (Behaviour, false) => None,
        (Recent, true) => Some(Err(Level::High)),
        (Recent, false) => Some(Err(Level::Medium)),
    };
    let next = match next {
        Some(Err(level)) => {
            c.level = c.level.max(level);
            c.screened = true;
            actions.push(Action::Bot(BotMessage::Safety { level: c.level }));
            hand_off(c, actions, false);
            return;
        }
        Some(Ok(q)) => Some(q),
        None => None,
    };
    match next {
        Some(q) => {
            c.state = State::Screening {
                question: q,
                unclear: 0,
                any_unclear,
            };
            actions.push(Action::Bot(BotMessage::Ask {
                question: q,
                repeat: false,
            }));
        }
        None => {
            c.screened = true;
            c.state = State::Bot;
            actions.push(Action::Bot(BotMessage::ScreeningDone {
                unclear: any_unclear,
            }));
        }
    }
}

#[cfg(test)]
mod tests;
