//! Boot: turn the arena image the host placed in device memory into a runtime ready to run.
//!
//! [`boot`] runs on the orchestrator thread before any scheduler thread touches the runtime:
//!
//! 1. **validate** the launch descriptor and the image ([`validate`]): magic, ABI version,
//!    fingerprint, sizes against the regions of this launch, null and misaligned bases, the stored
//!    layout against the one computed from the stored sizing; and, only when the launch says the
//!    image's bytes arrived fresh (`LAUNCH_FLAG_VERIFY_IMAGE`: the first boot after an upload), the
//!    image checksum over every byte. A boot that reuses the resident image (which earlier runs
//!    mutated) skips the checksum and stays O(1) in the image size;
//! 2. **wire** class-A pointers, arena base + layout offset ([`wire::wire_arena_pointers`]);
//! 3. **rebind** class-B pointers from this launch's SM and heap bases
//!    ([`rebind::rebind_device_pointers_from_layout`]);
//! 4. **reset for reuse** in O(1) ([`reset::reset_for_reuse`]; the runtime's hook is
//!    [`reset::reset_runtime_structures`]);
//! 5. **publish** "runtime ready": `RuntimeHeader::ready` and, last, the launch's
//!    [`BootReport`] state.
//!
//! In test and debug builds the [`audit`] checks every pointer before wiring (against the regions
//! the image was built for, or, for an image a boot already rewired, the regions of that boot:
//! [`audit::regions_before_wiring`]) and after rebinding (against this launch's regions).
//!
//! Every failure is a [`BootError`] that boot also writes into the launch's `BootReport`, so the
//! host can print it in words. AICPU threads other than the booting one wait on
//! `BootReport::state` (the host writes it PENDING with every launch), never on
//! `RuntimeHeader::ready`, which still holds the previous boot's value until this boot clears it.
//!
//! On the simulated device a [`DevAddr`] is the real address of the byte in the device pool, as it
//! is on the firmware, so this code dereferences device addresses directly.

pub mod audit;
mod error;
pub mod rebind;
mod regions;
pub mod reset;
pub mod validate;
pub mod wire;

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use pto_abi::consts::LANE_COUNT;
use pto_abi::launch::{
    BootReport, LaunchDescriptor, BOOT_STATE_FAILED, BOOT_STATE_READY, BOOT_SUBJECT_BYTES, LAUNCH_FLAG_VERIFY_IMAGE,
};
use pto_abi::layout::{HeapLayout, Region, SmLayout};
use pto_abi::runtime::{RuntimeHeader, SmHandle};
use pto_abi::sm::SmHeader;
use pto_abi::{DevAddr, RuntimeArenaLayout};

pub use error::{write_boot_error, BootError};
pub use regions::{DeviceRegions, RegionSpan};
pub use reset::ResetKind;
pub use validate::ValidatedImage;

use pto_abi::error::BootErrorCode as Code;

/// The pointer a device address stands for (identity on the firmware and on the simulated device).
pub const fn dev_ptr<T>(addr: DevAddr) -> *mut T {
    addr.get() as usize as *mut T
}

/// A booted runtime: the wired runtime header, the regions of this launch and the layouts.
///
/// It only describes device memory; every access through its pointers is `unsafe` and follows the
/// runtime's single-writer rules.
#[derive(Clone, Copy, Debug)]
pub struct BootedRuntime {
    header: *mut RuntimeHeader,
    regions: DeviceRegions,
    layout: RuntimeArenaLayout,
    sm: SmLayout,
    heap: HeapLayout,
    epoch: u64,
    boot_count: u64,
    reset: ResetKind,
}

// SAFETY: a `BootedRuntime` is a set of device addresses and layouts. Device memory is shared by
// design between the AICPU threads; the raw pointers it hands out carry no ownership, and every
// dereference is an `unsafe` operation bound by the runtime's protocol.
unsafe impl Send for BootedRuntime {}
// SAFETY: as for `Send`; the struct itself is immutable after boot.
unsafe impl Sync for BootedRuntime {}

impl BootedRuntime {
    /// The wired runtime header in the arena.
    pub fn header(&self) -> *mut RuntimeHeader {
        self.header
    }

