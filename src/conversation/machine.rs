//! The conversation state machine: `step(policy, state, event) -> (state, actions)`.
//!
//! Pure: no I/O, no clock (time arrives inside events), no randomness. The conversation
//! actor feeds it events and carries out the actions (store, send, enqueue). Keeping it pure
//! is what lets table tests and property tests pin down the promises that matter most:
//!
//! * **The bot never speaks once a counselor has joined.** The most-reported failure of
//!   existing chat tools is the bot talking over the counselor.
//! * **Nobody is left in silence.** While waiting, every message gets an answer: the safety
//!   answer at `medium` and above (109, and 119 at `imminent`), otherwise a holding line
//!   that never counsels, or, if the person chose to keep talking with the bot meanwhile,
//!   the bot's usual answer; their place in the queue is kept.
//! * **A single "no" never closes the screening.** Risk once seen is never lowered: the
//!   conversation level only goes up.
//! * At `imminent`, the handoff is urgent and the emergency resources go out in the same
//!   reply.
//!
//! * **Risk always wins over a dialogue.** The loneliness self-check and the safety-plan
//!   walk read every answer, but a message at `medium` or above ends them and takes the
//!   usual path (the screener, the safety answer, the handoff); what was written so far
//!   is kept.
//!
//! States: `bot`, `screening`, `self_check`, `plan_walk`, `queued`, `with_counselor`,
//! `closed`.

use serde::{Deserialize, Serialize};

pub use crate::content::SecondUnclear;
use crate::triage::{Action as TriageAction, Level};

/// A screener question's id (`wish_dead`, `thoughts`, ...), as in `intents/screener.toml`.
/// The questions and the way from one to the next are data ([`ScreenFlow`]), read from that
/// file by the content layer: editing the file changes what people are asked.
pub type Question = String;

/// Where an answer leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Then {
    /// Ask this question next.
    Ask(Question),
    /// The screener is over; stay with the bot (which offers a counselor).
    Done,
    /// Hand off to a counselor at this level (urgently at `high` and above).
    HandOff(Level),
}

/// One question of the flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowQuestion {
    /// Its id.
    pub id: Question,
    /// After a yes.
    pub yes: Then,
    /// After a no.
    pub no: Then,
    /// The level a yes raises the conversation to (never lowers it).
    pub yes_level: Level,
}

/// The screener as data: the questions in order (the first is asked first) and where each
/// answer leads. Built by the content layer from `intents/screener.toml`
/// (`Screener::flow`), so the file drives the live conversation, not only the tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenFlow {
    /// The questions.
    pub questions: Vec<FlowQuestion>,
    /// What a second unclear answer does.
    pub second_unclear: SecondUnclear,
}

impl ScreenFlow {
    /// The flow `intents/screener.toml` describes: its questions in order, where each
    /// answer leads (`yes_next`/`no_next`; a `yes_level` of `high` or above, or a
    /// `no_handoff`, hands off) and what a second unclear answer does. There is no other
    /// copy of the screener's logic.
    pub fn from_screener(s: &crate::content::Screener) -> ScreenFlow {
        let then = |next: &Option<String>| match next {
            Some(id) => Then::Ask(id.clone()),
            None => Then::Done,
        };
        ScreenFlow {
            questions: s
                .questions()
                .iter()
                .map(|q| FlowQuestion {
                    id: q.id.clone(),
                    yes: if q.yes_level >= Level::High {
                        Then::HandOff(q.yes_level)
                    } else {
                        then(&q.yes_next)
                    },
                    no: match q.no_handoff {
                        Some(level) => Then::HandOff(level),
                        None => then(&q.no_next),
                    },
                    yes_level: q.yes_level,
                })
                .collect(),
            second_unclear: s.second_unclear(),
        }
    }

    fn first(&self) -> Option<&Question> {
        self.questions.first().map(|q| &q.id)
    }

