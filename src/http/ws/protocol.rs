//! The wire protocol: JSON text frames on `/ws/chat` and `/ws/counselor`
//! (documented for clients in `docs/protocol.md`).
//!
//! Decoding is total: any text becomes either a frame or a [`DecodeError`] with a stable
//! code, so a bad frame is answered with an `error` frame and the connection is kept.

use serde::{Deserialize, Serialize};

use crate::ids::ConversationId;

/// Longest citizen message accepted, in characters (not bytes).
pub const MAX_MESSAGE_CHARS: usize = 2_000;

/// A frame from a citizen.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CitizenFrame {
    /// A chat message. `id` is the client's own id, echoed in the `ack`.
    Message {
        /// Client id (at most 64 characters).
        id: String,
        /// The text.
        text: String,
    },
    /// Resume an earlier conversation (first frame on a `?resume=1` connection).
    Resume {
        /// The conversation.
        conversation_id: ConversationId,
        /// Its resume token.
        token: String,
        /// The last `seq` the client has seen.
        last_seq: u64,
    },
    /// Ask for a person.
    RequestHuman,
    /// End the conversation.
    Close,
    /// Rate the conversation (1–5) after a counselor closed it.
    Rating {
        /// 1–5.
        value: u8,
    },
}

/// A frame from a counselor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CounselorFrame {
    /// Take a waiting conversation.
    Claim {
        /// Which.
        conversation_id: ConversationId,
    },
    /// Write to the citizen.
    Message {
        /// Which conversation.
        conversation_id: ConversationId,
        /// The text.
        text: String,
    },
    /// Hand over to another counselor (`to`), or back to the queue (no `to`).
    Transfer {
        /// Which conversation.
        conversation_id: ConversationId,
        /// The other counselor's username.
        #[serde(default)]
        to: Option<String>,
    },
    /// Close with an outcome code.
    Close {
        /// Which conversation.
        conversation_id: ConversationId,
        /// e.g. `resolved`, `referred`, `emergency_dispatched`, `no_response`.
        outcome: String,
    },
    /// (Supervisors.) Open a live conversation silently: its transcript, then its events.
    Watch {
        /// Which (`conversation`; `conversation_id` is accepted too).
        #[serde(rename = "conversation", alias = "conversation_id")]
        conversation_id: ConversationId,
    },
    /// (Supervisors.) Stop watching.
    Unwatch {
        /// Which (`conversation`; `conversation_id` is accepted too).
        #[serde(rename = "conversation", alias = "conversation_id")]
        conversation_id: ConversationId,
    },
    /// (Supervisors.) Words for the counselor holding the conversation only; never the
    /// citizen.
    Whisper {
        /// Which (`conversation`; `conversation_id` is accepted too).
        #[serde(rename = "conversation", alias = "conversation_id")]
        conversation_id: ConversationId,
        /// The words.
        text: String,
    },
    /// (Supervisors.) Take the conversation over: from its counselor, or from the queue.
    TakeOver {
        /// Which (`conversation`; `conversation_id` is accepted too).
        #[serde(rename = "conversation", alias = "conversation_id")]
        conversation_id: ConversationId,
    },
    /// Add an item to the person's safety plan (step 1–6).
    PlanItem {
        /// Which conversation (`conversation` is accepted too).
        #[serde(alias = "conversation")]
        conversation_id: ConversationId,
        /// 1–6.
        step: u8,
        /// The item.
        text: String,
    },
}

impl CounselorFrame {
    /// The conversation it is about (every counselor frame names one).
    pub fn conversation_id(&self) -> ConversationId {
        match self {
            CounselorFrame::Claim { conversation_id }
            | CounselorFrame::Message {
                conversation_id, ..
            }
            | CounselorFrame::Transfer {
                conversation_id, ..
            }
            | CounselorFrame::Close {
                conversation_id, ..
            }
            | CounselorFrame::Watch { conversation_id }
            | CounselorFrame::Unwatch { conversation_id }
            | CounselorFrame::Whisper {
                conversation_id, ..
            }
            | CounselorFrame::TakeOver { conversation_id }
            | CounselorFrame::PlanItem {
                conversation_id, ..
            } => *conversation_id,
        }
    }

    /// Whether only a supervisor may send it.
    pub fn supervisors_only(&self) -> bool {
        matches!(
            self,
            CounselorFrame::Watch { .. }
                | CounselorFrame::Unwatch { .. }
                | CounselorFrame::Whisper { .. }
                | CounselorFrame::TakeOver { .. }
        )
    }
}

