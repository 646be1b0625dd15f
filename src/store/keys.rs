//! Key layouts.
//!
//! # Why big-endian
//!
//! Every backend orders keys bytewise. A `u64` written big-endian puts its most significant
//! byte first, so bytewise order *is* numeric order: seq 255 (`..00 FF`) sorts before seq
//! 256 (`..01 00`). Little-endian would sort 256 (`00 01 ..`) before 255 (`FF 00 ..`) and a
//! transcript would come back shuffled. With the conversation id first and the sequence
//! number after it, big-endian:
//!
//! * a prefix scan on the conversation id returns exactly that conversation's events, in
//!   order, and never another conversation's (every key has the same fixed length);
//! * the last key at or before `event_key(c, n)` ([`Backend::last_in_range`](super::Backend))
//!   is the transcript record that holds event `n` (a record holds the events of one commit
//!   and is keyed by the first of them; see `transcript`), so a resume reads from there;
//! * `scan_range(event_key(c, a), event_key(c, b))` returns the records that start in `a..b`.

use super::backend::StoreError;

/// Length of a conversation id.
pub const CONVERSATION_ID_LEN: usize = 16;
/// Length of an [`event_key`]: conversation id, then a big-endian `u64` sequence number.
pub const EVENT_KEY_LEN: usize = CONVERSATION_ID_LEN + 8;

/// The [`Tree::Events`](super::Tree::Events) key of event `seq` of conversation `conv`.
pub fn event_key(conv: &[u8; CONVERSATION_ID_LEN], seq: u64) -> [u8; EVENT_KEY_LEN] {
    let mut key = [0u8; EVENT_KEY_LEN];
    key[..CONVERSATION_ID_LEN].copy_from_slice(conv);
    key[CONVERSATION_ID_LEN..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Splits an [`event_key`] back into conversation id and sequence number.
///
/// # Errors
/// [`StoreError::Corrupt`] if `key` is not exactly [`EVENT_KEY_LEN`] bytes long.
pub fn decode_event_key(key: &[u8]) -> Result<([u8; CONVERSATION_ID_LEN], u64), StoreError> {
    let key: &[u8; EVENT_KEY_LEN] = key.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "event key has {} bytes, expected {EVENT_KEY_LEN}",
            key.len()
        ))
    })?;
    let mut conv = [0u8; CONVERSATION_ID_LEN];
    conv.copy_from_slice(&key[..CONVERSATION_ID_LEN]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&key[CONVERSATION_ID_LEN..]);
    Ok((conv, u64::from_be_bytes(seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let conv = [7u8; 16];
        for seq in [0, 1, 255, 256, u64::MAX] {
            assert_eq!(
                decode_event_key(&event_key(&conv, seq)).unwrap(),
                (conv, seq)
            );
        }
        assert!(matches!(
            decode_event_key(&[0; 23]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn byte_order_is_numeric_order() {
        let conv = [1u8; 16];
        let seqs = [0u64, 1, 2, 255, 256, 65_535, 65_536, 1 << 40, u64::MAX];
        for w in seqs.windows(2) {
            assert!(event_key(&conv, w[0]) < event_key(&conv, w[1]), "{w:?}");
        }
        // And a conversation's events all sort before the next conversation's.
        let mut next = conv;
        next[15] += 1;
        assert!(event_key(&conv, u64::MAX) < event_key(&next, 0));
    }
}
