//! The onboard AICPU program's entry logic: what `pto-aicpu`'s two C entry points run on the
//! argument block the host's onboard backend passes with `rtAicpuKernelLaunchExWithArgs`.
//!
//! The vendor runtime copies the launch's [`AicpuLaunchArgs`] to the device and calls the entry
//! named by its `kernel_name` once per block with the address of that copy:
//! * [`AICPU_INIT_ENTRY`] ([`init`]): the boot-only program; the first block boots the runtime
//!   (the outcome goes to the launch's boot report), every other block returns at once;
//! * [`AICPU_EXEC_ENTRY`] ([`exec`]): a run; block `t` is AICPU thread `t` (the last thread of the
//!   descriptor's count orchestrates, the others schedule), blocks beyond the count return at
//!   once.
//!
//! A block learns its index by claiming it from the copy's [`AicpuLaunchArgs::reserved`] word,
//! which the host writes 0: each block adds 1 to it atomically and takes the value it found, so a
//! launch's blocks get `0, 1, 2, …` whatever order the vendor starts them in.
//!
//! Everything the block names is untrusted: each entry checks the block, the `KernelArgs` and the
//! launch descriptor's identity before anything is dereferenced further, and answers a bad one
//! with its own nonzero [`AicpuStatus`], never a panic. An outcome the device records where the
//! host reads it (a boot report, the runtime's error words) is status 0: the host reads the reason
//! there. Addresses are checked to be non-null, aligned, and inside the aarch64 Linux user address
//! space ([`USER_ADDR_END`]) without wrapping; the program has no map of the device heap to check
//! them against.

use core::ffi::c_void;
use core::mem::{align_of, offset_of, size_of};
use core::ptr::{addr_of, read_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use pto_abi::consts::MAX_AICPU_THREADS;
use pto_abi::launch::{KernelArgs, LaunchDescriptor, LAUNCH_MAGIC};
use pto_abi::{DevAddr, ABI_FINGERPRINT};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::aicpu::AicpuExit;
use crate::platform::Platform;
use crate::program::{run_aicpu_part, CodeTable, PartOutcome};

/// Name the AICPU runtime finds the AICPU program under.
pub const AICPU_SO_NAME: &str = "libpto_aicpu.so";
/// AICPU entry of the boot-only program.
pub const AICPU_INIT_ENTRY: &str = "pto_aicpu_init";
/// AICPU entry of a run: block `t` is AICPU thread `t`.
pub const AICPU_EXEC_ENTRY: &str = "pto_aicpu_exec";
/// Bytes of each name field of [`AicpuLaunchArgs`].
pub const AICPU_NAME_BYTES: usize = 32;

/// The argument block of an AICPU launch; the vendor runtime copies it to the device and the
/// entry receives the address of that copy. Names are NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct AicpuLaunchArgs {
    /// Device address of the launch's `KernelArgs`.
    pub kernel_args: u64,
    /// Device address of the AICPU program's bytes.
    pub so_addr: u64,
    /// Bytes of the AICPU program.
    pub so_len: u64,
    /// The host writes 0; on the device copy it is the blocks' index claim counter (each block
    /// adds 1 atomically and takes the value it found).
    pub reserved: u64,
    /// The entry to run ([`AICPU_INIT_ENTRY`] or [`AICPU_EXEC_ENTRY`]).
    pub kernel_name: [u8; AICPU_NAME_BYTES],
    /// The shared object's name ([`AICPU_SO_NAME`]).
    pub so_name: [u8; AICPU_NAME_BYTES],
    /// Empty.
    pub op_name: [u8; AICPU_NAME_BYTES],
}

