//! The counselor queue: an actor (one task) and a cheap, cloneable [`QueueHandle`].
//!
//! Ordering is by level, then by waiting time. Lower levels age upward (one priority step
//! per `aging` interval waited, never above `high`) so nobody waits forever. An `imminent`
//! arrival is pushed as an alert to every counselor with room. A wait past the level's
//! target raises a supervisor event once per entry and counts in the metrics.
//!
//! Why an actor: the queue is touched by every conversation and every counselor socket;
//! one task owning it means no locks, and every change is followed by exactly one
//! re-ordering and one round of position updates. All channels are bounded; a conversation
//! or counselor whose channel is full misses an update rather than slowing the queue (the
//! next update carries the whole truth again).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::conversation::{Position, Summary};
use crate::ids::ConversationId;
use crate::triage::{Level, LevelPolicy};

/// One waiting conversation as shown to counselors and supervisors.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueueEntry {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Its level.
    pub level: Level,
    /// Handed off at `imminent`.
    pub urgent: bool,
    /// Seconds waited so far.
    pub waiting_secs: u64,
    /// The level's wait target, in seconds.
    pub wait_target_secs: Option<u64>,
    /// Waited past the target.
    pub breached: bool,
    /// Passed to this colleague: only they may claim it until they do, go offline, or the
    /// offer lapses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_for: Option<String>,
    /// What the counselor sees before claiming.
    #[serde(flatten)]
    pub summary: Summary,
}

/// An online counselor, as colleagues see them when choosing whom to pass a conversation
/// to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Colleague {
    /// Username.
    pub username: String,
    /// Conversations they hold.
    pub held: usize,
    /// How many they may hold.
    pub capacity: usize,
}

/// Why a conversation cannot be passed to a colleague. The conversation stays where it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferRefused {
    /// Not online (or no such counselor).
    #[error("{0} is not online; choose a colleague from the list")]
    NotOnline(String),
    /// Holds as many conversations as allowed.
    #[error("{0} already holds as many conversations as allowed")]
    AtCapacity(String),
    /// To oneself.
    #[error("you already hold this conversation")]
    ToSelf,
}

/// Pushed to counselor sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounselorPush {
    /// The whole queue, in order.
    Queue(Vec<QueueEntry>),
    /// An `imminent` conversation arrived.
    Alert(QueueEntry),
    /// A colleague passed this conversation to you: claim it from the queue.
    Offer(QueueEntry),
    /// Colleagues online, with their load (for choosing whom to pass a conversation to).
    Colleagues(Vec<Colleague>),
}

/// Pushed to supervisors (and metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupervisorEvent {
    /// A conversation waited past its level's target.
    WaitBreached {
        /// Which.
        conversation_id: ConversationId,
        /// Its level.
        level: Level,
        /// Seconds waited.
        waiting_secs: u64,
    },
}

/// Aggregate numbers for `/metrics` and the live board.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Waiting conversations per level (indexed by `Level::index`).
    pub waiting: [usize; 5],
    /// Longest wait per level, in seconds.
    pub longest_wait_secs: [u64; 5],
    /// Breaches so far per level.
    pub breaches: [u64; 5],
    /// Counselors online.
    pub counselors_online: usize,
}

/// Why a claim was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Not in the queue (claimed by someone else, or closed).
    #[error("this conversation is no longer waiting")]
    NotWaiting,
    /// The counselor already holds as many conversations as allowed.
    #[error("you already hold as many conversations as allowed")]
    AtCapacity,
    /// A colleague passed it to someone else, who has not taken it yet.
    #[error("this conversation was passed to a colleague, who is taking it over")]
    Reserved,
    /// The queue actor has stopped.
    #[error("the queue is shutting down")]
    Closed,
}

/// Queue settings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Per-level policy from the rules file (priority and wait target).
    pub levels: [LevelPolicy; 5],
    /// Waiting this long raises an entry one priority step.
    pub aging: Duration,
    /// Concurrent conversations per counselor.
    pub capacity_per_counselor: usize,
    /// How long a conversation passed to a colleague waits only for them.
    pub offer_time: Duration,
    /// A rough handling time per conversation, for wait estimates.
    pub handle_time: Duration,
}

