//! Validation: nothing in an image or a launch descriptor is trusted before these checks pass.
//!
//! [`validate_image`] works on plain bytes, so the device (its arena region) and the host
//! (`pto image inspect` on a file) run the very same checks.
//!
//! Two depths: [`validate_image`] checks an image whose bytes arrived fresh (a file, or the first
//! boot after an upload), the image checksum included; [`validate_resident_image`] checks an image
//! earlier boots already mutated in place, where the checksum no longer holds, and stays O(1) in the
//! image size. Boot picks the first when the launch carries `LAUNCH_FLAG_VERIFY_IMAGE`.

use core::mem::size_of;

use pto_abi::callable::MAX_CHIP_ARGS;
use pto_abi::consts::{MAX_AICPU_THREADS, MAX_CLUSTERS, REGION_BASE_ALIGN};
use pto_abi::error::BootErrorCode as Code;
use pto_abi::image::{image_checksum, ImageHeader, IMAGE_MAGIC};
use pto_abi::launch::{LaunchDescriptor, LAUNCH_MAGIC};
use pto_abi::layout::{heap_layout, reserve_layout, sm_layout, HeapLayout, LayoutError, SmLayout};
use pto_abi::runtime::{RuntimeHeader, RUNTIME_MAGIC};
use pto_abi::{RuntimeArenaLayout, ABI_FINGERPRINT, ABI_VERSION};
use zerocopy::FromBytes;

use super::error::BootError;
use super::regions::{DeviceRegions, RegionSpan};

/// An image whose header, layout and runtime header passed every check.
#[derive(Clone, Copy, Debug)]
pub struct ValidatedImage {
    /// The image header.
    pub header: ImageHeader,
    /// The stored layout (equal to the one computed from its sizing).
    pub layout: RuntimeArenaLayout,
    /// The SM layout of that sizing.
    pub sm: SmLayout,
    /// The GM heap layout of that sizing.
    pub heap: HeapLayout,
    /// The runtime header as stored.
    pub runtime_header: RuntimeHeader,
}

impl ValidatedImage {
    /// The regions the image was built for (its baked class-B pointers point into these).
    pub fn built_regions(&self) -> DeviceRegions {
        DeviceRegions {
            arena: RegionSpan::new(self.header.built_arena_base, self.header.image_size),
            sm: RegionSpan::new(self.header.built_sm_base, self.header.sm_size),
            heap: RegionSpan::new(self.header.built_heap_base, self.header.heap_size),
        }
    }
}

fn layout_error(e: LayoutError) -> BootError {
    match e {
        LayoutError::Sizing(s) => {
            BootError::new(Code::InvalidSizing, s.field.name(), s.ring.map_or(u64::MAX, u64::from), s.value)
        }
        LayoutError::Overflow { region } => BootError::new(Code::InvalidSizing, region, 0, u64::MAX),
    }
}

fn expect_eq(code: Code, subject: &'static str, expected: u64, found: u64) -> Result<(), BootError> {
    if expected == found {
        Ok(())
    } else {
        Err(BootError::new(code, subject, expected, found))
    }
}

/// Checks an image whose bytes arrived fresh, held in `bytes`, placed in a region of
/// `region_size` bytes.
///
/// Order: header present, magic, ABI version, header size, fingerprint, image size against the
/// region, image size against the bytes present, **checksum** of the image's `image_size` bytes,
/// sizing, stored layout against the layout computed from the stored sizing, runtime header magic
/// and fingerprint. The first failing check is returned.
pub fn validate_image(bytes: &[u8], region_size: u64) -> Result<ValidatedImage, BootError> {
    check_image(bytes, region_size, true)
}

/// Checks a resident image that earlier boots mutated in place: every check of
/// [`validate_image`] except the checksum (which covers the image as built), so its cost does not
/// grow with the image.
pub fn validate_resident_image(bytes: &[u8], region_size: u64) -> Result<ValidatedImage, BootError> {
    check_image(bytes, region_size, false)
}

