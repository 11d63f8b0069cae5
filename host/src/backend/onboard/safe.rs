//! The `safe` layer: RAII owners of vendor runtime objects.
//!
//! * [`Runtime`]: the opened `libruntime.so` (its bindings); dropped last.
//! * [`Device`]: the device set on open (`rtSetDevice`) and reset on drop (`rtDeviceReset`, once
//!   for every `rtSetDevice` this value made). The runtime's current device is per thread, so
//!   [`Device::make_current`] sets it on a thread that has not set it yet.
//! * [`Stream`]: a stream destroyed on drop (`rtStreamDestroy`).
//!
//! Device memory has no owner type here: every allocation of a runner goes through the runner's
//! tracking allocator, which frees it (or abandons it after a device fault) through the backend.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::result::{self, RtResult};
use super::sys;

/// The opened vendor runtime library.
pub struct Runtime {
    api: sys::CannRuntime,
    path: PathBuf,
}

impl Runtime {
    /// Opens the library at `path` and resolves every function the backend calls.
    ///
    /// # Safety
    /// Loading a shared library runs its initialisers: `path` must be a vendor runtime (or a
    /// library with the same C interface) that is safe to load into this process.
    pub unsafe fn open(path: &Path) -> Result<Runtime, libloading::Error> {
        // SAFETY: the caller's contract.
        let api = unsafe { sys::CannRuntime::new(path) }?;
        Ok(Runtime { api, path: path.to_path_buf() })
    }

    /// The bindings.
    pub fn api(&self) -> &sys::CannRuntime {
        &self.api
    }

    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

static NEXT_DEVICE_TOKEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The `Device` tokens whose device this thread has set.
    static CURRENT: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// One device of the runtime, set on open and reset on drop.
pub struct Device {
    rt: Arc<Runtime>,
    id: i32,
    token: u64,
    sets: AtomicU32,
}

impl Device {
    /// Sets device `id` on this thread.
    pub fn open(rt: Arc<Runtime>, id: i32) -> RtResult<Device> {
        result::set_device(rt.api(), id)?;
        let token = NEXT_DEVICE_TOKEN.fetch_add(1, Ordering::Relaxed);
        CURRENT.with(|c| c.borrow_mut().push(token));
        Ok(Device { rt, id, token, sets: AtomicU32::new(1) })
    }

    /// Makes this device current on the calling thread (one `rtSetDevice` the first time a thread
    /// asks).
    pub fn make_current(&self) -> RtResult<()> {
        if CURRENT.with(|c| c.borrow().contains(&self.token)) {
            return Ok(());
        }
        result::set_device(self.rt.api(), self.id)?;
        self.sets.fetch_add(1, Ordering::Relaxed);
        CURRENT.with(|c| c.borrow_mut().push(self.token));
        Ok(())
    }

    /// The bindings.
    pub fn api(&self) -> &sys::CannRuntime {
        self.rt.api()
    }

    /// The runtime library.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.rt
    }

    /// The device id.
    pub fn id(&self) -> i32 {
        self.id
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // One reset per set: the runtime counts them.
        for _ in 0..*self.sets.get_mut() {
            let _ = result::device_reset(self.rt.api(), self.id);
        }
        let token = self.token;
        let _ = CURRENT.try_with(|c| c.borrow_mut().retain(|&t| t != token));
    }
}

/// A stream, destroyed on drop.
pub struct Stream {
    device: Arc<Device>,
    raw: sys::rtStream_t,
}

// SAFETY: a stream handle is an opaque token of the vendor runtime, which accepts it from any
// thread that has the device set; this type only passes it to the runtime.
unsafe impl Send for Stream {}
// SAFETY: as above; every use is a runtime call, none mutates the handle.
unsafe impl Sync for Stream {}

impl Stream {
    /// Creates a stream on `device`.
    pub fn create(device: Arc<Device>) -> RtResult<Stream> {
        device.make_current()?;
        let raw = result::stream_create(device.api())?;
        Ok(Stream { device, raw })
    }

    /// Waits for the stream's work.
    pub fn synchronize(&self) -> RtResult<()> {
        self.device.make_current()?;
        // SAFETY: `raw` is live until this value drops.
        unsafe { result::stream_synchronize(self.device.api(), self.raw) }
    }

    /// Waits at most `timeout_ms` milliseconds for the stream's work.
    pub fn synchronize_timeout(&self, timeout_ms: i32) -> RtResult<()> {
        self.device.make_current()?;
        // SAFETY: as above.
        unsafe { result::stream_synchronize_timeout(self.device.api(), self.raw, timeout_ms) }
    }

    /// Aborts the stream's queued work.
    pub fn abort(&self) -> RtResult<()> {
        self.device.make_current()?;
        // SAFETY: as above.
        unsafe { result::stream_abort(self.device.api(), self.raw) }
    }

    /// The raw handle (valid while this value lives).
    pub fn raw(&self) -> sys::rtStream_t {
        self.raw
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.device.make_current().is_ok() {
            // SAFETY: `raw` is live and never used after this.
            let _ = unsafe { result::stream_destroy(self.device.api(), self.raw) };
        }
    }
}
