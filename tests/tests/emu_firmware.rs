//! The host refuses a firmware ELF built from another ABI before it starts qemu: a copy of the
//! firmware whose `.pto_abi` bytes are patched is refused with both values in words, and no qemu
//! process or guest-RAM file is left behind. `pto firmware inspect` says the same.

mod emu_support;

use std::mem::offset_of;
use std::path::{Path, PathBuf};

use pto_abi::emu::{EmuAbiError, EmuAbiRecord, EmuNameKind, EMU_ABI_MAGIC, EMU_ABI_SECTION};
use pto_abi::{ABI_FINGERPRINT, ABI_VERSION};
use pto_host::cli::firmware::{FirmwareArgs, FirmwareCommand, InspectArgs};
use pto_host::emu::{EmuBackend, EmuConfig, EmuStartError, Firmware, FirmwareError};

/// A copy of the firmware at `path` with `bytes` written at `field` of its `.pto_abi` record.
fn patched(path: &Path, field: usize, bytes: &[u8], tag: &str) -> PathBuf {
    let fw = Firmware::read(path).unwrap();
    let (off, len) = fw.elf().section_file_range(EMU_ABI_SECTION).expect(".pto_abi has file bytes");
    assert!(len >= size_of::<EmuAbiRecord>());
    let mut elf = fw.elf().bytes().to_vec();
    elf[off + field..off + field + bytes.len()].copy_from_slice(bytes);
    let out = std::env::temp_dir().join(format!("pto-fw-{tag}-{}.elf", std::process::id()));
    std::fs::write(&out, elf).unwrap();
    out
}

/// qemu processes this test process started, and guest-RAM files it created.
fn leftovers() -> (usize, usize) {
    let me = std::process::id().to_string();
    let children = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid …
            let Some(close) = stat.rfind(')') else { return false };
            let comm = &stat[stat.find('(').map_or(0, |i| i + 1)..close];
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            comm.starts_with("qemu-system") && ppid == Some(me.as_str())
        })
        .count();
    let prefix = format!("pto-emu-{me}-");
    let files = std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)).count())
        .unwrap_or(0);
    (children, files)
}

#[test]
fn the_firmware_carries_this_hosts_fingerprint_and_the_example_code() {
    let Some(fw) = emu_support::firmware() else { return };
    fw.check(pto_host::emu::DEFAULT_RAM_BYTES).expect("the workspace's firmware matches its host");
    let r = fw.record();
    assert_eq!((r.magic, r.abi_version, r.abi_fingerprint), (EMU_ABI_MAGIC, ABI_VERSION, ABI_FINGERPRINT));
    assert!(fw.carries(EmuNameKind::Orchestration, "vector_example"), "{:?}", fw.names());
    let report = fw.report();
    assert!(report.refusal.is_none());
    assert_eq!(report.entry, r.image_base, "the entry point is the link origin");
    assert!(report.sections.iter().any(|s| s.name == ".text" && s.size > 0), "{:?}", report.sections);
}

#[test]
fn a_patched_abi_record_is_refused_before_qemu_starts() {
    let Some(path) = emu_support::firmware_path() else { return };
    let before = leftovers();
    /// (field offset, bytes written there, tag, the refusal, words its message holds)
    type Case = (usize, Vec<u8>, &'static str, EmuAbiError, [String; 2]);
    let cases: [Case; 3] = [
        (
            offset_of!(EmuAbiRecord, abi_fingerprint),
            0x1111_2222_3333_4444u64.to_le_bytes().to_vec(),
            "fingerprint",
            EmuAbiError::Fingerprint(0x1111_2222_3333_4444),
            ["0x1111222233334444".into(), format!("{ABI_FINGERPRINT:#018x}")],
        ),
        (
            offset_of!(EmuAbiRecord, abi_version),
            99u32.to_le_bytes().to_vec(),
            "version",
            EmuAbiError::Version(99),
            ["ABI version 99".into(), format!("this host has version {ABI_VERSION}")],
        ),
        (
            offset_of!(EmuAbiRecord, magic),
            0xdead_beefu64.to_le_bytes().to_vec(),
            "magic",
            EmuAbiError::BadMagic(0xdead_beef),
            ["0x00000000deadbeef".into(), format!("{EMU_ABI_MAGIC:#018x}")],
        ),
    ];
    for (field, bytes, tag, expect, words) in cases {
        let bad = patched(&path, field, &bytes, tag);
        let config = EmuConfig { firmware: bad.clone(), ..EmuConfig::default() };
        let e = EmuBackend::start(&config).err().unwrap_or_else(|| panic!("{tag}: a patched firmware started"));
        let EmuStartError::Firmware(FirmwareError::Abi { error, .. }) = &e else { panic!("{tag}: {e}") };
        assert_eq!(*error, expect);
        let text = e.to_string();
        for w in &words {
            assert!(text.contains(w.as_str()), "{tag}: `{text}` lacks `{w}`");
        }

        let mut out = Vec::new();
        let args =
            FirmwareArgs { command: FirmwareCommand::Inspect(InspectArgs { file: Some(bad.clone()), json: true }) };
        let err = pto_host::cli::firmware::run(&args, &mut out).unwrap_err();
        assert_eq!(err.exit_code, 2, "{err}");
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["matches_host"], false);
        assert!(json["refusal"].as_str().unwrap().contains(words[0].as_str()), "{json}");
        std::fs::remove_file(bad).unwrap();
    }
    assert_eq!(leftovers(), before, "no qemu started and no guest-RAM file made");
}

#[test]
fn inspect_describes_the_firmware_in_words() {
    let Some(path) = emu_support::firmware_path() else { return };
    let mut out = Vec::new();
    let args = FirmwareArgs { command: FirmwareCommand::Inspect(InspectArgs { file: Some(path), json: false }) };
    pto_host::cli::firmware::run(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for w in [
        format!("ABI fingerprint {ABI_FINGERPRINT:#018x}"),
        "matches this host".into(),
        "entry point 0x".into(),
        ".text".into(),
        "orchestrations (".into(),
        "kernels (".into(),
    ] {
        assert!(text.contains(&w), "`{w}` missing in:\n{text}");
    }
}
