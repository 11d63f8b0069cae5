//! `DeviceRunner`: the runtime on one device. It owns the backend, the device's static regions
//! (GM heap, SM, arena), the resident image, the launch block, the registered callables and the
//! kernel launcher, and every operation goes through its backend:
//!
//! * [`DeviceRunner::bind`] makes an arena image of a sizing resident (this file);
//! * [`DeviceRunner::run`] runs a task graph ([`run`](self::run) module), and
//!   [`DeviceRunner::run_callable`] runs a registered callable (`callables`);
//! * [`DeviceRunner::finalize`] (also on drop) frees everything, or abandons it after a device
//!   fault.
//!
//! Static regions: the GM heap, the SM region and the arena are allocated once and reused while
//! they are large enough (grow-only); a region that must grow is released and reallocated, and a
//! failing allocation releases all three.
//!
//! Bind: resolve the sizing's cache key → probe the resident image → on a hit, nothing else (no
//! build, no static-arena setup, no device write) → on a miss, invalidate, set up the static
//! regions, take the image from the host LRU (rebasing it if the bases moved) or build it, upload
//! it in one copy, and only then mark it resident.
//!
//! Integrity: the first launch after an upload carries `LAUNCH_FLAG_VERIFY_IMAGE`, so that boot
//! checks the image checksum over the fresh bytes; later launches reuse the image (which boots
//! mutate in place) without hashing it. A failed boot of a launch that verified forgets the
//! resident image, so the next bind uploads it again.

mod allocator;
mod callables;
mod failure;
mod kernels;
mod launch;
mod request;
mod run;
mod staging;
mod static_arena;
mod trace;

use std::sync::Arc;

use pto_abi::layout::{heap_layout, reserve_layout, sm_layout, LayoutError};
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::{DevAddr, RuntimeArenaLayout};
use pto_device::boot::DeviceRegions;
use zerocopy::IntoBytes;

use crate::backend::{BackendError, DeviceBackend, DeviceIo, DeviceProgram, KernelHandle, StreamId};
use crate::callable::CallableRegistry;
use pto_abi::launch::LAUNCH_FLAG_VERIFY_IMAGE;

use crate::image::{build_runtime_image, CacheKey, Image, ImageCache, ImageError, ImageLru, ResidentImage};
pub use allocator::TrackingAllocator;
pub use callables::{CallableCounters, CallableRunConfig, CallableRunError};
pub use failure::DeviceFailure;
pub use kernels::{KernelLauncher, LaunchCounters, LaunchError, LaunchShape, LaunchStep};
use launch::decode_boot_report;
pub use launch::{BootFailure, BootOutcome, BootSummary, LaunchBlock, LaunchParams};
pub use request::{f32s, RunArg, RunError, RunMode, RunReport, RunRequest};
use static_arena::StaticArenas;
pub use static_arena::{RegionKind, StaticArenaError};
pub use trace::{RunTrace, TraceConfig, TRACE_KIND_NAMES};

