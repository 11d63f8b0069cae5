//! `pto run --example vector --backend emu` and `pto firmware inspect` end to end on the
//! emulated device (one SKIP line without qemu or the firmware ELF; a failure under `CI=true`).

use std::io::Write;
use std::process::Command;

use pto_host::emu::{qemu, EmuConfig};

fn pto(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pto")).args(args).output().expect("run pto")
}

/// True when qemu and the firmware are there; else the SKIP line (a panic under `CI=true`).
fn available() -> bool {
    let config = EmuConfig::default();
    let what = if !qemu::binary_available(&config.qemu) {
        "qemu-system-aarch64 not found: install it (Debian: apt-get install qemu-system-arm)".to_string()
    } else if !config.firmware.is_file() {
        format!("firmware ELF `{}` not found: build it with `cargo fw-build`", config.firmware.display())
    } else {
        return true;
    };
    assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "cannot run under CI=true: {what}");
    let _ = writeln!(std::io::stderr(), "SKIP: {what}");
    false
}

#[test]
fn the_vector_example_runs_on_the_emulated_device_and_its_log_is_shown() {
    if !available() {
        return;
    }
    let out =
        pto(&["run", "--example", "vector", "--backend", "emu", "--window", "64", "--heap", "1M", "--device-log"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("device: emulated aarch64 (qemu pid"), "{text}");
    let runs: Vec<&str> = text.lines().filter(|l| l.starts_with("run ")).collect();
    assert_eq!(runs.len(), 2, "{text}");
    assert!(runs.iter().all(|l| l.contains("check OK: all 16384 elements = 47") && l.contains("; 5 tasks;")), "{text}");
    assert!(runs[0].contains("(cold)") && runs[1].contains("(cached)"), "{text}");
    // Every decoded device line carries its timestamp and file:line.
    let device: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("device: [")).collect();
    assert!(!device.is_empty(), "{text}");
    assert!(device.iter().all(|l| l.contains(".rs:")), "{text}");
}

#[test]
fn firmware_inspect_reports_a_match_in_json() {
    if !available() {
        return;
    }
    let fw = EmuConfig::default().firmware;
    let out = pto(&["firmware", "inspect", fw.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["matches_host"], true, "{v}");
    assert_eq!(v["abi_fingerprint"], format!("{:#018x}", pto_host::abi::ABI_FINGERPRINT));
    assert!(v["orchestrations"].as_array().unwrap().iter().any(|o| o == "vector_example"), "{v}");
    assert!(v["kernels"].as_array().unwrap().iter().any(|k| k == "vector_add"), "{v}");
    let out = pto(&["firmware", "inspect", "/nonexistent.elf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read firmware"));
}
