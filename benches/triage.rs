//! Triage cost with the full shipped rules: `assess` on a 200-byte Korean message, the
//! engine build, and throughput in MB/s over a mixed corpus.
//!
//! Run: `cargo bench --bench triage`. Figures are recorded in BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ieum::triage::TriageEngine;

// The allocator the `ieum` binary ships with (src/main.rs), so the figures are the service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn paths() -> (std::path::PathBuf, std::path::PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    (root.join("escalation-rules.toml"), root.join("intents"))
}

fn engine() -> TriageEngine {
    let (r, i) = paths();
    TriageEngine::load(&r, &i).expect("shipped files load")
}

/// Every text of the `tests/eval/dev` set (about 1,950 lines, every class).
fn varied_lines() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eval/dev");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/eval/dev")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("eval file");
        lines.extend(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('\t'))
                .map(|(_, t)| t.to_owned()),
        );
    }
    assert!(lines.len() > 1000, "the dev set is in the tree");
    lines
}

/// About 200 bytes of everyday Korean chat with no risk words (the common case).
const KO_200: &str = "요즘 회사 일이 너무 많아서 집에 오면 아무것도 하기 싫고 그냥 누워만 있어요. 주말에도 친구들 만나기가 귀찮고 연락도 잘 안 하게 돼요. 밥도 대충.";
/// About 200 bytes with a risk signal in it.
const KO_RISK_200: &str = "요즘 회사 일이 너무 많아서 집에 오면 아무것도 하기 싫어요. 솔직히 요즘은 그냥 다 끝내고 죽고 싶다는 생각이 자꾸 들어요 ㅠㅠ 어떡하죠 진짜";

const CORPUS: &[&str] = &[
    KO_200,
    KO_RISK_200,
    "안녕하세요 처음 와봤어요",
    "혼자 산 지 오래돼서 말할 사람이 없어요",
    "잠이 안 와요. 벌써 새벽 네 시인데 계속 생각이 많아요",
    "I feel so lonely since I moved to Seoul, I don't know anyone here",
    "honestly i just want to disappear sometimes",
    "회사에서 잘렸어요. 월세도 밀리고 어떻게 해야 할지 모르겠어요",
    "ㅋㅋㅋ 배고파 죽겠다 오늘 뭐 먹지",
    "엄마랑 또 싸웠어요. 집에 있기가 너무 힘들어요",
];

fn bench(c: &mut Criterion) {
    let e = engine();
    assert!((190..=230).contains(&KO_200.len()), "{}", KO_200.len());
    assert!(
        (190..=230).contains(&KO_RISK_200.len()),
        "{}",
        KO_RISK_200.len()
    );

    let mut g = c.benchmark_group("assess");
    g.throughput(Throughput::Bytes(KO_200.len() as u64));
    g.bench_function("ko_200_bytes", |b| b.iter(|| e.assess(black_box(KO_200))));
    g.throughput(Throughput::Bytes(KO_RISK_200.len() as u64));
    g.bench_function("ko_200_bytes_risky", |b| {
        b.iter(|| e.assess(black_box(KO_RISK_200)))
    });
    // Every message new, as in real traffic: a repeated message finds every automaton state
    // it needs already built (the lines of tests/eval/dev, one per iteration, in turn).
    let lines = varied_lines();
    let mut next = 0;
    g.throughput(Throughput::Elements(1));
    g.bench_function("varied_eval_lines", |b| {
        b.iter(|| {
            next = (next + 1) % lines.len();
            black_box(e.assess(black_box(&lines[next])))
        })
    });

    let total: usize = CORPUS.iter().map(|s| s.len()).sum();
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("mixed_corpus", |b| {
        b.iter(|| {
            for m in CORPUS {
                black_box(e.assess(black_box(m)));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    // The engine is dropped once, at shutdown: its drop (about a twentieth of the time
    // `iter` would report) is not part of the build.
    g.bench_function("engine_from_shipped_files", |b| {
        b.iter_with_large_drop(engine)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
