//! The pointer audit: a host address planted in an image, or left in a wired runtime, is reported
//! with the field's name; the audit covers every pointer field of the runtime header.

mod image_support;

use std::mem::offset_of;

use pto_abi::error::BootErrorCode;
use pto_abi::fingerprint::ABI_TYPES;
use pto_abi::runtime::{RuntimeHeader, SmHandle};
use pto_abi::DevAddr;
use pto_device::boot::audit::{audit_pointers, pointer_fields, AUDITED_POINTER_COUNT};
use pto_host::{BoundImage, DeviceIo, DeviceRunner, LaunchParams, RunnerError};

use image_support::*;

/// Plants `value` in a runtime header field and re-seals the image checksum, so the first boot
/// (which verifies the checksum) reaches the audit.
fn plant(r: &DeviceRunner, b: &BoundImage, field_offset: usize, value: u64) {
    let at = b.regions.arena.base.get() + b.runtime_header_offset + field_offset as u64;
    r.backend().copy_to_device(DevAddr(at), &value.to_le_bytes()).unwrap();
    reseal(r, b);
}

#[test]
fn a_host_address_planted_in_a_class_b_field_fails_boot_naming_the_field() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(8)).unwrap();
    let host_buffer = vec![0u8; 4096];
    let host_addr = host_buffer.as_ptr() as u64;
    assert!(!sim.is_device_address(DevAddr(host_addr)), "host buffers never share device addresses");
    plant(&r, &bound, offset_of!(RuntimeHeader, ring_heaps) + 2 * 8, host_addr);

    let e = r.boot_resident(&bound, &LaunchParams::default()).unwrap_err();
    let RunnerError::Boot(f) = &e else { panic!("{e}") };
    assert_eq!(f.code(), Some(BootErrorCode::PointerAuditFailed));
    assert_eq!(f.subject, "ring_heaps[2]");
    assert_eq!(f.found, host_addr);
    assert_eq!((f.expected, f.limit), (bound.regions.heap.base.get(), bound.regions.heap.end()));
    let text = e.to_string();
    assert!(text.contains("ring_heaps[2]") && text.contains(&format!("{host_addr:#x}")), "{text}");
}

#[test]
fn a_host_address_planted_in_a_class_a_field_fails_boot_naming_the_field() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(8)).unwrap();
    let on_stack = 0u64;
    let host_addr = &on_stack as *const u64 as u64;
    plant(&r, &bound, offset_of!(RuntimeHeader, tensor_map_entries), host_addr);
    let e = boot_direct(&mut r, &bound).unwrap_err();
    assert_eq!((e.code, e.subject, e.found), (BootErrorCode::PointerAuditFailed, "tensor_map_entries", host_addr));
}

#[test]
fn the_audit_of_a_booted_runtime_names_a_field_left_pointing_at_host_memory() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(8)).unwrap();
    boot_direct(&mut r, &bound).unwrap();
    let base = bound.regions.arena.base.get();
    let mut rt: RuntimeHeader = r.backend().read_obj(DevAddr(base + bound.runtime_header_offset)).unwrap();
    let handle: SmHandle = r.backend().read_obj(DevAddr(base + bound.layout.offsets.sm_handle.offset)).unwrap();
    audit_pointers(&rt, &handle, &bound.regions).unwrap();

    let host = Box::new(0u32);
    rt.mailbox = DevAddr(&*host as *const u32 as u64);
    let e = audit_pointers(&rt, &handle, &bound.regions).unwrap_err();
    assert_eq!((e.code, e.subject), (BootErrorCode::PointerAuditFailed, "mailbox"));
    assert!(e.to_string().contains("runtime pointer mailbox"), "{e}");

    // An SM pointer left at another SM's address is caught too.
    let mut rt2: RuntimeHeader = r.backend().read_obj(DevAddr(base + bound.runtime_header_offset)).unwrap();
    rt2.ring_slot_states[3] = DevAddr(bound.regions.sm.end());
    let e = audit_pointers(&rt2, &handle, &bound.regions).unwrap_err();
    assert_eq!(e.subject, "ring_slot_states[3]");
}

#[test]
fn the_audit_covers_every_pointer_field_of_the_runtime_header() {
    let rt_layout = ABI_TYPES.iter().find(|t| t.name == "RuntimeHeader").unwrap();
    let first = rt_layout.fields.iter().position(|f| f.name == "arena_base").unwrap();
    let last = rt_layout.fields.iter().position(|f| f.name == "ring_heaps").unwrap();
    let pointer_words: usize = rt_layout.fields[first..=last].iter().map(|f| f.size / 8).sum();

    let rt = <RuntimeHeader as zerocopy::FromZeros>::new_zeroed();
    let handle = <SmHandle as zerocopy::FromZeros>::new_zeroed();
    let fields = pointer_fields(&rt, &handle);
    let in_header: Vec<&str> = fields.iter().map(|f| f.name).filter(|n| !n.starts_with("sm_handle.")).collect();
    assert_eq!(in_header.len(), pointer_words, "every DevAddr word from arena_base to ring_heaps is audited");
    assert_eq!(fields.len(), AUDITED_POINTER_COUNT);
    for f in &rt_layout.fields[first..=last] {
        let n = f.size / 8;
        let hits = in_header.iter().filter(|name| name.split('[').next() == Some(f.name)).count();
        assert_eq!(hits, n, "field {} has {n} pointers but {hits} are audited", f.name);
    }
}
