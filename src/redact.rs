//! Redaction of identifying numbers.
//!
//! * **Resident registration numbers (주민등록번호)** may not be processed at all (PIPA):
//!   [`redact_rrn`] runs on every citizen message *before* triage and storage, so the number
//!   never reaches the disk, the counselor or a log. Numbers issued since October 2020 have
//!   random trailing digits, so the match is on the shape (`YYMMDD`, then a 1–8 and six
//!   digits), not the checksum, and on the digits however they are typed: any separator
//!   or spacing between them (a property test generates them).
//! * **Phone numbers and e-mail addresses** stay in the live chat — a counselor must see the
//!   number a person in danger gives — but are removed by [`redact_contacts`] wherever text
//!   leaves it: supervisor replay, exports.
//!
//! Both see through full-width digits and the dash variants people type (`-`, `‐`, `–`,
//! `—`, `－`, `ー`, dots and spaces).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What replaces a resident registration number.
pub const RRN_MASK: &str = "[주민등록번호 삭제됨]";
/// What replaces a phone number.
pub const PHONE_MASK: &str = "[전화번호]";
/// What replaces an e-mail address.
pub const EMAIL_MASK: &str = "[이메일]";

/// Digits (ASCII or full-width) and the separators people put between them.
const D: &str = r"[0-9０-９]";
const SEP: &str = r"[\s\-‐‑‒–—―－ー.·]";

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    // Korean mobiles and landlines (010-1234-5678, 02 123 4567, +82 10 ...), with any of
    // the separators, or none.
    Regex::new(&format!(
        r"(?:^|[^0-9０-９])((?:\+82{SEP}{{0,3}}|[0０]){D}{{1,2}}{SEP}{{0,3}}{D}{{3,4}}{SEP}{{0,3}}{D}{{4}})(?:$|[^0-9０-９])"
    ))
    .expect("phone regex")
});

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-ａ-ｚＡ-Ｚ０-９]+[@＠][A-Za-z0-9.\-ａ-ｚＡ-Ｚ０-９]+[.．][A-Za-zａ-ｚＡ-Ｚ]{2,}")
        .expect("email regex")
});

fn replace_group<'a>(re: &Regex, text: &'a str, mask: &str) -> Cow<'a, str> {
    if !re.is_match(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut at = 0;
    // Matches may share the boundary character, so search again from the end of the
    // number itself rather than of the whole match.
    while let Some(c) = re.captures_at(text, at) {
        let m = c.get(1).expect("group 1");
        out.push_str(&text[last..m.start()]);
        out.push_str(mask);
        last = m.end();
        at = m.end();
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// The most characters that may stand between two digits of one number: "900101 - 1234567"
/// has three, a number typed digit by digit with spaces one.
const MAX_GAP: usize = 3;

/// An ASCII or full-width digit's value.
fn digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '０'..='９' => Some((c as u32 - '０' as u32) as u8),
        _ => None,
    }
}

/// One run of digits typed together, by byte range, and its digits.
struct Run {
    start: usize,
    end: usize,
    digits: Vec<u8>,
}

/// Whether 13 digits have the shape of a resident registration number: `YYMMDD`, then a
/// gender and century digit 1–8, then six more. Numbers issued since October 2020 end in
/// random digits, so the shape is all there is to check.
fn rrn_shaped(d: &[u8]) -> bool {
    if d.len() != 13 {
        return false;
    }
    let month = d[2] * 10 + d[3];
    let day = d[4] * 10 + d[5];
    (1..=12).contains(&month) && (1..=31).contains(&day) && (1..=8).contains(&d[6])
}

/// Byte ranges of resident registration numbers in `text`, however they are typed.
///
/// Digits are gathered into runs; runs separated by at most [`MAX_GAP`] characters that
/// are neither letters nor digits (any dash or minus sign, `_`, `/`, dots, spaces, ...) form
/// one number. Any 13 digits of a number that begin and end on run boundaries and have the
/// shape are a resident number: "900101-1234567", "900101−1234567" (U+2212),
/// "900101_1234567", "9 0 0 1 0 1 1 2 3 4 5 6 7", full-width digits. A longer run is
/// something else (a card number) and is left alone.
fn rrn_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut group: Vec<Run> = Vec::new();
    let mut gap = 0usize;
    let flush = |group: &mut Vec<Run>, spans: &mut Vec<(usize, usize)>| {
        let mut i = 0;
        while i < group.len() {
            let mut digits: Vec<u8> = Vec::with_capacity(13);
            let mut found = None;
            for (j, run) in group.iter().enumerate().skip(i) {
                digits.extend_from_slice(&run.digits);
                if digits.len() >= 13 {
                    if digits.len() == 13 && rrn_shaped(&digits) {
                        found = Some(j);
                    }
                    break;
                }
            }
            match found {
                Some(j) => {
                    spans.push((group[i].start, group[j].end));
                    i = j + 1;
                }
                None => i += 1,
            }
        }
        group.clear();
    };
    for (at, c) in text.char_indices() {
        if let Some(d) = digit(c) {
            match group.last_mut() {
                Some(run) if gap == 0 => {
                    run.digits.push(d);
                    run.end = at + c.len_utf8();
                }
                _ => group.push(Run {
                    start: at,
                    end: at + c.len_utf8(),
                    digits: vec![d],
                }),
            }
            gap = 0;
        } else if c.is_alphabetic() {
            flush(&mut group, &mut spans);
            gap = 0;
        } else {
            gap += 1;
            if gap > MAX_GAP {
                flush(&mut group, &mut spans);
            }
        }
    }
    flush(&mut group, &mut spans);
    spans
}

