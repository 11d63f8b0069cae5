//! A runtime booted in host memory, for tests and benchmarks that exercise device code without a
//! backend (feature `testkit`).
//!
//! [`HostRuntime::new`] plays the host's part and then the device's, with the device's own code:
//! it allocates zeroed 1024-aligned regions for the arena, SM and GM heap, writes the image the
//! way the host's image builder does (image header, runtime-header identity, pointers baked by
//! [`wire_arena_pointers`] and [`rebind_device_pointers_from_layout`] for these bases), writes a
//! launch descriptor for the regions, and calls [`boot::boot`]: validation, the pointer audit,
//! wiring, rebinding, [`reset_for_reuse`](crate::boot::reset::reset_for_reuse) and "runtime
//! ready". A last [`audit_pointers`] checks every pointer against the regions. [`HostRuntime::reset`]
//! boots the resident image again, the device's reset between two runs. A new region or pointer
//! therefore needs no change here.

extern crate std;

use core::mem::size_of;
use core::ptr;

use pto_abi::consts::CACHE_LINE;
use pto_abi::launch::{BootReport, LaunchDescriptor, LAUNCH_MAGIC};
use pto_abi::layout::image_header;
use pto_abi::runtime::{RuntimeHeader, SmHandle, RUNTIME_MAGIC};
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::{heap_layout, reserve_layout, sm_layout, DevAddr, LayoutError, RuntimeArenaLayout, ABI_FINGERPRINT};
use zerocopy::FromZeros;

use crate::boot::audit::audit_pointers;
use crate::boot::rebind::rebind_device_pointers_from_layout;
use crate::boot::wire::wire_arena_pointers;
use crate::boot::{self, dev_ptr, BootError, BootedRuntime, DeviceRegions, RegionSpan};
use crate::hostmem::HostRegion;
use crate::view::RuntimeView;

/// Offset of the boot report after the launch descriptor in the launch region.
const REPORT_OFFSET: usize = size_of::<LaunchDescriptor>().next_multiple_of(CACHE_LINE as usize);

/// A runtime in host memory, booted by the device's boot code.
pub struct HostRuntime {
    arena: HostRegion,
    _sm: HostRegion,
    _heap: HostRegion,
    /// The launch descriptor, then the boot report.
    launch: HostRegion,
    booted: BootedRuntime,
}

impl HostRuntime {
    /// Lays out a runtime for `sizing`, builds its image in host memory and boots it.
    ///
    /// # Errors
    /// The sizing's layout error. Boot itself cannot fail on an image built here; if it does, that
    /// is a bug and this panics with the boot error.
    pub fn new(sizing: &ArenaSizingKey) -> Result<Self, LayoutError> {
        let layout = reserve_layout(sizing)?;
        let sm = sm_layout(sizing)?;
        let heap = heap_layout(sizing)?;
        let o = &layout.offsets;
        let arena = HostRegion::new(o.arena_size);
        let sm_region = HostRegion::new(sm.total_size);
        let heap_region = HostRegion::new(heap.total_size);
        let regions = DeviceRegions {
            arena: RegionSpan::new(arena.addr(), o.arena_size),
            sm: RegionSpan::new(sm_region.addr(), sm.total_size),
            heap: RegionSpan::new(heap_region.addr(), heap.total_size),
        };

        // The image, as the host's builder writes it: header, runtime-header identity and the
        // pointers baked for these bases by the device's own wiring functions.
        let header =
            image_header(&layout, arena.addr(), sm_region.addr(), heap_region.addr(), sm.total_size, heap.total_size);
        let mut rt = RuntimeHeader::new_zeroed();
        rt.magic = RUNTIME_MAGIC;
        rt.abi_fingerprint = ABI_FINGERPRINT;
        let mut handle = SmHandle::new_zeroed();
        wire_arena_pointers(&mut rt, arena.addr(), o);
        rebind_device_pointers_from_layout(&mut rt, &mut handle, &regions, &sm, &heap);
        // SAFETY: the arena is zeroed, 1024-aligned and `arena_size` bytes long; the layout puts
        // each of the three structures at a 64-aligned offset inside it; nobody else holds it.
        unsafe {
            ptr::write(arena.ptr().cast(), header);
            ptr::write(arena.ptr().add(o.runtime_header.offset as usize).cast(), rt);
            ptr::write(arena.ptr().add(o.sm_handle.offset as usize).cast(), handle);
        }

        let launch = HostRegion::new((REPORT_OFFSET + size_of::<BootReport>()) as u64);
        let mut desc = LaunchDescriptor::new_zeroed();
        desc.magic = LAUNCH_MAGIC;
        desc.abi_fingerprint = ABI_FINGERPRINT;
        desc.arena_base = regions.arena.base;
        desc.arena_region_size = regions.arena.size;
        desc.sm_base = regions.sm.base;
        desc.sm_region_size = regions.sm.size;
        desc.heap_base = regions.heap.base;
        desc.heap_region_size = regions.heap.size;
        desc.aicpu_thread_count = 1;
        desc.boot_report = DevAddr(launch.addr().get() + REPORT_OFFSET as u64);
        desc.image_bytes = o.arena_size;
        // SAFETY: the launch region is zeroed, 1024-aligned and holds a descriptor and a report.
        unsafe { ptr::write(launch.ptr().cast(), desc) };

        // SAFETY: the descriptor names the three regions this function owns; no other thread
        // touches them.
        let booted = unsafe { Self::boot(&launch) }.unwrap_or_else(|e| panic!("booting a host runtime: {e}"));
        Ok(HostRuntime { arena, _sm: sm_region, _heap: heap_region, launch, booted })
    }