impl QueueConfig {
    /// Defaults around the rules file's level policy.
    pub fn new(levels: [LevelPolicy; 5]) -> Self {
        QueueConfig {
            levels,
            aging: Duration::from_secs(600),
            capacity_per_counselor: 3,
            offer_time: Duration::from_secs(120),
            handle_time: Duration::from_secs(15 * 60),
        }
    }
}

enum Cmd {
    Enqueue {
        conversation_id: ConversationId,
        level: Level,
        urgent: bool,
        summary: Summary,
        waited: Duration,
        notify: mpsc::Sender<Position>,
        reserved_for: Option<String>,
    },
    Remove(ConversationId),
    CanTake {
        from: String,
        to: String,
        reply: oneshot::Sender<Result<(), TransferRefused>>,
    },
    Colleagues(oneshot::Sender<Vec<Colleague>>),
    Claim {
        conversation_id: ConversationId,
        counselor: String,
        reply: oneshot::Sender<Result<(), ClaimError>>,
    },
    Release {
        conversation_id: ConversationId,
        counselor: String,
    },
    Assign {
        conversation_id: ConversationId,
        counselor: String,
    },
    Online {
        conn: u64,
        counselor: String,
        push: mpsc::Sender<CounselorPush>,
    },
    Offline {
        conn: u64,
    },
    Snapshot(oneshot::Sender<Vec<QueueEntry>>),
    Load(oneshot::Sender<usize>),
    HeldBy {
        counselor: String,
        reply: oneshot::Sender<Vec<ConversationId>>,
    },
}

/// The cheap handle to the queue actor.
#[derive(Clone)]
pub struct QueueHandle {
    tx: mpsc::Sender<Cmd>,
    stats: watch::Receiver<QueueStats>,
    supervisors: broadcast::Sender<SupervisorEvent>,
}

impl QueueHandle {
    /// Starts the actor on the current runtime.
    pub fn spawn(config: QueueConfig) -> QueueHandle {
        let (tx, rx) = mpsc::channel(1024);
        let (stats_tx, stats) = watch::channel(QueueStats::default());
        let (supervisors, _) = broadcast::channel(256);
        let actor = Actor {
            config,
            entries: Vec::new(),
            counselors: HashMap::new(),
            stats: stats_tx,
            supervisors: supervisors.clone(),
            breaches: [0; 5],
        };
        tokio::spawn(actor.run(rx));
        QueueHandle {
            tx,
            stats,
            supervisors,
        }
    }

    /// Adds a conversation (or raises its level if already waiting). `waited` is time
    /// already spent waiting (after a restart, or before a counselor sent it back), so
    /// order survives. `reserved_for`: passed to that colleague, who alone may claim it
    /// until they do, go offline, or the offer lapses.
    #[allow(clippy::too_many_arguments)]
    pub async fn enqueue(
        &self,
        conversation_id: ConversationId,
        level: Level,
        urgent: bool,
        summary: Summary,
        waited: Duration,
        notify: mpsc::Sender<Position>,
        reserved_for: Option<String>,
    ) {
        let _ = self
            .tx
            .send(Cmd::Enqueue {
                conversation_id,
                level,
                urgent,
                summary,
                waited,
                notify,
                reserved_for,
            })
            .await;
    }

    /// Whether `to` can take a conversation from `from` now: online, with room, not `from`.
    ///
    /// # Errors
    /// [`TransferRefused`] with the reason, in plain words.
    pub async fn can_take(&self, from: &str, to: &str) -> Result<(), TransferRefused> {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .tx
            .send(Cmd::CanTake {
                from: from.to_owned(),
                to: to.to_owned(),
                reply,
            })
            .await;
        if sent.is_err() {
            return Err(TransferRefused::NotOnline(to.to_owned()));
        }
        rx.await
            .unwrap_or_else(|_| Err(TransferRefused::NotOnline(to.to_owned())))
    }

