//! Redaction of identifying numbers.
//!
//! * **Resident registration numbers (주민등록번호)** may not be processed at all (PIPA):
//!   [`redact_rrn`] runs on every citizen message *before* triage and storage, so the number
//!   never reaches the disk, the counselor or a log. Numbers issued since October 2020 have
//!   random trailing digits, so the match is on the shape (`YYMMDD`, a separator or none,
//!   then a 1–8 and six digits), not the checksum.
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

static RRN: LazyLock<Regex> = LazyLock::new(|| {
    // YYMMDD, optional separator, gender/century digit 1-8, six more digits; not glued to
    // other digits on either side.
    Regex::new(&format!(
        r"(?:^|[^0-9０-９])({D}{{2}}(?:0[1-9]|1[0-2]|０[１-９]|１[０-２]){D}{{2}}{SEP}{{0,3}}[1-8１-８]{D}{{6}})(?:$|[^0-9０-９])"
    ))
    .expect("rrn regex")
});

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

/// Removes resident registration numbers. Borrowed when there was nothing to remove.
pub fn redact_rrn(text: &str) -> Cow<'_, str> {
    replace_group(&RRN, text, RRN_MASK)
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