    /// Bases and sizes of the arena, SM and GM heap of this launch.
    pub fn regions(&self) -> &DeviceRegions {
        &self.regions
    }

    /// The validated arena layout (sizing and offsets).
    pub fn layout(&self) -> &RuntimeArenaLayout {
        &self.layout
    }

    /// The SM layout of the sizing.
    pub fn sm_layout(&self) -> &SmLayout {
        &self.sm
    }

    /// The GM heap layout of the sizing.
    pub fn heap_layout(&self) -> &HeapLayout {
        &self.heap
    }

    /// The epoch of this boot (>= 1).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Successful boots of the resident image, this one included.
    pub fn boot_count(&self) -> u64 {
        self.boot_count
    }

    /// The reset this boot performed.
    pub fn reset_kind(&self) -> ResetKind {
        self.reset
    }

    /// The SM header at SM offset 0.
    pub fn sm_header(&self) -> *mut SmHeader {
        dev_ptr(self.regions.sm.base)
    }

    /// The start of an arena sub-region (an `ArenaOffsets` region) as a pointer.
    pub fn arena_ptr<T>(&self, region: Region) -> *mut T {
        dev_ptr(DevAddr(self.regions.arena.base.get().wrapping_add(region.offset)))
    }

    /// The start of an SM sub-region (an `SmLayout` region) as a pointer.
    pub fn sm_ptr<T>(&self, region: Region) -> *mut T {
        dev_ptr(DevAddr(self.regions.sm.base.get().wrapping_add(region.offset)))
    }
}

/// Boots the runtime described by the launch descriptor at `desc`.
///
/// On success the runtime is wired, rebound, reset and published ready; on failure nothing in the
/// arena is trusted and the error is also written to the launch's boot report (when the descriptor
/// is readable and names one).
///
/// # Safety
/// `desc` must be null or point to a readable launch descriptor in device memory. If its magic and
/// fingerprint are right, its region bases and sizes must describe device memory the caller may
/// read and write, with no other thread touching the arena or SM until boot returns; a non-null
/// `trace_base` names `trace_bytes` bytes of device memory the caller may read and write.
pub unsafe fn boot(desc: *const LaunchDescriptor) -> Result<BootedRuntime, BootError> {
    if desc.is_null() {
        return Err(BootError::new(Code::BadLaunchDescriptor, "address", 1, 0));
    }
    if !desc.is_aligned() {
        return Err(BootError::new(Code::MisalignedBase, "launch descriptor", 64, desc as u64));
    }
    // SAFETY: non-null, aligned, and readable by the caller's contract.
    let d = unsafe { &*desc };
    // A descriptor with the wrong magic or fingerprint may not even place `boot_report` where we
    // read it, so only a descriptor that passed those two checks gets a report.
    validate::validate_launch_identity(d)?;
    let report: *mut BootReport = dev_ptr(d.boot_report);
    // SAFETY: the descriptor is identified, so its regions are the caller's device memory.
    let result = validate::validate_launch(d).and_then(|regions| unsafe { boot_validated(d, &regions) });
    if !report.is_null() {
        // SAFETY: a non-null `boot_report` of a valid descriptor is a writable BootReport.
        unsafe { write_report(report, &result) };
    }
    result
}

