//! The websocket edges: `/ws/chat` for citizens and `/ws/counselor` for counselors.
//!
//! * [`protocol`] — the frames and their total decoder (stable error codes).

pub mod protocol;