/// Checks that the first `image_size` bytes of `bytes` hash to the header's checksum.
fn check_checksum(bytes: &[u8], header: &ImageHeader) -> Result<(), BootError> {
    // In bounds: the caller checked image_size <= bytes.len().
    let image = &bytes[..header.image_size as usize];
    let computed = image_checksum(image).ok_or(BootError::new(
        Code::ImageTruncated,
        "image header",
        size_of::<ImageHeader>() as u64,
        header.image_size,
    ))?;
    expect_eq(Code::ImageChecksumMismatch, "image", header.checksum, computed)
}

fn check_image(bytes: &[u8], region_size: u64, fresh: bool) -> Result<ValidatedImage, BootError> {
    let header_bytes = size_of::<ImageHeader>() as u64;
    let present = bytes.len() as u64;
    let Ok((header, _)) = ImageHeader::read_from_prefix(bytes) else {
        return Err(BootError::new(Code::ImageTruncated, "image header", header_bytes, present));
    };
    expect_eq(Code::BadMagic, "magic", IMAGE_MAGIC, header.magic)?;
    expect_eq(Code::UnsupportedVersion, "abi_version", ABI_VERSION as u64, header.abi_version as u64)?;
    expect_eq(Code::HeaderSizeMismatch, "header_size", header_bytes, header.header_size as u64)?;
    expect_eq(Code::FingerprintMismatch, "image", ABI_FINGERPRINT, header.abi_fingerprint)?;
    if header.image_size > region_size {
        return Err(BootError::new(Code::ImageLargerThanRegion, "image", region_size, header.image_size));
    }
    if header.image_size > present {
        return Err(BootError::new(Code::ImageTruncated, "image", header.image_size, present));
    }
    if fresh {
        check_checksum(bytes, &header)?;
    }

    let layout = reserve_layout(&header.layout.sizing).map_err(layout_error)?;
    compare_layouts(&layout, &header.layout)?;
    let sm = sm_layout(&layout.sizing).map_err(layout_error)?;
    let heap = heap_layout(&layout.sizing).map_err(layout_error)?;
    let o = &layout.offsets;
    expect_eq(Code::LayoutMismatch, "image_size", o.arena_size, header.image_size)?;
    expect_eq(Code::LayoutMismatch, "runtime_header_offset", o.runtime_header.offset, header.runtime_header_offset)?;
    expect_eq(Code::LayoutMismatch, "sm_size", sm.total_size, header.sm_size)?;
    expect_eq(Code::LayoutMismatch, "heap_size", heap.total_size, header.heap_size)?;

    // In bounds: the runtime header region lies inside [0, arena_size) and image_size <= present.
    let rt_at = o.runtime_header.offset as usize;
    let Ok((runtime_header, _)) = RuntimeHeader::read_from_prefix(&bytes[rt_at..]) else {
        return Err(BootError::new(Code::ImageTruncated, "runtime header", o.runtime_header.end(), present));
    };
    expect_eq(Code::BadRuntimeHeader, "magic", RUNTIME_MAGIC, runtime_header.magic)?;
    expect_eq(Code::FingerprintMismatch, "runtime header", ABI_FINGERPRINT, runtime_header.abi_fingerprint)?;
    Ok(ValidatedImage { header, layout, sm, heap, runtime_header })
}

/// Names the first stored region or capacity that differs from the computed layout.
fn compare_layouts(computed: &RuntimeArenaLayout, stored: &RuntimeArenaLayout) -> Result<(), BootError> {
    if computed == stored {
        return Ok(());
    }
    for (c, s) in computed.offsets.regions().iter().zip(stored.offsets.regions().iter()) {
        expect_eq(Code::LayoutMismatch, c.name, c.region.offset, s.region.offset)?;
        expect_eq(Code::LayoutMismatch, c.name, c.region.size, s.region.size)?;
    }
    let (c, s) = (&computed.offsets, &stored.offsets);
    expect_eq(Code::LayoutMismatch, "ready_queue_capacity", c.ready_queue_capacity, s.ready_queue_capacity)?;
    expect_eq(Code::LayoutMismatch, "tensor_map_entry_count", c.tensor_map_entry_count, s.tensor_map_entry_count)?;
    expect_eq(Code::LayoutMismatch, "tensor_map_bucket_count", c.tensor_map_bucket_count, s.tensor_map_bucket_count)?;
    expect_eq(Code::LayoutMismatch, "scope_task_capacity", c.scope_task_capacity, s.scope_task_capacity)?;
    expect_eq(Code::LayoutMismatch, "mailbox_capacity", c.mailbox_capacity, s.mailbox_capacity)?;
    expect_eq(Code::LayoutMismatch, "arena_size", c.arena_size, s.arena_size)?;
    // Unreachable for a layout whose every field was compared; kept so a new field cannot slip by.
    Err(BootError::new(Code::LayoutMismatch, "layout", 0, 1))
}

