//! The image builder: the arena image the host uploads, built in host memory.

use std::mem::size_of;

use pto_abi::consts::{READY_QUEUE_COUNT, REGION_BASE_ALIGN};
use pto_abi::image::{seal_image, ImageHeader, IMAGE_MAGIC};
use pto_abi::layout::{heap_layout, sm_layout, HeapLayout, LayoutError, SmLayout};
use pto_abi::runtime::{MailboxHeader, ReadyQueueHeader, RuntimeHeader, SmHandle, RUNTIME_MAGIC};
use pto_abi::{DevAddr, RuntimeArenaLayout, ABI_FINGERPRINT, ABI_VERSION};
use pto_device::boot::rebind::rebind_device_pointers_from_layout;
use pto_device::boot::validate::{validate_image, ValidatedImage};
use pto_device::boot::wire::wire_arena_pointers;
use pto_device::boot::{BootError, DeviceRegions, RegionSpan};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Why an image could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The layout (or the SM/heap layout) of the sizing cannot be computed.
    #[error("arena layout: {0}")]
    Layout(LayoutError),
    /// A region base is null or not 1024-aligned.
    #[error("{region} base {base} must be non-null and {REGION_BASE_ALIGN}-byte aligned")]
    BadBase {
        /// `arena`, `sm` or `heap`.
        region: &'static str,
        /// The base given.
        base: DevAddr,
    },
    /// A region is smaller than the layout needs, or wraps the address space.
    #[error("{region} region of {size} bytes at {base} cannot hold the {needed} bytes the layout needs")]
    RegionTooSmall {
        /// `arena`, `sm` or `heap`.
        region: &'static str,
        /// Its base.
        base: DevAddr,
        /// Its size.
        size: u64,
        /// Bytes the layout needs.
        needed: u64,
    },
    /// The image is larger than host memory can address.
    #[error("an image of {0} bytes does not fit in host memory")]
    TooLarge(u64),
    /// A byte image failed validation.
    #[error("{0}")]
    Invalid(BootError),
    /// A byte image whose length is not its header's `image_size`.
    #[error("{len} bytes but the image header says image_size = {image_size}")]
    WrongLength {
        /// Bytes given.
        len: u64,
        /// `ImageHeader::image_size`.
        image_size: u64,
    },
}

/// An arena image in host memory and the regions it was built for.
///
/// Byte-deterministic: the same layout and bases always give the same bytes, sealed with the
/// image checksum ([`pto_abi::image::image_checksum`]) as the last step. Zero everywhere except
/// the image header, the runtime header (class-A pointers for the built arena base, class-B pointers
/// from the real SM and heap bases), the SM-handle wrapper and the O(1) queue and mailbox headers.
/// Patterns the device generates itself (queue cell ramps, free lists) are not in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    bytes: Vec<u8>,
    layout: RuntimeArenaLayout,
    regions: DeviceRegions,
}

fn layout_err(e: LayoutError) -> ImageError {
    ImageError::Layout(e)
}

fn check_region(name: &'static str, r: RegionSpan, needed: u64) -> Result<(), ImageError> {
    if r.base.is_null() || !r.base.is_aligned(REGION_BASE_ALIGN) {
        return Err(ImageError::BadBase { region: name, base: r.base });
    }
    if r.size < needed || r.base.get().checked_add(r.size).is_none() {
        return Err(ImageError::RegionTooSmall { region: name, base: r.base, size: r.size, needed });
    }
    Ok(())
}

fn write_at<T: IntoBytes + zerocopy::Immutable>(bytes: &mut [u8], offset: u64, value: &T) {
    let at = offset as usize;
    bytes[at..at + size_of::<T>()].copy_from_slice(value.as_bytes());
}

fn read_at<T: FromBytes>(bytes: &[u8], offset: u64) -> T {
    let at = offset as usize;
    T::read_from_bytes(&bytes[at..at + size_of::<T>()]).expect("the layout keeps every structure inside the image")
}

/// Builds the image of `layout` for the device regions `regions`.
///
/// The regions must be non-null, 1024-aligned and at least as large as the layout's arena, SM and
/// heap sizes.
pub fn build_runtime_image(layout: &RuntimeArenaLayout, regions: &DeviceRegions) -> Result<Image, ImageError> {
    let sm = sm_layout(&layout.sizing).map_err(layout_err)?;
    let heap = heap_layout(&layout.sizing).map_err(layout_err)?;
    let o = &layout.offsets;
    check_region("arena", regions.arena, o.arena_size)?;
    check_region("sm", regions.sm, sm.total_size)?;
    check_region("heap", regions.heap, heap.total_size)?;
    let len = usize::try_from(o.arena_size).map_err(|_| ImageError::TooLarge(o.arena_size))?;
    let mut bytes = vec![0u8; len];

    let mut rt = RuntimeHeader::new_zeroed();
    rt.magic = RUNTIME_MAGIC;
    rt.abi_fingerprint = ABI_FINGERPRINT;
    write_at(&mut bytes, o.runtime_header.offset, &rt);
    for q in 0..READY_QUEUE_COUNT {
        let mut qh = ReadyQueueHeader::new_zeroed();
        qh.capacity = o.ready_queue_capacity;
        qh.mask = o.ready_queue_capacity - 1;
        write_at(&mut bytes, o.ready_queues[q].offset, &qh);
    }
    let mut mb = MailboxHeader::new_zeroed();
    mb.capacity = o.mailbox_capacity;
    write_at(&mut bytes, o.mailbox.offset, &mb);

    let mut image = Image { bytes, layout: *layout, regions: *regions };
    image.write_pointers(&sm, &heap);
    Ok(image)
}

