//! Malformed ChipCallable blobs are rejected with a specific error, never a panic.
//!
//! A changed byte is refused by the checksum before anything else past the size checks; the cases
//! that test a deeper check re-seal the checksum after their edit, so that check is what refuses.

use std::mem::offset_of;

use proptest::prelude::*;
use pto_abi::callable::{
    callable_checksum, seal_callable, BlobPart, CallableError, ChipCallableHeader, ChipCallableView,
    CoreCallableHeader, NameField, NameRule, CALLABLE_CHECKSUM_OFFSET, CHIP_CALLABLE_MAGIC, CHIP_HEADER_SIZE,
    CORE_CALLABLE_MAGIC,
};
use pto_abi::task::TensorDirection::{Input, Output};
use pto_host::{ChipCallable, CoreCallable, Orchestration};

/// A valid blob: 2 chip args, 16 orchestration bytes, three children with func ids 4, 9, 2.
fn valid() -> Vec<u8> {
    ChipCallable::build(
        &[Input, Output],
        &Orchestration { name: "orch".into(), config_name: "cfg".into(), bytes: vec![0xab; 16] },
        &[
            CoreCallable::sim(4, "a", &[Input, Output]),
            CoreCallable::sim(9, "b", &[Input]),
            CoreCallable::sim(2, "c", &[Output, Input, Output]),
        ],
    )
    .unwrap()
    .as_bytes()
    .to_vec()
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn child_offset(bytes: &[u8], i: usize) -> usize {
    get_u64(bytes, offset_of!(ChipCallableHeader, child_offsets) + 8 * i) as usize
}

fn parse(bytes: &[u8]) -> Result<(), CallableError> {
    ChipCallableView::parse(bytes).map(|_| ())
}

/// `edit` applied to the valid blob, re-sealed, parsed.
fn with(edit: impl FnOnce(&mut Vec<u8>)) -> Result<(), CallableError> {
    let mut bytes = valid();
    edit(&mut bytes);
    seal_callable(&mut bytes);
    parse(&bytes)
}

#[test]
fn the_fixture_is_valid() {
    assert_eq!(parse(&valid()), Ok(()));
}

#[test]
fn a_changed_byte_anywhere_is_refused_by_the_checksum() {
    let good = valid();
    let stored = get_u64(&good, CALLABLE_CHECKSUM_OFFSET);
    assert_eq!(callable_checksum(&good), Some(stored));
    for at in (0..good.len()).step_by(97).chain([CALLABLE_CHECKSUM_OFFSET, good.len() - 1]) {
        if (offset_of!(ChipCallableHeader, total_size)..offset_of!(ChipCallableHeader, total_size) + 8).contains(&at)
            || at < 16
        {
            continue; // magic, version and counts are checked first, total_size bounds the hash
        }
        let mut b = good.clone();
        b[at] ^= 0x01;
        match parse(&b) {
            Err(CallableError::ChecksumMismatch { .. }) => {}
            other => panic!("byte {at}: {other:?}"),
        }
    }
}

#[test]
fn every_truncation_is_reported_as_truncated() {
    let bytes = valid();
    let total = bytes.len() as u64;
    for len in 0..bytes.len() {
        let err = parse(&bytes[..len]).unwrap_err();
        let expected = if (len as u64) < CHIP_HEADER_SIZE {
            CallableError::Truncated { part: BlobPart::ChipHeader, needed: CHIP_HEADER_SIZE, available: len as u64 }
        } else {
            CallableError::Truncated { part: BlobPart::Blob, needed: total, available: len as u64 }
        };
        assert_eq!(err, expected, "length {len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(parse(&longer), Err(CallableError::TrailingBytes { total_size: total, available: total + 1 }));
}

#[test]
fn child_offset_past_the_end() {
    let err = with(|b| {
        let total = b.len() as u64;
        put_u64(b, offset_of!(ChipCallableHeader, child_offsets) + 16, total + 64);
    })
    .unwrap_err();
    assert!(matches!(err, CallableError::OutOfBounds { part: BlobPart::ChildHeader(2), .. }), "{err:?}");

    let err = with(|b| put_u64(b, offset_of!(ChipCallableHeader, child_offsets) + 16, !63u64)).unwrap_err();
    assert!(matches!(err, CallableError::OutOfBounds { part: BlobPart::ChildHeader(2), .. }), "{err:?}");
    assert!(err.to_string().contains("child 2 header"), "{err}");
}

#[test]
fn child_code_past_the_end_or_overflowing() {
    for size in [1000, u64::MAX, u64::MAX - 191] {
        let err = with(|b| {
            let at = child_offset(b, 1) + offset_of!(CoreCallableHeader, binary_size);
            put_u64(b, at, size);
        })
        .unwrap_err();
        assert!(
            matches!(err, CallableError::OutOfBounds { part: BlobPart::ChildCode(1), size: s, .. } if s == size),
            "{err:?}"
        );
    }
}

#[test]
fn misaligned_and_overlapping_children() {
    let err = with(|b| {
        let off = child_offset(b, 1) as u64;
        put_u64(b, offset_of!(ChipCallableHeader, child_offsets) + 8, off + 8);
    })
    .unwrap_err();
    assert!(matches!(err, CallableError::Misaligned { part: BlobPart::ChildHeader(1), align: 64, .. }), "{err:?}");

    let err = with(|b| {
        let first = child_offset(b, 0) as u64;
        put_u64(b, offset_of!(ChipCallableHeader, child_offsets) + 8, first);
    })
    .unwrap_err();
    assert!(matches!(err, CallableError::Overlap { part: BlobPart::ChildHeader(1), .. }), "{err:?}");

    let err = with(|b| put_u64(b, offset_of!(ChipCallableHeader, child_offsets), 0)).unwrap_err();
    assert!(matches!(err, CallableError::Overlap { part: BlobPart::ChildHeader(0), offset: 0, .. }), "{err:?}");
}

#[test]
fn func_ids_out_of_range_or_duplicated() {
    for id in [1024, 4096, u32::MAX] {
        let err = with(|b| put_u32(b, offset_of!(ChipCallableHeader, child_func_ids) + 4, id)).unwrap_err();
        assert_eq!(err, CallableError::FuncIdOutOfRange { child: 1, func_id: id, max: 1024 });
    }
    let err = with(|b| put_u32(b, offset_of!(ChipCallableHeader, child_func_ids) + 8, 4)).unwrap_err();
    assert_eq!(err, CallableError::DuplicateFuncId { child: 2, func_id: 4 });
    assert!(with(|b| put_u32(b, offset_of!(ChipCallableHeader, child_func_ids) + 8, 1023)).is_ok());
}

#[test]
fn overflowing_counts() {
    let err = with(|b| put_u32(b, offset_of!(ChipCallableHeader, arg_count), 257)).unwrap_err();
    assert_eq!(err, CallableError::TooManyArgs { part: BlobPart::ChipHeader, count: 257, max: 256 });
    for count in [1025, u32::MAX] {
        let err = with(|b| put_u32(b, offset_of!(ChipCallableHeader, child_count), count)).unwrap_err();
        assert_eq!(err, CallableError::TooManyChildren { count, max: 1024 });
    }
    let err = with(|b| {
        let at = child_offset(b, 0) + offset_of!(CoreCallableHeader, arg_count);
        put_u32(b, at, 33);
    })
    .unwrap_err();
    assert_eq!(err, CallableError::TooManyArgs { part: BlobPart::ChildHeader(0), count: 33, max: 32 });
    // A child count larger than the children present reads zeroed table entries: a duplicate
    // func id 0 or an offset overlapping the header, never a read past the blob.
    let err = with(|b| put_u32(b, offset_of!(ChipCallableHeader, child_count), 1024)).unwrap_err();
    assert!(matches!(err, CallableError::Overlap { part: BlobPart::ChildHeader(3), .. }), "{err:?}");
}

#[test]
fn sizes_magic_version_directions_names() {
    let err = with(|b| put_u32(b, 0, 0x1234)).unwrap_err();
    assert_eq!(
        err,
        CallableError::BadMagic { part: BlobPart::ChipHeader, found: 0x1234, expected: CHIP_CALLABLE_MAGIC }
    );
    let err = with(|b| {
        let at = child_offset(b, 2);
        put_u32(b, at, 7);
    })
    .unwrap_err();
    assert_eq!(
        err,
        CallableError::BadMagic { part: BlobPart::ChildHeader(2), found: 7, expected: CORE_CALLABLE_MAGIC }
    );
    let err = with(|b| put_u32(b, offset_of!(ChipCallableHeader, version), 2)).unwrap_err();
    assert_eq!(err, CallableError::UnsupportedVersion { found: 2, supported: 1 });

    let err = with(|b| put_u64(b, offset_of!(ChipCallableHeader, total_size), 64)).unwrap_err();
    assert_eq!(err, CallableError::TotalSizeTooSmall { total_size: 64 });
    let err = with(|b| {
        let total = b.len() as u64;
        put_u64(b, offset_of!(ChipCallableHeader, total_size), total - 64);
    })
    .unwrap_err();
    assert!(matches!(err, CallableError::TrailingBytes { .. }), "{err:?}");

    let err = with(|b| b[offset_of!(ChipCallableHeader, signature) + 1] = 5).unwrap_err();
    assert_eq!(err, CallableError::BadDirection { part: BlobPart::ChipHeader, arg: 1, value: 5 });
    let err = with(|b| {
        let at = child_offset(b, 2) + offset_of!(CoreCallableHeader, signature) + 2;
        b[at] = 200;
    })
    .unwrap_err();
    assert_eq!(err, CallableError::BadDirection { part: BlobPart::ChildHeader(2), arg: 2, value: 200 });

    let name = offset_of!(ChipCallableHeader, orchestration_name);
    let err = with(|b| b[name..name + 64].fill(b'x')).unwrap_err();
    assert_eq!(err, CallableError::BadName { field: NameField::Orchestration, rule: NameRule::NotTerminated });
    let err = with(|b| b[offset_of!(ChipCallableHeader, config_name) + 10] = b'x').unwrap_err();
    assert_eq!(err, CallableError::BadName { field: NameField::Config, rule: NameRule::JunkAfterTerminator });
    let err = with(|b| {
        let at = child_offset(b, 1) + offset_of!(CoreCallableHeader, name);
        b[at] = 0xff;
    })
    .unwrap_err();
    assert_eq!(err, CallableError::BadName { field: NameField::Child(1), rule: NameRule::NotUtf8 });
}

#[test]
fn orchestration_out_of_bounds_or_misplaced() {
    let err = with(|b| put_u64(b, offset_of!(ChipCallableHeader, orchestration_size), u64::MAX)).unwrap_err();
    assert!(matches!(err, CallableError::OutOfBounds { part: BlobPart::Orchestration, .. }), "{err:?}");
    let err = with(|b| put_u64(b, offset_of!(ChipCallableHeader, orchestration_offset), 64)).unwrap_err();
    assert!(matches!(err, CallableError::Overlap { part: BlobPart::Orchestration, offset: 64, .. }), "{err:?}");
    let err =
        with(|b| put_u64(b, offset_of!(ChipCallableHeader, orchestration_offset), CHIP_HEADER_SIZE + 1)).unwrap_err();
    assert!(matches!(err, CallableError::Misaligned { part: BlobPart::Orchestration, .. }), "{err:?}");
    // Orchestration bytes running into the first child.
    let err = with(|b| put_u64(b, offset_of!(ChipCallableHeader, orchestration_size), 100)).unwrap_err();
    assert!(matches!(err, CallableError::Overlap { part: BlobPart::ChildHeader(0), .. }), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random writes into a valid blob (biased towards the fields that matter) never panic; an
    /// accepted blob still yields in-bounds children and hashes.
    #[test]
    fn random_corruption_never_panics(
        edits in proptest::collection::vec((0usize..14_000, any::<u64>(), 0u8..3), 1..6),
        cut in proptest::option::of(0usize..14_000),
        reseal in any::<bool>(),
    ) {
        let mut bytes = valid();
        let hot = [
            offset_of!(ChipCallableHeader, arg_count),
            offset_of!(ChipCallableHeader, child_count),
            offset_of!(ChipCallableHeader, total_size),
            offset_of!(ChipCallableHeader, orchestration_offset),
            offset_of!(ChipCallableHeader, orchestration_size),
            offset_of!(ChipCallableHeader, child_func_ids),
            offset_of!(ChipCallableHeader, child_offsets),
            offset_of!(ChipCallableHeader, child_offsets) + 8,
            child_offset(&bytes, 0) + offset_of!(CoreCallableHeader, binary_size),
            child_offset(&bytes, 1) + offset_of!(CoreCallableHeader, arg_count),
        ];
        for (pos, value, mode) in edits {
            let at = match mode {
                0 => hot[pos % hot.len()],
                _ => pos % bytes.len(),
            };
            let width = if mode == 2 { 1 } else { 8.min(bytes.len() - at) };
            bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        }
        // Half the cases re-seal, so the checks past the checksum see the edits too.
        if reseal {
            seal_callable(&mut bytes);
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.min(bytes.len()));
        }
        if let Ok(view) = ChipCallableView::parse(&bytes) {
            for child in view.children() {
                prop_assert!(child.code_offset as usize + child.code.len() <= bytes.len());
            }
            let _ = (view.content_hash(), view.aicore_image_hash(), view.orchestration_bytes().len());
        }
    }
}
