//! Every way an image or a launch can be wrong gives its own boot error, reported back to the host
//! in words; none panics, and the runner stays usable.
//!
//! The first boot after an upload verifies the image checksum, so a poked byte is refused as a
//! checksum mismatch; the cases re-seal the checksum after their poke so the check they are about
//! is the one that refuses (one case keeps the poke unsealed).

mod image_support;

use std::collections::HashSet;
use std::mem::offset_of;

use pto_abi::error::BootErrorCode;
use pto_abi::image::ImageHeader;
use pto_abi::launch::LaunchDescriptor;
use pto_abi::layout::{ArenaOffsets, RuntimeArenaLayout};
use pto_abi::runtime::RuntimeHeader;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::{DevAddr, ABI_FINGERPRINT};
use pto_host::{BootOutcome, BoundImage, DeviceBackend, DeviceRunner, LaunchParams, RunnerError};

use image_support::*;

/// How a case corrupts the resident image or the launch.
struct Case {
    name: &'static str,
    expect: BootErrorCode,
    subject: &'static str,
    words: &'static [&'static str],
    corrupt: fn(&DeviceRunner, &mut BoundImage, &mut LaunchParams),
}

/// Writes `bytes` into the resident image at `offset`, then re-seals its checksum.
fn poke(r: &DeviceRunner, b: &BoundImage, offset: usize, bytes: &[u8]) {
    poke_unsealed(r, b, offset, bytes);
    reseal(r, b);
}

/// Writes `bytes` into the resident image at `offset`, leaving the checksum as built.
fn poke_unsealed(r: &DeviceRunner, b: &BoundImage, offset: usize, bytes: &[u8]) {
    r.backend().copy_to_device(DevAddr(b.regions.arena.base.get() + offset as u64), bytes).unwrap();
}

