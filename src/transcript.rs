//! What a conversation leaves behind: its events (in `seq` order) and its meta record.
//!
//! Events are append-only and stored as **records**: the events of one commit (a citizen
//! message with its bot reply and any state change, say) sealed together as one value
//! under `event_key(conversation, first seq)`. One record per commit rather than one key per
//! event because the store's cost is per write: sled copies and re-serializes its nodes on
//! every insert, so three inserts per message cost three times one (`BENCHMARKS.md`).
//!
//! Keying a record by its *first* seq makes a retry safe: a commit whose flush failed was
//! never acknowledged, and the actor's next commit starts at the same seq, so it replaces
//! the unacknowledged record whole, however many events either holds. A reader looking for
//! the events after seq `n` starts at the last record whose key is at or before `n + 1`.
//! A value written before records existed (one event object under its own seq) reads as a
//! record of one, so an older data directory still replays.
//!
//! The meta record (state machine, risk, counselor, resume-token hash) is written with the
//! events that changed it, after them (`APPLY_ORDER`), so it never counts events that are
//! not stored. What *every* message changes (the last seq,
//! the time, the turn and the risk counts: [`Progress`]) is also written in the clear at the
//! head of each event record, and a commit that changes nothing else writes the event
//! record alone: one sled insert per message instead of two, and no rewrite of a record of
//! about a kilobyte that had barely changed (`BENCHMARKS.md`). [`load_meta`] brings the
//! meta record up to date from the conversation's newest record, so readers stop at the
//! `last_seq` it gives.
//!
//! Supervisors replay transcripts from here; resuming citizens get the events after their
//! `last_seq` from here.

use serde::Deserialize;

use crate::conversation::{ConversationMeta, EventBody, StoredEvent};
use crate::crypto::Key;
use crate::ids::ConversationId;
use crate::store::{KeyValue, Store, StoreError, Tree, Write, event_key};

/// The first byte of a sealed conversation record. A record written before sealing is
/// plain JSON and starts with `{`.
const META_SEALED: u8 = 0xC5;
/// The clear head of a conversation record: the marker and `updated_at` (big-endian), all
/// retention needs to decide without the conversation's key.
const META_HEAD_LEN: usize = 1 + 8;

impl ConversationMeta {
    /// The put that stores this record, sealed with the conversation's key. Only the
    /// marker and `updated_at` stay in the clear (retention reads them); everything else
    /// (state, level, counselors, times, the token hash, the queue card) is sealed, so once
    /// the key is destroyed no copy of the record can be read.
    ///
    /// # Panics
    /// Never: serializing plain data cannot fail.
    pub fn write(&self, key: &Key) -> Write {
        let mut head = [0u8; META_HEAD_LEN];
        head[0] = META_SEALED;
        head[1..].copy_from_slice(&self.updated_at.to_be_bytes());
        let plain = serde_json::to_vec(self).expect("meta serializes");
        let mut value = Vec::with_capacity(META_HEAD_LEN + plain.len() + 64);
        value.extend_from_slice(&head);
        value.extend_from_slice(&key.seal(&plain, &meta_aad(self.id, &head)));
        Write::put(Tree::Conversations, self.id.as_bytes().to_vec(), value)
    }
}

fn meta_aad(id: ConversationId, head: &[u8]) -> Vec<u8> {
    let mut aad = b"conversation/".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(head);
    aad
}

/// The write that keeps the [`Tree::Waiting`] index true for this record: present while
/// the conversation waits for or is with a counselor (what a restart brings back), absent
/// otherwise.
pub fn waiting_index(meta: &ConversationMeta) -> Write {
    let k = meta.id.as_bytes().to_vec();
    if meta.conversation.state.is_handed_off() {
        Write::put(Tree::Waiting, k, Vec::new())
    } else {
        Write::remove(Tree::Waiting, k)
    }
}

/// `updated_at` of a stored conversation record, read from its clear head (or from the
/// JSON of a record written before sealing): what retention needs, without the key.
pub fn record_updated_at(bytes: &[u8]) -> Option<u64> {
    match bytes.first() {
        Some(&META_SEALED) if bytes.len() >= META_HEAD_LEN => Some(u64::from_be_bytes(
            bytes[1..META_HEAD_LEN].try_into().expect("8 bytes"),
        )),
        Some(b'{') => {
            #[derive(Deserialize)]
            struct Times {
                updated_at: u64,
                closed_at: Option<u64>,
            }
            serde_json::from_slice::<Times>(bytes)
                .ok()
                .map(|t| t.closed_at.unwrap_or(0).max(t.updated_at))
        }
        _ => None,
    }
}