/// Checks that the launch descriptor is one: its magic and the fingerprint of the host that wrote it.
/// Until these pass, not even the descriptor's own fields are where this firmware expects them.
pub fn validate_launch_identity(desc: &LaunchDescriptor) -> Result<(), BootError> {
    expect_eq(Code::BadLaunchDescriptor, "magic", LAUNCH_MAGIC, desc.magic)?;
    expect_eq(Code::BadLaunchDescriptor, "abi_fingerprint", ABI_FINGERPRINT, desc.abi_fingerprint)
}

/// Checks the launch parameters of an identified descriptor: thread, cluster and orchestration
/// argument counts, every region base non-null and 1024-aligned, no region wrapping the address
/// space, and the image fitting its region.
pub fn validate_launch(desc: &LaunchDescriptor) -> Result<DeviceRegions, BootError> {
    if desc.aicpu_thread_count as usize > MAX_AICPU_THREADS {
        let e = BootError::new(
            Code::BadLaunchParameters,
            "aicpu_thread_count",
            MAX_AICPU_THREADS as u64,
            desc.aicpu_thread_count as u64,
        );
        return Err(e);
    }
    if desc.cluster_count as usize > MAX_CLUSTERS {
        let e =
            BootError::new(Code::BadLaunchParameters, "cluster_count", MAX_CLUSTERS as u64, desc.cluster_count as u64);
        return Err(e);
    }
    // The orchestration's arguments are read as `orch_arg_count` records at `orch_args`: no more
    // than a callable can declare.
    if desc.orch_arg_count as usize > MAX_CHIP_ARGS {
        let e = BootError::new(
            Code::BadLaunchParameters,
            "orch_arg_count",
            MAX_CHIP_ARGS as u64,
            desc.orch_arg_count as u64,
        );
        return Err(e);
    }
    let regions = DeviceRegions {
        arena: RegionSpan::new(desc.arena_base, desc.arena_region_size),
        sm: RegionSpan::new(desc.sm_base, desc.sm_region_size),
        heap: RegionSpan::new(desc.heap_base, desc.heap_region_size),
    };
    for (name, r) in [("arena", regions.arena), ("sm", regions.sm), ("heap", regions.heap)] {
        if r.base.is_null() {
            return Err(BootError::new(Code::NullBase, name, REGION_BASE_ALIGN, 0));
        }
        if !r.base.is_aligned(REGION_BASE_ALIGN) {
            return Err(BootError::new(Code::MisalignedBase, name, REGION_BASE_ALIGN, r.base.get()));
        }
        if r.base.get().checked_add(r.size).is_none() {
            return Err(BootError::out_of_range(Code::ImageLargerThanRegion, name, r.base.get(), u64::MAX, r.size));
        }
    }
    if desc.image_bytes > desc.arena_region_size {
        return Err(BootError::new(
            Code::ImageLargerThanRegion,
            "image_bytes",
            desc.arena_region_size,
            desc.image_bytes,
        ));
    }
    Ok(regions)
}

/// Checks that SM and the GM heap of this launch are large enough for the image's layout.
pub fn validate_regions_fit(image: &ValidatedImage, regions: &DeviceRegions) -> Result<(), BootError> {
    if regions.sm.size < image.sm.total_size {
        return Err(BootError::new(Code::SmRegionTooSmall, "sm", image.sm.total_size, regions.sm.size));
    }
    if regions.heap.size < image.heap.total_size {
        return Err(BootError::new(Code::HeapRegionTooSmall, "heap", image.heap.total_size, regions.heap.size));
    }
    Ok(())
}
