//! Encryption at rest: transcripts are mental-health data.
//!
//! Every conversation has its own random 256-bit key. Its events and the text-bearing part
//! of its record are sealed with XChaCha20-Poly1305 (random 192-bit nonces, so random
//! nonces never collide in practice) before they reach sled. The conversation key is
//! itself sealed ("wrapped") by the **master key** and stored in the `keys` tree.
//!
//! Retention destroys a conversation by removing its wrapped key: whatever ciphertext is
//! still on disk (sled rewrites and garbage-collects its log lazily) can no longer be read
//! by anyone, including us.
//!
//! The master key comes from `IEUM_MASTER_KEY` (64 hex digits) or from a file
//! (`--master-key-file`, default `<data-dir>/master.key`). A fresh install generates the
//! file with mode 0600. Keeping the key file next to the data protects against a copied data
//! directory but not against a copied disk: in production, point `--master-key-file` at a
//! separate mount or inject `IEUM_MASTER_KEY` from a secret store.
//!
//! Every sealed value binds its place (`aad`): a ciphertext moved to another conversation
//! or another seq does not open.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Format version of sealed values.
const VERSION: u8 = 1;
const NONCE: usize = 24;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Wrong key, tampered or truncated data, or data from another place.
    #[error("sealed data does not open (wrong key, tampered, or moved)")]
    Open,
    /// The master key is missing or malformed.
    #[error("master key: {0}")]
    MasterKey(String),
}

/// A 256-bit key. `Debug` never shows it.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // Best effort: do not leave key bytes behind in freed memory.
        for b in &mut self.0 {
            // SAFETY-free volatile-ish wipe; the optimizer may elide it, which only loses
            // the best effort, never correctness.
            *b = 0;
        }
    }
}

impl Key {
    /// A fresh random key.
    pub fn random() -> Key {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Key(k)
    }

    /// From 32 raw bytes.
    pub fn from_bytes(b: [u8; 32]) -> Key {
        Key(b)
    }

    /// Seals `plain`, bound to `aad`.
    ///
    /// # Panics
    /// Never: encryption with a valid key cannot fail.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .expect("encryption cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens what [`Key::seal`] sealed with the same `aad`.
    ///
    /// # Errors
    /// [`CryptoError::Open`] for a wrong key, wrong place, or tampered data.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + NONCE + 16 || sealed[0] != VERSION {
            return Err(CryptoError::Open);
        }
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..1 + NONCE]),
                Payload {
                    msg: &sealed[1 + NONCE..],
                    aad,
                },
            )
            .map_err(|_| CryptoError::Open)
    }

    /// HMAC-SHA-256 of `msg` under this key, for `purpose` (a label that keeps the MACs of
    /// different uses apart). Used where nodes must prove to each other that they hold the
    /// same master key (a standby forwarding a connection to the primary).
    pub fn mac(&self, purpose: &[u8], msg: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        const BLOCK: usize = 64;
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for (i, b) in self.0.iter().enumerate() {
            ipad[i] ^= b;
            opad[i] ^= b;
        }
        let inner = Sha256::new()
            .chain_update(ipad)
            .chain_update(purpose)
            .chain_update([0u8])
            .chain_update(msg)
            .finalize();
        Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize()
            .into()
    }

    /// Wraps (seals) another key under this one.
    pub fn wrap(&self, key: &Key, aad: &[u8]) -> Vec<u8> {
        self.seal(&key.0, aad)
    }

    /// Unwraps a key sealed by [`Key::wrap`].
    ///
    /// # Errors
    /// [`CryptoError::Open`].
    pub fn unwrap_key(&self, wrapped: &[u8], aad: &[u8]) -> Result<Key, CryptoError> {
        let raw = self.open(wrapped, aad)?;
        let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| CryptoError::Open)?;
        Ok(Key(bytes))
    }
}

#[cfg(test)]
mod mac_tests {
    use super::Key;

    /// Against Python's `hmac` (an independent implementation): the key of RFC 4231's test
    /// case 2 ("Jefe", zero-padded, which HMAC does anyway: with the RFC's message the
    /// same code gives the RFC's 5bdcc146…), over `purpose || 0 || msg`.
    #[test]
    fn mac_is_hmac_sha256_over_purpose_and_message() {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(b"Jefe");
        let mac = Key::from_bytes(k).mac(b"what do ya want", b"for nothing?");
        assert_eq!(
            crate::hex::encode(&mac),
            "adf13648edae17564744ff0aef28b138a329fa4a8104ff63388d270cef395d2b"
        );
        let key = Key::from_bytes(k);
        assert_ne!(key.mac(b"a", b"b"), key.mac(b"ab", b""));
    }
}

fn parse_hex_key(s: &str) -> Result<Key, CryptoError> {
    crate::hex::decode_array::<32>(s.trim())
        .map(Key)
        .ok_or_else(|| CryptoError::MasterKey("expected 64 hex digits".into()))
}

/// Loads the master key: `env_value` (from `IEUM_MASTER_KEY`) if given, else the file at
/// `path`, which is created with a fresh key (mode 0600) if it does not exist.
///
/// # Errors
/// A malformed key, or a file that cannot be read or created.
pub fn load_master_key(env_value: Option<&str>, path: &Path) -> Result<Key, CryptoError> {
    if let Some(v) = env_value.filter(|v| !v.trim().is_empty()) {
        return parse_hex_key(v);
    }
    match std::fs::read_to_string(path) {
        Ok(s) => parse_hex_key(&s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Key::random();
            let hex = crate::hex::encode(&key.0);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| CryptoError::MasterKey(format!("{}: {e}", path.display())))?;
            }
            write_private(path, hex.as_bytes())
                .map_err(|e| CryptoError::MasterKey(format!("{}: {e}", path.display())))?;
            tracing::warn!(
                path = %path.display(),
                "generated a new master key; back it up — without it the transcripts cannot be read"
            );
            Ok(key)
        }
        Err(e) => Err(CryptoError::MasterKey(format!("{}: {e}", path.display()))),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let k = Key::random();
        let sealed = k.seal(b"hello", b"conv-1/seq-1");
        assert_eq!(k.open(&sealed, b"conv-1/seq-1").unwrap(), b"hello");
        assert_eq!(k.open(&sealed, b"conv-1/seq-2"), Err(CryptoError::Open));
        assert_eq!(
            Key::random().open(&sealed, b"conv-1/seq-1"),
            Err(CryptoError::Open)
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(&tampered, b"conv-1/seq-1"), Err(CryptoError::Open));
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
    }

    #[test]
    fn wrapped_keys_open_only_with_the_master_key() {
        let master = Key::random();
        let conv = Key::random();
        let wrapped = master.wrap(&conv, b"id");
        let back = master.unwrap_key(&wrapped, b"id").unwrap();
        assert_eq!(back.0, conv.0);
        assert!(Key::random().unwrap_key(&wrapped, b"id").is_err());
        assert_eq!(format!("{back:?}"), "Key(<redacted>)");
    }

    #[test]
    fn master_key_file_is_created_private_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = load_master_key(None, &path).unwrap();
        let b = load_master_key(None, &path).unwrap();
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let env = "11".repeat(32);
        assert_eq!(load_master_key(Some(&env), &path).unwrap().0, [0x11; 32]);
        assert!(load_master_key(Some("xyz"), &path).is_err());
    }
}