/// A failed runner operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunnerError {
    /// A backend call failed.
    #[error("device backend: {0}")]
    Backend(#[from] BackendError),
    /// The sizing has no layout.
    #[error("arena layout: {0}")]
    Layout(LayoutError),
    /// Static region setup failed (every region was released).
    #[error(transparent)]
    StaticArena(#[from] StaticArenaError),
    /// The image could not be built.
    #[error("image: {0}")]
    Image(#[from] ImageError),
    /// The launch parameters were refused.
    #[error("launch: {0}")]
    Launch(#[from] LaunchError),
    /// The device rejected the image or the launch at boot.
    #[error("boot failed: {0}")]
    Boot(BootFailure),
    /// The device finished the launch without writing its boot report.
    #[error("the device finished the launch without reporting its boot")]
    BootNotReported,
    /// An operation that needs a resident image found none.
    #[error("no image is resident: bind a sizing first")]
    NotBound,
}

/// What a bind produced: everything a launch needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundImage {
    /// The arena layout.
    pub layout: RuntimeArenaLayout,
    /// The device regions (arena holds the image).
    pub regions: DeviceRegions,
    /// Bytes of the resident image.
    pub image_size: u64,
    /// Offset of the runtime header in the arena.
    pub runtime_header_offset: u64,
    /// True when the resident image was reused without any device write.
    pub cache_hit: bool,
}

/// Counters of the bind path, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindStats {
    /// Binds served by the resident image.
    pub hits: u64,
    /// Binds that uploaded an image.
    pub misses: u64,
    /// Images built from scratch.
    pub images_built: u64,
    /// Images taken from the host LRU and re-targeted at moved bases.
    pub images_rebased: u64,
    /// Successful image uploads.
    pub uploads: u64,
}

/// The runtime on one device: the static regions, the resident image, the launch block, the
/// registered callables and the kernel launcher, over one backend (see the module doc).
///
/// ```
/// use std::sync::Arc;
/// use pto_host::sim::SimBackend;
/// use pto_host::{ArenaSizingKey, DeviceBackend, DeviceRunner};
///
/// let backend: Arc<dyn DeviceBackend> = Arc::new(SimBackend::with_capacity(64 << 20)?);
/// let mut runner = DeviceRunner::new(backend);
/// let sizing = ArenaSizingKey::uniform(16, 64 << 10, 64);
/// let cold = runner.bind(&sizing)?;
/// assert!(!cold.cache_hit);
/// // The same sizing again: the resident image serves it without a device write.
/// let hit = runner.bind(&sizing)?;
/// assert!(hit.cache_hit && hit.regions == cold.regions);
/// assert_eq!(runner.bind_stats().uploads, 1);
/// runner.finalize()?;
/// assert_eq!(runner.allocator().live_allocations(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DeviceRunner {
    alloc: TrackingAllocator,
    arenas: StaticArenas,
    cache: ImageCache,
    lru: ImageLru,
    stats: BindStats,
    launch_block: Option<LaunchBlock>,
    boot_kernel: Option<KernelHandle>,
    boot_stream: Option<StreamId>,
    registry: CallableRegistry,
    launcher: KernelLauncher,
    deferred_frees: Vec<DevAddr>,
    faulted: bool,
    trace: TraceConfig,
    /// The launch block last written asks boot to verify the image checksum.
    verify_launch: bool,
}

