//! The load tool itself, end to end: `loadgen` drives a spawned `ieum serve`, the protocol
//! echo (`echo --protocol`) and the bare echo for a moment, and every run must come back
//! with messages acknowledged, replies counted, no violations and a clean exit. The
//! figures in BENCHMARKS.md are only as good as this tool.

use std::process::Command;

#[test]
fn loadgen_drives_ieum_the_protocol_echo_and_the_echo_without_violations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("runs.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--mode", "closed", "--conns", "4", "--duration", "1"])
        .args(["--warmup", "0.2", "--drain", "5", "--risky-percent", "20"])
        .arg("--spawn-server")
        .arg(env!("CARGO_BIN_EXE_ieum"))
        .arg("--server-arg=--rate-per-second=1000")
        .arg("--server-arg=--rate-burst=1000")
        .arg("--protocol-echo")
        .arg(env!("CARGO_BIN_EXE_echo"))
        .arg("--echo")
        .arg(env!("CARGO_BIN_EXE_echo"))
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run loadgen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("× protocol"),
        "the summary gives ieum's ratio to the protocol echo:\n{stdout}"
    );

    let runs: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .expect("json lines")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON run"))
        .collect();
    let targets: Vec<&str> = runs.iter().filter_map(|r| r["target"].as_str()).collect();
    assert_eq!(targets, ["ieum", "protocol", "echo"]);
    for r in &runs {
        let t = r["target"].as_str().unwrap_or_default();
        let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{t}: {k} in {r}"));
        assert_eq!(n("violations"), 0, "{t}: {r}");
        assert!(n("sent") > 0, "{t} sent nothing: {r}");
        assert_eq!(
            n("acked"),
            n("sent"),
            "{t}: every message acknowledged: {r}"
        );
        assert!(n("replies") > 0, "{t}: replies counted: {r}");
        assert!(r["msgs_per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{t}: {r}");
        assert!(
            r["server_cpu_us_per_msg"].as_f64().is_some(),
            "{t}: server CPU read from /proc: {r}"
        );
        assert!(
            r["client_cpu_us_per_msg"].as_f64().is_some_and(|c| c > 0.0),
            "{t}: the load tool's own CPU per message: {r}"
        );
    }
    // One risky line in five: ieum hands conversations off, and the loop starts over.
    assert!(runs[0]["handoffs"].as_u64().unwrap_or(0) > 0, "{}", runs[0]);
    // The protocol echo answers every message with a bot frame and never hands off.
    assert_eq!(runs[1]["replies"], runs[1]["acked"], "{}", runs[1]);
    assert_eq!(runs[1]["handoffs"], 0, "{}", runs[1]);
}
