//! Staff accounts and sessions.
//!
//! Counselors and supervisors log in with a username and password. Passwords are stored
//! only as argon2id hashes (PHC strings); sessions are 256-bit bearer tokens stored only as
//! SHA-256 hashes, expiring after [`SESSION_TTL_MS`]. A token arrives either as the
//! `ieum_session` cookie (`HttpOnly; SameSite=Strict`, for the pages) or as
//! `Authorization: Bearer` (for tools).
//!
//! Argon2 is deliberately slow (tens of milliseconds), so it runs on the blocking pool,
//! never on the async executor. An unknown username is verified against a dummy hash so
//! the response time does not reveal which usernames exist.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::ids::Token;
use crate::ids::now_ms;
use crate::store::{Store, StoreError, Tree, Write};

/// How long a session lasts: one long shift.
pub const SESSION_TTL_MS: u64 = 12 * 60 * 60 * 1000;

/// What a staff member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes conversations from the queue and talks with citizens.
    Counselor,
    /// Replays transcripts, watches the queue, reads the audit log. Never sends.
    Supervisor,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Counselor => "counselor",
            Role::Supervisor => "supervisor",
        }
    }
}

/// A stored staff account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffAccount {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Created, Unix ms.
    pub created_at: u64,
    /// Disabled accounts cannot log in; disabling ends their sessions.
    #[serde(default)]
    pub disabled: bool,
}

/// A staff account as shown to supervisors (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffSummary {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Created, Unix ms.
    pub created_at: u64,
    /// Disabled.
    pub disabled: bool,
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Expiry, Unix ms.
    pub expires_at: u64,
}

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong username or password (never says which).
    #[error("wrong username or password")]
    BadCredentials,
    /// A username or password that does not meet the rules.
    #[error("{0}")]
    Invalid(String),
    /// The account exists already.
    #[error("an account with this username exists already")]
    Exists,
    /// No such account.
    #[error("no such account")]
    NoSuchAccount,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

fn valid_username(u: &str) -> bool {
    (2..=32).contains(&u.len())
        && u.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates a staff account.
///
/// # Errors
/// [`AuthError::Invalid`] for a bad username (2–32 of a-z, 0-9, `.`, `_`, `-`) or a
/// password shorter than 10 characters; [`AuthError::Exists`]; store errors.
pub async fn add_staff(
    store: &Store,
    username: &str,
    role: Role,
    password: &str,
) -> Result<(), AuthError> {
    if !valid_username(username) {
        return Err(AuthError::Invalid(
            "usernames are 2–32 characters of a-z, 0-9, '.', '_' and '-'".into(),
        ));
    }
    if password.chars().count() < 10 {
        return Err(AuthError::Invalid(
            "passwords need at least 10 characters".into(),
        ));
    }
    if store.get(Tree::Staff, username.as_bytes()).await?.is_some() {
        return Err(AuthError::Exists);
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))??;
    let account = StaffAccount {
        username: username.to_owned(),
        role,
        password_hash: hash,
        created_at: now_ms(),
        disabled: false,
    };
    store
        .write(vec![Write::put(
            Tree::Staff,
            username.as_bytes().to_vec(),
            serde_json::to_vec(&account).expect("account serializes"),
        )])
        .await?;
    Ok(())
}

