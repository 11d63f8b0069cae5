//! The onboard AICPU program as built (`cargo aicpu-build`): an aarch64 shared object exporting
//! exactly its two entries and its `.pto_abi` record, importing nothing, whose record matches this
//! host's ABI and lists the code `pto_device::program` compiles in; `pto firmware inspect` reads it
//! and refuses a copy built from another ABI. Without the shared object each test prints one SKIP
//! line, and fails instead when `CI=true`.

use std::path::PathBuf;
use std::process::Command;

use pto_abi::emu::EmuNameKind;
use pto_abi::{ABI_FINGERPRINT, ABI_VERSION};
use pto_device::program::{EXAMPLE_KERNELS, EXAMPLE_ORCHESTRATIONS};
use pto_host::emu::elf::ElfFile;
use pto_host::onboard::aicpu_so::default_aicpu_so_path;
use pto_host::onboard::{AicpuSo, AICPU_EXEC_ENTRY, AICPU_INIT_ENTRY};

const TOOL: &str = env!("PTO_TOOL");

/// The shared object ($PTO_AICPU_SO, else the workspace's release build), or a SKIP.
fn aicpu_so() -> Option<PathBuf> {
    let path = std::env::var_os("PTO_AICPU_SO").map(PathBuf::from).unwrap_or_else(default_aicpu_so_path);
    if path.is_file() {
        return Some(path);
    }
    let what = format!("{} is not built: run `cargo aicpu-build` (or set PTO_AICPU_SO)", path.display());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {what}");
    }
    println!("SKIP: {what}");
    None
}

#[test]
fn the_shared_object_exports_its_two_entries_imports_nothing_and_matches_this_hosts_abi() {
    let Some(path) = aicpu_so() else { return };
    let so = AicpuSo::read(&path).unwrap();
    assert_eq!(so.check(), Ok(()));
    assert_eq!(so.exports(), ["pto_aicpu_abi", AICPU_EXEC_ENTRY, AICPU_INIT_ENTRY]);
    assert!(so.imports().is_empty(), "{:?}", so.imports());
    let r = so.record();
    assert_eq!((r.abi_fingerprint, r.abi_version), (ABI_FINGERPRINT, ABI_VERSION));
    // No memory map: the AICPU program lives in the vendor's process, not at fixed addresses.
    assert_eq!((r.ram_base, r.heap_base.get(), r.launch_slots), (0, 0, 0));
    let mut kernels: Vec<String> = EXAMPLE_KERNELS.iter().map(|(n, _)| n.to_string()).collect();
    let mut orchestrations: Vec<String> = EXAMPLE_ORCHESTRATIONS.iter().map(|(n, _)| n.to_string()).collect();
    kernels.sort();
    orchestrations.sort();
    assert_eq!(so.names_of(EmuNameKind::Kernel), kernels);
    assert_eq!(so.names_of(EmuNameKind::Orchestration), orchestrations);
}

#[test]
fn pto_firmware_inspect_describes_the_shared_object_and_refuses_one_from_another_abi() {
    let Some(path) = aicpu_so() else { return };
    let out = Command::new(TOOL).args(["firmware", "inspect"]).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("onboard AICPU shared object"), "{stdout}");
    assert!(stdout.contains("matches this host"), "{stdout}");
    assert!(stdout.contains("entry pto_aicpu_init: exported") && stdout.contains("entry pto_aicpu_exec: exported"));
    assert!(stdout.contains("imports: none") && stdout.contains("vector_example"), "{stdout}");

    let out = Command::new(TOOL).args(["firmware", "inspect", "--json"]).arg(&path).output().unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && json.contains("\"matches_host\": true"), "{json}");

    // The same object with one bit of the record's fingerprint flipped.
    let elf = ElfFile::read(&path).unwrap();
    let (start, _) = elf.section_file_range(".pto_abi").expect(".pto_abi in the file");
    let mut bytes = elf.bytes().to_vec();
    bytes[start + 16] ^= 1;
    let other = std::env::temp_dir().join(format!("pto-aicpu-other-abi-{}.so", std::process::id()));
    std::fs::write(&other, &bytes).unwrap();
    let refused = AicpuSo::read(&other).unwrap().check();
    let out = Command::new(TOOL).args(["firmware", "inspect"]).arg(&other).output().unwrap();
    std::fs::remove_file(&other).unwrap();
    assert!(refused.as_ref().is_err_and(|e| e.contains("fingerprint")), "{refused:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("does NOT match this host"), "{stdout}");
}

#[test]
fn under_qemu_user_mode_the_loader_check_loads_the_shared_object_and_every_entry_status_holds() {
    let Some(so) = aicpu_so() else { return };
    let check = so.with_file_name("pto-aicpu-check");
    let qemu = Command::new("qemu-aarch64").arg("--version").output();
    if !matches!(&qemu, Ok(o) if o.status.success()) {
        let what = "qemu-aarch64 not found: install it (Debian: apt-get install qemu-user)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and {what}");
        }
        println!("SKIP: {what}");
        return;
    }
    assert!(check.is_file(), "{} is built with the shared object by `cargo aicpu-build`", check.display());
    let out = Command::new("qemu-aarch64").arg(&check).arg(&so).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "pto_aicpu_init and pto_aicpu_exec resolved",
        "ok: init(NULL) -> NullArgs",
        "ok: descriptor magic 0 -> BadLaunchMagic",
        "ok: fingerprint 0 -> BadFingerprint",
        "ok: orchestration 0 (thread 0 claimed) -> UnknownOrchestration",
        "all checks passed",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in\n{stdout}");
    }
}
