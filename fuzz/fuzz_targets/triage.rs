//! The normalizer and the triage engine on arbitrary bytes (as UTF-8, lossily): no panic,
//! normalization idempotent, spans inside the text.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use ieum::triage::TriageEngine;
use ieum::triage::normalize::{compact, normalize};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static TriageEngine {
    static E: OnceLock<TriageEngine> = OnceLock::new();
    E.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        TriageEngine::load(&root.join("escalation-rules.toml"), &root.join("intents"))
            .expect("shipped rules load")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let once = normalize(&text);
    assert_eq!(normalize(&once), once, "normalize is idempotent");
    let c = compact(&text);
    assert_eq!(compact(&c), c, "compact is idempotent");
    let a = engine().assess(&text);
    let len = text.chars().count();
    for &(s, e) in &a.spans {
        assert!(s < e && e <= len);
    }
});
