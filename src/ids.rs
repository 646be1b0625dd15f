//! Identifiers and secrets: conversation ids and bearer tokens.
//!
//! Conversation ids are 128 bits, shown as 32 lowercase hex digits: the creation time in
//! Unix milliseconds (48 bits, big-endian) and then 80 random bits. The time comes first
//! because store keys start with the id: the conversations that are active now then sit
//! together at the end of every tree, so the store touches a few hot pages instead of pages
//! scattered across the whole history (a third less store CPU per message under load,
//! `BENCHMARKS.md`). 80 random bits cannot be guessed, and an id alone grants nothing: a
//! resume needs its token, staff need a session. Tokens (resume
//! tokens, staff sessions) are 256 random bits, URL-safe base64, and are only ever stored as
//! a SHA-256 hash: a stolen database does not let anyone resume a conversation or log in.

/// Milliseconds since the Unix epoch: the one clock records and events are stamped with.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A conversation id: the creation time (48 bits of Unix ms) and 80 random bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(pub [u8; 16]);

impl ConversationId {
    /// A fresh id: now, then 80 random bits.
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        let ms = now_ms().to_be_bytes();
        b[..6].copy_from_slice(&ms[2..]);
        rand::rng().fill_bytes(&mut b[6..]);
        ConversationId(b)
    }

    /// The raw bytes (store keys).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// From raw bytes (a store key); `None` unless exactly 16.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(ConversationId)
    }

    /// Parses the 32-hex-digit form.
    pub fn parse(s: &str) -> Option<Self> {
        crate::hex::decode_array::<16>(s).map(ConversationId)
    }
}

impl std::fmt::Display for ConversationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ConversationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConversationId({self})")
    }
}

impl Serialize for ConversationId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConversationId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ConversationId::parse(&s).ok_or_else(|| serde::de::Error::custom("bad conversation id"))
    }
}

/// A bearer secret. Its `Debug` never shows the value, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// 256 fresh random bits.
    pub fn random() -> Self {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        Token(base64url(&b))
    }

    /// Wraps a token received from a client.
    pub fn from_client(s: &str) -> Self {
        Token(s.to_owned())
    }

    /// The value, to hand to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 hash that is stored instead of the token.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Constant-time comparison of two hashes.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let id = ConversationId::random();
        assert_eq!(ConversationId::parse(&id.to_string()), Some(id));
        assert_eq!(ConversationId::parse("zz"), None);
        assert_eq!(ConversationId::parse(&"g".repeat(32)), None);
    }

    #[test]
    fn ids_start_with_their_creation_time_and_differ_in_the_rest() {
        let before = now_ms();
        let ids: Vec<ConversationId> = (0..1000).map(|_| ConversationId::random()).collect();
        let after = now_ms();
        let mut ms = [0u8; 8];
        for id in &ids {
            ms[2..].copy_from_slice(&id.0[..6]);
            assert!((before..=after).contains(&u64::from_be_bytes(ms)));
        }
        // Later ids sort after earlier ones (store keys cluster by time)...
        let later = {
            std::thread::sleep(std::time::Duration::from_millis(2));
            ConversationId::random()
        };
        assert!(ids.iter().all(|id| *id < later));
        // ...and the random part makes ids made in the same millisecond distinct.
        let distinct: std::collections::HashSet<_> =
            ids.iter().map(|id| id.0[6..].to_vec()).collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn tokens_are_long_random_and_never_debug_printed() {
        let a = Token::random();
        let b = Token::random();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(!format!("{a:?}").contains(a.expose()));
        assert!(hashes_equal(
            &a.hash(),
            &Token::from_client(a.expose()).hash()
        ));
        assert!(!hashes_equal(&a.hash(), &b.hash()));
    }
}