impl StoredEvent {
    /// The event as it may leave the live chat (supervisor replay, exports): phone numbers
    /// and e-mail addresses removed from every text, spans dropped where the text changed
    /// (they would point at the wrong words).
    pub fn redacted(&self) -> StoredEvent {
        let mut e = self.clone();
        match &mut e.body {
            EventBody::Citizen { text, triage, .. } => {
                let r = crate::redact::redact_contacts(text);
                if r != *text {
                    *text = r;
                    triage.spans.clear();
                    for rule in &mut triage.rules {
                        rule.spans.clear();
                    }
                }
            }
            EventBody::Counselor { text, .. }
            | EventBody::Whisper { text, .. }
            | EventBody::PlanItem { text, .. } => *text = crate::redact::redact_contacts(text),
            _ => {}
        }
        e
    }
}

/// What changes with every message: how far the transcript goes and the counters the state
/// machine and triage keep. Written with every event record (see [`write_events`]): `last_seq`
/// and `updated_at` in its clear head, the turn and the per-level counts sealed with the
/// events (they tell how risky a conversation was). So a message that changes nothing else
/// writes one record and no conversation record; [`load_meta`] takes it from the newest
/// record when that is ahead of the conversation record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// The last event's seq.
    pub last_seq: u64,
    /// Last change, Unix ms.
    pub updated_at: u64,
    /// [`Conversation::turn`].
    pub turn: u32,
    /// [`ConversationRisk::counts`].
    pub counts: [u32; 5],
}

/// The first byte of a record with a clear [`Progress`] head (counts included), as written
/// before the counts were sealed; still read. A record without any head (written before
/// heads existed) is a bare sealed value, which starts with the cipher's version byte, 1.
const RECORD_WITH_PROGRESS: u8 = 2;
/// The first byte of a record whose clear head is only `last_seq` and `updated_at`; the
/// turn and counts are sealed with the events ([`SealedRecord`]).
const RECORD_SEALED_PROGRESS: u8 = 3;
/// The marker, `last_seq`, `updated_at`.
const HEAD3_LEN: usize = 1 + 8 + 8;

/// What a format-3 record seals.
#[derive(serde::Serialize, Deserialize)]
struct SealedRecord<E> {
    turn: u32,
    counts: [u32; 5],
    events: E,
}
/// The head: the marker byte, then `last_seq`, `updated_at`, `turn` and the five counts,
/// big-endian.
const HEAD_LEN: usize = 1 + 8 + 8 + 4 + 5 * 4;

impl Progress {
    /// The format-2 head (written before the counts were sealed; tests write old records).
    #[cfg(test)]
    fn head(&self) -> [u8; HEAD_LEN] {
        let mut h = [0u8; HEAD_LEN];
        h[0] = RECORD_WITH_PROGRESS;
        h[1..9].copy_from_slice(&self.last_seq.to_be_bytes());
        h[9..17].copy_from_slice(&self.updated_at.to_be_bytes());
        h[17..21].copy_from_slice(&self.turn.to_be_bytes());
        for (i, c) in self.counts.iter().enumerate() {
            h[21 + 4 * i..25 + 4 * i].copy_from_slice(&c.to_be_bytes());
        }
        h
    }

