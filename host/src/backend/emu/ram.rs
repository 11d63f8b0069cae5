//! The emulated machine's guest RAM as the host sees it: a file in `/dev/shm` that qemu uses as
//! its memory backend (`memory-backend-file,share=on`) and the host maps too.
//!
//! Guest physical address `a` is byte `a − base` of the file. Every access is bounds-checked
//! against the mapping; words the firmware may be writing are reached through atomics. The file is
//! created with a unique name (`O_EXCL`), unlinked as soon as qemu holds it (or on drop, whichever
//! comes first), and unmapped on drop.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use pto_abi::DevAddr;

/// Directory the guest-RAM files are created in.
pub const SHM_DIR: &str = "/dev/shm";

/// Prefix of every guest-RAM file name (`pto-emu-<pid>-<n>`), so tests can count them.
pub const SHM_PREFIX: &str = "pto-emu-";

/// A guest RAM access outside the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRam {
    /// Start of the range.
    pub addr: DevAddr,
    /// Its length.
    pub len: u64,
}

/// The shared guest RAM file and the host's mapping of it.
pub struct GuestRam {
    ptr: *mut u8,
    len: u64,
    base: u64,
    path: PathBuf,
    unlinked: AtomicBool,
    unlink_lock: Mutex<()>,
}

// SAFETY: the mapping is plain shared memory that stays mapped for the value's lifetime; every
// access goes through bounds-checked raw copies or atomics, never through references that assume
// exclusive access.
unsafe impl Send for GuestRam {}
// SAFETY: as above.
unsafe impl Sync for GuestRam {}

static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