impl Image {
    /// An image from its bytes (for example a file written by `pto image build`), after the
    /// device's own checks of fresh bytes (checksum included): its layout and the regions it was
    /// built for come from its header. The bytes are kept unchanged.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Image, ImageError> {
        let v = validate_image(&bytes, bytes.len() as u64).map_err(ImageError::Invalid)?;
        if v.header.image_size != bytes.len() as u64 {
            return Err(ImageError::WrongLength { len: bytes.len() as u64, image_size: v.header.image_size });
        }
        Ok(Image { bytes, layout: v.layout, regions: v.built_regions() })
    }

    /// The image bytes (what is uploaded to the arena base).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The layout it was built from.
    pub fn layout(&self) -> &RuntimeArenaLayout {
        &self.layout
    }

    /// The regions it was built for.
    pub fn regions(&self) -> &DeviceRegions {
        &self.regions
    }

    /// Its image header.
    pub fn header(&self) -> ImageHeader {
        read_at(&self.bytes, 0)
    }

    /// Runs the device's image validation on the bytes.
    pub fn validate(&self) -> Result<ValidatedImage, ImageError> {
        validate_image(&self.bytes, self.bytes.len() as u64).map_err(ImageError::Invalid)
    }

    /// Re-targets the image at other regions without rebuilding it: rewrites the built bases in
    /// the image header and every class-A and class-B pointer, then re-seals the checksum (one
    /// pass over the bytes; no allocation, no zeroing).
    pub fn rebase(&mut self, regions: &DeviceRegions) -> Result<(), ImageError> {
        let sm = sm_layout(&self.layout.sizing).map_err(layout_err)?;
        let heap = heap_layout(&self.layout.sizing).map_err(layout_err)?;
        check_region("arena", regions.arena, self.layout.offsets.arena_size)?;
        check_region("sm", regions.sm, sm.total_size)?;
        check_region("heap", regions.heap, heap.total_size)?;
        self.regions = *regions;
        self.write_pointers(&sm, &heap);
        Ok(())
    }

    /// Writes the image header and every pointer for `self.regions`.
    fn write_pointers(&mut self, sm: &SmLayout, heap: &HeapLayout) {
        let o = self.layout.offsets;
        let header = ImageHeader {
            magic: IMAGE_MAGIC,
            abi_version: ABI_VERSION,
            header_size: size_of::<ImageHeader>() as u32,
            abi_fingerprint: ABI_FINGERPRINT,
            image_size: o.arena_size,
            built_arena_base: self.regions.arena.base,
            built_sm_base: self.regions.sm.base,
            built_heap_base: self.regions.heap.base,
            sm_size: sm.total_size,
            heap_size: heap.total_size,
            runtime_header_offset: o.runtime_header.offset,
            checksum: 0,
            _pad: [0; 40],
            layout: self.layout,
            _pad_tail: [0; 32],
        };
        write_at(&mut self.bytes, 0, &header);
        let mut rt: RuntimeHeader = read_at(&self.bytes, o.runtime_header.offset);
        let mut handle = SmHandle::new_zeroed();
        wire_arena_pointers(&mut rt, self.regions.arena.base, &o);
        rebind_device_pointers_from_layout(&mut rt, &mut handle, &self.regions, sm, heap);
        write_at(&mut self.bytes, o.runtime_header.offset, &rt);
        write_at(&mut self.bytes, o.sm_handle.offset, &handle);
        // Last: the checksum covers every byte written above.
        seal_image(&mut self.bytes);
    }
}

/// Bases for an image built without a device (`pto image build`): the arena, SM and heap placed
/// back to back from 4 GiB, each 1 GiB-aligned. Boot rewires every pointer, so any valid bases do.
pub fn nominal_regions(layout: &RuntimeArenaLayout) -> Result<DeviceRegions, ImageError> {
    const ALIGN: u64 = 1 << 30;
    let sm = sm_layout(&layout.sizing).map_err(layout_err)?;
    let heap = heap_layout(&layout.sizing).map_err(layout_err)?;
    let mut at: u64 = 4 << 30;
    let mut place = |name: &'static str, size: u64| -> Result<RegionSpan, ImageError> {
        let overflow = ImageError::RegionTooSmall { region: name, base: DevAddr(at), size: 0, needed: size };
        let r = RegionSpan::new(DevAddr(at), size);
        at = at.checked_add(size).and_then(|e| e.checked_next_multiple_of(ALIGN)).ok_or(overflow)?;
        Ok(r)
    };
    Ok(DeviceRegions {
        arena: place("arena", layout.offsets.arena_size)?,
        sm: place("sm", sm.total_size)?,
        heap: place("heap", heap.total_size)?,
    })
}