impl DeviceRunner {
    /// A runner on `backend` with nothing allocated.
    pub fn new(backend: Arc<dyn DeviceBackend>) -> Self {
        DeviceRunner {
            alloc: TrackingAllocator::new(backend),
            arenas: StaticArenas::default(),
            cache: ImageCache::default(),
            lru: ImageLru::default(),
            stats: BindStats::default(),
            launch_block: None,
            boot_kernel: None,
            boot_stream: None,
            registry: CallableRegistry::new(),
            launcher: KernelLauncher::new(),
            deferred_frees: Vec::new(),
            faulted: false,
            trace: TraceConfig::OFF,
            verify_launch: false,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn DeviceBackend> {
        self.alloc.backend()
    }

    /// The tracking allocator (committed bytes, live allocations).
    pub fn allocator(&self) -> &TrackingAllocator {
        &self.alloc
    }

    /// Allocates device memory tracked by this runner (freed at finalize).
    pub fn alloc(&mut self, size: u64) -> Result<DevAddr, RunnerError> {
        let r = self.alloc.alloc(size);
        self.note(r)
    }

    /// Frees memory allocated with [`DeviceRunner::alloc`].
    pub fn free(&mut self, addr: DevAddr) -> Result<(), RunnerError> {
        let r = self.alloc.free(addr);
        self.note(r)
    }

    /// The launch block, once a launch was prepared.
    pub fn launch_block(&self) -> Option<LaunchBlock> {
        self.launch_block
    }

    /// The static regions as currently committed.
    pub fn regions(&self) -> DeviceRegions {
        self.arenas.regions()
    }

    /// The resident-image cache.
    pub fn cache(&self) -> &ImageCache {
        &self.cache
    }

    /// The host LRU of built images.
    pub fn image_lru(&self) -> &ImageLru {
        &self.lru
    }

    /// Bind-path counters.
    pub fn bind_stats(&self) -> BindStats {
        self.stats
    }

    /// Forgets the resident image and every built image, so the next bind builds and uploads
    /// (for example after something outside the runner wrote to the arena).
    pub fn forget_images(&mut self) {
        self.cache.invalidate();
        self.lru.clear();
    }

    /// Makes the next launch verify the resident image's checksum again, as after an upload (for
    /// example after something outside the runner wrote image bytes into the arena). False when
    /// no image is resident.
    pub fn reverify_resident_image(&mut self) -> bool {
        self.cache.mark_unverified()
    }

    /// Staged buffers whose free failed; the next run retries them (they stay counted in the
    /// allocator's committed bytes meanwhile).
    pub fn deferred_frees(&self) -> usize {
        self.deferred_frees.len()
    }

    /// True after a backend call reported a device fault (finalize will abandon, not free).
    pub fn faulted(&self) -> bool {
        self.faulted
    }

    /// Passes `r` on, remembering a device fault (after one, finalize abandons the memory).
    fn note<T>(&mut self, r: Result<T, BackendError>) -> Result<T, RunnerError> {
        if let Err(e) = &r {
            self.faulted |= e.is_device_fault();
        }
        Ok(r?)
    }

    /// Sets up the GM heap, SM and arena regions: grow-only reuse, no release while they fit, any
    /// failing allocation releases all three. Any change of bases, and any failure, invalidates the
    /// resident image.
    pub fn setup_static_arena(&mut self, heap: u64, sm: u64, arena: u64) -> Result<DeviceRegions, RunnerError> {
        match self.arenas.setup(&mut self.alloc, heap, sm, arena) {
            Ok(outcome) => {
                if outcome.changed {
                    self.cache.invalidate();
                }
                Ok(outcome.regions)
            }
            Err(e) => {
                self.cache.invalidate();
                self.faulted |= e.source.is_device_fault();
                Err(e.into())
            }
        }
    }

    /// Makes an image of `sizing` resident in the arena (see the module doc).
    pub fn bind(&mut self, sizing: &ArenaSizingKey) -> Result<BoundImage, RunnerError> {
        let key = CacheKey::new(sizing);
        if let Some(r) = self.cache.probe(&key) {
            let bound = BoundImage {
                layout: r.layout,
                regions: r.regions,
                image_size: r.image_size,
                runtime_header_offset: r.runtime_header_offset,
                cache_hit: true,
            };
            self.stats.hits += 1;
            return Ok(bound);
        }
        self.stats.misses += 1;
        let layout = reserve_layout(sizing).map_err(RunnerError::Layout)?;
        let sm = sm_layout(sizing).map_err(RunnerError::Layout)?;
        let heap = heap_layout(sizing).map_err(RunnerError::Layout)?;

        // Invalidate before anything touches the arena: from here on, until the upload succeeds,
        // no image is resident.
        self.cache.invalidate();
        let regions = self.setup_static_arena(heap.total_size, sm.total_size, layout.offsets.arena_size)?;
        let image = match self.lru.take(&key) {
            Some(mut img) => {
                if img.regions() != &regions {
                    img.rebase(&regions)?;
                    self.stats.images_rebased += 1;
                }
                img
            }
            None => {
                let img = build_runtime_image(&layout, &regions)?;
                self.stats.images_built += 1;
                img
            }
        };
        let upload = self.alloc.backend().copy_to_device(regions.arena.base, image.bytes());
        let image_size = image.bytes().len() as u64;
        // The built image stays useful host-side whether or not the upload worked.
        self.lru.insert(key, image);
        self.note(upload)?;
        self.stats.uploads += 1;
        let resident = ResidentImage {
            key,
            regions,
            layout,
            runtime_header_offset: layout.offsets.runtime_header.offset,
            image_size,
        };
        self.cache.mark(resident);
        Ok(BoundImage {
            layout,
            regions,
            image_size,
            runtime_header_offset: resident.runtime_header_offset,
            cache_hit: false,
        })
    }

    /// Makes `image` (for example one read from a file) the resident image with its bytes
    /// unchanged: sets up the static regions for its layout and uploads it in one copy. Boot
    /// rewires every pointer for this runner's regions, and the first launch verifies the image's
    /// checksum on the device, as after any upload. A later [`DeviceRunner::bind`] of its sizing
    /// is a hit on it.
    pub fn bind_image(&mut self, image: &Image) -> Result<BoundImage, RunnerError> {
        let header = image.header();
        let layout = *image.layout();
        let key = CacheKey::with_fingerprint(&layout.sizing, header.abi_fingerprint);
        self.stats.misses += 1;
        self.cache.invalidate();
        let regions = self.setup_static_arena(header.heap_size, header.sm_size, layout.offsets.arena_size)?;
        let upload = self.alloc.backend().copy_to_device(regions.arena.base, image.bytes());
        self.note(upload)?;
        self.stats.uploads += 1;
        let image_size = image.bytes().len() as u64;
        let resident =
            ResidentImage { key, regions, layout, runtime_header_offset: header.runtime_header_offset, image_size };
        self.cache.mark(resident);
        Ok(BoundImage {
            layout,
            regions,
            image_size,
            runtime_header_offset: header.runtime_header_offset,
            cache_hit: false,
        })
    }

    /// Writes the launch block for `bound` (one upload) and returns where its parts lie.
    pub fn prepare_launch(&mut self, bound: &BoundImage, params: &LaunchParams) -> Result<LaunchBlock, RunnerError> {
        let block = match self.launch_block {
            Some(b) => b,
            None => {
                let base = self.alloc(launch::LAUNCH_BLOCK_BYTES)?;
                let b = LaunchBlock { base };
                self.launch_block = Some(b);
                b
            }
        };
        // The first launch after an upload verifies the image checksum (the bytes are fresh).
        let verify = self.cache.unverified();
        let mut params = std::borrow::Cow::Borrowed(params);
        if verify {
            params.to_mut().flags |= LAUNCH_FLAG_VERIFY_IMAGE;
        }
        let bytes =
            launch::launch_block_bytes(block, &bound.regions, &bound.layout.offsets, bound.image_size, &params)?;
        let r = self.alloc.backend().copy_to_device(block.base, bytes.as_bytes());
        self.note(r)?;
        if verify {
            self.cache.take_unverified();
        }
        self.verify_launch = verify;
        Ok(block)
    }

    /// Reads the boot report of the current launch block.
    pub fn read_boot_report(&mut self) -> Result<BootOutcome, RunnerError> {
        let block = self.launch_block.ok_or(RunnerError::NotBound)?;
        let r = self.alloc.backend().read_obj::<pto_abi::launch::BootReport>(block.boot_report());
        let report = self.note(r)?;
        let outcome = decode_boot_report(&report);
        if matches!(outcome, BootOutcome::Failed(_)) && std::mem::take(&mut self.verify_launch) {
            // A fresh image that failed its boot is not trusted as resident: the next bind uploads
            // it again (from the host LRU) and its boot verifies again.
            self.cache.invalidate();
        }
        Ok(outcome)
    }

    /// Boots the resident image through the backend: writes the launch block, launches the
    /// backend's boot-only AICPU program ([`DeviceProgram::Boot`]) on one block and reads the boot
    /// report back.
    pub fn boot_resident(&mut self, bound: &BoundImage, params: &LaunchParams) -> Result<BootSummary, RunnerError> {
        let block = self.prepare_launch(bound, params)?;
        let kernel = match self.boot_kernel {
            Some(k) => k,
            None => {
                let r = self.alloc.backend().register_program(DeviceProgram::Boot);
                let k = self.note(r)?;
                self.boot_kernel = Some(k);
                k
            }
        };
        let stream = match self.boot_stream {
            Some(s) => s,
            None => {
                let r = self.alloc.backend().stream_create();
                let s = self.note(r)?;
                self.boot_stream = Some(s);
                s
            }
        };
        let r = self.alloc.backend().launch_kernel(kernel, stream, 1, block.kernel_args());
        self.note(r)?;
        let r = self.alloc.backend().stream_synchronize(stream);
        self.note(r)?;
        match self.read_boot_report()? {
            BootOutcome::Ready(s) => Ok(s),
            BootOutcome::Failed(f) => Err(RunnerError::Boot(f)),
            BootOutcome::Pending => Err(RunnerError::BootNotReported),
        }
    }

    /// Releases everything: frees every allocation, or abandons them without freeing after a
    /// device fault. Also runs on drop.
    pub fn finalize(&mut self) -> Result<(), RunnerError> {
        self.cache.invalidate();
        self.launch_block = None;
        self.arenas = StaticArenas::default();
        // The allocator frees (or abandons) every callable's device copy below.
        self.registry.abandon_all();
        if self.faulted {
            self.alloc.abandon();
            return Ok(());
        }
        Ok(self.alloc.free_all()?)
    }
}

impl Drop for DeviceRunner {
    fn drop(&mut self) {
        let _ = self.finalize();
    }
}