    fn get(&self, id: &str) -> Option<&FlowQuestion> {
        self.questions.iter().find(|q| q.id == id)
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

/// How a message reads inside a dialogue other than the screener (read by the actor only
/// in the state that asks for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// Nothing in particular (any other state, or words that are not an answer).
    #[default]
    Other,
    /// A self-check answer: 1 hardly ever, 2 some of the time, 3 often.
    Score(u8),
    /// "건너뛰기" / "skip" in the safety-plan walk.
    Skip,
}

/// The number of items of the loneliness self-check (the three-item UCLA Loneliness Scale).
pub const SELF_CHECK_ITEMS: u8 = 3;

/// The number of steps of a safety plan (Stanley–Brown).
pub const PLAN_STEPS: u8 = 6;

/// The intent that starts the loneliness self-check (`intents/selfcheck.toml`).
pub const SELF_CHECK: &str = "loneliness_selfcheck";

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
    /// The loneliness self-check, one item at a time (`intents/selfcheck.toml`).
    SelfCheck {
        /// The item waiting for an answer (0-based).
        item: u8,
        /// The sum of the answers so far (each 1–3).
        total: u8,
        /// Unclear answers to this item (a second one ends the check without a score).
        unclear: u8,
    },
    /// Writing a safety plan together, step by step (`intents/safety_plan.toml`). Step 0:
    /// the bot offered it and waits for a yes or a no.
    PlanWalk {
        /// The step waiting for an answer (1–6), or 0 for the offer.
        step: u8,
    },
    /// Waiting for a counselor. The bot does not counsel: every message gets a holding
    /// line, a safety answer or the resource asked for; unless the person chose to keep
    /// talking with the bot meanwhile (their place in the queue is kept).
    Queued {
        /// Handed off at `imminent`.
        urgent: bool,
        /// The person chose to talk with the bot while waiting.
        #[serde(default)]
        bot_meanwhile: bool,
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
            State::SelfCheck { .. } => "self_check",
            State::PlanWalk { .. } => "plan_walk",
            State::Queued { .. } => "queued",
            State::WithCounselor { .. } => "with_counselor",
            State::Closed { .. } => "closed",
        }
    }

    /// Whether the conversation waits for or is with a counselor.
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
        /// The message's own level.
        message_level: Level,
        /// The action the rules file gives that level.
        action: TriageAction,
        /// The top intent, if any.
        intent: Option<String>,
        /// How the text reads as a screener answer (asked only while screening, and for the
        /// safety-plan offer's yes or no).
        answer: Answer,
        /// How the text reads in the self-check or the plan walk.
        choice: Choice,
    },
    /// The citizen asked for a person (button, or the `talk_to_human` intent).
    RequestHuman,
    /// While waiting, the citizen chose to keep talking with the bot (`true`) or just to
    /// wait (`false`); their place in the queue is kept either way.
    WhileWaiting {
        /// Talk with the bot meanwhile.
        talk: bool,
    },
    /// Hand off at this level: the handoff a message called for, held in memory while the
    /// store refused to save it, made durable now (nothing if already handed off).
    HandOffAt {
        /// The level it waits at.
        level: Level,
    },
    /// The citizen ended the conversation.
    CitizenClose,
    /// A counselor claimed the conversation.
    CounselorJoined {
        /// Username.
        counselor: String,
    },
    /// A counselor sent the queue this conversation back (or to nobody in particular).
    ReturnedToQueue,
    /// Handed to another counselor: it waits, reserved for them, until they join (the
    /// gateway checked that they exist, are online and have room).
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
    /// A supervisor takes the conversation: from the counselor holding it (who lets go at
    /// once), or from the queue (like a claim). One holder, always.
    TakenOver {
        /// The supervisor's username.
        by: String,
    },
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
        /// Which (its id).
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
    /// While waiting: a holding line (never counselling) with the phone lines; when no
    /// counselor is online it offers to keep waiting or to talk with the bot meanwhile.
    Holding,
    /// A counselor sent the conversation back to the queue or passed it to a colleague:
    /// "상담사 선생님이 바뀌고 있어요, 잠시만요".
    CounselorChanging,
    /// A self-check item.
    SelfCheckAsk {
        /// Which (0-based).
        item: u8,
        /// Asked again after an unclear answer.
        #[serde(default)]
        repeat: bool,
    },
    /// The self-check's result in kind words, with a next step.
    SelfCheckResult {
        /// 3–9.
        score: u8,
    },
    /// The self-check stopped without a score (two unclear answers).
    SelfCheckStopped,
    /// After the screener ended at `medium`: shall we write a safety plan together?
    PlanOffer,
    /// A safety-plan step's prompt.
    PlanAsk {
        /// 1–6.
        step: u8,
    },
    /// The person said no to the plan (it can be made later, or with a counselor).
    PlanDeclined,
    /// The walk is over: the plan can be saved or printed.
    PlanDone,
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
        /// Passed to this colleague: only they may claim it until they join, go offline or
        /// let the offer lapse.
        reserved_for: Option<String>,
    },
    /// While queued or with a counselor: the level went up (re-order, alert).
    Escalated {
        /// The new level.
        level: Level,
    },
    /// Send the safety answer (109; 119 at `imminent`): every message at `medium` or above
    /// gets one while waiting or with a counselor.
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
    /// Another person holds the conversation now (a supervisor took it over): tell the
    /// citizen plainly.
    CounselorChanged {
        /// Who held it.
        from: String,
        /// Who holds it now.
        to: String,
    },
    /// Store the self-check score (3–9) in the conversation record, as a number.
    SelfCheckScored(u8),
    /// Add the citizen's message as an item of this safety-plan step.
    PlanItem {
        /// 1–6.
        step: u8,
    },
    /// Add the prefilled items (109, 1577-0199, the district centre) to step 5.
    PlanPrefill,
}