    /// Counselors online, with their load.
    pub async fn colleagues(&self) -> Vec<Colleague> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Colleagues(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Takes a conversation out of the queue (closed by the citizen, timed out).
    pub async fn remove(&self, conversation_id: ConversationId) {
        let _ = self.tx.send(Cmd::Remove(conversation_id)).await;
    }

    /// A counselor claims a waiting conversation.
    ///
    /// # Errors
    /// [`ClaimError`] when it is no longer waiting or the counselor is at capacity.
    pub async fn claim(
        &self,
        conversation_id: ConversationId,
        counselor: &str,
    ) -> Result<(), ClaimError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Claim {
                conversation_id,
                counselor: counselor.to_owned(),
                reply,
            })
            .await
            .map_err(|_| ClaimError::Closed)?;
        rx.await.map_err(|_| ClaimError::Closed)?
    }

    /// The counselor no longer holds the conversation (closed or transferred).
    pub async fn release(&self, conversation_id: ConversationId, counselor: &str) {
        let _ = self
            .tx
            .send(Cmd::Release {
                conversation_id,
                counselor: counselor.to_owned(),
            })
            .await;
    }

    /// Records that a counselor holds a conversation without a claim (direct transfer,
    /// or restored after a restart).
    pub async fn assign(&self, conversation_id: ConversationId, counselor: &str) {
        let _ = self
            .tx
            .send(Cmd::Assign {
                conversation_id,
                counselor: counselor.to_owned(),
            })
            .await;
    }

    /// A counselor socket came online; it gets the queue now and on every change.
    pub async fn online(&self, conn: u64, counselor: &str, push: mpsc::Sender<CounselorPush>) {
        let _ = self
            .tx
            .send(Cmd::Online {
                conn,
                counselor: counselor.to_owned(),
                push,
            })
            .await;
    }

    /// A counselor socket went away.
    pub async fn offline(&self, conn: u64) {
        let _ = self.tx.send(Cmd::Offline { conn }).await;
    }

    /// The queue in order.
    pub async fn snapshot(&self) -> Vec<QueueEntry> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Snapshot(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The conversations `counselor` holds.
    pub async fn held_by(&self, counselor: &str) -> Vec<ConversationId> {
        let (tx, rx) = oneshot::channel();
        let cmd = Cmd::HeldBy {
            counselor: counselor.to_owned(),
            reply: tx,
        };
        if self.tx.send(cmd).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// How many counselors are online.
    pub async fn counselors_online(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Load(tx)).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// The latest aggregate numbers.
    pub fn stats(&self) -> QueueStats {
        self.stats.borrow().clone()
    }

    /// Wait-target breaches and other supervisor events.
    pub fn supervisor_events(&self) -> broadcast::Receiver<SupervisorEvent> {
        self.supervisors.subscribe()
    }
}

struct Waiting {
    conversation_id: ConversationId,
    level: Level,
    urgent: bool,
    since: Instant,
    summary: Summary,
    notify: mpsc::Sender<Position>,
    last_position: Option<usize>,
    breached: bool,
    /// Passed to a colleague: their name and until when only they may claim it.
    reserved: Option<(String, Instant)>,
}

struct Counselor {
    name: String,
    push: mpsc::Sender<CounselorPush>,
}

struct Actor {
    config: QueueConfig,
    entries: Vec<Waiting>,
    /// Online counselor sockets by connection id.
    counselors: HashMap<u64, Counselor>,
    stats: watch::Sender<QueueStats>,
    supervisors: broadcast::Sender<SupervisorEvent>,
    breaches: [u64; 5],
}

/// Conversations held, per counselor name (kept apart from sockets: a counselor who
/// reconnects still holds their conversations).
#[derive(Default)]
struct Holdings(HashMap<String, Vec<ConversationId>>);

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut holdings = Holdings::default();
        let mut colleagues = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let joined = matches!(cmd, Cmd::Online { .. });
                    let changed = self.handle(cmd, &mut holdings);
                    if changed {
                        self.publish(true);
                        // Who is online and how full they are: every console keeps its
                        // list of colleagues (for passing a conversation on) current.
                        let now = self.colleagues(&holdings);
                        if joined || now != colleagues {
                            for c in self.counselors.values() {
                                let _ = c.push.try_send(CounselorPush::Colleagues(now.clone()));
                            }
                            colleagues = now;
                        }
                    }
                }
                _ = tick.tick() => self.publish(false),
            }
        }
    }

    fn handle(&mut self, cmd: Cmd, holdings: &mut Holdings) -> bool {
        match cmd {
            Cmd::Enqueue {
                conversation_id,
                level,
                urgent,
                summary,
                waited,
                notify,
                reserved_for,
            } => {
                let now = Instant::now();
                let since = now.checked_sub(waited).unwrap_or(now);
                let reserved = reserved_for.map(|name| (name, now + self.config.offer_time));
                let offer_to = reserved.as_ref().map(|r| r.0.clone());
                let is_new_alert;
                if let Some(e) = self
                    .entries
                    .iter_mut()
                    .find(|e| e.conversation_id == conversation_id)
                {
                    is_new_alert = level == Level::Imminent && e.level < Level::Imminent;
                    e.level = e.level.max(level);
                    e.urgent |= urgent;
                    e.summary = summary;
                    e.notify = notify;
                    if reserved.is_some() {
                        e.reserved = reserved;
                    }
                } else {
                    is_new_alert = level == Level::Imminent;
                    self.entries.push(Waiting {
                        conversation_id,
                        level,
                        urgent,
                        since,
                        summary,
                        notify,
                        last_position: None,
                        breached: false,
                        reserved,
                    });
                }
                if let Some(name) = offer_to {
                    self.sort();
                    if let Some(e) = self
                        .entries
                        .iter()
                        .find(|e| e.conversation_id == conversation_id)
                    {
                        let entry = self.entry(e, now);
                        for c in self.counselors.values().filter(|c| c.name == name) {
                            let _ = c.push.try_send(CounselorPush::Offer(entry.clone()));
                        }
                    }
                }
                if is_new_alert {
                    self.sort();
                    if let Some(e) = self
                        .entries
                        .iter()
                        .find(|e| e.conversation_id == conversation_id)
                    {
                        let entry = self.entry(e, now);
                        for c in self.counselors.values() {
                            if holdings.count(&c.name) < self.config.capacity_per_counselor {
                                let _ = c.push.try_send(CounselorPush::Alert(entry.clone()));
                            }
                        }
                    }
                }
                true
            }
            Cmd::Remove(id) => {
                let before = self.entries.len();
                self.entries.retain(|e| e.conversation_id != id);
                before != self.entries.len()
            }
            Cmd::Claim {
                conversation_id,
                counselor,
                reply,
            } => {
                let now = Instant::now();
                let found = self
                    .entries
                    .iter()
                    .position(|e| e.conversation_id == conversation_id);
                let reserved_for_other = found.is_some_and(|i| {
                    self.entries[i]
                        .reserved
                        .as_ref()
                        .is_some_and(|(name, until)| *name != counselor && *until > now)
                });
                let result = if holdings.count(&counselor) >= self.config.capacity_per_counselor {
                    Err(ClaimError::AtCapacity)
                } else if reserved_for_other {
                    Err(ClaimError::Reserved)
                } else if let Some(i) = found {
                    self.entries.remove(i);
                    holdings.add(&counselor, conversation_id);
                    Ok(())
                } else {
                    Err(ClaimError::NotWaiting)
                };
                let changed = result.is_ok();
                let _ = reply.send(result);
                changed
            }
            Cmd::Release {
                conversation_id,
                counselor,
            } => {
                holdings.remove(&counselor, conversation_id);
                true
            }
            Cmd::Assign {
                conversation_id,
                counselor,
            } => {
                holdings.add(&counselor, conversation_id);
                self.entries
                    .retain(|e| e.conversation_id != conversation_id);
                true
            }
            Cmd::Online {
                conn,
                counselor,
                push,
            } => {
                self.counselors.insert(
                    conn,
                    Counselor {
                        name: counselor,
                        push,
                    },
                );
                true
            }
            Cmd::Offline { conn } => {
                let Some(gone) = self.counselors.remove(&conn) else {
                    return false;
                };
                // The last socket of a counselor closed: what was passed to them and not yet
                // taken goes back to everyone, with its level and waiting time kept.
                if !self.counselors.values().any(|c| c.name == gone.name) {
                    for e in &mut self.entries {
                        if e.reserved.as_ref().is_some_and(|(n, _)| *n == gone.name) {
                            e.reserved = None;
                        }
                    }
                }
                true
            }
            Cmd::CanTake { from, to, reply } => {
                let result = if from == to {
                    Err(TransferRefused::ToSelf)
                } else if !self.counselors.values().any(|c| c.name == to) {
                    Err(TransferRefused::NotOnline(to))
                } else if holdings.count(&to) + self.offers_to(&to)
                    >= self.config.capacity_per_counselor
                {
                    Err(TransferRefused::AtCapacity(to))
                } else {
                    Ok(())
                };
                let _ = reply.send(result);
                false
            }
            Cmd::Colleagues(reply) => {
                let _ = reply.send(self.colleagues(holdings));
                false
            }
            Cmd::Snapshot(reply) => {
                let now = Instant::now();
                self.sort();
                let _ = reply.send(self.entries.iter().map(|e| self.entry(e, now)).collect());
                false
            }
            Cmd::HeldBy { counselor, reply } => {
                let _ = reply.send(holdings.0.get(&counselor).cloned().unwrap_or_default());
                false
            }
            Cmd::Load(reply) => {
                let _ = reply.send(self.online_count());
                false
            }
        }
    }

    /// Conversations offered to `name` and not yet taken.
    fn offers_to(&self, name: &str) -> usize {
        self.entries
            .iter()
            .filter(|e| e.reserved.as_ref().is_some_and(|(n, _)| n == name))
            .count()
    }

    fn colleagues(&self, holdings: &Holdings) -> Vec<Colleague> {
        let mut names: Vec<&str> = self.counselors.values().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|n| Colleague {
                username: n.to_owned(),
                held: holdings.count(n) + self.offers_to(n),
                capacity: self.config.capacity_per_counselor,
            })
            .collect()
    }

    fn online_count(&self) -> usize {
        let mut names: Vec<&str> = self.counselors.values().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }

    /// Effective priority: the level's, raised one step per `aging` waited, never above
    /// `high` through aging alone.
    fn rank(&self, e: &Waiting, now: Instant) -> u32 {
        let base = self.config.levels[e.level.index()].priority as u32;
        let cap = self.config.levels[Level::High.index()].priority as u32;
        let aged = (now.saturating_duration_since(e.since).as_secs()
            / self.config.aging.as_secs().max(1)) as u32;
        if base >= cap {
            base
        } else {
            (base + aged).min(cap)
        }
    }

    fn sort(&mut self) {
        let now = Instant::now();
        let mut keyed: Vec<(u32, Instant, Waiting)> =
            self.entries.drain(..).map(|e| (0, e.since, e)).collect();
        for k in &mut keyed {
            k.0 = self.rank(&k.2, now);
        }
        keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        self.entries = keyed.into_iter().map(|k| k.2).collect();
    }

    fn entry(&self, e: &Waiting, now: Instant) -> QueueEntry {
        let waiting_secs = now.saturating_duration_since(e.since).as_secs();
        QueueEntry {
            conversation_id: e.conversation_id,
            level: e.level,
            urgent: e.urgent,
            waiting_secs,
            wait_target_secs: self.config.levels[e.level.index()].wait_target_secs,
            breached: e.breached,
            reserved_for: e.reserved.as_ref().map(|r| r.0.clone()),
            summary: e.summary.clone(),
        }
    }

    /// Re-orders, tells each waiting conversation its place when it changed, checks wait
    /// targets, and (when `changed`) pushes the queue to counselors.
    fn publish(&mut self, changed: bool) {
        let now = Instant::now();
        // An offer to a colleague that was not taken in time goes back to everyone.
        let mut changed = changed;
        for e in &mut self.entries {
            if e.reserved.as_ref().is_some_and(|(_, until)| *until <= now) {
                e.reserved = None;
                changed = true;
            }
        }
        let order_before: Vec<ConversationId> =
            self.entries.iter().map(|e| e.conversation_id).collect();
        self.sort();
        let reordered = order_before
            .iter()
            .ne(self.entries.iter().map(|e| &e.conversation_id));
        let online = self.online_count();
        let mut breached_now = false;
        let mut stats = QueueStats {
            counselors_online: online,
            ..QueueStats::default()
        };
        for (i, e) in self.entries.iter_mut().enumerate() {
            let waited = now.saturating_duration_since(e.since).as_secs();
            let li = e.level.index();
            stats.waiting[li] += 1;
            stats.longest_wait_secs[li] = stats.longest_wait_secs[li].max(waited);
            if let Some(target) = self.config.levels[li].wait_target_secs {
                if !e.breached && waited > target {
                    e.breached = true;
                    breached_now = true;
                    self.breaches[li] += 1;
                    let _ = self.supervisors.send(SupervisorEvent::WaitBreached {
                        conversation_id: e.conversation_id,
                        level: e.level,
                        waiting_secs: waited,
                    });
                }
            }
            let position = i + 1;
            if e.last_position != Some(position) || changed {
                let expected_wait_secs = (online > 0).then(|| {
                    (position as u64 * self.config.handle_time.as_secs())
                        / (online as u64 * self.config.capacity_per_counselor as u64).max(1)
                });
                let sent = e
                    .notify
                    .try_send(Position {
                        position,
                        expected_wait_secs,
                        counselors_online: online,
                    })
                    .is_ok();
                if sent {
                    e.last_position = Some(position);
                }
            }
        }
        stats.breaches = self.breaches;
        self.stats.send_replace(stats);
        // No counselor online: nobody to push the snapshot to, so none is built.
        if (changed || reordered || breached_now) && !self.counselors.is_empty() {
            let snapshot: Vec<QueueEntry> =
                self.entries.iter().map(|e| self.entry(e, now)).collect();
            for c in self.counselors.values() {
                let _ = c.push.try_send(CounselorPush::Queue(snapshot.clone()));
            }
        }
    }
}