/// Boot after the launch descriptor passed validation.
///
/// # Safety
/// As for [`boot`].
unsafe fn boot_validated(d: &LaunchDescriptor, regions: &DeviceRegions) -> Result<BootedRuntime, BootError> {
    // A traced launch whose trace region is malformed fails here, before anything runs, instead
    // of running untraced.
    // SAFETY: the caller's contract covers the trace region the descriptor names; the check reads
    // its header only after the base and size passed.
    unsafe { crate::trace::check_region(dev_ptr::<u8>(d.trace_base), d.trace_bytes, d.trace_level) }
        .map_err(|e| BootError::new(Code::BadTraceRegion, e.subject, e.expected, e.found))?;
    // SAFETY: `image_bytes <= arena_region_size` (validated), and the arena region is device
    // memory nobody writes during boot.
    let bytes = unsafe { core::slice::from_raw_parts(dev_ptr::<u8>(regions.arena.base), d.image_bytes as usize) };
    // The checksum covers the image as built: checked when its bytes arrived fresh (the host's
    // first launch after an upload), not on a boot that reuses an image earlier boots mutated.
    let image = if d.flags & LAUNCH_FLAG_VERIFY_IMAGE != 0 {
        validate::validate_image(bytes, regions.arena.size)?
    } else {
        validate::validate_resident_image(bytes, regions.arena.size)?
    };
    validate::validate_regions_fit(&image, regions)?;

    let o = &image.layout.offsets;
    let header: *mut RuntimeHeader = dev_ptr(DevAddr(regions.arena.base.get() + o.runtime_header.offset));
    let sm_handle: *mut SmHandle = dev_ptr(DevAddr(regions.arena.base.get() + o.sm_handle.offset));
    // SAFETY: both lie inside the validated image, are 64-aligned (1024-aligned base, 64-aligned
    // offsets), and the booting thread owns the arena until it publishes ready.
    let (rt, handle) = unsafe { (&mut *header, &mut *sm_handle) };
    if audit::AUDIT_AT_BOOT {
        let before = audit::regions_before_wiring(&image, rt);
        audit::audit_pointers(rt, handle, &before).inspect_err(|e| rt.boot_status = e.code as u32)?;
    }
    // SAFETY: `ready` is a u32 in the runtime header; inspectors may read it concurrently.
    unsafe { AtomicU32::from_ptr(&mut rt.ready).store(0, Ordering::Release) };

    wire::wire_arena_pointers(rt, regions.arena.base, o);
    rebind::rebind_device_pointers_from_layout(rt, handle, regions, &image.sm, &image.heap);
    if audit::AUDIT_AT_BOOT {
        audit::audit_pointers(rt, handle, regions).inspect_err(|e| rt.boot_status = e.code as u32)?;
    }

    let (epoch, reset) = reset::next_epoch(rt.epoch, rt.boot_count);
    rt.epoch = epoch;
    rt.cluster_count = d.cluster_count;
    rt.core_count = d.cluster_count * LANE_COUNT as u32;
    rt.sched_thread_count = d.aicpu_thread_count.saturating_sub(1);
    let booted = BootedRuntime {
        header,
        regions: *regions,
        layout: image.layout,
        sm: image.sm,
        heap: image.heap,
        epoch,
        boot_count: rt.boot_count.wrapping_add(1),
        reset,
    };
    // SAFETY: the runtime is wired and rebound; the booting thread still owns it.
    unsafe { reset::reset_for_reuse(&booted, reset) };

    // SAFETY: as above; `ready` is published last with release ordering.
    unsafe {
        (*header).boot_count = booted.boot_count;
        (*header).boot_status = 0;
        AtomicU32::from_ptr(ptr::addr_of_mut!((*header).ready)).store(1, Ordering::Release);
    }
    Ok(booted)
}

/// Writes the outcome into the boot report; `state` last, with release ordering.
///
/// # Safety
/// `report` must point to a writable `BootReport`.
unsafe fn write_report(report: *mut BootReport, result: &Result<BootedRuntime, BootError>) {
    let mut r = BootReport {
        state: BOOT_STATE_READY,
        code: 0,
        expected: 0,
        found: 0,
        limit: 0,
        epoch: 0,
        boot_count: 0,
        _pad: [0; 16],
        subject: [0; BOOT_SUBJECT_BYTES],
    };
    match result {
        Ok(b) => {
            r.epoch = b.epoch;
            r.boot_count = b.boot_count;
        }
        Err(e) => {
            r.state = BOOT_STATE_FAILED;
            r.code = e.code as u32;
            r.expected = e.expected;
            r.found = e.found;
            r.limit = e.limit;
            let n = e.subject.len().min(BOOT_SUBJECT_BYTES - 1);
            r.subject[..n].copy_from_slice(&e.subject.as_bytes()[..n]);
        }
    }
    let state = r.state;
    r.state = 0;
    const _: () = assert!(size_of::<BootReport>() % 64 == 0);
    // SAFETY: the caller guarantees `report` is writable; `state` is a u32 the host and other AICPU
    // threads read with acquire ordering.
    unsafe {
        ptr::write_volatile(report, r);
        AtomicU32::from_ptr(ptr::addr_of_mut!((*report).state)).store(state, Ordering::Release);
    }
}