    /// Boots (again) from the launch descriptor at the start of `launch`, then audits every pointer.
    ///
    /// # Safety
    /// `launch` holds a launch descriptor whose regions are live, and no other thread touches them.
    unsafe fn boot(launch: &HostRegion) -> Result<BootedRuntime, BootError> {
        // SAFETY: the caller's contract.
        let booted = unsafe { boot::boot(launch.ptr().cast::<LaunchDescriptor>()) }?;
        // SAFETY: boot wired the header; the SM handle lies at its layout offset in the arena.
        let (rt, handle) =
            unsafe { (&*booted.header(), &*booted.arena_ptr::<SmHandle>(booted.layout().offsets.sm_handle)) };
        audit_pointers(rt, handle, booted.regions())?;
        Ok(booted)
    }

    /// The launch descriptor the runtime was booted from (its boot report follows it).
    pub fn launch_descriptor(&self) -> *mut LaunchDescriptor {
        self.launch.ptr().cast()
    }

    /// The runtime header.
    pub fn header(&self) -> *mut RuntimeHeader {
        self.booted.header()
    }

    /// A view of the runtime.
    pub fn view(&self) -> RuntimeView {
        // SAFETY: boot wired and audited the header; the regions live as long as `self`.
        unsafe { RuntimeView::from_header(self.header()) }.expect("a booted host runtime has a valid view")
    }

    /// Prepares the runtime for the next run the way the device does between two launches of a
    /// resident image: it boots the image again (validation, wiring, rebinding, the O(1)
    /// [`reset_for_reuse`](crate::boot::reset::reset_for_reuse) with a new epoch, "ready"), then
    /// audits every pointer.
    ///
    /// # Safety
    /// No other thread uses the runtime (no orchestrator, scheduler or core runs on it) until this
    /// returns, and nothing keeps a reference into the runtime's memory across the call.
    ///
    /// # Panics
    /// When boot refuses the resident image: something overwrote the image header or a pointer.
    pub unsafe fn reset(&self) {
        // SAFETY: the caller guarantees exclusive use; the launch descriptor is the one `new` wrote.
        let booted = unsafe { Self::boot(&self.launch) }.unwrap_or_else(|e| panic!("re-booting a host runtime: {e}"));
        debug_assert_eq!(booted.header(), self.booted.header());
    }

    /// The layout.
    pub fn layout(&self) -> &RuntimeArenaLayout {
        self.booted.layout()
    }

    /// The regions of the runtime (arena, SM, heap).
    pub fn regions(&self) -> &DeviceRegions {
        self.booted.regions()
    }

    /// The boot report of the latest boot.
    pub fn boot_report(&self) -> BootReport {
        // SAFETY: the report lies in the launch region; boot wrote it and no one writes it now.
        unsafe { ptr::read_volatile(dev_ptr::<BootReport>(DevAddr(self.launch.addr().get() + REPORT_OFFSET as u64))) }
    }

    /// Base of the arena.
    pub fn arena_base(&self) -> DevAddr {
        self.arena.addr()
    }
}

#[cfg(test)]
mod tests {
    use pto_abi::launch::BOOT_STATE_READY;

    use super::*;

    #[test]
    fn a_host_runtime_is_booted_and_each_reset_is_a_reuse_boot_with_a_new_epoch() {
        let host = HostRuntime::new(&ArenaSizingKey::uniform(16, 64 << 10, 64)).unwrap();
        let r = host.boot_report();
        assert_eq!((r.state, r.code, r.epoch, r.boot_count), (BOOT_STATE_READY, 0, 1, 1));
        // SAFETY: the header is wired and no other thread runs.
        let rt = unsafe { &*host.header() };
        assert_eq!((rt.ready, rt.epoch, rt.arena_base), (1, 1, host.arena_base()));
        for _ in 0..2 {
            // SAFETY: no other thread uses the runtime.
            unsafe { host.reset() };
        }
        let r = host.boot_report();
        assert_eq!((r.state, r.epoch, r.boot_count), (BOOT_STATE_READY, 3, 3));
        assert_eq!(host.booted.reset_kind(), boot::ResetKind::Full, "the first boot clears slot states");
    }
}
