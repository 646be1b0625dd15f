//! Defence against password guessing.
//!
//! * **Per account** (stored in the account, so a restart does not reset it): after
//!   [`LoginPolicy::free_attempts`] wrong passwords in a row, each further attempt must wait
//!   longer than the one before (doubling from [`LoginPolicy::base_delay`], at most
//!   [`LoginPolicy::max_delay`]); after [`LoginPolicy::lock_after`] the account is locked
//!   for [`LoginPolicy::lock_for`], or until a supervisor enables it again. An attempt that
//!   comes too early is refused without checking the password (no argon2 cost).
//! * **Per client address** (in memory, bounded): the same growing delay, so one address
//!   cannot try many accounts quickly.
//! * **Bounded verification**: argon2 needs about 19 MiB per check; at most
//!   [`LoginPolicy::concurrent`] run at once, at most [`LoginPolicy::queued`] wait, and the
//!   rest are answered 429 at once, so a login flood cannot grow memory.
//!
//! Every wrong password and every lock is written to the audit log by the API.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

/// The throttling policy.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    /// Wrong passwords in a row allowed without a wait.
    pub free_attempts: u32,
    /// The first wait after them; it doubles with every further failure.
    pub base_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// Wrong passwords in a row that lock the account.
    pub lock_after: u32,
    /// How long a lock lasts unless a supervisor lifts it sooner.
    pub lock_for: Duration,
    /// Password checks at once.
    pub concurrent: usize,
    /// Password checks waiting at most; more are refused with 429.
    pub queued: usize,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            free_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            lock_after: 10,
            lock_for: Duration::from_secs(15 * 60),
            concurrent: 4,
            queued: 32,
        }
    }
}

impl LoginPolicy {
    /// How long to wait after `failures` wrong passwords in a row before the next try.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures < self.free_attempts {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free_attempts).min(20);
        (self.base_delay * 2u32.pow(doublings)).min(self.max_delay)
    }
}

/// Why a login attempt was not even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too soon after the last wrong password (from this account or this address).
    TooSoon {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Too many checks already running and waiting.
    Busy,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last_ms: u64,
}

/// Most client addresses remembered; past it the oldest failures are forgotten.
const MAX_ADDRESSES: usize = 10_000;

/// The per-address record and the verification bound. Cheap to clone.
#[derive(Clone)]
pub struct LoginGuard {
    inner: Arc<Inner>,
}

struct Inner {
    policy: LoginPolicy,
    checks: Semaphore,
    waiting: AtomicUsize,
    /// Never held across an `.await`.
    addresses: std::sync::Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginGuard {
    /// A guard with `policy`.
    pub fn new(policy: LoginPolicy) -> LoginGuard {
        LoginGuard {
            inner: Arc::new(Inner {
                policy,
                checks: Semaphore::new(policy.concurrent.max(1)),
                waiting: AtomicUsize::new(0),
                addresses: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &LoginPolicy {
        &self.inner.policy
    }

    fn addresses(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.inner
            .addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `ip` may try now.
    ///
    /// # Errors
    /// [`Refusal::TooSoon`].
    pub fn check_address(&self, ip: IpAddr, now_ms: u64) -> Result<(), Refusal> {
        let f = self.addresses().get(&ip).copied();
        match f {
            Some(f) => wait_left(&self.inner.policy, f.count, f.last_ms, now_ms),
            None => Ok(()),
        }
    }

    /// A wrong password from `ip`.
    pub fn address_failed(&self, ip: IpAddr, now_ms: u64) {
        let mut map = self.addresses();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            // Forget the oldest: the map stays bounded under a flood from many addresses.
            if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last_ms).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        let f = map.entry(ip).or_insert(Failures {
            count: 0,
            last_ms: now_ms,
        });
        f.count += 1;
        f.last_ms = now_ms;
    }

    /// A right password from `ip`.
    pub fn address_succeeded(&self, ip: IpAddr) {
        self.addresses().remove(&ip);
    }

    /// A place to check a password, waiting for one if few are waiting.
    ///
    /// # Errors
    /// [`Refusal::Busy`] when too many checks are running and waiting.
    pub async fn check_slot(&self) -> Result<SemaphorePermit<'_>, Refusal> {
        if let Ok(p) = self.inner.checks.try_acquire() {
            return Ok(p);
        }
        if self.inner.waiting.fetch_add(1, Ordering::AcqRel) >= self.inner.policy.queued {
            self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Busy);
        }
        let permit = self.inner.checks.acquire().await;
        self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| Refusal::Busy)
    }
}

/// `Ok` if the wait after `count` failures, the last at `last_ms`, has passed.
///
/// # Errors
/// [`Refusal::TooSoon`] with the seconds left.
pub fn wait_left(
    policy: &LoginPolicy,
    count: u32,
    last_ms: u64,
    now_ms: u64,
) -> Result<(), Refusal> {
    let wait = policy.delay(count).as_millis() as u64;
    let ready = last_ms.saturating_add(wait);
    if now_ms < ready {
        Err(Refusal::TooSoon {
            retry_after_secs: (ready - now_ms).div_ceil(1000).max(1),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_grows_and_is_capped() {
        let p = LoginPolicy::default();
        let waits: Vec<u64> = (0..14).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    #[test]
    fn an_address_waits_after_repeated_failures() {
        let g = LoginGuard::new(LoginPolicy::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for t in 0..3 {
            assert!(g.check_address(ip, t).is_ok());
            g.address_failed(ip, t);
        }
        assert_eq!(
            g.check_address(ip, 10),
            Err(Refusal::TooSoon {
                retry_after_secs: 1
            })
        );
        assert!(g.check_address(ip, 2_000).is_ok());
        g.address_succeeded(ip);
        assert!(g.check_address(ip, 2_001).is_ok());
    }

    #[test]
    fn the_address_map_stays_bounded() {
        let g = LoginGuard::new(LoginPolicy::default());
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            g.address_failed(IpAddr::from(i.to_be_bytes()), u64::from(i));
        }
        assert_eq!(g.addresses().len(), MAX_ADDRESSES);
    }

    #[tokio::test]
    async fn past_the_queue_checks_are_refused_at_once() {
        let g = LoginGuard::new(LoginPolicy {
            concurrent: 1,
            queued: 1,
            ..LoginPolicy::default()
        });
        let running = g.check_slot().await.unwrap();
        let g2 = g.clone();
        let waiter = tokio::spawn(async move { g2.check_slot().await.map(|_| ()) });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(g.check_slot().await.err(), Some(Refusal::Busy));
        drop(running);
        assert!(waiter.await.unwrap().is_ok());
    }
}
