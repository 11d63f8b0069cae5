//! Links the `pto-firmware` binary with its linker script, only when building for the firmware
//! target (`target_os = "none"`); the library and host builds never see it.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let script = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("..")
        .join("linker")
        .join("pto-firmware.ld");
    println!("cargo::rerun-if-changed={}", script.display());
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo::rustc-link-arg-bins=-T{}", script.display());
        // defmt's format strings go to a non-allocated section, never into device memory.
        println!("cargo::rustc-link-arg-bins=-Tdefmt.x");
    }
}