/// Per-state idle limits, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdlePolicy {
    /// Talking to the bot.
    pub bot: u64,
    /// In the screener (and writing a safety plan after it).
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
            State::Bot | State::SelfCheck { .. } => self.bot,
            // Writing a plan after a medium screener: as long as the screener.
            State::Screening { .. } | State::PlanWalk { .. } => self.screening,
            State::Queued { .. } => self.queued,
            State::WithCounselor { .. } => self.with_counselor,
            State::Closed { .. } => self.closed,
        }
    }
}

/// The state machine. Returns the next conversation and the actions to carry out, in order.
/// `flow` is the screener (questions and where each answer leads), as data.
pub fn step(flow: &ScreenFlow, mut c: Conversation, event: Event) -> (Conversation, Vec<Action>) {
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
            } else if action == TriageAction::Answer && intent.as_deref() == Some(SELF_CHECK) {
                c.state = State::SelfCheck {
                    item: 0,
                    total: 0,
                    unclear: 0,
                };
                actions.push(Action::Bot(BotMessage::SelfCheckAsk {
                    item: 0,
                    repeat: false,
                }));
            } else {
                bot_turn(flow, &mut c, &mut actions, action, intent);
            }
        }
        (
            State::SelfCheck {
                item,
                total,
                unclear,
            },
            Event::CitizenMessage {
                level,
                action,
                intent,
                choice,
                ..
            },
        ) => {
            c.turn += 1;
            c.level = c.level.max(level);
            if intent.as_deref() == Some(TALK_TO_HUMAN) {
                hand_off(&mut c, &mut actions, false);
            } else if action != TriageAction::Answer {
                // Risk wins: the self-check ends and the usual path takes over.
                c.state = State::Bot;
                bot_turn(flow, &mut c, &mut actions, action, intent);
            } else {
                self_check(&mut c, &mut actions, item, total, unclear, choice);
            }
        }
        (
            State::PlanWalk { step: at },
            Event::CitizenMessage {
                level,
                action,
                intent,
                answer,
                choice,
                ..
            },
        ) => {
            c.turn += 1;
            c.level = c.level.max(level);
            if intent.as_deref() == Some(TALK_TO_HUMAN) {
                hand_off(&mut c, &mut actions, false);
            } else if action != TriageAction::Answer {
                // Risk wins: the walk stops (the items so far are kept) and the usual path
                // takes over.
                c.state = State::Bot;
                bot_turn(flow, &mut c, &mut actions, action, intent);
            } else {
                plan_walk(&mut c, &mut actions, at, answer, choice, intent);
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
                ..
            },
        ) => {
            c.turn += 1;
            c.level = c.level.max(level);
            if matches!(action, TriageAction::Handoff | TriageAction::UrgentHandoff)
                || intent.as_deref() == Some(TALK_TO_HUMAN)
            {
                bot_turn(flow, &mut c, &mut actions, action, intent);
                if !c.state.is_handed_off() {
                    hand_off(&mut c, &mut actions, false);
                }
            } else {
                screen(
                    flow,
                    &mut c,
                    &mut actions,
                    &question,
                    answer,
                    unclear,
                    any_unclear,
                );
            }
        }
        (
            State::Queued {
                urgent,
                bot_meanwhile,
            },
            Event::CitizenMessage {
                level,
                message_level,
                intent,
                ..
            },
        ) => {
            c.turn += 1;
            let rose = level > c.level;
            if rose {
                c.level = level;
                actions.push(Action::Escalated { level });
            }
            let urgent = urgent || c.level == Level::Imminent;
            c.state = State::Queued {
                urgent,
                bot_meanwhile,
            };
            // Nobody is left in silence while waiting: risk gets the safety answer at once,
            // anything else a holding line, or (if they chose it) the bot's usual answer.
            let risk = message_level.max(if rose { level } else { Level::None });
            if risk >= Level::Medium {
                actions.push(Action::SafetyResources { level: risk });
            } else if bot_meanwhile && intent.as_deref() != Some(TALK_TO_HUMAN) {
                actions.push(Action::Bot(BotMessage::Intent { intent }));
            } else {
                actions.push(Action::Bot(BotMessage::Holding));
            }
        }
        (
            State::WithCounselor { .. },
            Event::CitizenMessage {
                level,
                message_level,
                ..
            },
        ) => {
            c.turn += 1;
            actions.push(Action::ForwardToCounselor);
            if level > c.level {
                c.level = level;
                actions.push(Action::Escalated { level });
            }
            // The bot never speaks once a counselor has joined; the safety answer is the
            // system's, not the bot's, and reaches the person as well as the counselor.
            if message_level >= Level::Medium {
                actions.push(Action::SafetyResources {
                    level: message_level,
                });
            }
        }

        // ---- asking for a person, and choosing while waiting.
        (
            State::Bot | State::Screening { .. } | State::SelfCheck { .. } | State::PlanWalk { .. },
            Event::RequestHuman,
        ) => {
            hand_off(&mut c, &mut actions, false);
        }
        (State::Queued { .. } | State::WithCounselor { .. }, Event::RequestHuman) => {}
        (
            State::Bot | State::Screening { .. } | State::SelfCheck { .. } | State::PlanWalk { .. },
            Event::HandOffAt { level },
        ) => {
            c.level = c.level.max(level);
            hand_off(&mut c, &mut actions, level == Level::Imminent);
        }
        (State::Queued { urgent, .. }, Event::WhileWaiting { talk }) => {
            c.state = State::Queued {
                urgent,
                bot_meanwhile: talk,
            };
            actions.push(Action::Bot(if talk {
                BotMessage::Intent {
                    intent: Some(KEEP_TALKING.to_owned()),
                }
            } else {
                BotMessage::Holding
            }));
        }

        // ---- counselors.
        (State::Queued { .. }, Event::CounselorJoined { counselor }) => {
            c.state = State::WithCounselor {
                counselor: counselor.clone(),
            };
            actions.push(Action::CounselorJoined { counselor });
        }
        (State::WithCounselor { .. }, Event::TransferredTo { counselor }) => {
            requeue(&mut c, &mut actions, Some(counselor));
        }
        (State::WithCounselor { .. }, Event::ReturnedToQueue) => {
            requeue(&mut c, &mut actions, None);
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

        // ---- supervisors.
        (State::Queued { .. }, Event::TakenOver { by }) => {
            c.state = State::WithCounselor {
                counselor: by.clone(),
            };
            actions.push(Action::CounselorJoined { counselor: by });
        }
        (State::WithCounselor { counselor }, Event::TakenOver { by }) if counselor != by => {
            c.state = State::WithCounselor {
                counselor: by.clone(),
            };
            actions.push(Action::CounselorChanged {
                from: counselor,
                to: by,
            });
        }

        // Anything else (a counselor event for a conversation not in their hands, a
        // rating before the end) changes nothing.
        (_, _) => {}
    }
    (c, actions)
}

