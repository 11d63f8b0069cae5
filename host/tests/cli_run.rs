//! `pto run --example vector` end to end: the check, the cold then cached bind, both modes, and
//! bad flags.

use std::process::Command;

fn pto(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pto")).args(args).output().expect("run pto")
}

#[test]
fn vector_example_checks_47_and_reports_a_cold_then_cached_bind() {
    for extra in [&["--threads", "3", "--clusters", "2"][..], &["--deterministic"][..]] {
        let mut args = vec!["run", "--example", "vector", "--window", "64", "--heap", "1M"];
        args.extend_from_slice(extra);
        let out = pto(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        for (i, l) in lines[1..].iter().enumerate() {
            assert!(l.contains("check OK: all 16384 elements = 47"), "{l}");
            assert!(l.contains("; 5 tasks;"), "{l}");
            assert!(l.contains(if i == 0 { "(cold)" } else { "(cached)" }), "{l}");
            assert!(l.contains(" per task"), "{l}");
        }
    }
}

#[test]
fn bad_flags_are_refused_with_the_rule() {
    let out = pto(&["run", "--example", "vector", "--threads", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--threads") && err.contains("1 is outside 2 ..= 4; nearest legal value: 2"), "{err}");
    assert!(out.stdout.is_empty(), "nothing runs or prints before the flags are checked");
    let out = pto(&["run", "--example", "vector", "--clusters", "25"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("25 is outside 1 ..= 24; nearest legal value: 24"));
    let out = pto(&["run", "--example", "vector", "--window", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("power of two"));
}

#[test]
fn json_errors_are_documents_on_stdout_with_the_same_exit_code() {
    for args in [
        &["run", "--example", "vector", "--window", "5", "--json"][..],
        &["run", "--example", "vector", "--runs", "-1", "--json"][..],
        &["image", "inspect", "/nonexistent/x.img", "--json"][..],
    ] {
        let out = pto(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON document on stdout");
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["kind"], "error");
        assert_eq!(doc["error"]["exit_code"], 2);
    }
    let out = pto(&["--version"]);
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(v.contains("ABI v") && v.contains("fingerprint 0x"), "{v}");
    let out = pto(&["error", "BOOT_BAD_MAGIC"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("1001 BOOT_BAD_MAGIC"));
    for shell in ["bash", "zsh", "fish"] {
        let out = pto(&["completions", shell]);
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("layout"), "{shell}");
    }
    let out = pto(&["--help"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Exit codes: 0 ok; 1 the run or operation failed; 2 bad input")
    );
}

#[test]
fn chips_flag_spreads_runs_over_worker_processes_and_reports_runs_per_second() {
    let out = pto(&["run", "--example", "vector", "--chips", "4", "--runs", "16", "--deterministic"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (l, n) in lines[1..].iter().zip([1, 2, 4]) {
        assert!(l.starts_with(&format!("{n} chip(s): 16 runs checked OK (all 16384 elements = 47)")), "{l}");
        assert!(l.contains(" runs/s; runs per chip "), "{l}");
        let spread = l.rsplit(' ').next().unwrap();
        let per: Vec<u32> = spread.split('/').map(|c| c.parse().unwrap()).collect();
        assert_eq!((per.len(), per.iter().sum::<u32>()), (n, 16), "{l}");
    }
    let out = pto(&["run", "--example", "vector", "--chips", "0"]);
    assert_eq!(out.status.code(), Some(2));
}