impl Holdings {
    fn count(&self, name: &str) -> usize {
        self.0.get(name).map_or(0, Vec::len)
    }
    fn add(&mut self, name: &str, id: ConversationId) {
        let held = self.0.entry(name.to_owned()).or_default();
        if !held.contains(&id) {
            held.push(id);
        }
    }
    fn remove(&mut self, name: &str, id: ConversationId) {
        if let Some(held) = self.0.get_mut(name) {
            held.retain(|x| *x != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::Action;

    fn levels() -> [LevelPolicy; 5] {
        let p = |action, priority, wait| LevelPolicy {
            action,
            priority,
            wait_target_secs: wait,
        };
        [
            p(Action::Answer, 0, None),
            p(Action::Answer, 1, Some(1800)),
            p(Action::OfferCounselor, 2, Some(600)),
            p(Action::Handoff, 3, Some(120)),
            p(Action::UrgentHandoff, 4, Some(30)),
        ]
    }

    async fn add(q: &QueueHandle, level: Level) -> (ConversationId, mpsc::Receiver<Position>) {
        let id = ConversationId::random();
        let (tx, rx) = mpsc::channel(16);
        q.enqueue(
            id,
            level,
            level == Level::Imminent,
            Summary::default(),
            Duration::ZERO,
            tx,
            None,
        )
        .await;
        // A round trip, so the actor has taken the entry before the test moves time on.
        q.snapshot().await;
        (id, rx)
    }

    fn order(s: &[QueueEntry]) -> Vec<ConversationId> {
        s.iter().map(|e| e.conversation_id).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn orders_by_level_then_time() {
        let q = QueueHandle::spawn(QueueConfig::new(levels()));
        let (low, _a) = add(&q, Level::Low).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        let (high1, _b) = add(&q, Level::High).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        let (medium, _c) = add(&q, Level::Medium).await;
        let (high2, _d) = add(&q, Level::High).await;
        let (imminent, _e) = add(&q, Level::Imminent).await;
        assert_eq!(
            order(&q.snapshot().await),
            vec![imminent, high1, high2, medium, low]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lower_levels_age_upward_but_never_past_imminent() {
        let mut config = QueueConfig::new(levels());
        config.aging = Duration::from_secs(600);
        let q = QueueHandle::spawn(config);
        let (low, _a) = add(&q, Level::Low).await;
        // Twenty minutes later, a new medium arrives: the old low has aged to medium and,
        // having waited longer, goes first.
        tokio::time::advance(Duration::from_secs(1200)).await;
        let (medium, _b) = add(&q, Level::Medium).await;
        assert_eq!(order(&q.snapshot().await), vec![low, medium]);
        // An hour on, it is capped at high: a new imminent still goes first.
        tokio::time::advance(Duration::from_secs(3600)).await;
        let (imminent, _c) = add(&q, Level::Imminent).await;
        assert_eq!(order(&q.snapshot().await)[0], imminent);
    }

    #[tokio::test(start_paused = true)]
    async fn positions_are_pushed_and_no_counselor_means_no_estimate() {
        let q = QueueHandle::spawn(QueueConfig::new(levels()));
        let (_low, mut low_rx) = add(&q, Level::Low).await;
        let p = low_rx.recv().await.unwrap();
        assert_eq!(p.position, 1);
        assert_eq!(p.expected_wait_secs, None);
        assert_eq!(p.counselors_online, 0);
        let (_high, _h) = add(&q, Level::High).await;
        let p = low_rx.recv().await.unwrap();
        assert_eq!(p.position, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn claims_respect_capacity_and_single_ownership() {
        let mut config = QueueConfig::new(levels());
        config.capacity_per_counselor = 1;
        let q = QueueHandle::spawn(config);
        let (a, _ra) = add(&q, Level::High).await;
        let (b, _rb) = add(&q, Level::High).await;
        assert_eq!(q.claim(a, "kim").await, Ok(()));
        assert_eq!(q.claim(a, "lee").await, Err(ClaimError::NotWaiting));
        assert_eq!(q.claim(b, "kim").await, Err(ClaimError::AtCapacity));
        q.release(a, "kim").await;
        assert_eq!(q.claim(b, "kim").await, Ok(()));
        assert!(q.snapshot().await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn imminent_alerts_every_counselor_with_room_and_breaches_are_reported() {
        let q = QueueHandle::spawn(QueueConfig::new(levels()));
        let mut sup = q.supervisor_events();
        let (tx1, mut rx1) = mpsc::channel(16);
        let (tx2, mut rx2) = mpsc::channel(16);
        q.online(1, "kim", tx1).await;
        q.online(2, "lee", tx2).await;
        let (id, _r) = add(&q, Level::Imminent).await;
        for rx in [&mut rx1, &mut rx2] {
            let mut alerted = false;
            while let Ok(Some(push)) =
                tokio::time::timeout(Duration::from_millis(10), rx.recv()).await
            {
                if let CounselorPush::Alert(e) = push {
                    assert_eq!(e.conversation_id, id);
                    alerted = true;
                }
            }
            assert!(alerted);
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ev = sup.recv().await.unwrap();
        assert!(matches!(
            ev,
            SupervisorEvent::WaitBreached {
                level: Level::Imminent,
                ..
            }
        ));
        assert_eq!(q.stats().breaches[Level::Imminent.index()], 1);
        assert_eq!(q.stats().counselors_online, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn restored_entries_keep_their_order() {
        let q = QueueHandle::spawn(QueueConfig::new(levels()));
        let (tx, _rx) = mpsc::channel(4);
        let newer = ConversationId::random();
        let older = ConversationId::random();
        q.enqueue(
            newer,
            Level::High,
            false,
            Summary::default(),
            Duration::from_secs(10),
            tx.clone(),
            None,
        )
        .await;
        q.enqueue(
            older,
            Level::High,
            false,
            Summary::default(),
            Duration::from_secs(100),
            tx,
            None,
        )
        .await;
        assert_eq!(order(&q.snapshot().await), vec![older, newer]);
    }
}
