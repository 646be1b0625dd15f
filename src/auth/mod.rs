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

pub mod guard;

use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::ids::Token;
use crate::ids::now_ms;
use crate::store::{Store, StoreError, Tree, Write};

pub use guard::{LoginGuard, LoginPolicy, Refusal};

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
    /// Wrong passwords in a row.
    #[serde(default)]
    pub failed_logins: u32,
    /// When the last wrong password came, Unix ms.
    #[serde(default)]
    pub last_failed_at: u64,
    /// Locked until then (Unix ms) after too many wrong passwords.
    #[serde(default)]
    pub locked_until: Option<u64>,
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
    /// Locked after too many wrong passwords, until then (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<u64>,
}

/// A session that ended (logout) or every session of an account (disabled): open staff
/// sockets of it close at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnded {
    /// The session with this token hash.
    Token([u8; 32]),
    /// Every session of this username.
    User(String),
}

/// A logged-in staff member.
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
    /// Too soon after wrong passwords (from this account or this address).
    #[error("too many attempts; try again in {retry_after_secs} s")]
    TooSoon {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Locked after too many wrong passwords.
    #[error(
        "this account is locked after too many wrong passwords; a supervisor can unlock it, or try again later"
    )]
    Locked {
        /// Seconds until the lock ends by itself.
        retry_after_secs: u64,
    },
    /// Too many password checks at once.
    #[error("too many logins at once; try again in a moment")]
    Busy,
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
        failed_logins: 0,
        last_failed_at: 0,
        locked_until: None,
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
            locked_until: a.locked_until.filter(|t| *t > now_ms()),
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
    if !disabled {
        // Enabling also lifts a lock after wrong passwords.
        account.failed_logins = 0;
        account.locked_until = None;
    }
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

/// What a login attempt came to, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A wrong password (or an unknown username).
    WrongPassword,
    /// A wrong password that locked the account.
    Locked,
}

/// Checks a password and opens a session, throttled by `guard` (see [`guard`]).
///
/// # Errors
/// [`AuthError::BadCredentials`] for an unknown user or a wrong password (the second value
/// of the error path says whether it just locked the account: see [`login_attempt`]);
/// [`AuthError::TooSoon`], [`AuthError::Locked`], [`AuthError::Busy`] when the attempt was
/// not checked; store errors.
pub async fn login(
    store: &Store,
    guard: &LoginGuard,
    username: &str,
    password: &str,
    from: IpAddr,
) -> Result<(Token, Session), AuthError> {
    login_attempt(store, guard, username, password, from)
        .await
        .map_err(|(e, _)| e)
}

/// [`login`], saying also what a failed attempt was (for the audit log).
///
/// # Errors
/// As [`login`], with [`Failure`] when a password was checked and was wrong.
pub async fn login_attempt(
    store: &Store,
    guard: &LoginGuard,
    username: &str,
    password: &str,
    from: IpAddr,
) -> Result<(Token, Session), (AuthError, Option<Failure>)> {
    // A fixed dummy hash, so an unknown user costs the same time as a wrong password.
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8Tk4MQ0m9lVt0nQxS0Yx7bYwQm3n2c9zS8bG6uYl3cA";
    let policy = *guard.policy();
    let now = now_ms();
    let too_soon = |r: Refusal| match r {
        Refusal::TooSoon { retry_after_secs } => AuthError::TooSoon { retry_after_secs },
        Refusal::Busy => AuthError::Busy,
    };
    guard
        .check_address(from, now)
        .map_err(|r| (too_soon(r), None))?;
    let account = staff(store, username).await.map_err(|e| (e, None))?;
    if let Some(a) = &account {
        if let Some(until) = a.locked_until.filter(|t| *t > now) {
            let retry_after_secs = (until - now).div_ceil(1000);
            return Err((AuthError::Locked { retry_after_secs }, None));
        }
        guard::wait_left(&policy, a.failed_logins, a.last_failed_at, now)
            .map_err(|r| (too_soon(r), None))?;
    }
    let phc = account
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| DUMMY.to_owned());
    let ok = {
        let _slot = guard.check_slot().await.map_err(|r| (too_soon(r), None))?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .unwrap_or(false)
    };
    let account = match (ok, account) {
        (true, Some(a)) if !a.disabled => a,
        (_, account) => {
            // The wait runs from the answer, not from the question (a check takes time).
            let now = now_ms();
            guard.address_failed(from, now);
            let mut failure = Failure::WrongPassword;
            if let Some(mut a) = account.filter(|a| !a.disabled) {
                a.failed_logins += 1;
                a.last_failed_at = now;
                if a.failed_logins >= policy.lock_after {
                    a.locked_until = Some(now + policy.lock_for.as_millis() as u64);
                    a.failed_logins = 0;
                    failure = Failure::Locked;
                }
                put_account(store, &a).await.map_err(|e| (e, None))?;
            }
            return Err((AuthError::BadCredentials, Some(failure)));
        }
    };
    guard.address_succeeded(from);
    if account.failed_logins > 0 || account.locked_until.is_some() {
        let mut a = account.clone();
        a.failed_logins = 0;
        a.locked_until = None;
        put_account(store, &a).await.map_err(|e| (e, None))?;
    }
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
        .await
        .map_err(|e| (e.into(), None))?;
    Ok((token, session))
}