/// Longest safety-plan item, in characters.
pub const MAX_PLAN_ITEM_CHARS: usize = 500;

/// Why a frame was not understood. `code()` is stable; clients switch on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all.
    #[error("that was not valid JSON")]
    MalformedJson,
    /// JSON without a known `type`.
    #[error("unknown message type")]
    UnknownType,
    /// A known type with a missing or wrong field.
    #[error("a field is missing or has the wrong type: {0}")]
    BadField(String),
    /// The text is longer than [`MAX_MESSAGE_CHARS`].
    #[error("the message is too long (at most {MAX_MESSAGE_CHARS} characters)")]
    MessageTooLong,
    /// An empty message.
    #[error("the message is empty")]
    EmptyMessage,
}

impl DecodeError {
    /// The stable code sent in `error` frames.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::MalformedJson => "malformed_json",
            DecodeError::UnknownType => "unknown_type",
            DecodeError::BadField(_) => "bad_field",
            DecodeError::MessageTooLong => "message_too_long",
            DecodeError::EmptyMessage => "empty_message",
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, known: &[&str]) -> Result<T, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| DecodeError::MalformedJson)?;
    let ty = value.get("type").and_then(|t| t.as_str());
    match ty {
        Some(t) if known.contains(&t) => {}
        _ => return Err(DecodeError::UnknownType),
    }
    serde_json::from_value(value).map_err(|e| {
        // serde's "invalid type" messages quote the value, which may be the citizen's
        // words: only "missing field `x`" and "unknown field `x`" are passed on.
        let msg = e.to_string();
        let safe = msg.starts_with("missing field") || msg.starts_with("unknown field");
        DecodeError::BadField(if safe {
            msg.split(", expected").next().unwrap_or("").to_owned()
        } else {
            "wrong type".to_owned()
        })
    })
}

impl CitizenFrame {
    /// Decodes and validates a citizen frame.
    ///
    /// # Errors
    /// A [`DecodeError`] with a stable code.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let frame: CitizenFrame = decode(
            text,
            &["message", "resume", "request_human", "close", "rating"],
        )?;
        if let CitizenFrame::Message { id, text } = &frame {
            if id.chars().count() > 64 {
                return Err(DecodeError::BadField("`id` is longer than 64".into()));
            }
            check_text(text)?;
        }
        if let CitizenFrame::Rating { value } = &frame {
            if !(1..=5).contains(value) {
                return Err(DecodeError::BadField(
                    "`value` is a rating from 1 to 5".into(),
                ));
            }
        }
        Ok(frame)
    }
}

impl CounselorFrame {
    /// Decodes and validates a counselor frame.
    ///
    /// # Errors
    /// A [`DecodeError`] with a stable code.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let frame: CounselorFrame = decode(
            text,
            &[
                "claim",
                "message",
                "transfer",
                "close",
                "watch",
                "unwatch",
                "whisper",
                "take_over",
                "plan_item",
            ],
        )?;
        if let CounselorFrame::Message { text, .. } | CounselorFrame::Whisper { text, .. } = &frame
        {
            check_text(text)?;
        }
        if let CounselorFrame::PlanItem { step, text, .. } = &frame {
            if !(1..=crate::conversation::PLAN_STEPS).contains(step) {
                return Err(DecodeError::BadField(
                    "`step` is a plan step from 1 to 6".into(),
                ));
            }
            check_text(text)?;
            if text.chars().count() > MAX_PLAN_ITEM_CHARS {
                return Err(DecodeError::MessageTooLong);
            }
        }
        Ok(frame)
    }
}

fn check_text(text: &str) -> Result<(), DecodeError> {
    if text.trim().is_empty() {
        return Err(DecodeError::EmptyMessage);
    }
    // Cheap upper bound first: a char is at most 4 bytes.
    if text.len() > MAX_MESSAGE_CHARS && text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(DecodeError::MessageTooLong);
    }
    Ok(())
}

