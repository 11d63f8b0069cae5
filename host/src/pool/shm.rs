//! A mailbox mapping: one file under `/dev/shm` that the parent creates and both processes map.
//!
//! The state and shutdown words are touched only as atomics; every other word is copied in or out
//! through raw pointers by the side that owns it in the current state (the mailbox protocol in
//! [`pto_abi::mailbox`]), never through a Rust reference into the mapping.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use pto_abi::mailbox::{
    MailboxState, MAILBOX_ARGS_CAPACITY, MAILBOX_ARGS_OFFSET, MAILBOX_MAGIC, MAILBOX_PROTOCOL_VERSION,
    MAILBOX_TOTAL_SIZE, SHUTDOWN_REQUESTED,
};
use pto_abi::ABI_FINGERPRINT;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Directory of the mailbox files.
pub const SHM_DIR: &str = "/dev/shm";
/// Prefix of every mailbox file name (`pto-mbx-<pid>-<seq>-<chip>`).
pub const SHM_PREFIX: &str = "pto-mbx-";

static NEXT_SEQ: AtomicU64 = AtomicU64::new(0);

/// Offset of a field of [`ChipMailbox`].
macro_rules! off {
    ($f:ident) => {
        core::mem::offset_of!(pto_abi::mailbox::ChipMailbox, $f)
    };
}
pub(crate) use off;

/// One mapped mailbox.
pub struct MailboxMap {
    ptr: NonNull<u8>,
    len: usize,
    path: PathBuf,
    /// True while this side still has to remove the file.
    linked: bool,
}

// SAFETY: the mapping is plain shared memory; every access goes through atomics or raw-pointer
// copies that the mailbox protocol serialises, so moving the handle to another thread is sound.
unsafe impl Send for MailboxMap {}

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("path contains a NUL byte"))
}