/// Offset of [`AicpuLaunchArgs::kernel_name`] (`kernelNameAddrOffset`).
pub const AICPU_KERNEL_NAME_OFFSET: u32 = offset_of!(AicpuLaunchArgs, kernel_name) as u32;
/// Offset of [`AicpuLaunchArgs::so_name`] (`soNameAddrOffset`).
pub const AICPU_SO_NAME_OFFSET: u32 = offset_of!(AicpuLaunchArgs, so_name) as u32;
/// Offset of the block-index claim word ([`AicpuLaunchArgs::reserved`]).
pub const AICPU_CLAIM_OFFSET: usize = offset_of!(AicpuLaunchArgs, reserved);

const _: () = assert!(size_of::<AicpuLaunchArgs>() == 128 && align_of::<AicpuLaunchArgs>() == 8);
const _: () = assert!(AICPU_KERNEL_NAME_OFFSET == 32 && AICPU_SO_NAME_OFFSET == 64 && AICPU_CLAIM_OFFSET == 24);

/// `name` as a NUL-padded name field (`name` must be shorter than the field).
pub const fn name_field(name: &str) -> [u8; AICPU_NAME_BYTES] {
    let b = name.as_bytes();
    assert!(b.len() < AICPU_NAME_BYTES, "an AICPU launch name must be at most 31 bytes");
    let mut out = [0u8; AICPU_NAME_BYTES];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// End of the aarch64 Linux user address space (48-bit virtual addresses): every address the
/// AICPU program dereferences lies below it.
pub const USER_ADDR_END: u64 = 1 << 48;

/// True when `[addr, addr + len)` is non-null, a multiple of `align` and below [`USER_ADDR_END`]
/// without wrapping (the onboard program's rule for every address it reads).
pub fn plausible(addr: u64, len: u64, align: u64) -> bool {
    addr != 0 && addr % align.max(1) == 0 && addr.checked_add(len).is_some_and(|end| end <= USER_ADDR_END)
}

macro_rules! statuses {
    ($( $(#[$m:meta])* $name:ident = $v:literal, )+) => {
        /// What an entry of the onboard AICPU program returns (0 = the block ran; every other
        /// value names the first check the argument block failed).
        #[repr(i32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum AicpuStatus {
            $( $(#[$m])* $name = $v, )+
        }

        impl AicpuStatus {
            /// Every status.
            pub const ALL: &'static [AicpuStatus] = &[$(AicpuStatus::$name),+];

            /// The status's name.
            pub fn name(self) -> &'static str {
                match self { $(AicpuStatus::$name => stringify!($name),)+ }
            }

            /// The status of a returned value, if it is one.
            pub fn from_code(code: i32) -> Option<AicpuStatus> {
                match code { $($v => Some(AicpuStatus::$name),)+ _ => None }
            }
        }
    };
}

statuses! {
    /// The block ran (or had nothing to do); outcomes the device records are in device memory.
    Ok = 0,
    /// The argument is null.
    NullArgs = 1,
    /// The argument is not 8-byte aligned, or the block does not lie in the user address space.
    MisalignedArgs = 2,
    /// `kernel_name` is not the entry called (or not NUL-terminated).
    WrongEntry = 3,
    /// `so_name` is not [`AICPU_SO_NAME`] (or not NUL-terminated).
    WrongSoName = 4,
    /// `so_addr` / `so_len` do not describe a non-empty range of the user address space.
    BadProgramCopy = 5,
    /// `kernel_args` is null, misaligned or out of the user address space.
    BadKernelArgs = 6,
    /// `KernelArgs::runtime_desc` is null, misaligned or out of the user address space.
    BadLaunchDescriptor = 7,
    /// The launch descriptor's magic is not `LAUNCH_MAGIC`.
    BadLaunchMagic = 8,
    /// The launch descriptor was written by a host with another ABI fingerprint (another ABI
    /// version or layout).
    BadFingerprint = 9,
    /// `aicpu_thread_count` is 0 or above `MAX_AICPU_THREADS`.
    BadThreadCount = 10,
    /// The launch's orchestration names no orchestration compiled into the program.
    UnknownOrchestration = 11,
    /// Boot failed without a boot report to say why.
    BootFailed = 12,
    /// A scheduler thread saw no successful boot within its deadline.
    BootNotReady = 13,
    /// The runtime could not be viewed after boot.
    RuntimeView = 14,
    /// A scheduler thread could not open its core channels.
    NoCores = 15,
}

/// What both entries check first: the block, its names, the program copy, `KernelArgs` and the
/// launch descriptor's identity. Returns the block's address and the descriptor.
///
/// # Safety
/// `arg` is what the vendor runtime passed: null, or the address of a readable
/// [`AicpuLaunchArgs`] copy whose `kernel_args` (when plausible) points to readable `KernelArgs`
/// whose `runtime_desc` (when plausible) points to a readable launch descriptor.
unsafe fn checked_launch(
    arg: *mut c_void,
    entry: &str,
) -> Result<(*mut AicpuLaunchArgs, *const LaunchDescriptor), AicpuStatus> {
    if arg.is_null() {
        return Err(AicpuStatus::NullArgs);
    }
    let block = arg.cast::<AicpuLaunchArgs>();
    if !plausible(block as u64, size_of::<AicpuLaunchArgs>() as u64, align_of::<AicpuLaunchArgs>() as u64) {
        return Err(AicpuStatus::MisalignedArgs);
    }
    // SAFETY: an aligned block the vendor copied for this launch (the caller's contract); the
    // fields other than the claim word are not written while the launch runs.
    let (kernel_args, so_addr, so_len, kernel_name, so_name) = unsafe {
        (
            read_volatile(addr_of!((*block).kernel_args)),
            read_volatile(addr_of!((*block).so_addr)),
            read_volatile(addr_of!((*block).so_len)),
            read_volatile(addr_of!((*block).kernel_name)),
            read_volatile(addr_of!((*block).so_name)),
        )
    };
    if kernel_name != name_field(entry) {
        return Err(AicpuStatus::WrongEntry);
    }
    if so_name != name_field(AICPU_SO_NAME) {
        return Err(AicpuStatus::WrongSoName);
    }
    if so_len == 0 || !plausible(so_addr, so_len, 1) {
        return Err(AicpuStatus::BadProgramCopy);
    }
    if !plausible(kernel_args, size_of::<KernelArgs>() as u64, align_of::<KernelArgs>() as u64) {
        return Err(AicpuStatus::BadKernelArgs);
    }
    let ka = kernel_args as usize as *const KernelArgs;
    // SAFETY: aligned KernelArgs in the user address space, written by the host before the
    // launch (the caller's contract).
    let desc = unsafe { read_volatile(addr_of!((*ka).runtime_desc)) }.get();
    let (len, align) = (size_of::<LaunchDescriptor>() as u64, align_of::<LaunchDescriptor>() as u64);
    if !plausible(desc, len, align) {
        return Err(AicpuStatus::BadLaunchDescriptor);
    }
    let d = desc as usize as *const LaunchDescriptor;
    // SAFETY: an aligned launch descriptor in the user address space (the caller's contract).
    let (magic, fingerprint) =
        unsafe { (read_volatile(addr_of!((*d).magic)), read_volatile(addr_of!((*d).abi_fingerprint))) };
    if magic != LAUNCH_MAGIC {
        return Err(AicpuStatus::BadLaunchMagic);
    }
    if fingerprint != ABI_FINGERPRINT {
        return Err(AicpuStatus::BadFingerprint);
    }
    Ok((block, d))
}

/// This block's index: the value of the launch copy's claim word before this block added 1.
///
/// # Safety
/// `block` passed [`checked_launch`]: an aligned block every block of the launch shares.
unsafe fn claim_index(block: *mut AicpuLaunchArgs) -> u64 {
    // SAFETY: the claim word is an aligned u64 of the shared block; every block reaches it only
    // through this atomic.
    let word = unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*block).reserved)) };
    word.fetch_add(1, Ordering::AcqRel)
}