/// An `error` frame body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorFrame {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Stable code.
    pub code: &'static str,
    /// A plain sentence for people.
    pub message: String,
    /// The client id of the message concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ErrorFrame {
    /// A new error frame.
    pub fn new(code: &'static str, message: impl Into<String>, id: Option<String>) -> Self {
        ErrorFrame {
            kind: "error",
            code,
            message: message.into(),
            id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_citizen_frame() {
        assert_eq!(
            CitizenFrame::decode(r#"{"type":"message","id":"c1","text":"안녕"}"#),
            Ok(CitizenFrame::Message {
                id: "c1".into(),
                text: "안녕".into()
            })
        );
        let id = ConversationId::random();
        assert_eq!(
            CitizenFrame::decode(&format!(
                r#"{{"type":"resume","conversation_id":"{id}","token":"t","last_seq":3}}"#
            )),
            Ok(CitizenFrame::Resume {
                conversation_id: id,
                token: "t".into(),
                last_seq: 3
            })
        );
        assert_eq!(
            CitizenFrame::decode(r#"{"type":"request_human"}"#),
            Ok(CitizenFrame::RequestHuman)
        );
        assert_eq!(
            CitizenFrame::decode(r#"{"type":"close"}"#),
            Ok(CitizenFrame::Close)
        );
        assert_eq!(
            CitizenFrame::decode(r#"{"type":"rating","value":5}"#),
            Ok(CitizenFrame::Rating { value: 5 })
        );
    }

    #[test]
    fn bad_frames_get_stable_codes() {
        let code = |s: &str| CitizenFrame::decode(s).unwrap_err().code();
        assert_eq!(code("{not json"), "malformed_json");
        assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
        assert_eq!(code(r#"{"text":"no type"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"message","id":"c1"}"#), "bad_field");
        assert_eq!(
            code(r#"{"type":"message","id":"c1","text":7}"#),
            "bad_field"
        );
        assert_eq!(
            code(r#"{"type":"message","id":"c1","text":"  "}"#),
            "empty_message"
        );
        let long = "가".repeat(MAX_MESSAGE_CHARS + 1);
        assert_eq!(
            code(&format!(
                r#"{{"type":"message","id":"c1","text":"{long}"}}"#
            )),
            "message_too_long"
        );
        let ok = "가".repeat(MAX_MESSAGE_CHARS);
        assert!(
            CitizenFrame::decode(&format!(r#"{{"type":"message","id":"c1","text":"{ok}"}}"#))
                .is_ok()
        );
    }

    #[test]
    fn bad_field_messages_never_echo_the_text() {
        let err = CitizenFrame::decode(r#"{"type":"rating","value":"죽고싶다"}"#).unwrap_err();
        assert!(!err.to_string().contains("죽고싶다"), "{err}");
    }

    #[test]
    fn counselor_frames() {
        let id = ConversationId::random();
        assert_eq!(
            CounselorFrame::decode(&format!(r#"{{"type":"claim","conversation_id":"{id}"}}"#)),
            Ok(CounselorFrame::Claim {
                conversation_id: id
            })
        );
        assert_eq!(
            CounselorFrame::decode(&format!(
                r#"{{"type":"transfer","conversation_id":"{id}"}}"#
            )),
            Ok(CounselorFrame::Transfer {
                conversation_id: id,
                to: None
            })
        );
        // The supervisors' frames name the conversation as `conversation` (the contract
        // outside tools use); `conversation_id` is accepted too.
        assert_eq!(
            CounselorFrame::decode(&format!(
                r#"{{"type":"whisper","conversation":"{id}","text":"천천히"}}"#
            )),
            Ok(CounselorFrame::Whisper {
                conversation_id: id,
                text: "천천히".into()
            })
        );
        assert_eq!(
            CounselorFrame::decode(&format!(
                r#"{{"type":"take_over","conversation_id":"{id}"}}"#
            )),
            Ok(CounselorFrame::TakeOver {
                conversation_id: id
            })
        );
        assert_eq!(
            CounselorFrame::decode(&format!(
                r#"{{"type":"whisper","conversation":"{id}","text":" "}}"#
            ))
            .unwrap_err()
            .code(),
            "empty_message"
        );
        assert_eq!(
            CounselorFrame::decode(&format!(
                r#"{{"type":"plan_item","conversation":"{id}","step":4,"text":"언니"}}"#
            )),
            Ok(CounselorFrame::PlanItem {
                conversation_id: id,
                step: 4,
                text: "언니".into()
            })
        );
        assert_eq!(
            CounselorFrame::decode(&format!(
                r#"{{"type":"plan_item","conversation_id":"{id}","step":7,"text":"x"}}"#
            ))
            .unwrap_err()
            .code(),
            "bad_field"
        );
        assert_eq!(
            CounselorFrame::decode(r#"{"type":"claim","conversation_id":"nope"}"#)
                .unwrap_err()
                .code(),
            "bad_field"
        );
    }
}