fn map_fd(fd: libc::c_int, len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh shared mapping of an open file descriptor; no existing memory is affected.
    let p =
        unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl MailboxMap {
    /// Creates a fresh mailbox file for `chip` (unique name, mode 0600), maps it and writes the
    /// identity words; the state word is `STARTING`.
    pub fn create(chip: u32) -> io::Result<MailboxMap> {
        let len = MAILBOX_TOTAL_SIZE as usize;
        loop {
            let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
            let path = PathBuf::from(format!("{SHM_DIR}/{SHM_PREFIX}{}-{seq}-{chip}", std::process::id()));
            let c = cstr(&path)?;
            // SAFETY: `c` is a valid NUL-terminated path.
            let fd =
                unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC, 0o600) };
            if fd < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::AlreadyExists {
                    continue;
                }
                return Err(io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())));
            }
            // SAFETY: `fd` is the descriptor just opened.
            let sized = unsafe { libc::ftruncate(fd, len as libc::off_t) };
            let mapped = if sized == 0 { map_fd(fd, len) } else { Err(io::Error::last_os_error()) };
            // SAFETY: `fd` is open and no longer needed (the mapping keeps the file).
            unsafe { libc::close(fd) };
            let ptr = match mapped {
                Ok(p) => p,
                Err(e) => {
                    // SAFETY: `c` is a valid path; the file is ours.
                    unsafe { libc::unlink(c.as_ptr()) };
                    return Err(io::Error::new(e.kind(), format!("cannot map {}: {e}", path.display())));
                }
            };
            let map = MailboxMap { ptr, len, path, linked: true };
            map.write(off!(magic), &MAILBOX_MAGIC);
            map.write(off!(abi_fingerprint), &ABI_FINGERPRINT);
            map.write(off!(protocol_version), &MAILBOX_PROTOCOL_VERSION);
            map.write(off!(chip), &chip);
            map.write(off!(total_size), &MAILBOX_TOTAL_SIZE);
            map.write(off!(args_offset), &MAILBOX_ARGS_OFFSET);
            map.write(off!(args_capacity), &MAILBOX_ARGS_CAPACITY);
            map.set_state(MailboxState::Starting);
            return Ok(map);
        }
    }

    /// Maps an existing mailbox file (the worker side) and checks its size.
    pub fn open(path: &Path) -> io::Result<MailboxMap> {
        let c = cstr(path)?;
        // SAFETY: `c` is a valid NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())));
        }
        // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open and `st` is a writable stat buffer.
        let r = unsafe { libc::fstat(fd, &mut st) };
        let len = MAILBOX_TOTAL_SIZE as usize;
        let mapped = if r != 0 {
            Err(io::Error::last_os_error())
        } else if (st.st_size as u64) < MAILBOX_TOTAL_SIZE {
            Err(io::Error::other(format!(
                "{} holds {} bytes, a mailbox needs {MAILBOX_TOTAL_SIZE}",
                path.display(),
                st.st_size
            )))
        } else {
            map_fd(fd, len)
        };
        // SAFETY: `fd` is open and no longer needed.
        unsafe { libc::close(fd) };
        Ok(MailboxMap { ptr: mapped?, len, path: path.to_path_buf(), linked: false })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file (both sides keep their mapping); idempotent, a missing file is not an error.
    pub fn unlink(&mut self) {
        if let Ok(c) = cstr(&self.path) {
            // SAFETY: `c` is a valid path.
            unsafe { libc::unlink(c.as_ptr()) };
        }
        self.linked = false;
    }

    fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.len);
        // SAFETY: in bounds and 4-aligned (the mapping is page-aligned); the word is only ever
        // accessed atomically by both processes, and the reference lives no longer than `self`,
        // which keeps the mapping alive.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// The raw state word.
    pub fn state_raw(&self) -> u32 {
        self.atomic_u32(off!(state)).load(Ordering::SeqCst)
    }

    /// The state word, or the raw value when it is no [`MailboxState`].
    pub fn state(&self) -> Result<MailboxState, u32> {
        MailboxState::try_from(self.state_raw())
    }

    /// Publishes a state (after the words it owns were written).
    pub fn set_state(&self, s: MailboxState) {
        self.atomic_u32(off!(state)).store(s as u32, Ordering::SeqCst);
    }

    /// Stores a raw state value (tests of a corrupt state word).
    pub fn set_state_raw(&self, v: u32) {
        self.atomic_u32(off!(state)).store(v, Ordering::SeqCst);
    }

    /// True once the parent asked the worker to stop.
    pub fn shutdown_requested(&self) -> bool {
        self.atomic_u32(off!(shutdown)).load(Ordering::SeqCst) == SHUTDOWN_REQUESTED
    }

    /// Sets the sticky shutdown word (parent only); it never goes back to 0.
    pub fn request_shutdown(&self) {
        self.atomic_u32(off!(shutdown)).store(SHUTDOWN_REQUESTED, Ordering::SeqCst);
    }

    /// Copies `bytes` to `offset`; the caller owns those words in the current state.
    pub fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        assert!(offset.checked_add(bytes.len()).is_some_and(|end| end <= self.len), "mailbox write out of bounds");
        // SAFETY: in bounds (checked above); the protocol gives the caller exclusive use of these
        // bytes until it publishes the next state, and no reference into the mapping exists.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(offset), bytes.len()) };
    }

    /// Copies `out.len()` bytes from `offset`; the other side does not write them in this state.
    pub fn read_into(&self, offset: usize, out: &mut [u8]) {
        assert!(offset.checked_add(out.len()).is_some_and(|end| end <= self.len), "mailbox read out of bounds");
        // SAFETY: in bounds (checked above); the protocol keeps the other side from writing these
        // bytes in the current state.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), out.as_mut_ptr(), out.len()) };
    }

    /// Writes a value at `offset`.
    pub fn write<T: IntoBytes + Immutable>(&self, offset: usize, v: &T) {
        self.write_bytes(offset, v.as_bytes());
    }

    /// Reads a value at `offset`.
    pub fn read<T: FromBytes + IntoBytes>(&self, offset: usize) -> T {
        let mut v = T::new_zeroed();
        self.read_into(offset, v.as_mut_bytes());
        v
    }

    /// Copies `bytes` to `offset` inside the arguments region.
    pub fn write_args(&self, offset: u64, bytes: &[u8]) {
        self.write_bytes((MAILBOX_ARGS_OFFSET + offset) as usize, bytes);
    }

    /// Reads `len` bytes at `offset` inside the arguments region.
    pub fn read_args(&self, offset: u64, len: u64) -> Vec<u8> {
        let mut v = vec![0u8; len as usize];
        self.read_into((MAILBOX_ARGS_OFFSET + offset) as usize, &mut v);
        v
    }

    /// Reads a NUL-padded UTF-8 field of `len` bytes at `offset` (lossy).
    pub fn read_text(&self, offset: usize, len: usize) -> String {
        let mut v = vec![0u8; len];
        self.read_into(offset, &mut v);
        let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
        String::from_utf8_lossy(&v[..end]).into_owned()
    }

    /// Writes `text` into a field of `len` bytes at `offset`, truncated at a character boundary
    /// and NUL-padded; returns the bytes used.
    pub fn write_text(&self, offset: usize, len: usize, text: &str) -> usize {
        let mut end = text.len().min(len);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut v = vec![0u8; len];
        v[..end].copy_from_slice(&text.as_bytes()[..end]);
        self.write_bytes(offset, &v);
        end
    }
}

impl Drop for MailboxMap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are this handle's own mapping, unmapped exactly once; no reference
        // into it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        if self.linked {
            self.unlink();
        }
    }
}

/// A bounded wait: spins briefly, then sleeps with a growing interval capped at `max_sleep`
/// (the host has few cores; a busy wait would take one from the device threads).
pub struct Backoff {
    n: u32,
    max_sleep: Duration,
}

impl Backoff {
    /// A fresh wait that sleeps at most `max_sleep` at a time.
    pub fn new(max_sleep: Duration) -> Backoff {
        Backoff { n: 0, max_sleep }
    }

    /// Waits one step.
    pub fn snooze(&mut self) {
        const SPINS: u32 = 64;
        if self.n < SPINS {
            std::hint::spin_loop();
        } else {
            let step = (self.n - SPINS).min(16);
            let sleep = Duration::from_micros(5u64 << (step / 2)).min(self.max_sleep);
            std::thread::sleep(sleep);
        }
        self.n = self.n.saturating_add(1);
    }

    /// Starts over (after progress).
    pub fn reset(&mut self) {
        self.n = 0;
    }
}