impl GuestRam {
    /// Creates a new guest RAM file of `len` bytes for guest addresses `[base, base + len)` and
    /// maps it shared.
    pub fn create(base: u64, len: u64) -> std::io::Result<GuestRam> {
        let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(SHM_DIR).join(format!("{SHM_PREFIX}{}-{n}", std::process::id()));
        let c = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        let size = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
        let map_len = usize::try_from(len).map_err(std::io::Error::other)?;
        // SAFETY: `c` is a NUL-terminated path; the flags create a new file or fail.
        let fd =
            unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC, 0o600) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fail = |fd: libc::c_int| {
            let e = std::io::Error::last_os_error();
            // SAFETY: `fd` is the descriptor opened above; `c` names the file this call created.
            unsafe {
                libc::close(fd);
                libc::unlink(c.as_ptr());
            }
            e
        };
        // SAFETY: `fd` is a valid descriptor of a regular file.
        if unsafe { libc::ftruncate(fd, size) } != 0 {
            return Err(fail(fd));
        }
        // SAFETY: a fresh shared mapping of the whole file, no address hint.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if p == libc::MAP_FAILED {
            return Err(fail(fd));
        }
        // SAFETY: the mapping keeps the file alive; the descriptor is no longer needed.
        unsafe { libc::close(fd) };
        Ok(GuestRam { ptr: p.cast(), len, base, path, unlinked: AtomicBool::new(false), unlink_lock: Mutex::new(()) })
    }

    /// The file qemu maps as guest RAM.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Guest physical address of the first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Bytes of guest RAM.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty mapping (never, for a created one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes the file name (the mappings of the host and of qemu stay valid). Idempotent.
    pub fn unlink(&self) {
        let _g = self.unlink_lock.lock().unwrap_or_else(|e| e.into_inner());
        if !self.unlinked.swap(true, Ordering::AcqRel) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// True when `[addr, addr + len)` lies inside guest RAM.
    pub fn contains(&self, addr: DevAddr, len: u64) -> bool {
        self.offset(addr, len).is_ok()
    }

    /// The file offset of `[addr, addr + len)`, once it is known to lie inside guest RAM.
    fn offset(&self, addr: DevAddr, len: u64) -> Result<usize, OutOfRam> {
        let err = OutOfRam { addr, len };
        let off = addr.get().checked_sub(self.base).ok_or(err)?;
        let end = off.checked_add(len).ok_or(err)?;
        if end > self.len {
            return Err(err);
        }
        Ok(off as usize)
    }

    /// Copies `src` into guest RAM at `addr`.
    pub fn write(&self, addr: DevAddr, src: &[u8]) -> Result<(), OutOfRam> {
        let off = self.offset(addr, src.len() as u64)?;
        // SAFETY: `[off, off + len)` lies inside the mapping, which no host buffer overlaps; the
        // guest may touch the same bytes concurrently, as it could with a DMA on hardware.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), src.len()) };
        Ok(())
    }

    /// Copies guest RAM at `addr` into `dst`.
    pub fn read(&self, addr: DevAddr, dst: &mut [u8]) -> Result<(), OutOfRam> {
        let off = self.offset(addr, dst.len() as u64)?;
        // SAFETY: as in `write`, with the direction reversed.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies guest RAM at `addr` into `dst` one volatile byte at a time: for memory the firmware
    /// may be writing while the host reads (the log ring).
    pub fn read_volatile(&self, addr: DevAddr, dst: &mut [u8]) -> Result<(), OutOfRam> {
        let off = self.offset(addr, dst.len() as u64)?;
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: inside the mapping (checked above); a volatile byte read never tears.
            *d = unsafe { self.ptr.add(off + i).read_volatile() };
        }
        Ok(())
    }

    /// Sets `len` bytes at `addr` to `value`.
    pub fn fill(&self, addr: DevAddr, value: u8, len: u64) -> Result<(), OutOfRam> {
        let off = self.offset(addr, len)?;
        // SAFETY: as in `write`.
        unsafe { std::ptr::write_bytes(self.ptr.add(off), value, len as usize) };
        Ok(())
    }

    /// The 32-bit word at `addr` (4-byte aligned, inside guest RAM) as an atomic.
    pub fn atomic_u32(&self, addr: DevAddr) -> Result<&AtomicU32, OutOfRam> {
        let off = self.offset(addr, 4)?;
        if addr.get() % 4 != 0 {
            return Err(OutOfRam { addr, len: 4 });
        }
        // SAFETY: an aligned word inside the mapping, which lives as long as `self`; the guest
        // reaches it only through aligned single-copy-atomic accesses.
        Ok(unsafe { AtomicU32::from_ptr(self.ptr.add(off).cast()) })
    }

    /// The 64-bit word at `addr` (8-byte aligned, inside guest RAM) as an atomic.
    pub fn atomic_u64(&self, addr: DevAddr) -> Result<&AtomicU64, OutOfRam> {
        let off = self.offset(addr, 8)?;
        if addr.get() % 8 != 0 {
            return Err(OutOfRam { addr, len: 8 });
        }
        // SAFETY: as in `atomic_u32`.
        Ok(unsafe { AtomicU64::from_ptr(self.ptr.add(off).cast()) })
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        self.unlink();
        // SAFETY: exactly the mapping made in `create`; no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_bounded_by_the_mapping_and_the_file_goes_with_the_value() {
        let ram = GuestRam::create(0x4000_0000, 1 << 20).unwrap();
        let path = ram.path().to_owned();
        assert!(path.exists());
        let a = DevAddr(0x4000_0000 + 4096);
        ram.write(a, &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 4];
        ram.read(a, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
        assert_eq!(ram.atomic_u32(a).unwrap().load(Ordering::Acquire), u32::from_le_bytes([1, 2, 3, 4]));
        let last = DevAddr(0x4000_0000 + (1 << 20) - 2);
        assert!(ram.write(last, &[0; 2]).is_ok());
        assert_eq!(ram.write(last, &[0; 3]), Err(OutOfRam { addr: last, len: 3 }));
        assert!(ram.read(DevAddr(0x3fff_ffff), &mut b).is_err(), "below the RAM base");
        assert!(ram.read(DevAddr(u64::MAX - 1), &mut b).is_err(), "no wrap-around");
        assert!(ram.atomic_u32(DevAddr(a.get() + 2)).is_err(), "misaligned word");
        ram.unlink();
        assert!(!path.exists());
        ram.write(a, &[9]).unwrap();
        drop(ram);
        assert!(!path.exists());
    }
}