/// The init entry ([`AICPU_INIT_ENTRY`]): the first block boots the runtime of the launch; its
/// outcome goes to the launch's boot report.
///
/// # Safety
/// As for the vendor's call of an AICPU entry: `arg` is null or the address of the launch's
/// argument block copy, and the addresses it leads to (once they pass the checks) are the launch's
/// device memory.
pub unsafe fn init(arg: *mut c_void) -> AicpuStatus {
    // SAFETY: the caller's contract.
    let (block, desc) = match unsafe { checked_launch(arg, AICPU_INIT_ENTRY) } {
        Ok(v) => v,
        Err(s) => return s,
    };
    // SAFETY: checked above.
    if unsafe { claim_index(block) } != 0 {
        return AicpuStatus::Ok;
    }
    // SAFETY: an identified launch descriptor; boot validates everything it names and records
    // any failure in its boot report (identity was checked above, so a report is written).
    match unsafe { crate::boot::boot(desc) } {
        Ok(_) => AicpuStatus::Ok,
        // SAFETY: the identified descriptor's field.
        Err(_) if !unsafe { read_volatile(addr_of!((*desc).boot_report)) }.is_null() => AicpuStatus::Ok,
        Err(_) => AicpuStatus::BootFailed,
    }
}

/// The exec entry ([`AICPU_EXEC_ENTRY`]): block `t` runs AICPU thread `t` of the launch with the
/// compiled-in code of `code`.
///
/// # Safety
/// As for [`init`]; the launch's AICore side serves its clusters (unless it is deterministic).
pub unsafe fn exec(arg: *mut c_void, platform: &dyn Platform, code: &CodeTable) -> AicpuStatus {
    // SAFETY: the caller's contract.
    let (block, desc) = match unsafe { checked_launch(arg, AICPU_EXEC_ENTRY) } {
        Ok(v) => v,
        Err(s) => return s,
    };
    // SAFETY: an identified launch descriptor.
    let threads = unsafe { read_volatile(addr_of!((*desc).aicpu_thread_count)) };
    if threads == 0 || threads > MAX_AICPU_THREADS as u32 {
        return AicpuStatus::BadThreadCount;
    }
    // SAFETY: checked above.
    let index = unsafe { claim_index(block) };
    if index >= threads as u64 {
        return AicpuStatus::Ok;
    }
    // SAFETY: an identified descriptor; every block of the launch claimed a distinct index.
    match unsafe { run_aicpu_part(desc, index as u32, platform, code) } {
        PartOutcome::Extra => AicpuStatus::Ok,
        PartOutcome::UnknownOrchestration(_) => AicpuStatus::UnknownOrchestration,
        PartOutcome::Exit(exit) => match exit {
            AicpuExit::BootNotReady => AicpuStatus::BootNotReady,
            AicpuExit::View(_) => AicpuStatus::RuntimeView,
            AicpuExit::NoCores => AicpuStatus::NoCores,
            // The boot report (written: identity was checked) says why.
            AicpuExit::BootFailed(_) => AicpuStatus::Ok,
            AicpuExit::Orchestrated(_) | AicpuExit::Deterministic(_) | AicpuExit::Scheduled(_) | AicpuExit::Idle => {
                AicpuStatus::Ok
            }
        },
    }
}