/// Removes resident registration numbers, however they are typed (see [`rrn_spans`]).
/// Borrowed when there was nothing to remove.
pub fn redact_rrn(text: &str) -> Cow<'_, str> {
    let spans = rrn_spans(text);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in spans {
        out.push_str(&text[last..start]);
        out.push_str(RRN_MASK);
        last = end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// Removes phone numbers and e-mail addresses (and resident registration numbers, in case
/// any predate the ingress filter).
pub fn redact_contacts(text: &str) -> String {
    let t = redact_rrn(text);
    let t = replace_group(&PHONE, &t, PHONE_MASK).into_owned();
    EMAIL.replace_all(&t, EMAIL_MASK).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_numbers_in_every_shape() {
        for (input, expected) in [
            (
                "제 주민번호는 900101-1234567 이에요",
                "제 주민번호는 [주민등록번호 삭제됨] 이에요",
            ),
            ("9001011234567", RRN_MASK),
            ("900101 2234567", RRN_MASK),
            ("900101–3234567", RRN_MASK),
            ("９００１０１－２２３４５６７", RRN_MASK),
            ("번호:0503124123456.", "번호:[주민등록번호 삭제됨]."),
        ] {
            assert_eq!(redact_rrn(input), expected, "{input}");
        }
    }

    #[test]
    fn resident_numbers_typed_any_other_way() {
        for input in [
            "900101−1234567",
            "900101_1234567",
            "900101/1234567",
            "900101\\1234567",
            "900101 - 1234567",
            "9 0 0 1 0 1 1 2 3 4 5 6 7",
            "9-0-0-1-0-1-1-2-3-4-5-6-7",
            "900 101 123 4567",
            "９００１０１＿２２３４５６７",
        ] {
            assert_eq!(redact_rrn(input), RRN_MASK, "{input}");
            assert_eq!(
                redact_rrn(&format!("제 번호는 {input} 이에요")),
                format!("제 번호는 {RRN_MASK} 이에요"),
                "{input}"
            );
        }
        // Beside a phone number, each is what it is.
        assert_eq!(
            redact_rrn("900101-1234567 010-1234-5678"),
            format!("{RRN_MASK} 010-1234-5678")
        );
    }

    proptest::proptest! {
        /// Any shape-valid number, typed with any separators, spacing or full-width digits,
        /// inside any letters, comes out without its digits.
        #[test]
        fn no_separator_or_spacing_keeps_a_resident_number(
            yy in 0u32..100, mm in 1u32..=12, dd in 1u32..=28, g in 1u32..=8, rest in 0u32..1_000_000,
            style in 0usize..4,
            seps in proptest::collection::vec(proptest::sample::select(vec![" ", "-", "−", "_", "/", ".", "·", "–", "—", "  ", " - "]), 12),
            full_width in proptest::bool::ANY,
            before in "[가-힣a-z ]{0,8}", after in "[가-힣a-z ]{0,8}",
        ) {
            let digits = format!("{yy:02}{mm:02}{dd:02}{g}{rest:06}");
            let typed: String = digits
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    let c = if full_width { char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap() } else { c };
                    let sep = match style {
                        0 => "",                                  // glued
                        1 => if i == 6 { seps[0] } else { "" },   // one separator
                        2 => if i > 0 { seps[i - 1] } else { "" },// digit by digit
                        _ => if i == 3 || i == 6 || i == 10 { seps[i % 12] } else { "" },
                    };
                    format!("{sep}{c}")
                })
                .collect();
            let text = format!("{before} {typed} {after}");
            let out = redact_rrn(&text);
            let left: String = out.chars().filter_map(|c| digit(c).map(|d| (b'0' + d) as char)).collect();
            proptest::prop_assert!(!left.contains(&digits[..6]) || !left.contains(&digits[6..]), "{text} -> {out}");
            proptest::prop_assert!(out.contains(RRN_MASK), "{text} -> {out}");
        }
    }

    #[test]
    fn look_alikes_are_left_alone() {
        for text in [
            "109에 전화했어요",
            "2024년 11월 25일",
            "9001011234567890",
            "901301-1234567",
            "900101-9234567",
            "계좌 110-234-567890",
        ] {
            assert_eq!(redact_rrn(text), text, "{text}");
        }
    }

    #[test]
    fn phones_and_emails() {
        assert_eq!(
            redact_contacts("제 번호 010-1234-5678, 메일 me@example.com"),
            "제 번호 [전화번호], 메일 [이메일]"
        );
        assert_eq!(redact_contacts("01012345678"), PHONE_MASK);
        assert_eq!(redact_contacts("02 123 4567 로 연락"), "[전화번호] 로 연락");
        assert_eq!(redact_contacts("+82 10 1234 5678"), PHONE_MASK);
        assert_eq!(redact_contacts("０１０－１２３４－５６７８"), PHONE_MASK);
        assert_eq!(redact_contacts("ｍｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"), EMAIL_MASK);
        // Crisis lines are not personal numbers and stay readable.
        assert_eq!(
            redact_contacts("109나 1577-0199에 전화해요"),
            "109나 1577-0199에 전화해요"
        );
        assert_eq!(
            redact_contacts("900101-1234567"),
            RRN_MASK,
            "resident numbers are removed here too"
        );
    }
}
