//! Builds what the onboard-backend tests load: the stand-in vendor runtime (`pto-cann-standin`, a
//! shared library) and the `pto` tool, in a target directory of their own (a nested build in this
//! package's target directory would wait for the lock the outer build holds), plus a library
//! lacking one runtime function. Their paths reach the tests as `PTO_CANN_STANDIN`, `PTO_TOOL` and
//! `PTO_CANN_INCOMPLETE`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("tests/ lies in the workspace").to_path_buf();
    for dir in ["tests/cann-standin", "host/src", "host/Cargo.toml", "device/src", "abi/src", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", root.join(dir).display());
    }

    let release = env::var("PROFILE").as_deref() == Ok("release");
    let target = out.join("standin-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--quiet", "-p", "pto-cann-standin", "-p", "pto-host", "--lib", "--bin", "pto", "--target-dir"])
        .arg(&target);
    if release {
        cmd.arg("--release");
    }
    // A lint run of the outer build must not turn the nested build into one.
    for var in ["RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CLIPPY_ARGS", "CARGO_TARGET_DIR"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo for the stand-in runtime");
    assert!(status.success(), "building the stand-in runtime and the pto tool failed: {status}");
    let bin = target.join(if release { "release" } else { "debug" });
    println!("cargo::rustc-env=PTO_CANN_STANDIN={}", bin.join("libpto_cann_standin.so").display());
    println!("cargo::rustc-env=PTO_TOOL={}", bin.join("pto").display());

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let incomplete = out.join("libincomplete_runtime.so");
    let status = Command::new(rustc)
        .args(["--crate-type", "cdylib", "--edition", "2021", "-o"])
        .arg(&incomplete)
        .arg(root.join("tests/cann-standin/incomplete.rs"))
        .status()
        .expect("cannot run rustc for the incomplete runtime");
    assert!(status.success(), "building the incomplete runtime failed: {status}");
    println!("cargo::rustc-env=PTO_CANN_INCOMPLETE={}", incomplete.display());
}
