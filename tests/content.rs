//! The shipped content (`intents/`): counts, safe messaging, phone numbers, the district
//! lookup, 마음약방, 서울연결처방, the screener, and strict loading.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;

use ieum::content::{Answer, Content, DATA_FILES, Lang, phone_shape_ok};
use ieum::conversation::{
    Action, Answer as ConvAnswer, BotMessage, Choice, Conversation, Event, ScreenFlow, step,
};
use ieum::triage::Action as TriageAction;
use ieum::triage::{Level, TriageEngine};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn content() -> &'static Content {
    static CONTENT: OnceLock<Content> = OnceLock::new();
    CONTENT.get_or_init(|| {
        Content::load(&root().join("intents"))
            .unwrap_or_else(|e| panic!("shipped content must load: {e}"))
    })
}

fn engine() -> &'static TriageEngine {
    common::shipped_engine()
}

fn is_hangul(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c) || ('\u{3131}'..='\u{318E}').contains(&c)
}

fn has_hangul(s: &str) -> bool {
    s.chars().any(is_hangul)
}

// ---------------------------------------------------------------------------------------
// Intents.

#[test]
fn at_least_thirty_intents_each_with_enough_examples_and_variants() {
    let c = content();
    let intents: Vec<_> = c.intents().iter().filter(|i| !i.fallback).collect();
    assert!(intents.len() >= 30, "only {} intents", intents.len());
    let mut problems = Vec::new();
    for i in &intents {
        let ko = i.examples.iter().filter(|e| has_hangul(e)).count();
        let en = i.examples.iter().filter(|e| !has_hangul(e)).count();
        let (file, line) = i.location();
        let at = format!("{}:{line} {}", file.display(), i.id);
        if ko < 8 {
            problems.push(format!("{at}: {ko} Korean examples (need 8)"));
        }
        if en < 3 {
            problems.push(format!("{at}: {en} English examples (need 3)"));
        }
        if i.counter_examples.len() < 4 {
            problems.push(format!(
                "{at}: {} counter-examples (need 4)",
                i.counter_examples.len()
            ));
        }
        for lang in [Lang::Ko, Lang::En] {
            let n = i.replies(lang).len();
            if !(2..=4).contains(&n) {
                problems.push(format!("{at}: {n} {lang:?} reply variants (need 2-4)"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_required_intents_exist() {
    let c = content();
    for id in [
        "greeting",
        "about_service",
        "thanks",
        "goodbye",
        "fallback",
        "loneliness",
        "isolation",
        "elderly_alone",
        "sleeplessness",
        "anxiety",
        "low_mood",
        "anger",
        "grief",
        "family_conflict",
        "breakup",
        "school_youth",
        "job",
        "money_housing",
        "health",
        "talk_to_human",
        "emergency",
        "violence_abuse",
        "prescription",
        "connection_program",
        "district",
    ] {
        assert!(c.intent(id).is_some(), "missing intent `{id}`");
    }
    assert!(c.intent("fallback").unwrap().fallback);
}

#[test]
fn triage_and_content_know_the_same_intents() {
    let triage: BTreeSet<&str> = engine()
        .rule_set()
        .intents
        .iter()
        .map(|i| i.id.as_str())
        .collect();
    let content: BTreeSet<&str> = content().intents().iter().map(|i| i.id.as_str()).collect();
    assert_eq!(triage, content);
}

#[test]
fn every_quick_reply_leads_to_a_real_intent() {
    let c = content();
    let e = engine();
    let mut replies = Vec::new();
    for lang in [Lang::Ko, Lang::En] {
        for i in c.intents() {
            replies.extend(i.quick_replies(lang));
        }
        replies.extend(c.greeting(lang).quick_replies);
        for level in Level::ALL {
            replies.extend(c.safety_reply(level, lang, 0).quick_replies);
        }
        replies.extend(c.reply(Some("prescription"), "", lang, 0).quick_replies);
        replies.extend(
            c.reply(Some("connection_program"), "", lang, 0)
                .quick_replies,
        );
        replies.extend(
            c.reply(Some("prescription"), "외로워", lang, 0)
                .quick_replies,
        );
        replies.extend(
            c.reply(Some("connection_program"), "운동", lang, 0)
                .quick_replies,
        );
    }
    let lost: Vec<String> = replies
        .iter()
        .filter(|q| e.assess(&q.text).intent.is_none())
        .map(|q| format!("{:?} -> {:?}", q.label, q.text))
        .collect();
    assert!(
        lost.is_empty(),
        "quick replies triage can't place:\n{}",
        lost.join("\n")
    );
}

#[test]
fn mood_and_program_quick_replies_reach_their_answer() {
    let c = content();
    let e = engine();
    for lang in [Lang::Ko, Lang::En] {
        for m in c.moods() {
            let t = m.quick_reply_text(lang);
            assert_eq!(e.assess(t).intent.as_deref(), Some("prescription"), "{t:?}");
            assert_eq!(
                c.mood(t).map(|x| x.id.as_str()),
                Some(m.id.as_str()),
                "{t:?}"
            );
        }
        for p in c.programs() {
            let t = p.quick_reply_text(lang);
            assert_eq!(
                e.assess(t).intent.as_deref(),
                Some("connection_program"),
                "{t:?}"
            );
            assert_eq!(
                c.program(t).map(|x| x.id.as_str()),
                Some(p.id.as_str()),
                "{t:?}"
            );
        }
    }
}

#[test]
fn content_examples_hold() {
    let failures = content().check_examples();
    let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Replies.

#[test]
fn reply_falls_back_and_varies_by_turn() {
    let c = content();
    let fallback = c.intent("fallback").unwrap().replies(Lang::Ko).to_vec();
    assert!(fallback.contains(&c.reply(None, "", Lang::Ko, 0).text));
    assert!(fallback.contains(&c.reply(Some("no-such-intent"), "", Lang::Ko, 0).text));
    let a = c.reply(Some("loneliness"), "외로워요", Lang::Ko, 0);
    let b = c.reply(Some("loneliness"), "외로워요", Lang::Ko, 1);
    assert_ne!(a.text, b.text);
    assert_eq!(a, c.reply(Some("loneliness"), "외로워요", Lang::Ko, 0));
    let en = c.reply(Some("loneliness"), "so lonely", Lang::En, 0);
    assert!(!has_hangul(&en.quick_replies[0].label));
    assert!(c.greeting(Lang::Ko).text.contains("이음"));
    assert!(c.greeting(Lang::En).text.contains("ieum"));
}

#[test]
fn lang_detect() {
    assert_eq!(Lang::detect("외로워요"), Lang::Ko);
    assert_eq!(Lang::detect("I feel lonely"), Lang::En);
    assert_eq!(Lang::detect("ㅠㅠ"), Lang::Ko);
    assert_eq!(Lang::detect("I'm 외로워"), Lang::Ko);
    assert_eq!(Lang::detect("😭"), Lang::Ko);
    assert_eq!(serde_json::to_string(&Lang::En).unwrap(), "\"en\"");
}

#[test]
fn talk_to_human_says_a_person_is_coming() {
    let c = content();
    for turn in 0..4 {
        let ko = c.reply(Some("talk_to_human"), "", Lang::Ko, turn).text;
        assert!(ko.contains("상담사") && ko.contains("109"), "{ko}");
        let en = c.reply(Some("talk_to_human"), "", Lang::En, turn).text;
        assert!(en.contains("counselor") && en.contains("109"), "{en}");
    }
}

#[test]
fn emergency_reply_leads_with_119() {
    let c = content();
    for lang in [Lang::Ko, Lang::En] {
        for turn in 0..2 {
            let r = c.reply(Some("emergency"), "", lang, turn);
            let first = r.text.split(['.', '\n']).next().unwrap();
            assert!(first.contains("119"), "{}", r.text);
            assert_eq!(r.resources[0].phone.as_deref(), Some("119"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// 마음약방 and 서울연결처방.

#[test]
fn every_mood_has_five_prescriptions() {
    let c = content();
    let ids: BTreeSet<&str> = c.moods().iter().map(|m| m.id.as_str()).collect();
    let want: BTreeSet<&str> = [
        "loneliness",
        "anxiety",
        "sadness",
        "anger",
        "lethargy",
        "sleeplessness",
    ]
    .into();
    assert_eq!(ids, want);
    for m in c.moods() {
        assert!(m.prescriptions.len() >= 5, "mood {}", m.id);
        let texts: HashSet<&str> = m.prescriptions.iter().map(|p| p.ko.as_str()).collect();
        assert_eq!(
            texts.len(),
            m.prescriptions.len(),
            "mood {}: duplicates",
            m.id
        );
    }
}

#[test]
fn prescription_named_mood_or_ask() {
    let c = content();
    let r = c.reply(
        Some("prescription"),
        "마음약방 불안 처방해 주세요",
        Lang::Ko,
        2,
    );
    let anxiety = c.moods().iter().find(|m| m.id == "anxiety").unwrap();
    assert!(r.text.contains(&anxiety.prescriptions[2].ko), "{}", r.text);
    assert!(r.text.contains(&anxiety.prescriptions[2].suggestion_ko));
    let ask = c.reply(Some("prescription"), "마음약방", Lang::Ko, 0);
    assert_eq!(ask.quick_replies.len(), 6);
    let en = c.reply(Some("prescription"), "prescription for anger", Lang::En, 0);
    assert!(en.text.contains("Anger"), "{}", en.text);
}

#[test]
fn programs_cover_the_four_domains_and_refer_through_120_then_5() {
    let c = content();
    let domains: BTreeSet<&str> = c.programs().iter().map(|p| p.domain(Lang::Ko)).collect();
    assert_eq!(
        domains,
        ["감정치유", "문화예술", "신체건강", "일상관리"].into()
    );
    assert!(c.programs().len() >= 6);
    let ask = c.reply(Some("connection_program"), "서울연결처방", Lang::Ko, 0);
    assert_eq!(ask.quick_replies.len(), c.programs().len());
    for p in c.programs() {
        for lang in [Lang::Ko, Lang::En] {
            let r = c.reply(
                Some("connection_program"),
                p.quick_reply_text(lang),
                lang,
                0,
            );
            assert!(r.text.contains("120") && r.text.contains('5'), "{}", r.text);
            assert!(r.text.contains(p.description(lang)));
            assert!(
                r.resources
                    .iter()
                    .any(|x| x.id == "seoul_connection_prescription")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Districts.

const DISTRICTS: [&str; 25] = [
    "종로구",
    "중구",
    "용산구",
    "성동구",
    "광진구",
    "동대문구",
    "중랑구",
    "성북구",
    "강북구",
    "도봉구",
    "노원구",
    "은평구",
    "서대문구",
    "마포구",
    "양천구",
    "강서구",
    "구로구",
    "금천구",
    "영등포구",
    "동작구",
    "관악구",
    "서초구",
    "강남구",
    "송파구",
    "강동구",
];

#[test]
fn all_25_districts_are_recognised_in_free_text() {
    let c = content();
    let e = engine();
    assert_eq!(c.districts().len(), 25);
    for name in DISTRICTS {
        let bare = name.strip_suffix('구').unwrap();
        let mut texts = vec![
            format!("저 {name} 살아요"),
            format!("{name}에 살아요"),
            format!("{name}청 근처예요"),
            name.to_string(),
        ];
        // "중" alone is the everyday word for "during"; 동작 alone is "a movement": both
        // are recognised only as 중구 / before a residence word (intents/districts.toml).
        match bare {
            "중" => {}
            "동작" => texts.extend([format!("{bare}에 살아요"), format!("{bare} 살아요")]),
            _ => texts.extend([
                bare.to_string(),
                format!("{bare} 살아요"),
                format!("저 {bare}에 살아요"),
            ]),
        }
        for t in &texts {
            let d = c
                .district(t)
                .unwrap_or_else(|| panic!("{t:?} names no district"));
            assert_eq!(d.name_ko, name, "{t:?}");
            assert_eq!(e.assess(t).intent.as_deref(), Some("district"), "{t:?}");
            let r = c.reply(Some("district"), t, Lang::Ko, 0);
            assert!(
                r.text.contains(name) && r.text.contains("120"),
                "{}",
                r.text
            );
        }
        let d = c.district(name).unwrap();
        let en = format!("I live in {}", d.name_en);
        assert_eq!(
            c.district(&en).map(|x| x.name_ko.as_str()),
            Some(name),
            "{en}"
        );
        assert_eq!(e.assess(&en).intent.as_deref(), Some("district"), "{en}");
    }
}

#[test]
fn district_collisions_are_not_districts() {
    let c = content();
    let e = engine();
    for t in [
        "동작 그만!",
        "동작이 너무 느려요",
        "관악기 연주를 배워요",
        "강동원 영화 봤어요",
        "중구난방이에요",
        "집중구간이에요",
        "회의 중이에요",
        "출구로 나가요",
        "입구로 오세요",
        "마포대교 사진",
        "동작대교 사진",
        "도봉산 등산 갔어요",
        "강남스타일 노래",
        "nowhere to go",
    ] {
        assert!(
            c.district(t).is_none(),
            "{t:?} -> {:?}",
            c.district(t).map(|d| &d.id)
        );
        assert!(
            !e.intent_matches(t, "district"),
            "{t:?} matches the district intent"
        );
    }
}

#[test]
fn district_examples_agree_with_the_triage_intent() {
    let c = content();
    let e = engine();
    for d in c.districts() {
        for t in &d.examples {
            assert_eq!(e.assess(t).intent.as_deref(), Some("district"), "{t:?}");
        }
        for t in &d.counter_examples {
            assert!(!e.intent_matches(t, "district"), "{t:?}");
        }
    }
}

#[test]
fn district_reply_routes_through_certain_numbers() {
    let c = content();
    let r = c.reply(Some("district"), "마포 살아요", Lang::Ko, 0);
    assert!(r.text.contains("마포구"));
    for n in ["120", "1577-0199", "109"] {
        assert!(r.text.contains(n), "{n} missing: {}", r.text);
    }
    let ask = c.reply(Some("district"), "우리 구 지원을 알고 싶어요", Lang::Ko, 0);
    assert!(ask.text.contains("어느 구"), "{}", ask.text);
}

/// Each district answers for itself: its own verified agency where the content lists one
/// (with the resource card), else plain words that the city line routes it.
#[test]
fn each_district_answers_with_its_own_agency_or_says_the_city_line_routes_it() {
    let c = content();
    let mut texts = HashSet::new();
    for d in c.districts() {
        for lang in [Lang::Ko, Lang::En] {
            let r = c.reply(Some("district"), &d.examples[0], lang, 0);
            let name = if lang == Lang::Ko {
                &d.name_ko
            } else {
                &d.name_en
            };
            assert!(r.text.contains(name.as_str()), "{}: {}", d.id, r.text);
            let ids: Vec<String> = r
                .resources
                .iter()
                .map(|card| {
                    serde_json::to_value(card).unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            if d.agencies.is_empty() {
                let plain = if lang == Lang::Ko {
                    "아직 확인하지 못했어요"
                } else {
                    "not yet verified"
                };
                assert!(r.text.contains(plain), "{}: {}", d.id, r.text);
            } else {
                for a in &d.agencies {
                    assert!(ids.contains(a), "{}: card {a} missing: {ids:?}", d.id);
                }
                assert!(!r.text.contains("아직 확인하지 못했어요"), "{}", r.text);
            }
            texts.insert(r.text);
        }
    }
    assert_eq!(
        texts.len(),
        50,
        "25 districts × 2 languages, each its own answer"
    );
    let jongno = c.reply(Some("district"), "종로 살아요", Lang::Ko, 0);
    assert!(
        jongno.text.contains("서울청년기지개센터"),
        "{}",
        jongno.text
    );
}

// ---------------------------------------------------------------------------------------
// Screener.

#[test]
fn screener_classifies_typical_replies() {
    let s = content().screener();
    for t in [
        "응",
        "ㅇㅇ",
        "네",
        "그래",
        "있어",
        "그런 적 있어",
        "네 있어요",
        "yes",
        "Yes",
        "yeah",
        "yep",
        "가끔요",
        "없진 않아",
    ] {
        assert_eq!(s.classify(t), Answer::Yes, "{t:?}");
    }
    for t in [
        "아니",
        "ㄴㄴ",
        "없어",
        "아뇨",
        "아니요",
        "그런 적 없어요",
        "전혀",
        "no",
        "No.",
        "nope",
        "never",
    ] {
        assert_eq!(s.classify(t), Answer::No, "{t:?}");
    }
    for t in [
        "모르겠어",
        "글쎄",
        "잘 모르겠어요",
        "not sure",
        "I don't know",
        "maybe",
        "아니 있어",
        "응 없어",
        "",
        "🙂",
    ] {
        assert_eq!(s.classify(t), Answer::Unclear, "{t:?}");
    }
}

/// Runs the live state machine with the flow the file gives: what the service asks.
fn screen(answers: &[ConvAnswer]) -> (Conversation, Vec<String>) {
    let flow = &ScreenFlow::from_screener(content().screener());
    let medium = Event::CitizenMessage {
        level: Level::Medium,
        message_level: Level::Medium,
        action: TriageAction::OfferCounselor,
        intent: None,
        answer: ConvAnswer::Unclear,
        choice: Choice::Other,
    };
    let mut events = vec![medium];
    events.extend(answers.iter().map(|a| Event::CitizenMessage {
        level: Level::None,
        message_level: Level::None,
        action: TriageAction::Answer,
        intent: None,
        answer: *a,
        choice: Choice::Other,
    }));
    let mut c = Conversation::default();
    let mut asked = Vec::new();
    for e in events {
        let (next, actions) = step(flow, c, e);
        c = next;
        for a in actions {
            if let Action::Bot(BotMessage::Ask { question, .. }) = a {
                asked.push(question);
            }
        }
    }
    (c, asked)
}

#[test]
fn screener_follows_the_c_ssrs_order_and_never_lowers() {
    use ConvAnswer::{No, Unclear, Yes};
    let s = content().screener();
    let ids: Vec<&str> = s.questions().iter().map(|q| q.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "wish_dead",
            "thoughts",
            "method",
            "intent",
            "plan",
            "behavior",
            "recent"
        ]
    );
    // (answers, questions asked, state after, level after)
    let rows: &[(&[ConvAnswer], &[&str], &str, Level)] = &[
        // A single no never ends it: no to wish_dead still asks thoughts; no to thoughts
        // still asks about behaviour.
        (
            &[No],
            &["wish_dead", "thoughts"],
            "screening",
            Level::Medium,
        ),
        (
            &[No, No],
            &["wish_dead", "thoughts", "behavior"],
            "screening",
            Level::Medium,
        ),
        // All no: done at medium, level kept; the bot offers a counselor and to write a
        // safety plan together (the plan walk's offer).
        (
            &[No, No, No],
            &["wish_dead", "thoughts", "behavior"],
            "plan_walk",
            Level::Medium,
        ),
        // Yes to thoughts asks method; method either way asks intent.
        (
            &[Yes, Yes, No],
            &["wish_dead", "thoughts", "method", "intent"],
            "screening",
            Level::Medium,
        ),
        // No to intent asks plan; no to plan asks behaviour.
        (
            &[Yes, Yes, No, No],
            &["wish_dead", "thoughts", "method", "intent", "plan"],
            "screening",
            Level::Medium,
        ),
        (
            &[Yes, Yes, No, No, No],
            &[
                "wish_dead",
                "thoughts",
                "method",
                "intent",
                "plan",
                "behavior",
            ],
            "screening",
            Level::Medium,
        ),
        // Yes to intent or plan: high, hand off.
        (
            &[Yes, Yes, Yes, Yes],
            &["wish_dead", "thoughts", "method", "intent"],
            "queued",
            Level::High,
        ),
        (
            &[Yes, Yes, Yes, No, Yes],
            &["wish_dead", "thoughts", "method", "intent", "plan"],
            "queued",
            Level::High,
        ),
        // Behaviour: recent is high; not recent still hands off (at medium).
        (
            &[No, No, Yes],
            &["wish_dead", "thoughts", "behavior", "recent"],
            "screening",
            Level::Medium,
        ),
        (
            &[No, No, Yes, Yes],
            &["wish_dead", "thoughts", "behavior", "recent"],
            "queued",
            Level::High,
        ),
        (
            &[No, No, Yes, No],
            &["wish_dead", "thoughts", "behavior", "recent"],
            "queued",
            Level::Medium,
        ),
        // Unclear: the same question once more; a second unclear reads as a no and goes on
        // (`second_unclear = "continue"`, the live behaviour kept).
        (
            &[Unclear],
            &["wish_dead", "wish_dead"],
            "screening",
            Level::Medium,
        ),
        (
            &[Unclear, Unclear],
            &["wish_dead", "wish_dead", "thoughts"],
            "screening",
            Level::Medium,
        ),
    ];
    for (answers, asked, state, level) in rows {
        let (c, got) = screen(answers);
        assert_eq!(got, *asked, "{answers:?}");
        assert_eq!(c.state.name(), *state, "{answers:?}");
        assert_eq!(c.level, *level, "{answers:?}");
    }
}

#[test]
fn the_screener_file_drives_the_live_flow() {
    // The same file with other answers changes what the service asks.
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let screener = std::fs::read_to_string(src.join("screener.toml")).unwrap();
    let edited = screener
        .replace(
            "second_unclear = \"continue\"",
            "second_unclear = \"handoff\"",
        )
        .replace(
            "no_next = \"behavior\"\n\n[[question]]\nid = \"method\"",
            "\n[[question]]\nid = \"method\"",
        );
    assert_ne!(edited, screener);
    std::fs::write(dir.path().join("screener.toml"), edited).unwrap();
    let c = Content::load(dir.path()).unwrap();
    let flow = ScreenFlow::from_screener(c.screener());
    assert_eq!(
        flow.second_unclear,
        ieum::conversation::SecondUnclear::HandOff
    );
    let thoughts = flow.questions.iter().find(|q| q.id == "thoughts").unwrap();
    assert_eq!(thoughts.no, ieum::conversation::Then::Done);
}

#[test]
fn screener_questions_ask_plainly_in_both_languages() {
    let s = content().screener();
    for q in s.questions() {
        assert!(has_hangul(&q.ko) && q.ko.ends_with('?'), "{}", q.ko);
        assert!(!has_hangul(&q.en) && q.en.ends_with('?'), "{}", q.en);
        // No leading negatives ("계획은 없는 거죠?").
        assert!(
            !q.ko.contains("없는 거죠") && !q.ko.contains("않죠"),
            "{}",
            q.ko
        );
    }
    let thoughts = s.question("thoughts").unwrap();
    assert!(thoughts.ko.contains("자살") && thoughts.en.contains("killing yourself"));
}

// ---------------------------------------------------------------------------------------
// Resources and numbers.

#[test]
fn the_help_lines_are_exactly_domain_md_numbers() {
    let c = content();
    let phone = |id: &str| {
        c.resource(id)
            .unwrap_or_else(|| panic!("missing resource {id}"))
            .phone
            .as_deref()
    };
    assert_eq!(phone("suicide_prevention_109"), Some("109"));
    assert_eq!(phone("crisis_1577_0199"), Some("1577-0199"));
    assert_eq!(phone("emergency_119"), Some("119"));
    assert_eq!(phone("police_112"), Some("112"));
    assert_eq!(phone("welfare_129"), Some("129"));
    assert_eq!(phone("dasan_120"), Some("120"));
    assert_eq!(phone("lonely_120"), Some("120"));
    assert_eq!(
        c.resource("lonely_120").unwrap().then_press.as_deref(),
        Some("5")
    );
    assert_eq!(phone("youth_1388"), Some("1388"));
    assert_eq!(phone("women_1366"), Some("1366"));
    assert_eq!(phone("elder_abuse_1577_1389"), Some("1577-1389"));
    for id in [
        "seoul_connection_prescription",
        "seoul_youth_gijigae",
        "district_mental_health_center",
        "district_office_welfare",
        "isolation_agency",
        "mind_convenience_store",
    ] {
        assert!(c.resource(id).is_some(), "missing resource {id}");
    }
    let emergency: BTreeSet<&str> = c
        .emergency_resources()
        .iter()
        .filter_map(|r| r.phone.as_deref())
        .collect();
    assert_eq!(emergency, ["109", "119", "1577-0199"].into());
}

#[test]
fn every_resource_has_a_source_and_a_real_shaped_number() {
    for r in content().resources() {
        assert!(!r.source.trim().is_empty(), "{}: no source", r.id);
        assert!(r.phone.is_some() || r.url.is_some(), "{}", r.id);
        if let Some(p) = &r.phone {
            assert!(phone_shape_ok(p), "{}: {p}", r.id);
        }
    }
    for ok in [
        "109",
        "1388",
        "1577-0199",
        "1600-1234",
        "02-120-1234",
        "02-9876-5432",
        "031-123-4567",
    ] {
        assert!(phone_shape_ok(ok), "{ok}");
    }
    for bad in [
        "10",
        "12345",
        "1577-019",
        "2-123-4567",
        "0000-1111",
        "02-12-3456",
        "010",
        "1a9",
        "+82-2-120",
    ] {
        assert!(!phone_shape_ok(bad), "{bad}");
    }
}

#[test]
fn unverified_numbers_are_never_shown() {
    let c = content();
    let unverified: Vec<&str> = c
        .resources()
        .iter()
        .filter(|r| !r.verified)
        .filter_map(|r| r.phone.as_deref())
        .collect();
    assert!(
        !unverified.is_empty(),
        "the press-list branches are kept, marked"
    );
    for (at, text) in c.all_texts() {
        for n in &unverified {
            assert!(!text.contains(n), "{at} shows unverified {n}");
        }
    }
    for lang in [Lang::Ko, Lang::En] {
        for i in c.intents() {
            for r in c.reply(Some(&i.id), "", lang, 0).resources {
                assert!(r.verified, "intent {} attaches {}", i.id, r.id);
            }
        }
    }
}

/// Every number a citizen reads in bot text is one of the verified resource numbers.
#[test]
fn every_number_in_bot_text_is_a_known_line() {
    let c = content();
    let known: HashSet<&str> = c
        .resources()
        .iter()
        .filter(|r| r.verified)
        .filter_map(|r| r.phone.as_deref())
        .collect();
    let shape =
        regex::Regex::new(r"(?:^|[^\d-])(1\d{2,3}(?:-\d{4})?|0\d{1,2}-\d{3,4}-\d{4})(?:$|[^\d-])")
            .unwrap();
    for (at, text) in c.all_texts() {
        for m in shape.captures_iter(&text) {
            let n = &m[1];
            assert!(known.contains(n), "{at}: unknown number {n} in {text:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Safe messaging.

const FORBIDDEN_KO: [&str; 24] = [
    "번개탄",
    "수면제",
    "농약",
    "목을 매",
    "목매",
    "투신",
    "뛰어내리",
    "뛰어내려",
    "한강 다리",
    "한강다리",
    "대교에서",
    "옥상",
    "손목",
    "칼",
    "끈",
    "독극물",
    "극약",
    "질식",
    "연탄",
    "극단적 선택",
    "극단적인 선택",
    "벼랑 끝 선택",
    "마지막 탈출구",
    "스스로 선택",
];

const FORBIDDEN_EN: [&str; 20] = [
    "overdose",
    "pills",
    "pill",
    "hang",
    "hanging",
    "jump",
    "jumping",
    "bridge",
    "rope",
    "razor",
    "poison",
    "knife",
    "blade",
    "gun",
    "noose",
    "rooftop",
    "wrist",
    "charcoal",
    "choice",
    "suffocate",
];

fn english_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
}

#[test]
fn no_text_names_a_method_or_calls_suicide_a_choice() {
    let mut texts = content().all_texts();
    assert!(
        texts.len() > 300,
        "all_texts looks incomplete: {}",
        texts.len()
    );
    // Resource cards are shown to citizens too.
    for r in content().resources() {
        for t in [
            &r.name_ko,
            &r.name_en,
            &r.purpose_ko,
            &r.purpose_en,
            &r.hours,
        ] {
            texts.push((format!("resource {}", r.id), t.clone()));
        }
    }
    let mut problems = Vec::new();
    for (at, text) in &texts {
        for w in FORBIDDEN_KO {
            if text.contains(w) {
                problems.push(format!("{at}: {w:?} in {text:?}"));
            }
        }
        for word in english_words(text) {
            if FORBIDDEN_EN.contains(&word.as_str()) {
                problems.push(format!("{at}: {word:?} in {text:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn nothing_promises_secrecy_minimises_or_fosters_dependency() {
    let forbidden = [
        "비밀 보장",
        "비밀보장",
        "비밀로 할게",
        "절대 아무에게도",
        "절대 아무한테도",
        "아무도 모를",
        "100% confidential",
        "completely confidential",
        "no one will ever know",
        "nobody will ever know",
        "다들 힘들어",
        "다들 그래",
        "누구나 힘들",
        "나만 너를 이해",
        "나만 당신을 이해",
        "only i understand",
        "약속해 주세요",
        "promise me",
        "없는 거죠",
    ];
    for (at, text) in content().all_texts() {
        let lower = text.to_lowercase();
        for f in forbidden {
            assert!(!lower.contains(f), "{at}: {f:?} in {text:?}");
        }
    }
}

#[test]
fn safety_replies_carry_109_and_imminent_leads_with_119_and_109() {
    let c = content();
    for lang in [Lang::Ko, Lang::En] {
        for level in [Level::Medium, Level::High, Level::Imminent] {
            for turn in 0..4 {
                let r = c.safety_reply(level, lang, turn);
                assert!(r.text.contains("109"), "{level} {lang:?}: {}", r.text);
                assert!(
                    r.resources
                        .iter()
                        .any(|x| x.phone.as_deref() == Some("109"))
                );
            }
        }
        for turn in 0..4 {
            let r = c.safety_reply(Level::Imminent, lang, turn);
            let first = r.text.lines().next().unwrap();
            assert!(first.contains("119") && first.contains("109"), "{first}");
            let coming = match lang {
                Lang::Ko => r.text.contains("상담사"),
                Lang::En => r.text.contains("counselor"),
            };
            assert!(
                coming,
                "imminent must say a counselor is coming: {}",
                r.text
            );
            assert_eq!(r.resources[0].phone.as_deref(), Some("119"));
            let high = c.safety_reply(Level::High, lang, turn).text;
            assert!(
                high.contains("상담사") || high.contains("counselor"),
                "{high}"
            );
        }
        let medium = c.safety_reply(Level::Medium, lang, 0).text;
        assert!(
            medium.contains("자살") || medium.contains("suicide"),
            "ask directly: {medium}"
        );
        assert!(!c.safety_reply(Level::None, lang, 0).text.is_empty());
    }
}

#[test]
fn queue_notice_is_plain_when_no_one_is_online() {
    let c = content();
    for lang in [Lang::Ko, Lang::En] {
        let r = c.queue_notice(lang, 3, 0);
        for n in ["109", "1577-0199", "119"] {
            assert!(r.text.contains(n), "{n}: {}", r.text);
        }
        assert!(!r.text.contains('{'), "{}", r.text);
        for pos in 1..4 {
            let w = c.queue_notice(lang, pos, 2);
            assert!(
                w.text.contains(&pos.to_string()) && !w.text.contains('{'),
                "{}",
                w.text
            );
        }
    }
}

#[test]
fn about_fifteen_canned_snippets() {
    let canned = content().canned_responses();
    assert!((12..=20).contains(&canned.len()), "{}", canned.len());
    for c in canned {
        assert!(has_hangul(&c.ko), "{}", c.id);
        assert!(c.en.chars().any(|ch| ch.is_ascii_alphabetic()), "{}", c.id);
    }
}

// ---------------------------------------------------------------------------------------
// Documentation and strict loading.

#[test]
fn intents_readme_documents_every_file() {
    let readme = std::fs::read_to_string(root().join("intents/README.md")).unwrap();
    for entry in std::fs::read_dir(root().join("intents")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".toml") {
            assert!(
                readme.contains(&name),
                "intents/README.md does not mention {name}"
            );
        }
    }
    for f in DATA_FILES {
        assert!(readme.contains(f), "{f}");
    }
}

fn copy_intents() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("intents");
    std::fs::create_dir(&to).unwrap();
    for entry in std::fs::read_dir(root().join("intents")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    (dir, to)
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from:?} not in {file}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn an_unknown_field_names_file_line_and_id() {
    let (_tmp, dir) = copy_intents();
    edit(
        &dir,
        "core.toml",
        "id = \"thanks\"\n",
        "id = \"thanks\"\nrepyl_ko = []\n",
    );
    let err = Content::load(&dir).unwrap_err();
    assert!(err.file.ends_with("core.toml"), "{err}");
    assert!(err.message.contains("repyl_ko"), "{err}");
    assert!(err.line.is_some(), "{err}");
}

#[test]
fn an_unknown_resource_names_the_intent() {
    let (_tmp, dir) = copy_intents();
    edit(
        &dir,
        "feelings.toml",
        "resources = [\"lonely_120\"]",
        "resources = [\"lonely_1200\"]",
    );
    let err = Content::load(&dir).unwrap_err();
    assert_eq!(err.rule.as_deref(), Some("loneliness"), "{err}");
    assert!(err.message.contains("lonely_1200"), "{err}");
    assert!(err.to_string().contains("feelings.toml:"), "{err}");
}

#[test]
fn an_unverified_resource_cannot_be_attached() {
    let (_tmp, dir) = copy_intents();
    edit(
        &dir,
        "feelings.toml",
        "resources = [\"lonely_120\"]",
        "resources = [\"mind_store_guro\"]",
    );
    let err = Content::load(&dir).unwrap_err();
    assert!(err.message.contains("verified"), "{err}");
}

#[test]
fn a_missing_language_is_an_error() {
    let (_tmp, dir) = copy_intents();
    let p = dir.join("life.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let start = text.find("reply_en = [").unwrap();
    let end = start + text[start..].find("]\n").unwrap() + 2;
    std::fs::write(&p, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let err = Content::load(&dir).unwrap_err();
    assert_eq!(err.rule.as_deref(), Some("family_conflict"), "{err}");
    assert!(err.message.contains("reply_en"), "{err}");
}

#[test]
fn a_badly_shaped_number_is_an_error() {
    let (_tmp, dir) = copy_intents();
    edit(
        &dir,
        "resources.toml",
        "phone = \"1388\"",
        "phone = \"13888\"",
    );
    let err = Content::load(&dir).unwrap_err();
    assert_eq!(err.rule.as_deref(), Some("youth_1388"), "{err}");
}

#[test]
fn a_missing_data_file_is_an_error() {
    let (_tmp, dir) = copy_intents();
    std::fs::remove_file(dir.join("screener.toml")).unwrap();
    let err = Content::load(&dir).unwrap_err();
    assert!(err.file.ends_with("screener.toml"), "{err}");
}

#[test]
fn a_screener_question_pointing_nowhere_is_an_error() {
    let (_tmp, dir) = copy_intents();
    edit(
        &dir,
        "screener.toml",
        "no_next = \"plan\"",
        "no_next = \"plans\"",
    );
    let err = Content::load(&dir).unwrap_err();
    assert_eq!(err.rule.as_deref(), Some("intent"), "{err}");
}

/// With nobody online, the holding line offers two choices; what each button sends must be
/// read as that choice (it is only while waiting), in both languages.
#[test]
fn the_waiting_choices_lead_to_their_intents() {
    for lang in [Lang::Ko, Lang::En] {
        let r = content().holding(lang, 0, 0, None, None);
        let sent: Vec<&str> = r.quick_replies.iter().map(|q| q.text.as_str()).collect();
        assert_eq!(sent.len(), 2, "{lang:?}");
        let intents: Vec<Option<String>> = sent
            .iter()
            .map(|t| engine().assess(t).intent.map(|i| i.to_string()))
            .collect();
        assert_eq!(
            intents,
            [
                Some("keep_waiting".to_owned()),
                Some("keep_talking_while_waiting".to_owned())
            ],
            "{lang:?}: {sent:?}"
        );
        // Says plainly that nobody is online, and gives the lines.
        let phones: Vec<String> = r
            .resources
            .iter()
            .map(|c| {
                serde_json::to_value(c).unwrap()["phone"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        for n in ["109", "119"] {
            assert!(phones.iter().any(|p| p == n), "{lang:?}: {phones:?}");
        }
    }
    // With someone online: no choice to make, no promise of "soon".
    let r = content().holding(Lang::Ko, 0, 2, None, None);
    assert!(r.quick_replies.is_empty());
    assert!(
        r.text.contains("2명") && !r.text.contains("곧 "),
        "{}",
        r.text
    );
}

/// The self-check's and the safety plan's own words work as the dialogues need them: every
/// answer quick reply reads as its score, the plan's yes/no read as a screener yes/no, the
/// skip reply skips, and the result says the score in the right band with a next step.
#[test]
fn selfcheck_and_safety_plan_files_hold_together() {
    let c = content();
    let sc = c.selfcheck();
    assert_eq!(sc.len(), usize::from(ieum::conversation::SELF_CHECK_ITEMS));
    assert!(sc.source().contains("Hughes") && sc.source().contains("Research on Aging"));
    for lang in [Lang::Ko, Lang::En] {
        for (i, q) in sc.options(lang).iter().enumerate() {
            assert_eq!(sc.score(&q.text), Some(i as u8 + 1), "{q:?}");
        }
        for score in 3..=9u8 {
            let (text, ids, _) = sc.result(score, lang);
            assert!(text.contains(&score.to_string()), "{text}");
            assert!(ids.iter().any(|r| r == "lonely_120"), "{score}: {ids:?}");
        }
        let (low, _, _) = sc.result(5, lang);
        let (high, ids, _) = sc.result(6, lang);
        assert_ne!(low, high, "6-9 is read as lonely, 3-5 not");
        assert!(ids.iter().any(|r| r == "isolation_agency"));
    }
    assert_eq!(sc.score("2"), Some(2));
    assert_eq!(sc.score("12"), None);
    assert_eq!(sc.score("가끔은 자주"), None, "two classes: asked again");
    let plan = c.safety_plan();
    assert!(plan.source().contains("Stanley"));
    for lang in [Lang::Ko, Lang::En] {
        assert_eq!(
            plan.titles(lang).len(),
            usize::from(ieum::conversation::PLAN_STEPS)
        );
        let (_, yes_no) = plan.offer(lang);
        assert_eq!(c.screener().classify(&yes_no[0].text), Answer::Yes);
        assert_eq!(c.screener().classify(&yes_no[1].text), Answer::No);
        let (_, skip) = plan.ask(1, lang);
        assert!(plan.is_skip(&skip[0].text));
        let prefill = plan.prefill(lang).join(" ");
        assert!(
            prefill.contains("109") && prefill.contains("1577-0199"),
            "{prefill}"
        );
    }
    assert!(!plan.is_skip("친구에게 전화하기"));
}

/// Asking for the self-check (and the loneliness answers' quick reply) reach its intent.
#[test]
fn the_selfcheck_is_offered_after_loneliness() {
    let c = content();
    let lonely = c.intent("loneliness").unwrap();
    let engine = engine();
    for lang in [Lang::Ko, Lang::En] {
        let offer = lonely
            .quick_replies(lang)
            .into_iter()
            .find(|q| engine.assess(&q.text).intent.as_deref() == Some("loneliness_selfcheck"));
        assert!(offer.is_some(), "{lang:?}: no self-check quick reply");
    }
}