/// The intent id that means "I want to talk to a person".
pub const TALK_TO_HUMAN: &str = "talk_to_human";

/// The intent answered when the person chooses to talk with the bot while waiting.
pub const KEEP_TALKING: &str = "keep_talking_while_waiting";

/// The intent of "I'll keep waiting" while waiting.
pub const KEEP_WAITING: &str = "keep_waiting";

/// Back to the queue, or to a colleague (reserved for them): the person hears that the
/// counselor is changing, keeps their level and their waiting time.
fn requeue(c: &mut Conversation, actions: &mut Vec<Action>, to: Option<String>) {
    let urgent = c.level == Level::Imminent;
    c.state = State::Queued {
        urgent,
        bot_meanwhile: false,
    };
    actions.push(Action::Bot(BotMessage::CounselorChanging));
    actions.push(Action::Enqueue {
        level: c.level,
        urgent,
        reserved_for: to,
    });
}

fn bot_turn(
    flow: &ScreenFlow,
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
        TriageAction::OfferCounselor => match flow.first() {
            Some(first) if !c.screened => {
                // One message, not two: the screener's opening (why we ask, 109) and its
                // first question.
                c.state = State::Screening {
                    question: first.clone(),
                    unclear: 0,
                    any_unclear: false,
                };
                actions.push(Action::Bot(BotMessage::Ask {
                    question: first.clone(),
                    repeat: false,
                }));
            }
            _ => actions.push(Action::Bot(BotMessage::Safety { level })),
        },
        TriageAction::Answer => {
            actions.push(Action::Bot(BotMessage::Intent { intent }));
        }
    }
}

