//! Helpers shared by the emulated-device tests: ONE qemu per test binary (started on first use,
//! shared by its tests one at a time), and the SKIP line when qemu or the firmware is missing
//! (a failure instead under `CI=true`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use pto_host::emu::{qemu, EmuBackend, EmuConfig, Firmware};

/// What to install or build when the emulated device cannot run, or `None` when it can.
pub fn missing() -> Option<String> {
    let config = EmuConfig::default();
    if !qemu::binary_available(&config.qemu) {
        return Some(format!(
            "`{}` not found: install qemu-system-aarch64 (Debian: apt-get install qemu-system-arm)",
            config.qemu.display()
        ));
    }
    if !config.firmware.is_file() {
        return Some(format!(
            "firmware ELF `{}` not found: build it with `cargo fw-build` (or name one in $PTO_FIRMWARE)",
            config.firmware.display()
        ));
    }
    None
}

/// Prints the SKIP line (once per test binary), or fails under `CI=true`.
pub fn skip(what: &str) {
    static ONCE: OnceLock<()> = OnceLock::new();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the emulated-device tests cannot run under CI=true: {what}");
    }
    // Straight to the stream: the test harness captures `println!` of passing tests.
    ONCE.get_or_init(|| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIP: {what}");
    });
}

/// The firmware ELF, when it exists (else the SKIP line and `None`).
pub fn firmware_path() -> Option<PathBuf> {
    let p = EmuConfig::default().firmware;
    if p.is_file() {
        return Some(p);
    }
    skip(&format!(
        "firmware ELF `{}` not found: build it with `cargo fw-build` (or name one in $PTO_FIRMWARE)",
        p.display()
    ));
    None
}

/// The firmware, read and checked.
pub fn firmware() -> Option<Firmware> {
    firmware_path().map(|p| Firmware::read(&p).expect("read the firmware ELF"))
}

/// The test binary's emulated device and the right to use it alone until the guard drops
/// (concurrent runs would interleave their launches on one control core).
pub struct Emu {
    /// The device.
    pub backend: Arc<EmuBackend>,
    _turn: MutexGuard<'static, ()>,
}

/// The shared emulated device, or `None` after printing the SKIP line.
pub fn emu() -> Option<Emu> {
    static DEVICE: OnceLock<Option<Arc<EmuBackend>>> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let backend = DEVICE
        .get_or_init(|| {
            if let Some(what) = missing() {
                skip(&what);
                return None;
            }
            Some(Arc::new(EmuBackend::start(&EmuConfig::default()).expect("start the emulated device")))
        })
        .clone()?;
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    Some(Emu { backend, _turn: turn })
}
