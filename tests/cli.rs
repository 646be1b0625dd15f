//! The `ieum` command line, run as a child process exactly as a user would.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn ieum(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ieum"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ieum");
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        // The child may exit before reading its input (a missing rules file): that race is
        // not a failure of the command; its exit status and stderr are checked by the test.
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn triage_prints_one_json_object_per_line() {
    let out = ieum(&["triage"], "안녕하세요\n죽 고 싶 다\n".as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = lines(&out);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["text"], "안녕하세요");
    assert_eq!(v[0]["risk"], "none");
    assert_eq!(v[0]["intent"], "greeting");
    assert_eq!(v[1]["risk"], "high");
    assert!(!v[1]["rules"].as_array().unwrap().is_empty());
    assert_eq!(v[1]["spans"], serde_json::json!([[0, 5]]));
}

#[test]
fn conversation_mode_reports_the_conversation_level() {
    let out = ieum(
        &["triage", "--conversation"],
        "죽고 싶어\n안녕\n".as_bytes(),
    );
    let v = lines(&out);
    assert_eq!(v[1]["message_risk"], "none");
    assert_eq!(v[1]["risk"], "high");
}

#[test]
fn empty_line_huge_line_and_invalid_utf8_never_panic() {
    let mut input = b"\n".to_vec();
    input.extend("외로워요 ".repeat(10_000).as_bytes());
    input.extend(b"\n\xff\xfe\xfd\n\xea\xb0\n");
    input.extend("마지막\n".as_bytes());
    let out = ieum(&["triage"], &input);
    let v = lines(&out);
    assert_eq!(v.len(), 5);
    assert_eq!(v[0]["risk"], "none");
    assert!(v[1]["text"].as_str().unwrap().len() > 100_000);
    assert_eq!(v[2]["error"], "invalid_utf8");
    assert_eq!(v[2]["line"], 3);
    assert_eq!(v[3]["error"], "invalid_utf8");
    assert_eq!(v[4]["text"], "마지막");
    assert_eq!(
        out.status.code(),
        Some(1),
        "invalid lines make a non-zero exit"
    );
}

#[test]
fn check_rules_passes_on_the_shipped_files() {
    let out = ieum(&["check-rules"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("all examples pass"));
}

fn broken_rules(dir: &Path, rule: &str) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("escalation-rules.toml"),
    )
    .unwrap();
    let path = dir.join("rules.toml");
    std::fs::write(&path, format!("{shipped}\n{rule}")).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_broken_file_names_file_line_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = broken_rules(
        dir.path(),
        "[[rule]]\nid = \"broken.regex\"\ncategory = \"plan\"\nlevel = \"high\"\nregex = [\"(unclosed\"]\nexamples = [\"x\"]\ncounter_examples = [\"y\"]\n",
    );
    let lines_in_file = std::fs::read_to_string(&path).unwrap().lines().count();
    let out = ieum(&["check-rules", "--rules", &path], b"");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{path}:{}: rule `broken.regex`: invalid regex",
        lines_in_file - 5
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in {stderr:?}"
    );
}

#[test]
fn a_failing_example_is_reported_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = broken_rules(
        dir.path(),
        "[[rule]]\nid = \"never.fires\"\ncategory = \"plan\"\nlevel = \"high\"\npatterns = [\"존재하지않는말\"]\nexamples = [\"평범한 문장\"]\ncounter_examples = [\"y\"]\n",
    );
    let out = ieum(&["check-rules", "--rules", &path], b"");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("never.fires") && stdout.contains("평범한 문장"),
        "{stdout}"
    );
}

#[test]
fn triage_with_a_missing_rules_file_fails_clearly() {
    let out = ieum(&["triage", "--rules", "/nonexistent/rules.toml"], b"hi\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/rules.toml") && stderr.contains("cannot read"));
}