    /// The head of a stored record, and the sealed rest; `None` for a record without one.
    fn split(value: &[u8]) -> Option<(Progress, &[u8])> {
        if value.len() < HEAD_LEN || value[0] != RECORD_WITH_PROGRESS {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(value[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_be_bytes(value[i..i + 4].try_into().expect("4 bytes"));
        let mut counts = [0u32; 5];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = u32_at(21 + 4 * i);
        }
        Some((
            Progress {
                last_seq: u64_at(1),
                updated_at: u64_at(9),
                turn: u32_at(17),
                counts,
            },
            &value[HEAD_LEN..],
        ))
    }
}

impl ConversationMeta {
    /// The part of the record that every message changes.
    pub fn progress(&self) -> Progress {
        Progress {
            last_seq: self.last_seq,
            updated_at: self.updated_at,
            turn: self.conversation.turn,
            counts: self.risk.counts,
        }
    }

    /// Sets the part of the record that every message changes.
    pub fn set_progress(&mut self, p: Progress) {
        self.last_seq = p.last_seq;
        self.updated_at = p.updated_at;
        self.conversation.turn = p.turn;
        self.risk.counts = p.counts;
    }

    /// Whether `self` and `other` differ in more than their [`Progress`]: then the
    /// conversation record must be written; otherwise the event record's head carries the
    /// change.
    pub fn differs_beyond_progress(&mut self, other: &ConversationMeta) -> bool {
        let mine = self.progress();
        self.set_progress(other.progress());
        let differs = self != other;
        self.set_progress(mine);
        differs
    }
}

/// The put that stores the events of one commit as one record, or `None` if there are
/// none. `events` must be in `seq` order; the record's key is the first event's seq.
///
/// The value is a clear head (`last_seq` and `updated_at` after the commit: no words, no
/// risk), then the turn, the per-level counts and the events, sealed with the conversation
/// key. The head is part of the sealed value's associated data, so it cannot be changed
/// unnoticed by anyone who can open the record.
///
/// # Panics
/// Never: serializing plain data cannot fail.
pub fn write_events(
    conversation: ConversationId,
    key: &Key,
    events: &[StoredEvent],
    progress: Progress,
) -> Option<Write> {
    let first = events.first()?;
    let k = event_key(conversation.as_bytes(), first.seq);
    let plain = serde_json::to_vec(&SealedRecord {
        turn: progress.turn,
        counts: progress.counts,
        events,
    })
    .expect("events serialize");
    let mut head = [0u8; HEAD3_LEN];
    head[0] = RECORD_SEALED_PROGRESS;
    head[1..9].copy_from_slice(&progress.last_seq.to_be_bytes());
    head[9..17].copy_from_slice(&progress.updated_at.to_be_bytes());
    let mut value = Vec::with_capacity(HEAD3_LEN + plain.len() + 64);
    value.extend_from_slice(&head);
    value.extend_from_slice(&key.seal(&plain, &record_aad(&k, &head)));
    Some(Write::put(Tree::Events, k.to_vec(), value))
}

fn record_aad(k: &[u8], head: &[u8]) -> Vec<u8> {
    [k, head].concat()
}

/// Opens a stored record (of any format) and parses its events, with the [`Progress`] it
/// carries (none for the oldest format).
fn open_record(
    key: &Key,
    k: &[u8],
    value: &[u8],
) -> Result<(Option<Progress>, Vec<StoredEvent>), StoreError> {
    let corrupt = |e: crate::crypto::CryptoError| StoreError::Corrupt(format!("event: {e}"));
    match value.first() {
        Some(&RECORD_SEALED_PROGRESS) if value.len() >= HEAD3_LEN => {
            let head = &value[..HEAD3_LEN];
            let plain = key
                .open(&value[HEAD3_LEN..], &record_aad(k, head))
                .map_err(corrupt)?;
            let r: SealedRecord<Vec<StoredEvent>> = serde_json::from_slice(&plain)
                .map_err(|e| StoreError::Corrupt(format!("event: {e}")))?;
            let u64_at = |i: usize| u64::from_be_bytes(head[i..i + 8].try_into().expect("8 bytes"));
            let progress = Progress {
                last_seq: u64_at(1),
                updated_at: u64_at(9),
                turn: r.turn,
                counts: r.counts,
            };
            Ok((Some(progress), r.events))
        }
        _ => match Progress::split(value) {
            Some((progress, sealed)) => {
                let plain = key
                    .open(sealed, &record_aad(k, &value[..HEAD_LEN]))
                    .map_err(corrupt)?;
                Ok((Some(progress), parse_record(&plain)?))
            }
            None => Ok((None, parse_record(&key.open(value, k).map_err(corrupt)?)?)),
        },
    }
}

/// A transcript as CSV: `seq,at,type,who,text,level,rules` (RFC 4180 quoting). `at` is
/// Unix milliseconds. It starts with a UTF-8 byte-order mark: without it Excel reads the
/// file as the local code page and shows Korean as mojibake.
pub fn to_csv(events: &[StoredEvent]) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    }
    let mut out = String::from("\u{feff}seq,at,type,who,text,level,rules\r\n");
    for e in events {
        let v = serde_json::to_value(e).unwrap_or_default();
        let ty = v["type"].as_str().unwrap_or("").to_owned();
        let (who, text, level, rules) = match &e.body {
            EventBody::Citizen { text, triage, .. } => (
                "citizen".to_owned(),
                text.clone(),
                triage.level.to_string(),
                triage
                    .rules
                    .iter()
                    .map(|r| r.id.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            EventBody::Bot { text, .. } | EventBody::Safety { text, .. } => {
                ("bot".into(), text.clone(), String::new(), String::new())
            }
            EventBody::Counselor { counselor, text } => (
                counselor.clone(),
                text.clone(),
                String::new(),
                String::new(),
            ),
            EventBody::State { from, to, level } => (
                String::new(),
                format!("{from} -> {to}"),
                level.to_string(),
                String::new(),
            ),
            EventBody::Queued { level, urgent } => (
                String::new(),
                if *urgent {
                    "urgent".into()
                } else {
                    String::new()
                },
                level.to_string(),
                String::new(),
            ),
            EventBody::CounselorJoined {
                counselor,
                waited_secs,
            } => (
                counselor.clone(),
                format!("waited {waited_secs}s"),
                String::new(),
                String::new(),
            ),
            EventBody::Transferred { from, to } => (
                from.clone(),
                to.clone().unwrap_or_else(|| "queue".into()),
                String::new(),
                String::new(),
            ),
            EventBody::Closed { by, outcome } => (
                serde_json::to_value(by)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                outcome.clone().unwrap_or_default(),
                String::new(),
                String::new(),
            ),
            EventBody::Rating { value } => (
                String::new(),
                value.to_string(),
                String::new(),
                String::new(),
            ),
            EventBody::Whisper { supervisor, text } => (
                supervisor.clone(),
                text.clone(),
                String::new(),
                String::new(),
            ),
            EventBody::CounselorChanged { from, to, .. } => {
                (from.clone(), to.clone(), String::new(), String::new())
            }
            EventBody::PlanItem { step, text, by } => (
                by.clone(),
                format!("[{step}] {text}"),
                String::new(),
                String::new(),
            ),
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\r\n",
            e.seq,
            e.at,
            field(&ty),
            field(&who),
            field(&text),
            field(&level),
            field(&rules)
        ));
    }
    out
}

/// Reads a conversation's record with its key, brought up to date with the [`Progress`] in
/// its newest event record.
///
/// # Errors
/// A store error, or `Corrupt` when the record does not open or parse.
pub async fn load_meta(
    store: &Store,
    id: ConversationId,
    key: &Key,
) -> Result<Option<ConversationMeta>, StoreError> {
    match store.get(Tree::Conversations, id.as_bytes()).await? {
        None => Ok(None),
        Some(bytes) => {
            let mut meta = parse_meta(id, &bytes, key)?;
            let newest = store.last_with_prefix(Tree::Events, id.as_bytes()).await?;
            catch_up(&mut meta, key, newest.as_ref())?;
            Ok(Some(meta))
        }
    }
}

/// Every conversation's record whose key still exists, each brought up to date as in
/// [`load_meta`], with its key.
///
/// # Errors
/// A store error, or `Corrupt` when a record does not open or parse.
pub async fn all_meta(
    store: &Store,
    keyring: &Keyring,
) -> Result<Vec<(ConversationMeta, Key)>, StoreError> {
    let mut all = Vec::new();
    for (k, v) in store.scan_prefix(Tree::Conversations, &[]).await? {
        let Some(id) = ConversationId::from_bytes(&k) else {
            continue;
        };
        // A conversation whose key was destroyed (retention) is gone, whatever is left.
        let Some(key) = keyring.key(id).await? else {
            continue;
        };
        all.push((parse_meta(id, &v, &key)?, key));
    }
    let prefixes = all.iter().map(|(m, _)| m.id.as_bytes().to_vec()).collect();
    let newest = store.last_with_prefixes(Tree::Events, prefixes).await?;
    for ((meta, key), record) in all.iter_mut().zip(newest) {
        catch_up(meta, key, record.as_ref())?;
    }
    Ok(all)
}

/// Every stored conversation's id and when it last changed (its clear head): what
/// retention needs, without opening anything.
///
/// # Errors
/// A store error.
pub async fn record_times(store: &Store) -> Result<Vec<(ConversationId, u64)>, StoreError> {
    let records: Vec<(ConversationId, u64)> = store
        .scan_prefix(Tree::Conversations, &[])
        .await?
        .into_iter()
        .filter_map(|(k, v)| Some((ConversationId::from_bytes(&k)?, record_updated_at(&v)?)))
        .collect();
    // Messages that changed only the progress wrote an event record alone: its clear head
    // has the later time.
    let prefixes = records
        .iter()
        .map(|(id, _)| id.as_bytes().to_vec())
        .collect();
    let newest = store.last_with_prefixes(Tree::Events, prefixes).await?;
    Ok(records
        .into_iter()
        .zip(newest)
        .map(|((id, t), newest)| {
            let t2 = newest
                .and_then(|(_, v)| event_record_updated_at(&v))
                .unwrap_or(0);
            (id, t.max(t2))
        })
        .collect())
}

/// `updated_at` from an event record's clear head.
fn event_record_updated_at(v: &[u8]) -> Option<u64> {
    match v.first() {
        Some(&RECORD_SEALED_PROGRESS) if v.len() >= HEAD3_LEN => {
            Some(u64::from_be_bytes(v[9..17].try_into().expect("8 bytes")))
        }
        _ => Progress::split(v).map(|(p, _)| p.updated_at),
    }
}

fn parse_meta(id: ConversationId, bytes: &[u8], key: &Key) -> Result<ConversationMeta, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("conversation record: {e}"));
    let plain;
    let json: &[u8] = match bytes.first() {
        Some(&META_SEALED) if bytes.len() >= META_HEAD_LEN => {
            plain = key
                .open(
                    &bytes[META_HEAD_LEN..],
                    &meta_aad(id, &bytes[..META_HEAD_LEN]),
                )
                .map_err(|e| corrupt(e.to_string()))?;
            &plain
        }
        // Written before records were sealed.
        _ => bytes,
    };
    serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))
}

