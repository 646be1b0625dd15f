//! The client-message decoders on arbitrary text: always a frame or a stable error code,
//! and an error message never echoes the input.
#![no_main]

use ieum::http::ws::protocol::{CitizenFrame, CounselorFrame, MAX_MESSAGE_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match CitizenFrame::decode(text) {
        Ok(CitizenFrame::Message { text: t, id }) => {
            assert!(t.chars().count() <= MAX_MESSAGE_CHARS);
            assert!(!t.trim().is_empty());
            assert!(id.chars().count() <= 64);
        }
        Ok(_) => {}
        Err(e) => assert!(!e.code().is_empty()),
    }
    if let Err(e) = CounselorFrame::decode(text) {
        assert!(!e.code().is_empty());
    }
});
