//! Every boot error gives the same code, about the same subject, on the emulated device (the
//! aarch64 firmware booting an image the x86-64 host built) as on the simulated device; after
//! each failure the same runner boots a good image.

mod emu_support;

use std::mem::offset_of;
use std::sync::Arc;

use pto_abi::error::BootErrorCode;
use pto_abi::image::ImageHeader;
use pto_abi::layout::RuntimeArenaLayout;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::DevAddr;
use pto_host::sim::SimBackend;
use pto_host::DeviceBackend;
use pto_host::{BoundImage, DeviceRunner, LaunchParams, RunnerError};

struct Case {
    name: &'static str,
    expect: BootErrorCode,
    subject: &'static str,
    corrupt: fn(&DeviceRunner, &mut BoundImage, &mut LaunchParams),
}

/// Writes `bytes` into the resident image at `offset`, then re-seals its checksum so the first
/// boot (which verifies it) reaches the check the case is about.
fn poke(r: &DeviceRunner, b: &BoundImage, offset: usize, bytes: &[u8]) {
    poke_unsealed(r, b, offset, bytes);
    let mut image = vec![0u8; b.image_size as usize];
    r.backend().copy_from_device(b.regions.arena.base, &mut image).unwrap();
    assert!(pto_abi::image::seal_image(&mut image));
    let at = pto_abi::image::IMAGE_CHECKSUM_OFFSET;
    poke_unsealed(r, b, at, &image[at..at + 8]);
}

/// Writes `bytes` into the resident image at `offset`, leaving the checksum as built.
fn poke_unsealed(r: &DeviceRunner, b: &BoundImage, offset: usize, bytes: &[u8]) {
    r.backend().copy_to_device(DevAddr(b.regions.arena.base.get() + offset as u64), bytes).unwrap();
}

const SIZING: usize = offset_of!(ImageHeader, layout) + offset_of!(RuntimeArenaLayout, sizing);

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "bad magic",
            expect: BootErrorCode::BadMagic,
            subject: "magic",
            corrupt: |r, b, _| poke(r, b, offset_of!(ImageHeader, magic), &0xdead_beefu64.to_le_bytes()),
        },
        Case {
            name: "wrong version",
            expect: BootErrorCode::UnsupportedVersion,
            subject: "abi_version",
            corrupt: |r, b, _| poke(r, b, offset_of!(ImageHeader, abi_version), &99u32.to_le_bytes()),
        },
        Case {
            name: "fingerprint mismatch",
            expect: BootErrorCode::FingerprintMismatch,
            subject: "image",
            corrupt: |r, b, _| {
                poke(r, b, offset_of!(ImageHeader, abi_fingerprint), &0x0123_4567_89ab_cdefu64.to_le_bytes())
            },
        },
        Case {
            name: "wrong header size",
            expect: BootErrorCode::HeaderSizeMismatch,
            subject: "header_size",
            corrupt: |r, b, _| poke(r, b, offset_of!(ImageHeader, header_size), &512u32.to_le_bytes()),
        },
        Case {
            name: "image larger than its region",
            expect: BootErrorCode::ImageLargerThanRegion,
            subject: "image",
            corrupt: |r, b, _| {
                let size = b.regions.arena.size + 1024;
                poke(r, b, offset_of!(ImageHeader, image_size), &size.to_le_bytes())
            },
        },
        Case {
            name: "truncated image",
            expect: BootErrorCode::ImageTruncated,
            subject: "image header",
            corrupt: |_, b, _| b.image_size = 100,
        },
        Case {
            name: "misaligned arena base",
            expect: BootErrorCode::MisalignedBase,
            subject: "arena",
            corrupt: |_, b, _| b.regions.arena.base = DevAddr(b.regions.arena.base.get() + 64),
        },
        Case {
            name: "corrupt sizing",
            expect: BootErrorCode::InvalidSizing,
            subject: "task_window_sizes",
            corrupt: |r, b, _| {
                let at = SIZING + offset_of!(ArenaSizingKey, task_window_sizes) + 2 * 8;
                poke(r, b, at, &12u64.to_le_bytes())
            },
        },
        Case {
            name: "a changed byte in the arena body",
            expect: BootErrorCode::ImageChecksumMismatch,
            subject: "image",
            corrupt: |r, b, _| {
                let at = b.layout.offsets.mailbox.offset as usize + 100;
                poke_unsealed(r, b, at, &[0x5A])
            },
        },
        Case {
            name: "a changed byte in the image header's padding",
            expect: BootErrorCode::ImageChecksumMismatch,
            subject: "image",
            corrupt: |r, b, _| poke_unsealed(r, b, offset_of!(ImageHeader, _pad_tail) + 3, &[0x01]),
        },
        Case {
            name: "too many AICPU threads",
            expect: BootErrorCode::BadLaunchParameters,
            subject: "aicpu_thread_count",
            corrupt: |_, _, p| p.aicpu_thread_count = 9,
        },
        Case {
            name: "more orchestration arguments than a callable can have",
            expect: BootErrorCode::BadLaunchParameters,
            subject: "orch_arg_count",
            corrupt: |_, _, p| p.orch_arg_count = 257,
        },
        Case {
            name: "trace level above the highest",
            expect: BootErrorCode::BadTraceRegion,
            subject: "trace_level",
            corrupt: |_, _, p| p.trace = (DevAddr::NULL, 0, 5),
        },
        Case {
            name: "trace region without a trace header",
            expect: BootErrorCode::BadTraceRegion,
            subject: "trace magic",
            corrupt: |_, b, p| p.trace = (b.regions.arena.base, 1024, 4),
        },
    ]
}

/// Boots a corrupted image on `backend`; returns (code, subject, message).
fn boot_failure(backend: Arc<dyn DeviceBackend>, case: &Case) -> (Option<BootErrorCode>, String, String) {
    let mut r = DeviceRunner::new(backend);
    let sizing = ArenaSizingKey::uniform(8, 64 << 10, 64);
    let mut bound = r.bind(&sizing).unwrap();
    let mut params = LaunchParams::default();
    (case.corrupt)(&r, &mut bound, &mut params);
    let e = r.boot_resident(&bound, &params).expect_err(case.name);
    let RunnerError::Boot(f) = &e else { panic!("{}: {e}", case.name) };
    let out = (f.code(), f.subject.clone(), e.to_string());
    // The same runner boots a good image afterwards.
    r.forget_images();
    let good = r.bind(&sizing).unwrap();
    r.boot_resident(&good, &LaunchParams::default()).unwrap_or_else(|e| panic!("{}: good boot after: {e}", case.name));
    out
}

#[test]
fn every_boot_error_has_the_same_code_on_the_emulated_device_as_on_the_sim() {
    let Some(emu) = emu_support::emu() else { return };
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).unwrap());
    for case in cases() {
        let (sim_code, sim_subject, sim_text) = boot_failure(sim.clone(), &case);
        assert_eq!(
            (sim_code, sim_subject.as_str()),
            (Some(case.expect), case.subject),
            "sim, {}: {sim_text}",
            case.name
        );
        let (emu_code, emu_subject, emu_text) = boot_failure(emu.backend.clone(), &case);
        assert_eq!(
            (emu_code, emu_subject.as_str()),
            (sim_code, sim_subject.as_str()),
            "{}: emu said `{emu_text}`, sim said `{sim_text}`",
            case.name
        );
        assert!(emu_text.starts_with(&format!("boot failed: {}", case.expect.name())), "{}: {emu_text}", case.name);
    }
    let log = emu.backend.take_device_log();
    assert_eq!(log.dropped_frames, 0, "{log:?}");
}