/// Takes the progress from a conversation's newest event record when it is ahead of the
/// conversation record (the messages since were written as event records alone).
fn catch_up(
    meta: &mut ConversationMeta,
    key: &Key,
    newest: Option<&KeyValue>,
) -> Result<(), StoreError> {
    let Some((k, v)) = newest else {
        return Ok(());
    };
    // The clear head says whether it is ahead; only then is it opened.
    let ahead = match v.first() {
        Some(&RECORD_SEALED_PROGRESS) if v.len() >= HEAD3_LEN => {
            u64::from_be_bytes(v[1..9].try_into().expect("8 bytes")) > meta.last_seq
        }
        _ => Progress::split(v).is_some_and(|(p, _)| p.last_seq > meta.last_seq),
    };
    if ahead {
        if let (Some(p), _) = open_record(key, k, v)? {
            meta.set_progress(p);
        }
    }
    Ok(())
}

/// A conversation's events with `after < seq <= upto`, in order, opened with its key.
/// `upto` is the `last_seq` of [`load_meta`]'s record: it says how far the transcript goes,
/// so nothing past it (which could only be a write that was never acknowledged) is ever
/// replayed.
///
/// # Errors
/// A store error, or `Corrupt` when a record does not open or parse.
pub async fn events_after(
    store: &Store,
    id: ConversationId,
    key: &Key,
    after: u64,
    upto: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    if after >= upto {
        return Ok(Vec::new());
    }
    let prefix = id.as_bytes();
    // Keys are the id and a big-endian seq (24 bytes), so `k ++ [0]` is the smallest key
    // after `k`, and the id followed by 0xFF sorts after every key of this conversation.
    let mut split = event_key(prefix, after + 1).to_vec();
    split.push(0);
    let mut end = prefix.to_vec();
    end.push(0xFF);
    // The record holding event `after + 1` starts at or before it; the rest start after.
    let holding = store
        .last_in_range(Tree::Events, &event_key(prefix, 0), &split)
        .await?;
    let rest = store.scan_range(Tree::Events, &split, &end).await?;
    let mut events = Vec::new();
    let mut last = after;
    for (k, v) in holding.into_iter().chain(rest) {
        for e in open_record(key, &k, &v)?.1 {
            if e.seq > upto {
                return Ok(events);
            }
            if e.seq > last {
                last = e.seq;
                events.push(e);
            }
        }
    }
    Ok(events)
}