const LAYOUT: usize = offset_of!(ImageHeader, layout);
const OFFSETS: usize = LAYOUT + offset_of!(RuntimeArenaLayout, offsets);
const SIZING: usize = LAYOUT + offset_of!(RuntimeArenaLayout, sizing);

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "truncated below the header",
            expect: BootErrorCode::ImageTruncated,
            subject: "image header",
            words: &["needs 640 bytes but only 100 bytes are present"],
            corrupt: |_, b, _| b.image_size = 100,
        },
        Case {
            name: "truncated below the image size",
            expect: BootErrorCode::ImageTruncated,
            subject: "image",
            words: &["bytes are present"],
            corrupt: |_, b, _| b.image_size -= 64,
        },
        Case {
            name: "corrupted magic",
            expect: BootErrorCode::BadMagic,
            subject: "magic",
            words: &["image magic is 0x00000000deadbeef"],
            corrupt: |r, b, _| poke(r, b, offset_of!(ImageHeader, magic), &0xdead_beefu64.to_le_bytes()),
        },
        Case {
            name: "wrong version",
            expect: BootErrorCode::UnsupportedVersion,
            subject: "abi_version",
            words: &["built for ABI version 99"],
            corrupt: |r, b, _| poke(r, b, offset_of!(ImageHeader, abi_version), &99u32.to_le_bytes()),
        },
        Case {
            name: "wrong header size",
            expect: BootErrorCode::HeaderSizeMismatch,
            subject: "header_size",
            words: &["image header is 512 bytes"],
            corrupt: |r, b, _| poke(r, b, offset_of!(ImageHeader, header_size), &512u32.to_le_bytes()),
        },
        Case {
            name: "wrong fingerprint",
            expect: BootErrorCode::FingerprintMismatch,
            subject: "image",
            words: &["built with ABI fingerprint 0x0123456789abcdef but firmware expects"],
            corrupt: |r, b, _| {
                poke(r, b, offset_of!(ImageHeader, abi_fingerprint), &0x0123_4567_89ab_cdefu64.to_le_bytes())
            },
        },
        Case {
            name: "image larger than its region",
            expect: BootErrorCode::ImageLargerThanRegion,
            subject: "image",
            words: &["does not fit the arena region"],
            corrupt: |r, b, _| {
                let size = b.regions.arena.size + 1024;
                poke(r, b, offset_of!(ImageHeader, image_size), &size.to_le_bytes())
            },
        },
        Case {
            name: "more image bytes than the region holds",
            expect: BootErrorCode::ImageLargerThanRegion,
            subject: "image_bytes",
            words: &["does not fit the arena region"],
            corrupt: |_, b, _| b.image_size = b.regions.arena.size + 1,
        },
        Case {
            name: "misaligned arena base",
            expect: BootErrorCode::MisalignedBase,
            subject: "arena",
            words: &["is not 1024-byte aligned"],
            corrupt: |_, b, _| b.regions.arena.base = DevAddr(b.regions.arena.base.get() + 64),
        },
        Case {
            name: "null heap base",
            expect: BootErrorCode::NullBase,
            subject: "heap",
            words: &["heap base is null"],
            corrupt: |_, b, _| b.regions.heap.base = DevAddr::NULL,
        },
        Case {
            name: "SM region too small",
            expect: BootErrorCode::SmRegionTooSmall,
            subject: "sm",
            words: &["SM region is 1024 bytes but the layout needs"],
            corrupt: |_, b, _| b.regions.sm.size = 1024,
        },
        Case {
            name: "heap region too small",
            expect: BootErrorCode::HeapRegionTooSmall,
            subject: "heap",
            words: &["GM heap region is 2048 bytes"],
            corrupt: |_, b, _| b.regions.heap.size = 2048,
        },
        Case {
            name: "stored layout moved a region",
            expect: BootErrorCode::LayoutMismatch,
            subject: "mailbox",
            words: &["stored layout value mailbox"],
            corrupt: |r, b, _| {
                let at = OFFSETS + offset_of!(ArenaOffsets, mailbox);
                let moved = b.layout.offsets.mailbox.offset + 64;
                poke(r, b, at, &moved.to_le_bytes())
            },
        },
        Case {
            name: "stored sizing breaks a rule",
            expect: BootErrorCode::InvalidSizing,
            subject: "task_window_sizes",
            words: &["task_window_sizes[ring 2] = 12"],
            corrupt: |r, b, _| {
                let at = SIZING + offset_of!(ArenaSizingKey, task_window_sizes) + 2 * 8;
                poke(r, b, at, &12u64.to_le_bytes())
            },
        },
        Case {
            name: "runtime header overwritten",
            expect: BootErrorCode::BadRuntimeHeader,
            subject: "magic",
            words: &["runtime header magic is 0x0000000000000000"],
            corrupt: |r, b, _| {
                let at = b.runtime_header_offset as usize + offset_of!(RuntimeHeader, magic);
                poke(r, b, at, &0u64.to_le_bytes())
            },
        },
        Case {
            name: "a changed byte in the arena body",
            expect: BootErrorCode::ImageChecksumMismatch,
            subject: "image",
            words: &["bytes hash to", "but its header's checksum is", "a byte changed after the image was built"],
            corrupt: |r, b, _| {
                let at = b.layout.offsets.mailbox.offset as usize + 100;
                poke_unsealed(r, b, at, &[0x5A])
            },
        },
        Case {
            name: "too many AICPU threads",
            expect: BootErrorCode::BadLaunchParameters,
            subject: "aicpu_thread_count",
            words: &["aicpu_thread_count = 9 exceeds the supported 4"],
            corrupt: |_, _, p| p.aicpu_thread_count = 9,
        },
        Case {
            name: "more orchestration arguments than a callable can have",
            expect: BootErrorCode::BadLaunchParameters,
            subject: "orch_arg_count",
            words: &["orch_arg_count = 257 exceeds the supported 256"],
            corrupt: |_, _, p| p.orch_arg_count = 257,
        },
        Case {
            name: "trace level above the highest",
            expect: BootErrorCode::BadTraceRegion,
            subject: "trace_level",
            words: &["trace region trace_level is 0x5, the rule needs 0x4"],
            corrupt: |_, _, p| p.trace = (DevAddr::NULL, 0, 5),
        },
        Case {
            name: "trace region without a trace header",
            expect: BootErrorCode::BadTraceRegion,
            subject: "trace magic",
            words: &["trace region trace magic is 0x"],
            corrupt: |_, b, p| p.trace = (b.regions.arena.base, 1024, 4),
        },
    ]
}

#[test]
fn every_bad_image_or_launch_gives_its_own_error_in_words() {
    let sim = sim();
    let mut seen = HashSet::new();
    for case in cases() {
        let mut r = runner(&sim);
        let mut bound = r.bind(&sizing(8)).unwrap();
        let mut params = LaunchParams::default();
        (case.corrupt)(&r, &mut bound, &mut params);

        let err = boot_direct_with(&mut r, &bound, &params).expect_err(case.name);
        assert_eq!(err.code, case.expect, "{}: {err}", case.name);
        assert_eq!(err.subject, case.subject, "{}: {err}", case.name);

        // The host reads the same failure back from the boot report and words it.
        let BootOutcome::Failed(f) = r.read_boot_report().unwrap() else {
            panic!("{}: no failure reported", case.name)
        };
        assert_eq!(f.code(), Some(case.expect), "{}", case.name);
        assert_eq!((f.expected, f.found, f.limit), (err.expected, err.found, err.limit), "{}", case.name);
        let text = f.to_string();
        assert_eq!(text, err.to_string(), "{}", case.name);
        assert!(text.starts_with(case.expect.name()), "{}: {text}", case.name);
        for w in case.words {
            assert!(text.contains(w), "{}: `{text}` lacks `{w}`", case.name);
        }
        seen.insert((case.expect, case.subject));
    }
    assert_eq!(seen.len(), cases().len(), "two cases reported the same error");
}

