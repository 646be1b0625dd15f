use std::sync::Arc;

use super::*;
use crate::store::MemoryBackend;

fn plan(level: Level, due_at: u64) -> Followup {
    Followup {
        id: ItemId::next(ConversationId::random()),
        created_at: 1,
        created_by: "kim".into(),
        kind: FollowupKind::Call,
        due_at,
        assigned_to: None,
        consent: Consent {
            given: true,
            words: None,
            recorded_at: 1,
            recorded_by: "kim".into(),
        },
        contact: Some(Contact::Phone {
            number: "010-0000-0000".into(),
        }),
        series: None,
        level,
        note: None,
    }
}

fn tried(outcomes: &[AttemptOutcome]) -> Vec<Attempt> {
    outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| Attempt {
            at: i as u64 + 10,
            by: "kim".into(),
            outcome: *o,
            note: None,
        })
        .collect()
}

#[test]
fn followup_status_table() {
    use AttemptOutcome::*;
    use FollowupStatus as S;
    let cases: &[(Level, u64, &[AttemptOutcome], FollowupStatus)] = &[
        (Level::Low, 200, &[], S::Scheduled),
        (Level::Low, 50, &[], S::Due),
        (Level::Low, 50, &[NoAnswer, NoAnswer], S::Due),
        (Level::Low, 50, &[NoAnswer, NoAnswer, NoAnswer], S::Failed),
        (Level::Medium, 50, &[NoAnswer, Reached], S::Done),
        (Level::Low, 50, &[Declined], S::Declined),
        (Level::Low, 50, &[Cancelled], S::Cancelled),
        (Level::High, 50, &[NoAnswer], S::Due),
        (Level::High, 50, &[NoAnswer, NoAnswer], S::Escalated),
        (
            Level::Imminent,
            50,
            &[NoAnswer, NoAnswer, NoAnswer],
            S::Escalated,
        ),
        (Level::Imminent, 50, &[NoAnswer, NoAnswer, Reached], S::Done),
    ];
    for (level, due, outcomes, want) in cases {
        let f = plan(*level, *due);
        assert_eq!(
            followup_status(&f, &tried(outcomes), 100),
            *want,
            "{level:?} due {due} after {outcomes:?}"
        );
    }
}

#[test]
fn referral_moves_forward_and_ends_for_good() {
    use ReferralStatus::*;
    assert!(Sent.may_move_to(Accepted));
    assert!(Sent.may_move_to(FirstContact), "a step may be learned late");
    assert!(Accepted.may_move_to(Connected));
    assert!(
        Connected.may_move_to(Connected),
        "confirmed again at a later check"
    );
    assert!(FirstContact.may_move_to(Lost));
    assert!(!Accepted.may_move_to(Sent));
    assert!(!Connected.may_move_to(Accepted));
    for s in ReferralStatus::ALL {
        assert!(!Declined.may_move_to(s));
        assert!(!Lost.may_move_to(s));
        assert!(!s.may_move_to(Sent));
    }
}

#[test]
fn item_ids_round_trip_and_name_their_conversation() {
    let c = ConversationId::random();
    let id = ItemId::next(c);
    let s = id.to_string();
    assert_eq!(s.len(), 48);
    assert!(s.starts_with(&c.to_string()));
    assert_eq!(ItemId::parse(&s), Some(id));
    assert_eq!(ItemId::parse(&s[..47]), None);
    assert_eq!(ItemId::parse("zz"), None);
}

fn store() -> Store {
    Store::new(Arc::new(MemoryBackend::new())).unwrap()
}

#[tokio::test]
async fn notes_are_sealed_and_come_back_in_order() {
    let store = store();
    let key = Key::random();
    let c = ConversationId::random();
    add_note(&store, &key, c, "kim", "counselor", "first 메모")
        .await
        .unwrap();
    add_note(&store, &key, c, "park", "supervisor", "second")
        .await
        .unwrap();
    // Many in the same millisecond still come back in the order written.
    for i in 0..50 {
        add_note(&store, &key, c, "kim", "counselor", &format!("n{i}"))
            .await
            .unwrap();
    }
    let got = notes(&store, &key, c).await.unwrap();
    assert_eq!(got.len(), 52);
    for (i, n) in got[2..].iter().enumerate() {
        assert_eq!(n.text, format!("n{i}"));
    }
    assert_eq!(got[0].text, "first 메모");
    // The stored bytes do not hold the words.
    for (_, v) in store.scan_prefix(Tree::Casework, &[]).await.unwrap() {
        assert!(!String::from_utf8_lossy(&v).contains("메모"));
    }
    // Another key cannot open them.
    assert!(notes(&store, &Key::random(), c).await.is_err());
}

#[tokio::test]
async fn an_ending_attempt_drops_the_contact() {
    let store = store();
    let key = Key::random();
    let f = plan(Level::Medium, 0);
    put_followups(&store, &key, std::slice::from_ref(&f))
        .await
        .unwrap();
    let attempt = |o| Attempt {
        at: now_ms(),
        by: "kim".into(),
        outcome: o,
        note: None,
    };
    let v = add_attempt(&store, &key, f.id, attempt(AttemptOutcome::NoAnswer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.status, FollowupStatus::Due);
    assert!(v.followup.contact.is_some(), "kept while it goes on");
    let v = add_attempt(&store, &key, f.id, attempt(AttemptOutcome::Reached))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.status, FollowupStatus::Done);
    let stored = followup(&store, &key, f.id).await.unwrap().unwrap();
    assert_eq!(stored.followup.contact, None, "destroyed when it ended");
    assert_eq!(stored.attempts.len(), 2);
    let missing = ItemId::next(ConversationId::random());
    assert!(
        add_attempt(&store, &key, missing, attempt(AttemptOutcome::Reached))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn referral_history_and_check_date() {
    let store = store();
    let key = Key::random();
    let r = Referral {
        id: ItemId::next(ConversationId::random()),
        created_at: now_ms(),
        created_by: "kim".into(),
        to: ReferralTo {
            kind: ReferralKind::DistrictCentre,
            name: "마포구 종합사회복지관".into(),
            resource: Some("isolation_agency".into()),
        },
        consent: Consent {
            given: true,
            words: None,
            recorded_at: 0,
            recorded_by: "kim".into(),
        },
        shared: Shared::default(),
        check_at: Some(now_ms().saturating_sub(1000)),
    };
    put_referral(&store, &key, &r).await.unwrap();
    let v = referral(&store, &key, r.id).await.unwrap().unwrap();
    assert_eq!(v.status, ReferralStatus::Sent);
    assert!(v.check_due, "the check date passed");
    let change = |s| StatusChange {
        at: now_ms(),
        by: "kim".into(),
        status: s,
        note: None,
    };
    let v = change_status(&store, &key, r.id, change(ReferralStatus::Accepted))
        .await
        .unwrap();
    assert_eq!(v.history.len(), 2);
    let v = change_status(&store, &key, r.id, change(ReferralStatus::Connected))
        .await
        .unwrap();
    assert!(!v.check_due, "confirmed connected after the check date");
    assert!(matches!(
        change_status(&store, &key, r.id, change(ReferralStatus::Accepted)).await,
        Err(ChangeError::Transition { .. })
    ));
    let keyring = Keyring::new(Key::random(), store.clone());
    // Without the conversation's key (destroyed), nothing is listed.
    let all = all(&store, &keyring).await.unwrap();
    assert!(all.referrals.is_empty());
}