/// Looks up a staff account.
///
/// # Errors
/// Store errors.
pub async fn staff(store: &Store, username: &str) -> Result<Option<StaffAccount>, AuthError> {
    Ok(store
        .get(Tree::Staff, username.as_bytes())
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Every staff account, by username (without password hashes).
///
/// # Errors
/// Store errors.
pub async fn list_staff(store: &Store) -> Result<Vec<StaffSummary>, AuthError> {
    Ok(store
        .scan_prefix(Tree::Staff, b"")
        .await?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice::<StaffAccount>(&v).ok())
        .map(|a| StaffSummary {
            username: a.username,
            role: a.role,
            created_at: a.created_at,
            disabled: a.disabled,
        })
        .collect())
}

/// Disables (or enables again) an account. Disabling ends its open sessions in the same
/// write: the next request with one of them is 401.
///
/// # Errors
/// [`AuthError::NoSuchAccount`]; store errors.
pub async fn set_disabled(store: &Store, username: &str, disabled: bool) -> Result<(), AuthError> {
    let mut account = staff(store, username)
        .await?
        .ok_or(AuthError::NoSuchAccount)?;
    account.disabled = disabled;
    let mut writes = vec![Write::put(
        Tree::Staff,
        username.as_bytes().to_vec(),
        serde_json::to_vec(&account).expect("account serializes"),
    )];
    if disabled {
        for (k, v) in store.scan_prefix(Tree::Sessions, b"").await? {
            if serde_json::from_slice::<Session>(&v).is_ok_and(|s| s.username == username) {
                writes.push(Write::remove(Tree::Sessions, k));
            }
        }
    }
    store.write(writes).await?;
    Ok(())
}

/// Checks a password and opens a session.
///
/// # Errors
/// [`AuthError::BadCredentials`] for an unknown user or a wrong password; store errors.
pub async fn login(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<(Token, Session), AuthError> {
    // A fixed dummy hash, so an unknown user costs the same time as a wrong password.
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8Tk4MQ0m9lVt0nQxS0Yx7bYwQm3n2c9zS8bG6uYl3cA";
    let account = staff(store, username).await?;
    let phc = account
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| DUMMY.to_owned());
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let account = match (ok, account) {
        (true, Some(a)) if !a.disabled => a,
        _ => return Err(AuthError::BadCredentials),
    };
    let token = Token::random();
    let session = Session {
        username: account.username,
        role: account.role,
        expires_at: now_ms() + SESSION_TTL_MS,
    };
    store
        .write(vec![Write::put(
            Tree::Sessions,
            token.hash().to_vec(),
            serde_json::to_vec(&session).expect("session serializes"),
        )])
        .await?;
    Ok((token, session))
}

/// The live session for a token, if any (expired sessions are removed).
///
/// # Errors
/// Store errors.
pub async fn session(store: &Store, token: &Token) -> Result<Option<Session>, AuthError> {
    let key = token.hash();
    let Some(bytes) = store.get(Tree::Sessions, &key).await? else {
        return Ok(None);
    };
    let Ok(session) = serde_json::from_slice::<Session>(&bytes) else {
        return Ok(None);
    };
    if session.expires_at <= now_ms() {
        store
            .write(vec![Write::remove(Tree::Sessions, key.to_vec())])
            .await?;
        return Ok(None);
    }
    Ok(Some(session))
}

/// Ends a session.
///
/// # Errors
/// Store errors.
pub async fn logout(store: &Store, token: &Token) -> Result<(), AuthError> {
    store
        .write(vec![Write::remove(Tree::Sessions, token.hash().to_vec())])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryBackend;
    use std::sync::Arc;

    fn store() -> Store {
        Store::new(Arc::new(MemoryBackend::new())).unwrap()
    }

    #[tokio::test]
    async fn add_login_session_logout() {
        let s = store();
        add_staff(&s, "kim", Role::Counselor, "correct horse battery")
            .await
            .unwrap();
        assert!(matches!(
            add_staff(&s, "kim", Role::Counselor, "another password").await,
            Err(AuthError::Exists)
        ));
        assert!(matches!(
            login(&s, "kim", "wrong password!").await,
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            login(&s, "nobody", "correct horse battery").await,
            Err(AuthError::BadCredentials)
        ));
        let (token, session) = login(&s, "kim", "correct horse battery").await.unwrap();
        assert_eq!(session.role, Role::Counselor);
        assert_eq!(super::session(&s, &token).await.unwrap(), Some(session));
        logout(&s, &token).await.unwrap();
        assert_eq!(super::session(&s, &token).await.unwrap(), None);
        assert_eq!(super::session(&s, &Token::random()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn passwords_are_stored_hashed_and_rules_enforced() {
        let s = store();
        assert!(matches!(
            add_staff(&s, "Kim!", Role::Supervisor, "long enough pw").await,
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            add_staff(&s, "kim", Role::Supervisor, "short").await,
            Err(AuthError::Invalid(_))
        ));
        add_staff(&s, "lee", Role::Supervisor, "long enough pw")
            .await
            .unwrap();
        let raw = s.get(Tree::Staff, b"lee").await.unwrap().unwrap();
        let raw = String::from_utf8(raw).unwrap();
        assert!(!raw.contains("long enough pw"));
        assert!(raw.contains("$argon2id$"));
    }

    #[tokio::test]
    async fn expired_sessions_are_refused() {
        let s = store();
        let token = Token::random();
        let session = Session {
            username: "kim".into(),
            role: Role::Counselor,
            expires_at: now_ms() - 1,
        };
        s.write(vec![Write::put(
            Tree::Sessions,
            token.hash().to_vec(),
            serde_json::to_vec(&session).unwrap(),
        )])
        .await
        .unwrap();
        assert_eq!(super::session(&s, &token).await.unwrap(), None);
    }
}