fn hand_off(c: &mut Conversation, actions: &mut Vec<Action>, urgent: bool) {
    let urgent = urgent || c.level == Level::Imminent;
    c.handed_off = true;
    c.state = State::Queued {
        urgent,
        bot_meanwhile: false,
    };
    actions.push(Action::Enqueue {
        level: c.level,
        urgent,
        reserved_for: None,
    });
    // Says what is true about who is there (the actor knows whether a counselor is
    // online) and, when nobody is, offers to keep waiting or to talk with the bot.
    actions.push(Action::Bot(BotMessage::Holding));
}

/// One screener step, driven by the flow. A single "no" never ends the check where the
/// flow goes on (after "no" to the wish, the direct question still comes; after "no" to
/// thoughts, the behaviour question still comes).
fn screen(
    flow: &ScreenFlow,
    c: &mut Conversation,
    actions: &mut Vec<Action>,
    question: &str,
    answer: Answer,
    unclear: u8,
    any_unclear: bool,
) {
    let Some(q) = flow.get(question) else {
        // A question the flow no longer has (the file changed): a person asks instead.
        c.screened = true;
        actions.push(Action::Bot(BotMessage::Safety { level: c.level }));
        hand_off(c, actions, false);
        return;
    };
    if answer == Answer::Unclear && unclear == 0 {
        // Ask once more, gently.
        c.state = State::Screening {
            question: q.id.clone(),
            unclear: 1,
            any_unclear: true,
        };
        actions.push(Action::Bot(BotMessage::Ask {
            question: q.id.clone(),
            repeat: true,
        }));
        return;
    }
    let any_unclear = any_unclear || answer == Answer::Unclear;
    let then = match answer {
        Answer::Yes => {
            c.level = c.level.max(q.yes_level);
            &q.yes
        }
        Answer::No => &q.no,
        Answer::Unclear => match flow.second_unclear {
            SecondUnclear::Continue => &q.no,
            SecondUnclear::HandOff => &Then::HandOff(c.level),
        },
    };
    match then {
        Then::HandOff(level) => {
            c.level = c.level.max(*level);
            c.screened = true;
            actions.push(Action::Bot(BotMessage::Safety { level: c.level }));
            hand_off(c, actions, false);
        }
        Then::Ask(next) => {
            c.state = State::Screening {
                question: next.clone(),
                unclear: 0,
                any_unclear,
            };
            actions.push(Action::Bot(BotMessage::Ask {
                question: next.clone(),
                repeat: false,
            }));
        }
        Then::Done => {
            c.screened = true;
            c.state = State::Bot;
            actions.push(Action::Bot(BotMessage::ScreeningDone {
                unclear: any_unclear,
            }));
            // Ended at `medium`, still with the bot: offer to write a safety plan together.
            if c.level == Level::Medium {
                c.state = State::PlanWalk { step: 0 };
                actions.push(Action::Bot(BotMessage::PlanOffer));
            }
        }
    }
}