/// The code table of the onboard program: headers are read from any plausible address.
pub const fn code_table(
    kernels: &'static [crate::program::NamedKernel],
    orchestrations: &'static [crate::program::NamedOrchestration],
) -> CodeTable {
    CodeTable { kernels, orchestrations, readable: plausible }
}

/// A launch block for `entry` naming `kernel_args` and the program copy `(so_addr, so_len)`, as
/// the host's onboard backend writes it.
pub fn launch_block(entry: &str, kernel_args: DevAddr, so_addr: u64, so_len: u64) -> AicpuLaunchArgs {
    AicpuLaunchArgs {
        kernel_args: kernel_args.get(),
        so_addr,
        so_len,
        reserved: 0,
        kernel_name: name_field(entry),
        so_name: name_field(AICPU_SO_NAME),
        op_name: [0; AICPU_NAME_BYTES],
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;

    use pto_abi::launch::{BOOT_STATE_READY, LAUNCH_FLAG_DETERMINISTIC};
    use pto_abi::sizing::ArenaSizingKey;
    use zerocopy::FromZeros;

    use super::*;
    use crate::platform::HostPlatform;
    use crate::program::{EXAMPLE_KERNELS, EXAMPLE_ORCHESTRATIONS};
    use crate::testkit::HostRuntime;

    const CODE: CodeTable = code_table(&EXAMPLE_KERNELS, &EXAMPLE_ORCHESTRATIONS);

    /// A runtime booted in host memory, its KernelArgs, and a program copy.
    struct Launch {
        rt: HostRuntime,
        args: Box<KernelArgs>,
        so: Box<[u8; 64]>,
    }

    impl Launch {
        fn new() -> Launch {
            let rt = HostRuntime::new(&ArenaSizingKey::uniform(64, 1 << 16, 64)).unwrap();
            let mut args = Box::new(KernelArgs::new_zeroed());
            args.runtime_desc = DevAddr(rt.launch_descriptor() as u64);
            Launch { rt, args, so: Box::new([0x7f; 64]) }
        }

        fn block(&self, entry: &str) -> Box<AicpuLaunchArgs> {
            let ka = DevAddr(&*self.args as *const KernelArgs as u64);
            Box::new(launch_block(entry, ka, self.so.as_ptr() as u64, self.so.len() as u64))
        }

        /// Changes the runtime's launch descriptor.
        fn edit(&self, f: impl FnOnce(&mut LaunchDescriptor)) {
            // SAFETY: the runtime's own descriptor; no entry runs while it is changed.
            f(unsafe { &mut *self.rt.launch_descriptor() })
        }
    }

    fn init_with(b: &mut AicpuLaunchArgs) -> AicpuStatus {
        // SAFETY: a block in host memory whose addresses are live or fail the checks.
        unsafe { init((b as *mut AicpuLaunchArgs).cast()) }
    }

    fn exec_with(b: &mut AicpuLaunchArgs) -> AicpuStatus {
        // SAFETY: as above.
        unsafe { exec((b as *mut AicpuLaunchArgs).cast(), &HostPlatform, &CODE) }
    }

    #[test]
    fn the_init_entry_boots_the_runtime_once_per_launch_and_reports_ready() {
        let l = Launch::new();
        let before = l.rt.boot_report().boot_count;
        let mut b = l.block(AICPU_INIT_ENTRY);
        assert_eq!(init_with(&mut b), AicpuStatus::Ok);
        let r = l.rt.boot_report();
        assert_eq!((r.state, r.boot_count), (BOOT_STATE_READY, before + 1));
        // A second block of the same launch claims index 1 and does not boot again.
        assert_eq!(init_with(&mut b), AicpuStatus::Ok);
        assert_eq!((l.rt.boot_report().boot_count, b.reserved), (before + 1, 2));
    }

    #[test]
    fn every_bad_argument_gets_its_own_status() {
        let l = Launch::new();
        // SAFETY: null is refused before anything is read.
        assert_eq!(unsafe { init(core::ptr::null_mut()) }, AicpuStatus::NullArgs);
        let mut raw = Box::new([0u64; 20]);
        let odd = (raw.as_mut_ptr() as *mut u8).wrapping_add(4).cast::<c_void>();
        // SAFETY: a misaligned address is refused before anything is read.
        assert_eq!(unsafe { exec(odd, &HostPlatform, &CODE) }, AicpuStatus::MisalignedArgs);

        type Spoil = fn(&mut AicpuLaunchArgs);
        let cases: [(&str, Spoil, AicpuStatus); 8] = [
            ("entry", |b| b.kernel_name = name_field(AICPU_EXEC_ENTRY), AicpuStatus::WrongEntry),
            ("unterminated entry", |b| b.kernel_name = [b'p'; 32], AicpuStatus::WrongEntry),
            ("so name", |b| b.so_name = name_field("libother.so"), AicpuStatus::WrongSoName),
            ("so length", |b| b.so_len = 0, AicpuStatus::BadProgramCopy),
            ("so range", |b| b.so_addr = USER_ADDR_END - 8, AicpuStatus::BadProgramCopy),
            ("null kernel args", |b| b.kernel_args = 0, AicpuStatus::BadKernelArgs),
            ("misaligned kernel args", |b| b.kernel_args += 4, AicpuStatus::BadKernelArgs),
            ("kernel args out of range", |b| b.kernel_args = u64::MAX - 7, AicpuStatus::BadKernelArgs),
        ];
        for (what, spoil, want) in cases {
            let mut b = l.block(AICPU_INIT_ENTRY);
            spoil(&mut b);
            assert_eq!(init_with(&mut b), want, "{what}");
            assert_eq!(b.reserved, 0, "{what}: a refused block claims no index");
        }
        let before = l.rt.boot_report().boot_count;
        let mut args = Box::new(*l.args);
        let mut with_desc = |desc: u64| {
            args.runtime_desc = DevAddr(desc);
            let mut b = l.block(AICPU_INIT_ENTRY);
            b.kernel_args = &*args as *const KernelArgs as u64;
            init_with(&mut b)
        };
        assert_eq!(with_desc(0), AicpuStatus::BadLaunchDescriptor);
        assert_eq!(with_desc(l.rt.launch_descriptor() as u64 + 8), AicpuStatus::BadLaunchDescriptor);
        assert_eq!(with_desc(USER_ADDR_END), AicpuStatus::BadLaunchDescriptor);

        l.edit(|d| d.magic ^= 1);
        assert_eq!(init_with(&mut l.block(AICPU_INIT_ENTRY)), AicpuStatus::BadLaunchMagic);
        l.edit(|d| {
            d.magic ^= 1;
            d.abi_fingerprint ^= 1;
        });
        assert_eq!(init_with(&mut l.block(AICPU_INIT_ENTRY)), AicpuStatus::BadFingerprint);
        assert_eq!(exec_with(&mut l.block(AICPU_EXEC_ENTRY)), AicpuStatus::BadFingerprint);
        l.edit(|d| d.abi_fingerprint ^= 1);
        for count in [0, MAX_AICPU_THREADS as u32 + 1] {
            l.edit(|d| d.aicpu_thread_count = count);
            assert_eq!(exec_with(&mut l.block(AICPU_EXEC_ENTRY)), AicpuStatus::BadThreadCount, "{count} threads");
        }
        assert_eq!(l.rt.boot_report().boot_count, before, "nothing booted");
    }

    #[test]
    fn an_exec_block_claims_its_thread_and_refuses_an_unknown_orchestration() {
        let l = Launch::new();
        l.edit(|d| {
            d.aicpu_thread_count = 2;
            d.flags = LAUNCH_FLAG_DETERMINISTIC;
            d.orchestration = DevAddr(0);
        });
        let mut b = l.block(AICPU_EXEC_ENTRY);
        // Every thread resolves the orchestration before it runs (with the table the firmware
        // uses): address 0 names none.
        assert_eq!(exec_with(&mut b), AicpuStatus::UnknownOrchestration);
        assert_eq!(exec_with(&mut b), AicpuStatus::UnknownOrchestration);
        // Blocks beyond the thread count have nothing to do.
        assert_eq!(exec_with(&mut b), AicpuStatus::Ok);
        assert_eq!(b.reserved, 3);
    }

    #[test]
    fn statuses_are_distinct_and_round_trip() {
        for (i, s) in AicpuStatus::ALL.iter().enumerate() {
            assert_eq!(*s as i32, i as i32);
            assert_eq!(AicpuStatus::from_code(*s as i32), Some(*s));
            assert!(!s.name().is_empty());
        }
        assert_eq!(AicpuStatus::from_code(-1), None);
    }
}