async fn put_account(store: &Store, a: &StaffAccount) -> Result<(), AuthError> {
    store
        .write(vec![Write::put(
            Tree::Staff,
            a.username.as_bytes().to_vec(),
            serde_json::to_vec(a).expect("account serializes"),
        )])
        .await?;
    Ok(())
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

    fn ip() -> IpAddr {
        "10.0.0.9".parse().unwrap()
    }

    fn guard() -> LoginGuard {
        LoginGuard::new(LoginPolicy::default())
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
        let g = guard();
        assert!(matches!(
            login(&s, &g, "kim", "wrong password!", ip()).await,
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            login(&s, &g, "nobody", "correct horse battery", ip()).await,
            Err(AuthError::BadCredentials)
        ));
        let (token, session) = login(&s, &g, "kim", "correct horse battery", ip())
            .await
            .unwrap();
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

    /// After the free attempts, a try that comes too early is refused unchecked; after
    /// `lock_after` wrong passwords the account is locked even for the right one, until a
    /// supervisor enables it (or the lock runs out).
    #[tokio::test]
    async fn guessing_is_slowed_then_locked() {
        let s = store();
        add_staff(&s, "kim", Role::Counselor, "correct horse battery")
            .await
            .unwrap();
        let g = LoginGuard::new(LoginPolicy {
            base_delay: std::time::Duration::from_millis(40),
            max_delay: std::time::Duration::from_millis(40),
            lock_after: 5,
            ..LoginPolicy::default()
        });
        let mut wrong = 0;
        let mut too_soon = 0;
        let mut failures = Vec::new();
        for i in 0..40u32 {
            // Each try from another address: the account's own record slows it down.
            let from = IpAddr::from([10, 1, 0, (i % 250) as u8]);
            match login_attempt(&s, &g, "kim", "wrong password!", from).await {
                Err((AuthError::BadCredentials, f)) => {
                    wrong += 1;
                    failures.push(f);
                }
                Err((AuthError::Locked { .. }, _)) => break,
                other => panic!("{other:?}"),
            }
            // At once again: past the free attempts, refused without a check.
            let again = IpAddr::from([10, 2, 0, (i % 250) as u8]);
            match login_attempt(&s, &g, "kim", "wrong password!", again).await {
                Err((AuthError::TooSoon { .. }, None)) => too_soon += 1,
                // Within the free attempts it is checked like any other.
                Err((AuthError::BadCredentials, f)) => {
                    wrong += 1;
                    failures.push(f);
                }
                Err((AuthError::Locked { .. }, _)) => break,
                other => panic!("{other:?}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        }
        assert!(too_soon > 0, "early tries are refused unchecked");
        assert_eq!(wrong, 5, "locked at the fifth wrong password");
        assert_eq!(failures.last(), Some(&Some(Failure::Locked)));
        assert!(matches!(
            login(&s, &g, "kim", "correct horse battery", ip()).await,
            Err(AuthError::Locked { .. })
        ));
        set_disabled(&s, "kim", false).await.unwrap();
        assert!(
            login(&s, &g, "kim", "correct horse battery", ip())
                .await
                .is_ok()
        );
        let list = list_staff(&s).await.unwrap();
        assert_eq!(list[0].locked_until, None);
    }
}