/// One self-check answer: 1–3 adds to the score and moves on; the last item gives the
/// result (and the score to store). A first unclear answer asks again; a second ends the
/// check without a score (the person has moved on; nothing is guessed).
fn self_check(
    c: &mut Conversation,
    actions: &mut Vec<Action>,
    item: u8,
    total: u8,
    unclear: u8,
    choice: Choice,
) {
    match choice {
        Choice::Score(n) if (1..=3).contains(&n) => {
            let total = total + n;
            let next = item + 1;
            if next >= SELF_CHECK_ITEMS {
                c.state = State::Bot;
                actions.push(Action::SelfCheckScored(total));
                actions.push(Action::Bot(BotMessage::SelfCheckResult { score: total }));
            } else {
                c.state = State::SelfCheck {
                    item: next,
                    total,
                    unclear: 0,
                };
                actions.push(Action::Bot(BotMessage::SelfCheckAsk {
                    item: next,
                    repeat: false,
                }));
            }
        }
        _ if unclear == 0 => {
            c.state = State::SelfCheck {
                item,
                total,
                unclear: 1,
            };
            actions.push(Action::Bot(BotMessage::SelfCheckAsk { item, repeat: true }));
        }
        _ => {
            c.state = State::Bot;
            actions.push(Action::Bot(BotMessage::SelfCheckStopped));
        }
    }
}

/// One step of the safety-plan walk. At the offer (step 0) a yes starts at step 1, a no
/// (or anything else) ends it kindly. At a step, "skip" moves on and any other words
/// become an item of that step; step 5 starts with the prefilled lines (109, 1577-0199,
/// the district centre); after step 6 the plan is shown as done.
fn plan_walk(
    c: &mut Conversation,
    actions: &mut Vec<Action>,
    at: u8,
    answer: Answer,
    choice: Choice,
    intent: Option<String>,
) {
    if at == 0 {
        match answer {
            Answer::Yes => ask_step(c, actions, 1),
            Answer::No => {
                c.state = State::Bot;
                actions.push(Action::Bot(BotMessage::PlanDeclined));
            }
            Answer::Unclear => {
                // Not an answer to the offer: the bot answers what was said.
                c.state = State::Bot;
                actions.push(Action::Bot(BotMessage::Intent { intent }));
            }
        }
        return;
    }
    if choice != Choice::Skip {
        actions.push(Action::PlanItem { step: at });
    }
    if at >= PLAN_STEPS {
        c.state = State::Bot;
        actions.push(Action::Bot(BotMessage::PlanDone));
    } else {
        ask_step(c, actions, at + 1);
    }
}

fn ask_step(c: &mut Conversation, actions: &mut Vec<Action>, step: u8) {
    c.state = State::PlanWalk { step };
    if step == 5 {
        actions.push(Action::PlanPrefill);
    }
    actions.push(Action::Bot(BotMessage::PlanAsk { step }));
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