#[test]
fn a_fingerprint_mismatch_names_both_fingerprints() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(4)).unwrap();
    poke(&r, &bound, offset_of!(ImageHeader, abi_fingerprint), &0x1111_2222_3333_4444u64.to_le_bytes());
    let e = r.boot_resident(&bound, &LaunchParams::default()).unwrap_err();
    let RunnerError::Boot(f) = &e else { panic!("{e}") };
    assert_eq!(f.code(), Some(BootErrorCode::FingerprintMismatch));
    let text = e.to_string();
    assert!(text.contains("0x1111222233334444"), "{text}");
    assert!(text.contains(&format!("{ABI_FINGERPRINT:#018x}")), "{text}");
}

#[test]
fn a_descriptor_that_is_not_one_is_refused_without_touching_the_report() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(4)).unwrap();
    let block = r.prepare_launch(&bound, &LaunchParams::default()).unwrap();
    // SAFETY: a null descriptor is part of boot's contract.
    let e = unsafe { pto_device::boot::boot(std::ptr::null()) }.unwrap_err();
    assert_eq!(e.code, BootErrorCode::BadLaunchDescriptor);

    sim.copy_to_device(block.descriptor(), &0u64.to_le_bytes()).unwrap();
    // SAFETY: the descriptor lies in the sim pool; only its magic was changed.
    let e = unsafe { pto_device::boot::boot(pto_device::boot::dev_ptr::<LaunchDescriptor>(block.descriptor())) }
        .unwrap_err();
    assert_eq!((e.code, e.subject), (BootErrorCode::BadLaunchDescriptor, "magic"));
    assert_eq!(r.read_boot_report().unwrap(), BootOutcome::Pending);
}

#[test]
fn the_runner_boots_again_after_a_failed_boot() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(4)).unwrap();
    let mut bad = bound;
    bad.regions.sm.size = 64;
    assert!(matches!(r.boot_resident(&bad, &LaunchParams::default()), Err(RunnerError::Boot(_))));
    let ok = r.boot_resident(&bound, &LaunchParams::default()).unwrap();
    assert_eq!(ok.boot_count, 1);
}

#[test]
fn a_changed_byte_anywhere_in_a_fresh_image_is_refused_by_the_checksum_and_uploaded_again() {
    let sim = sim();
    let probe = runner(&sim).bind(&sizing(8)).unwrap();
    let positions = [
        ("header: built SM base", offset_of!(ImageHeader, built_sm_base) + 1),
        ("header: trailing padding", offset_of!(ImageHeader, _pad_tail) + 5),
        ("runtime header", probe.runtime_header_offset as usize + 72),
        ("arena body", probe.image_size as usize / 2),
        ("last byte", probe.image_size as usize - 1),
    ];
    for (name, at) in positions {
        let mut r = runner(&sim);
        let bound = r.bind(&sizing(8)).unwrap();
        let mut byte = read_bytes(&r, DevAddr(bound.regions.arena.base.get() + at as u64), 1);
        byte[0] ^= 0x20;
        poke_unsealed(&r, &bound, at, &byte);
        let e = r.boot_resident(&bound, &LaunchParams::default()).unwrap_err();
        let RunnerError::Boot(f) = &e else { panic!("{name}: {e}") };
        assert_eq!(f.code(), Some(BootErrorCode::ImageChecksumMismatch), "{name}: {e}");
        assert!(e.to_string().contains("BOOT_IMAGE_CHECKSUM_MISMATCH: image bytes hash to"), "{name}: {e}");
        // The failed fresh image is no longer resident: the next bind uploads it again and boots.
        assert!(r.cache().is_empty(), "{name}");
        let again = r.bind(&sizing(8)).unwrap();
        assert!(!again.cache_hit, "{name}");
        assert_eq!(r.bind_stats().uploads, 2, "{name}");
        r.boot_resident(&again, &LaunchParams::default()).unwrap_or_else(|e| panic!("{name}: after re-upload: {e}"));
    }
}

#[test]
fn only_the_first_boot_after_an_upload_hashes_the_image() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(8)).unwrap();
    assert!(r.cache().unverified(), "an uploaded image waits for its verifying boot");
    r.boot_resident(&bound, &LaunchParams::default()).unwrap();
    assert!(!r.cache().unverified());
    // A byte the reuse checks do not read: a reuse boot does not hash the image (O(1)) and boots.
    poke_unsealed(&r, &bound, offset_of!(ImageHeader, _pad_tail), &[0xEE]);
    let hit = r.bind(&sizing(8)).unwrap();
    assert!(hit.cache_hit);
    assert_eq!(r.boot_resident(&hit, &LaunchParams::default()).unwrap().boot_count, 2);
    // Asked to verify again (the bytes were rewritten from outside), the next boot refuses them.
    assert!(r.reverify_resident_image());
    let e = r.boot_resident(&hit, &LaunchParams::default()).unwrap_err();
    let RunnerError::Boot(f) = &e else { panic!("{e}") };
    assert_eq!(f.code(), Some(BootErrorCode::ImageChecksumMismatch), "{e}");
}