/// A stored record: a JSON array of events, or (written before records existed, one key
/// per event) a single event object, read as a record of one.
#[derive(Deserialize)]
#[serde(untagged)]
enum Record {
    Events(Vec<StoredEvent>),
    One(Box<StoredEvent>),
}

fn parse_record(plain: &[u8]) -> Result<Vec<StoredEvent>, StoreError> {
    match serde_json::from_slice(plain) {
        Ok(Record::Events(events)) => Ok(events),
        Ok(Record::One(event)) => Ok(vec![*event]),
        Err(e) => Err(StoreError::Corrupt(format!("event: {e}"))),
    }
}

/// The store keys of a conversation's events (for purging).
///
/// # Errors
/// A store error.
pub async fn event_keys(store: &Store, id: ConversationId) -> Result<Vec<Vec<u8>>, StoreError> {
    Ok(store
        .scan_prefix(Tree::Events, id.as_bytes())
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// Conversation keys: created per conversation, stored wrapped by the master key, destroyed
/// by retention. Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    master: std::sync::Arc<Key>,
    store: Store,
}

impl Keyring {
    /// A keyring over `store` with the master key.
    pub fn new(master: Key, store: Store) -> Keyring {
        Keyring {
            master: std::sync::Arc::new(master),
            store,
        }
    }

    /// A new conversation key and the write that stores it wrapped.
    pub fn create(&self, id: ConversationId) -> (Key, Write) {
        let key = Key::random();
        let wrapped = self.master.wrap(&key, id.as_bytes());
        (key, Write::put(Tree::Keys, id.as_bytes().to_vec(), wrapped))
    }

    /// The conversation's key, or `None` once destroyed.
    ///
    /// # Errors
    /// A store error, or `Corrupt` if the wrapped key does not open (wrong master key).
    pub async fn key(&self, id: ConversationId) -> Result<Option<Key>, StoreError> {
        match self.store.get(Tree::Keys, id.as_bytes()).await? {
            None => Ok(None),
            Some(w) => self
                .master
                .unwrap_key(&w, id.as_bytes())
                .map(Some)
                .map_err(|_| {
                    StoreError::Corrupt(
                        "a conversation key does not open: is this the right master key?".into(),
                    )
                }),
        }
    }

    /// The write that destroys a conversation's key.
    pub fn destroy(&self, id: ConversationId) -> Write {
        Write::remove(Tree::Keys, id.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{Card, QuickReply};
    use crate::store::MemoryBackend;
    use crate::triage::Level;
    use std::sync::Arc;

    fn meta(id: ConversationId) -> ConversationMeta {
        ConversationMeta::new(id, "ko", 1, String::new())
    }

    /// A store in memory, a conversation key and an id: what most of these tests start from.
    fn fixture() -> (Store, Key, ConversationId) {
        let store = Store::new(Arc::new(MemoryBackend::new())).unwrap();
        (store, Key::random(), ConversationId::random())
    }

    /// A keyring over `store` and two conversations with their keys stored in it.
    async fn two(store: &Store) -> (Keyring, [(ConversationId, Key); 2]) {
        let keyring = Keyring::new(Key::random(), store.clone());
        let (a, b) = (ConversationId::random(), ConversationId::random());
        let (ka, wa) = keyring.create(a);
        let (kb, wb) = keyring.create(b);
        store.write(vec![wa, wb]).await.unwrap();
        (keyring, [(a, ka), (b, kb)])
    }

    /// The smallest event, with `at` = `seq`.
    fn rating(seq: u64, value: u8) -> StoredEvent {
        StoredEvent {
            seq,
            at: seq,
            body: EventBody::Rating { value },
        }
    }

    fn progress(last_seq: u64) -> Progress {
        Progress {
            last_seq,
            updated_at: last_seq * 10,
            turn: last_seq as u32,
            counts: [last_seq as u32, 0, 0, 0, 0],
        }
    }

    /// A message that changes only the progress writes its event record alone; reading the
    /// conversation back takes the progress from the newest record.
    #[tokio::test]
    async fn the_newest_record_brings_the_conversation_record_up_to_date() {
        let (store, _, _) = fixture();
        let (keyring, [(a, key), (b, kb)]) = two(&store).await;
        let rating = |seq| rating(seq, 1);
        let mut m = meta(a);
        m.lang = "en".into();
        m.set_progress(progress(2));
        let mut batch = vec![
            write_events(a, &key, &[rating(1), rating(2)], progress(2)).unwrap(),
            m.write(&key),
            meta(b).write(&kb),
        ];
        for seq in 3..=6 {
            batch.push(write_events(a, &key, &[rating(seq)], progress(seq)).unwrap());
        }
        store.write(batch).await.unwrap();
        let back = load_meta(&store, a, &key).await.unwrap().unwrap();
        assert_eq!(back.progress(), progress(6));
        assert_eq!(back.lang, "en");
        assert_eq!(back.conversation.turn, 6);
        assert_eq!(back.risk.counts[0], 6);
        let all = all_meta(&store, &keyring).await.unwrap();
        let from_all = &all.iter().find(|x| x.0.id == a).unwrap().0;
        assert_eq!(from_all, &back);
        // b has no records: its own record stands.
        assert_eq!(
            all.iter().find(|x| x.0.id == b).unwrap().0.progress(),
            meta(b).progress()
        );
        // Retention's view: the newest time, without any key.
        let times = record_times(&store).await.unwrap();
        assert!(times.contains(&(a, progress(6).updated_at)), "{times:?}");
        assert_eq!(
            events_after(&store, a, &key, 0, back.last_seq)
                .await
                .unwrap()
                .len(),
            6
        );
        // A conversation record ahead of the newest record's head wins.
        m.set_progress(progress(9));
        store.write(vec![m.write(&key)]).await.unwrap();
        assert_eq!(
            load_meta(&store, a, &key).await.unwrap().unwrap().last_seq,
            9
        );
        // A destroyed key: the conversation is gone from every listing.
        store.write(vec![keyring.destroy(b)]).await.unwrap();
        assert_eq!(all_meta(&store, &keyring).await.unwrap().len(), 1);
    }

    /// The head is in the clear but authenticated: changing it breaks the record's seal.
    #[test]
    fn a_changed_progress_head_does_not_open() {
        let (_, key, id) = fixture();
        let Some(Write::Put { key: k, value, .. }) =
            write_events(id, &key, &[rating(1, 1)], progress(1))
        else {
            panic!("one put")
        };
        assert_eq!(open_record(&key, &k, &value).unwrap().0, Some(progress(1)));
        // Byte 0 too: a record whose marker is changed is read as another format, and does
        // not open either.
        for i in 0..HEAD3_LEN {
            let mut bad = value.clone();
            bad[i] ^= 1;
            assert!(open_record(&key, &k, &bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn only_changes_beyond_the_progress_need_the_conversation_record() {
        let id = ConversationId::random();
        let mut old = meta(id);
        let mut new = old.clone();
        new.set_progress(progress(5));
        assert!(!old.differs_beyond_progress(&new));
        assert_eq!(old.progress(), meta(id).progress(), "left as it was");
        for change in [
            (|m: &mut ConversationMeta| m.conversation.level = Level::High) as fn(&mut _),
            |m| m.risk.escalations.push("x".into()),
            |m| Arc::make_mut(&mut m.summary).first_lines.push("x".into()),
            |m| m.token_hash = "ab".into(),
            |m| {
                m.conversation.state = crate::conversation::State::Queued {
                    urgent: false,
                    bot_meanwhile: false,
                }
            },
        ] {
            let mut changed = new.clone();
            change(&mut changed);
            assert!(old.differs_beyond_progress(&changed));
        }
    }

    #[test]
    fn resource_cards_round_trip_through_a_record_and_a_frame() {
        let card = Card::of(
            &serde_json::json!({"id": "lifeline", "phone": "109", "name_ko": "자살예방상담전화 \"109\""}),
        );
        let bot = StoredEvent {
            seq: 4,
            at: 9,
            body: EventBody::Bot {
                text: "여기 있어요".into(),
                resources: vec![card.clone()],
                quick_replies: vec![QuickReply {
                    label: "네".into(),
                    text: "네".into(),
                }],
            },
        };
        let key = Key::random();
        let id = ConversationId::random();
        let Some(Write::Put { key: k, value, .. }) =
            write_events(id, &key, std::slice::from_ref(&bot), progress(4))
        else {
            panic!("one put")
        };
        let back = open_record(&key, &k, &value).unwrap().1;
        assert_eq!(back, vec![bot.clone()]);
        let plain = key
            .open(&value[HEAD3_LEN..], &record_aad(&k, &value[..HEAD3_LEN]))
            .unwrap();
        // Written raw, the card is a JSON object in the record and in the frame, not a string.
        let record: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(record["events"][0]["resources"][0]["phone"], "109");
        let frame = crate::chat::ServerFrame::from_stored(bot).unwrap();
        let json: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(json["resources"][0], card.value());
        assert_eq!(json["resources"][0]["name_ko"], "자살예방상담전화 \"109\"");
        assert_eq!(json["quick_replies"][0]["label"], "네");
    }

    #[tokio::test]
    async fn events_and_meta_round_trip_in_order() {
        let (store, _, _) = fixture();
        let (keyring, [(a, key), (b, kb)]) = two(&store).await;
        let mut batch = vec![meta(a).write(&key), meta(b).write(&kb)];
        let event = |seq| rating(seq, 1);
        // Conversation a in records of 1 to 4 events; b one event per record, even seqs.
        let mut seq = 1u64;
        while seq <= 300 {
            let n = (seq % 4 + 1).min(301 - seq);
            let record: Vec<_> = (seq..seq + n).map(event).collect();
            batch.push(write_events(a, &key, &record, progress(seq + n - 1)).unwrap());
            seq += n;
        }
        for seq in (2..=300u64).step_by(2) {
            batch.push(write_events(b, &kb, &[event(seq)], progress(seq)).unwrap());
        }
        store.write(batch).await.unwrap();
        let events = events_after(&store, a, &key, 0, u64::MAX).await.unwrap();
        assert_eq!(events.len(), 300);
        assert!(events.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        let tail = events_after(&store, a, &key, 256, u64::MAX).await.unwrap();
        // Every starting point, including ones inside a record, and every end.
        for after in [0, 1, 2, 3, 7, 100, 255, 299, 300] {
            for upto in [after, after + 1, 150, 298, 300] {
                let got: Vec<u64> = events_after(&store, a, &key, after, upto)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| e.seq)
                    .collect();
                let want: Vec<u64> = (after + 1..=upto.min(300)).collect();
                assert_eq!(got, want, "after {after} upto {upto}");
            }
        }
        assert_eq!(
            events_after(&store, a, &key, 0, 10).await.unwrap().len(),
            10
        );
        assert_eq!(tail.first().map(|e| e.seq), Some(257));
        assert_eq!(
            events_after(&store, b, &kb, 0, u64::MAX)
                .await
                .unwrap()
                .len(),
            150
        );
        assert!(
            events_after(&store, a, &Key::random(), 0, u64::MAX)
                .await
                .is_err()
        );
        assert_eq!(load_meta(&store, a, &key).await.unwrap().unwrap().id, a);
        assert_eq!(all_meta(&store, &keyring).await.unwrap().len(), 2);
        assert!(
            load_meta(&store, ConversationId::random(), &key)
                .await
                .unwrap()
                .is_none()
        );
    }

    /// A commit whose flush failed was never acknowledged; the actor's next commit starts at
    /// the same seq and replaces that record whole, even when it holds fewer events.
    #[tokio::test]
    async fn a_retried_commit_replaces_the_unacknowledged_record() {
        let (store, key, a) = fixture();
        let record = |range: std::ops::RangeInclusive<u64>, value| {
            let last = *range.end();
            let events: Vec<_> = range.map(|s| rating(s, value)).collect();
            write_events(a, &key, &events, progress(last)).unwrap()
        };
        store.write(vec![record(1..=4, 1)]).await.unwrap();
        // Unacknowledged: 5..=8. The retry stores 5..=6, then the conversation goes on.
        store.write(vec![record(5..=8, 9)]).await.unwrap();
        store.write(vec![record(5..=6, 2)]).await.unwrap();
        store.write(vec![record(7..=10, 3)]).await.unwrap();
        let events = events_after(&store, a, &key, 0, 10).await.unwrap();
        let got: Vec<(u64, u8)> = events
            .iter()
            .map(|e| match e.body {
                EventBody::Rating { value } => (e.seq, value),
                _ => unreachable!(),
            })
            .collect();
        let want: Vec<(u64, u8)> = (1..=10)
            .map(|s| {
                (
                    s,
                    if s <= 4 {
                        1
                    } else if s <= 6 {
                        2
                    } else {
                        3
                    },
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    /// Stores written before records existed hold one event object per key; they still read.
    #[tokio::test]
    async fn single_event_values_from_the_earlier_layout_still_read() {
        let (store, key, a) = fixture();
        let mut batch = Vec::new();
        for seq in 1..=3u64 {
            let e = rating(seq, 1);
            let k = event_key(a.as_bytes(), seq);
            let plain = serde_json::to_vec(&e).unwrap();
            batch.push(Write::put(Tree::Events, k.to_vec(), key.seal(&plain, &k)));
        }
        let newer: Vec<_> = (4..=5u64).map(|seq| rating(seq, 2)).collect();
        batch.push(write_events(a, &key, &newer, progress(5)).unwrap());
        store.write(batch).await.unwrap();
        let seqs: Vec<u64> = events_after(&store, a, &key, 1, 5)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![2, 3, 4, 5]);
        assert!(parse_record(b"{\"not\": \"an event\"}").is_err());
    }

    /// The conversation record is sealed: its state, level, counselors, token hash and
    /// queue card are unreadable without the key; only `updated_at` is in the clear.
    #[tokio::test]
    async fn the_record_is_sealed_and_opens_only_with_its_key() {
        let (store, key, id) = fixture();
        let mut m = meta(id);
        Arc::make_mut(&mut m.summary)
            .first_lines
            .push("비밀스러운첫줄".into());
        m.conversation.level = Level::Imminent;
        m.counselors.push("counselor-zq".into());
        m.token_hash = "feedfacefeedface".into();
        m.updated_at = 12345;
        store.write(vec![m.write(&key)]).await.unwrap();
        let raw = store
            .get(Tree::Conversations, id.as_bytes())
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        for secret in [
            "비밀스러운첫줄",
            "imminent",
            "counselor-zq",
            "feedface",
            "state",
        ] {
            assert!(!text.contains(secret), "{secret} in the clear");
        }
        assert_eq!(record_updated_at(&raw), Some(12345));
        let back = load_meta(&store, id, &key).await.unwrap().unwrap();
        assert_eq!(back, m);
        assert!(load_meta(&store, id, &Key::random()).await.is_err());
    }

    /// Records written before sealing (plain JSON conversation records, events with the
    /// counts in a clear head) still read.
    #[tokio::test]
    async fn records_from_before_sealing_still_read() {
        let (store, key, id) = fixture();
        let mut m = meta(id);
        m.set_progress(progress(1));
        let legacy_meta = serde_json::to_vec(&m).unwrap();
        let k = event_key(id.as_bytes(), 2);
        let head = progress(2).head();
        let plain = serde_json::to_vec(&[rating(2, 4)]).unwrap();
        let mut value = head.to_vec();
        value.extend_from_slice(&key.seal(&plain, &record_aad(&k, &head)));
        store
            .write(vec![
                Write::put(Tree::Conversations, id.as_bytes().to_vec(), legacy_meta),
                Write::put(Tree::Events, k.to_vec(), value),
            ])
            .await
            .unwrap();
        let back = load_meta(&store, id, &key).await.unwrap().unwrap();
        assert_eq!(back.progress(), progress(2));
        assert_eq!(events_after(&store, id, &key, 1, 2).await.unwrap().len(), 1);
        assert_eq!(
            record_times(&store).await.unwrap(),
            vec![(id, progress(2).updated_at)]
        );
    }

    #[test]
    fn event_json_is_flat_and_tagged() {
        let e = StoredEvent {
            seq: 3,
            at: 9,
            body: EventBody::Counselor {
                counselor: "kim".into(),
                text: "안녕하세요".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "counselor");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["counselor"], "kim");
    }
}
