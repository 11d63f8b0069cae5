//! The emulated device's protocol: how an x86-64 host drives the real `aarch64-unknown-none`
//! firmware (`pto-firmware`) running in `qemu-system-aarch64 -machine virt`, whose guest RAM is a
//! file the host maps too.
//!
//! # Addresses
//!
//! Device addresses are guest physical addresses, and the firmware maps them 1:1 (virtual =
//! physical), so every [`DevAddr`] in an image, a launch descriptor or a payload means the same
//! byte on both sides. Guest RAM starts at [`EMU_GUEST_RAM_BASE`]; the byte at guest address `a`
//! is at offset `a - EMU_GUEST_RAM_BASE` of the shared file. The host never writes guest RAM
//! except inside the device heap ([`EmuAbiRecord::heap_base`] up to the end of RAM) and the
//! host-written words named below.
//!
//! # Pieces
//!
//! * [`EmuAbiRecord`] — the ELF section [`EMU_ABI_SECTION`] (`.pto_abi`): what the host checks
//!   before it starts qemu (magic, [`ABI_VERSION`](crate::ABI_VERSION),
//!   [`ABI_FINGERPRINT`](crate::ABI_FINGERPRINT)) and where everything lives. The section holds the
//!   record followed by the name table ([`EmuNameEntry`] × `name_count`).
//! * [`EmuControlBlock`] — at [`EmuAbiRecord::control_block`]: firmware-ready, the doorbell, the
//!   launch slots, the fault and panic records, the shutdown request.
//! * [`EmuLogHeader`] — at [`EmuAbiRecord::log_ring`]: the defmt log ring.
//!
//! # One writer per word
//!
//! Every word below names its writer. Host-written and firmware-written words never share a
//! 64-byte line. A word that publishes others (`ready`, `doorbell`, `seq`, `done_seq`, `valid`,
//! `write`, `read`) is stored with Release after the words it publishes and loaded with Acquire
//! before they are read. The shared file starts zero-filled; the firmware writes its own words at
//! boot before it publishes `ready`, and never writes a host word.
//!
//! # Run flow
//!
//! 1. The host creates the RAM file (its size = qemu's `-m`), reads `.pto_abi` from the firmware
//!    ELF, refuses it unless [`EmuAbiRecord::check`] passes and `min_ram_bytes <= -m`, and starts
//!    `qemu-system-aarch64 -machine virt,memory-backend=mem -cpu cortex-a72 -smp N` with
//!    `min_vcpus <= N <= max_vcpus`.
//! 2. vCPU 0 (the *control core*) boots, resets the firmware words of the control block and the
//!    log header, counts the vCPUs (PSCI `AFFINITY_INFO`), writes line 0 of the control block and
//!    then `ready = EMU_READY` (Release). The host waits for it (Acquire, with a deadline and a
//!    check that qemu is alive).
//! 3. A launch is `DeviceBackend::launch_kernel(handle, stream, block_dim, args)`: the binary
//!    registered for `handle` is one of the [`EmuProgram`] names; the host takes the next sequence
//!    number `n = doorbell + 1`, uses slot `(n - 1) % EMU_LAUNCH_SLOTS` (only once that slot's
//!    `done_seq == seq`, i.e. its previous launch finished, or `seq == 0`), writes `program`,
//!    `block_dim`, `kernel_args`, `abort = 0`, then `seq = n`, then `doorbell = n` (Release).
//! 4. The control core takes launches strictly in sequence order. It writes `started_seq = n`
//!    once the launch's vCPUs are assigned (it waits for vCPUs still busy with an earlier launch),
//!    and when every block has returned it writes `status`, `failed_block`, `detail`,
//!    `end_ticks`, then `done_seq = n` (Release). The host polls `done_seq` (Acquire).
//! 5. `stream_abort`: the host writes `abort = 1` into the slot. AICore cores of that launch stop
//!    at their next idle poll (as on the sim: a kernel already running finishes first); AICPU
//!    threads end through their own budgets.
//! 6. A fault (synchronous exception, IRQ, SError) or a panic on any vCPU fills the fault or panic
//!    record (`valid = 1`, Release, last) and powers that vCPU off; the firmware then starts no
//!    further launch (a later launch ends with [`EmuLaunchStatus::Halted`]) and the host must treat
//!    the device as lost (`DeviceFault`) and start a fresh qemu.
//! 7. Shutdown: the host writes `shutdown = 1` (Release); the control core calls PSCI
//!    `SYSTEM_OFF` at its next poll and qemu exits with status 0.
//!
//! # Where programs run
//!
//! With `N` vCPUs: vCPU 0 is the control core (it runs no program, so the doorbell, shutdown and
//! abort words are always watched); AICPU threads run on vCPUs `1 ..= a` with
//! `a = min(MAX_AICPU_THREADS, N - 2)` (block `t` of an [`EmuProgram::AicpuMain`] launch is thread
//! `t` on vCPU `1 + t`; the highest thread orchestrates); AICore cores are the blocks of an
//! [`EmuProgram::AicoreMain`] launch, spread over the remaining `N - 1 - a` vCPUs (core `c` is
//! served by AICore vCPU `c % (N - 1 - a)`, each vCPU polling its cores in turn). The firmware
//! reports `a` and `N - 1 - a` in the control block.
//!
//! # Code found by name
//!
//! Orchestrations and kernels are compiled into the firmware and listed in the name table. The
//! firmware resolves a code address from device memory, as the callable upload lays it out:
//!
//! * a kernel address `K` (a payload's `kernel`, a func-table entry) names the kernel whose
//!   `CoreCallableHeader` starts at `K - CORE_CODE_OFFSET` (magic `CORE_CALLABLE_MAGIC`): its
//!   `name` is looked up among the [`EmuNameKind::Kernel`] entries;
//! * the orchestration address `O` of a launch descriptor names the orchestration whose
//!   `ChipCallableHeader` starts at `O - CHIP_HEADER_SIZE` (magic `CHIP_CALLABLE_MAGIC`,
//!   `orchestration_offset == CHIP_HEADER_SIZE`): its `orchestration_name` is looked up among the
//!   [`EmuNameKind::Orchestration`] entries.
//!
//! An unknown kernel is a core fault (`CoreFault::UnknownKernel`), as on the sim; an unknown
//! orchestration ends the AICPU launch with [`EmuLaunchStatus::UnknownOrchestration`]. The host
//! reads the name table from the ELF and refuses a callable naming code the firmware lacks before
//! it launches anything.
//!
//! # Log ring
//!
//! defmt frames (rzcobs-encoded, each ending in a 0x00 byte; the ELF's defmt table says the
//! encoding) are appended to the bytes after [`EmuLogHeader`], at `cursor % capacity`. The
//! firmware writes a frame only when it fits whole into `capacity - (write - read)`; otherwise it
//! drops the frame and counts it in `dropped_frames`. A full ring never blocks the device.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::DevAddr;
use crate::callable::NAME_BYTES;

/// Guest physical address of the first byte of guest RAM on qemu's `virt` machine (file offset 0
/// of the shared RAM file).
pub const EMU_GUEST_RAM_BASE: u64 = 0x4000_0000;
/// Name of the ELF section holding the [`EmuAbiRecord`] and the name table.
pub const EMU_ABI_SECTION: &str = ".pto_abi";
/// [`EmuAbiRecord::magic`]: "PTOEMUFW" little-endian.
pub const EMU_ABI_MAGIC: u64 = u64::from_le_bytes(*b"PTOEMUFW");
/// [`EmuControlBlock::magic`]: "PTOEMUCB" little-endian.
pub const EMU_CONTROL_MAGIC: u64 = u64::from_le_bytes(*b"PTOEMUCB");
/// [`EmuLogHeader::magic`]: "PTOEMULG" little-endian.
pub const EMU_LOG_MAGIC: u64 = u64::from_le_bytes(*b"PTOEMULG");
/// Launch slots of the control block; launch `n` (from 1) uses slot `(n - 1) % EMU_LAUNCH_SLOTS`.
pub const EMU_LAUNCH_SLOTS: usize = 4;
/// Most vCPUs the firmware drives (qemu `virt` with GICv2; MPIDR affinity 0 = vCPU index).
pub const EMU_MAX_VCPUS: usize = 8;
/// Fewest vCPUs the firmware runs with: the control core, one AICPU thread, one AICore vCPU.
pub const EMU_MIN_VCPUS: usize = 3;
/// Bytes of [`EmuPanicRecord::file`].
pub const EMU_PANIC_FILE_BYTES: usize = 128;
/// Bytes of [`EmuPanicRecord::message`].
pub const EMU_PANIC_MESSAGE_BYTES: usize = 256;
/// [`EmuControlBlock::ready`]: the firmware is booting (the file's initial zero).
pub const EMU_BOOTING: u32 = 0;
/// [`EmuControlBlock::ready`]: the firmware takes launches.
pub const EMU_READY: u32 = 1;
/// [`EmuControlBlock::shutdown`]: power-off requested.
pub const EMU_SHUTDOWN_REQUESTED: u32 = 1;
/// [`EmuLaunchSlot::abort`]: the host aborted the launch.
pub const EMU_ABORT_REQUESTED: u32 = 1;
/// [`EmuLaunchSlot::failed_block`] when no block failed.
pub const EMU_NO_BLOCK: u32 = u32::MAX;
/// Bytes of each record's `valid` flag meaning "filled".
pub const EMU_RECORD_VALID: u32 = 1;

crate::abi_enum! {
    /// What a launch runs; the names are the kernel-binary names the host registers (the same
    /// names as the simulated device's built-in entries).
    pub enum EmuProgram {
        /// AICPU threads: block `t` is thread `t` of `KernelArgs::runtime_desc`'s launch
        /// descriptor (boot, then orchestrator or scheduler).
        AicpuMain = 1 => "pto_aicpu_main", "AICPU threads: boot, orchestrator, schedulers",
        /// AICore cores: block `c` is core `c` (blocks at or above `KernelArgs::core_count`
        /// return at once); each waits for the launch's boot, then serves its tokens.
        AicoreMain = 2 => "pto_aicore_main", "AICore cores serving the AICore protocol",
        /// Block 0 boots the runtime of `KernelArgs::runtime_desc` and nothing else.
        AicpuBoot = 3 => "pto_aicpu_boot", "boot the runtime only",
    }
}

impl EmuProgram {
    /// The program registered under the kernel-binary `name`, if any.
    pub fn from_binary_name(name: &[u8]) -> Option<EmuProgram> {
        EmuProgram::ALL.iter().copied().find(|p| p.name().as_bytes() == name)
    }
}

crate::abi_enum! {
    /// How a launch ended ([`EmuLaunchSlot::status`]); `detail` says more where noted.
    pub enum EmuLaunchStatus {
        /// Every block returned normally (runtime errors are in the SM error words and boot errors
        /// in the boot report, as on the sim).
        Ok = 0 => "OK", "every block returned",
        /// `program` is no [`EmuProgram`]; `detail` = the value.
        UnknownProgram = 1 => "UNKNOWN_PROGRAM", "the launch names no program the firmware has",
        /// `kernel_args` is not an aligned `KernelArgs` inside guest RAM; `detail` = the address.
        BadKernelArgs = 2 => "BAD_KERNEL_ARGS", "the KernelArgs address is not an aligned range of guest RAM",
        /// The launch needs more vCPUs than the firmware has for its kind; `detail` = vCPUs available.
        TooManyBlocks = 3 => "TOO_MANY_BLOCKS", "the launch has more blocks than vCPUs of its kind",
        /// `KernelArgs::runtime_desc` (or its boot report) is not an aligned range of guest RAM;
        /// `detail` = the address.
        BadLaunchDescriptor = 4 => "BAD_LAUNCH_DESCRIPTOR", "the launch descriptor or boot report is not in guest RAM",
        /// The descriptor's orchestration address names no orchestration in the name table;
        /// `detail` = the address.
        UnknownOrchestration = 5 => "UNKNOWN_ORCHESTRATION", "the orchestration is not compiled into the firmware",
        /// An AICPU thread waited for a boot that never reported.
        BootNotReady = 6 => "BOOT_NOT_READY", "an AICPU thread saw the runtime never become ready",
        /// An AICPU thread could not view the booted runtime.
        RuntimeView = 7 => "RUNTIME_VIEW", "an AICPU thread could not view the booted runtime",
        /// A scheduler thread could not open the channels of its cores.
        NoCores = 8 => "NO_CORES", "a scheduler could not open the channels of its cores",
        /// The AICore tables of `KernelArgs` do not lie in guest RAM; `detail` = the base at fault.
        BadCoreTables = 9 => "BAD_CORE_TABLES", "the AICore register, handshake or payload table is not in guest RAM",
        /// Not run: a fault or panic record is valid, the firmware starts nothing more.
        Halted = 10 => "HALTED", "the firmware halted after a fault or panic and runs nothing more",
        /// The slot's `seq` is not the doorbell's next sequence number; `detail` = the `seq` found.
        SlotMismatch = 11 => "SLOT_MISMATCH", "the launch slot does not hold the launch the doorbell announced",
        /// PSCI refused to start a vCPU of the launch; `detail` = the vCPU index.
        VcpuStartFailed = 12 => "VCPU_START_FAILED", "PSCI refused to start a vCPU for the launch",
    }
}

crate::abi_enum! {
    /// Kind of an [`EmuNameEntry`].
    pub enum EmuNameKind {
        /// An AICore kernel (`fn(&KernelInvocation)`).
        Kernel = 1 => "kernel", "an AICore kernel",
        /// An orchestration (`fn(&mut Orchestrator, &OrchArgs)`).
        Orchestration = 2 => "orchestration", "an orchestration",
    }
}

/// The `.pto_abi` ELF section's record; written once at link time, read by the host from the ELF
/// file (and by nobody at run time). [`EmuNameEntry`] × `name_count` follow it in the section,
/// starting `names_offset` bytes after the record's start.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EmuAbiRecord {
    /// [`EMU_ABI_MAGIC`].
    pub magic: u64,
    /// `ABI_VERSION` of the firmware build.
    pub abi_version: u32,
    /// `size_of::<EmuAbiRecord>()` of the firmware build.
    pub record_size: u32,
    /// `ABI_FINGERPRINT` of the firmware build: the host refuses a firmware whose value differs.
    pub abi_fingerprint: u64,
    /// Guest physical address of guest RAM ([`EMU_GUEST_RAM_BASE`]).
    pub ram_base: u64,
    /// Link origin of the firmware image (its entry point).
    pub image_base: u64,
    /// End of the guest RAM the firmware's image, stacks and page tables may use.
    pub image_limit: u64,
    /// Guest address of the [`EmuControlBlock`].
    pub control_block: DevAddr,
    /// Bytes reserved for the control block (at least `size_of::<EmuControlBlock>()`).
    pub control_block_size: u64,
    /// Guest address of the [`EmuLogHeader`]; the ring's bytes follow it.
    pub log_ring: DevAddr,
    /// Bytes of the log ring, header included.
    pub log_ring_size: u64,
    /// First guest address the host may allocate device memory from (the device heap runs from
    /// here to the end of guest RAM, capped at `mapped_ram_end`).
    pub heap_base: DevAddr,
    /// End of the guest addresses the firmware maps as RAM; guest RAM beyond it is unreachable.
    pub mapped_ram_end: u64,
    /// Fewest bytes of guest RAM (qemu `-m`) the firmware runs with.
    pub min_ram_bytes: u64,
    /// Offset of the name table from the start of this record.
    pub names_offset: u32,
    /// Entries of the name table.
    pub name_count: u32,
    /// `size_of::<EmuNameEntry>()` of the firmware build.
    pub name_entry_size: u32,
    /// Fewest vCPUs (qemu `-smp`) the firmware runs with ([`EMU_MIN_VCPUS`]).
    pub min_vcpus: u32,
    /// Most vCPUs the firmware drives ([`EMU_MAX_VCPUS`]).
    pub max_vcpus: u32,
    /// Launch slots of the control block ([`EMU_LAUNCH_SLOTS`]).
    pub launch_slots: u32,
}

/// Why a `.pto_abi` record is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmuAbiError {
    /// The magic is not [`EMU_ABI_MAGIC`] (found value).
    BadMagic(u64),
    /// `record_size` differs from this build's record (found value).
    RecordSize(u32),
    /// The ABI version differs (firmware's value).
    Version(u32),
    /// The ABI fingerprint differs (firmware's value).
    Fingerprint(u64),
    /// `name_entry_size` differs from this build's entry (found value).
    NameEntrySize(u32),
    /// `launch_slots` differs from [`EMU_LAUNCH_SLOTS`] (found value).
    LaunchSlots(u32),
}

impl core::fmt::Display for EmuAbiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            EmuAbiError::BadMagic(m) => write!(f, ".pto_abi magic is {m:#018x}, expected {EMU_ABI_MAGIC:#018x}"),
            EmuAbiError::RecordSize(s) => {
                write!(f, ".pto_abi record is {s} bytes, this host expects {}", core::mem::size_of::<EmuAbiRecord>())
            }
            EmuAbiError::Version(v) => {
                write!(f, "firmware has ABI version {v} but this host has version {}", crate::ABI_VERSION)
            }
            EmuAbiError::Fingerprint(fp) => {
                write!(f, "firmware has ABI fingerprint {fp:#018x} but this host has {:#018x}", crate::ABI_FINGERPRINT)
            }
            EmuAbiError::NameEntrySize(s) => write!(
                f,
                ".pto_abi name entries are {s} bytes, this host expects {}",
                core::mem::size_of::<EmuNameEntry>()
            ),
            EmuAbiError::LaunchSlots(n) => {
                write!(f, "firmware has {n} launch slots, this host expects {EMU_LAUNCH_SLOTS}")
            }
        }
    }
}

impl EmuAbiRecord {
    /// Checks that the record was built from this ABI: magic, record size, version, fingerprint,
    /// name-entry size and slot count, in that order (the first mismatch is reported).
    pub fn check(&self) -> Result<(), EmuAbiError> {
        if self.magic != EMU_ABI_MAGIC {
            return Err(EmuAbiError::BadMagic(self.magic));
        }
        if self.record_size as usize != core::mem::size_of::<EmuAbiRecord>() {
            return Err(EmuAbiError::RecordSize(self.record_size));
        }
        if self.abi_version != crate::ABI_VERSION {
            return Err(EmuAbiError::Version(self.abi_version));
        }
        if self.abi_fingerprint != crate::ABI_FINGERPRINT {
            return Err(EmuAbiError::Fingerprint(self.abi_fingerprint));
        }
        if self.name_entry_size as usize != core::mem::size_of::<EmuNameEntry>() {
            return Err(EmuAbiError::NameEntrySize(self.name_entry_size));
        }
        if self.launch_slots as usize != EMU_LAUNCH_SLOTS {
            return Err(EmuAbiError::LaunchSlots(self.launch_slots));
        }
        Ok(())
    }
}

/// One orchestration or kernel compiled into the firmware (link time; read-only).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EmuNameEntry {
    /// NUL-padded UTF-8 name, as in a callable header's name fields (at most `NAME_BYTES - 1`
    /// bytes).
    pub name: [u8; NAME_BYTES],
    /// An [`EmuNameKind`] value.
    pub kind: u32,
    /// Index among the entries of its kind (the firmware's function-table slot).
    pub index: u32,
}

impl EmuNameEntry {
    /// The name's bytes up to the first NUL.
    pub fn name_bytes(&self) -> &[u8] {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
        &self.name[..end]
    }
}

/// The control block at [`EmuAbiRecord::control_block`].
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EmuControlBlock {
    /// Firmware, at boot: [`EMU_CONTROL_MAGIC`].
    pub magic: u64,
    /// Firmware, last of this line (Release): [`EMU_BOOTING`] until the firmware takes launches,
    /// then [`EMU_READY`].
    pub ready: u32,
    /// Firmware, before `ready`: vCPUs found (qemu `-smp`).
    pub vcpu_count: u32,
    /// Firmware, before `ready`: vCPUs running AICPU threads (`1 ..= aicpu_vcpus`).
    pub aicpu_vcpus: u32,
    /// Firmware, before `ready`: vCPUs serving AICore cores (the ones after the AICPU vCPUs).
    pub aicore_vcpus: u32,
    /// Firmware, before `ready`: the generic timer's frequency (CNTFRQ_EL0), ticks per second.
    pub cntfrq: u64,
    /// Firmware, before `ready`: the virtual counter (CNTVCT_EL0) when the firmware became ready.
    pub ready_ticks: u64,
    /// Firmware (Release): sequence number of the newest launch the control core has taken.
    pub launches_taken: u64,
    /// Explicit padding: the rest of the firmware's line.
    pub _pad0: [u8; 16],
    /// Host (Release): sequence number of the newest launch posted (0 = none).
    pub doorbell: u64,
    /// Host (Release): [`EMU_SHUTDOWN_REQUESTED`] asks the firmware to power the machine off.
    pub shutdown: u32,
    /// Explicit padding: the rest of the host's line.
    pub _pad1: [u8; 52],
    /// Firmware: the first fault taken by any vCPU.
    pub fault: EmuFaultRecord,
    /// Firmware: the first panic of any vCPU.
    pub panic: EmuPanicRecord,
    /// The launch slots.
    pub launches: [EmuLaunchSlot; EMU_LAUNCH_SLOTS],
}

/// The first exception the firmware did not expect (firmware-written; the first faulting vCPU
/// claims it, later faults only power their vCPU off).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EmuFaultRecord {
    /// [`EMU_RECORD_VALID`] once the fields below are written (Release, last).
    pub valid: u32,
    /// vCPU index (MPIDR affinity 0) that faulted.
    pub core: u32,
    /// Vector table entry, 0..16: `group * 4 + kind`; groups: current EL with SP_EL0, current EL
    /// with SP_ELx, lower EL AArch64, lower EL AArch32; kinds: synchronous, IRQ, FIQ, SError.
    pub vector: u32,
    /// Firmware-internal claim word (the first faulting vCPU sets it; the host ignores it).
    pub claimed: u32,
    /// ESR_EL1: exception syndrome.
    pub esr: u64,
    /// ELR_EL1: address of the faulting instruction.
    pub elr: u64,
    /// FAR_EL1: faulting data/instruction address (meaningful for aborts).
    pub far: u64,
    /// SPSR_EL1: saved processor state.
    pub spsr: u64,
    /// Sequence number of the launch the vCPU was running (0 = none: the control core or boot).
    pub launch_seq: u64,
    /// Explicit padding to one line.
    pub _pad: [u8; 8],
}

/// The first panic of the firmware (firmware-written; claimed like [`EmuFaultRecord`]).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EmuPanicRecord {
    /// [`EMU_RECORD_VALID`] once the fields below are written (Release, last).
    pub valid: u32,
    /// vCPU index that panicked.
    pub core: u32,
    /// Source line of the panic (0 = unknown).
    pub line: u32,
    /// Source column of the panic (0 = unknown).
    pub column: u32,
    /// Sequence number of the launch the vCPU was running (0 = none).
    pub launch_seq: u64,
    /// Firmware-internal claim word (the host ignores it).
    pub claimed: u32,
    /// Bytes of `message` used (the message is cut at [`EMU_PANIC_MESSAGE_BYTES`]).
    pub message_len: u32,
    /// Bytes of `file` used (the path is cut at [`EMU_PANIC_FILE_BYTES`], keeping its end).
    pub file_len: u32,
    /// Explicit padding to the end of the first line.
    pub _pad: [u8; 28],
    /// UTF-8 source file path (the last `file_len` bytes that fit).
    pub file: [u8; EMU_PANIC_FILE_BYTES],
    /// UTF-8 panic message (may end inside a character when cut).
    pub message: [u8; EMU_PANIC_MESSAGE_BYTES],
}

/// One launch: a host line (what to run) and a firmware line (how it ended).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EmuLaunchSlot {
    /// Host, last of the host's fields for this launch, before the doorbell: the launch's sequence
    /// number (from 1).
    pub seq: u64,
    /// Host: an [`EmuProgram`] value.
    pub program: u32,
    /// Host: blocks of the launch (AICPU threads, or AICore cores).
    pub block_dim: u32,
    /// Host: guest address of the launch's `KernelArgs`.
    pub kernel_args: DevAddr,
    /// Host, any time after the doorbell: [`EMU_ABORT_REQUESTED`] aborts the launch.
    pub abort: u32,
    /// Explicit padding: the rest of the host's line.
    pub _pad0: [u8; 36],
    /// Firmware, last (Release): `seq` once every block of the launch has returned.
    pub done_seq: u64,
    /// Firmware, before `done_seq`: an [`EmuLaunchStatus`] value.
    pub status: u32,
    /// Firmware, before `done_seq`: the first block that failed ([`EMU_NO_BLOCK`] = none).
    pub failed_block: u32,
    /// Firmware, before `done_seq`: status-specific detail (an address, a count).
    pub detail: u64,
    /// Firmware (Release): `seq` once the launch's vCPUs are assigned and its blocks started.
    pub started_seq: u64,
    /// Firmware, before `started_seq`: CNTVCT when the blocks were started.
    pub start_ticks: u64,
    /// Firmware, before `done_seq`: CNTVCT when the last block returned.
    pub end_ticks: u64,
    /// Explicit padding: the rest of the firmware's line.
    pub _pad1: [u8; 16],
}

/// Header of the log ring at [`EmuAbiRecord::log_ring`]; `capacity` bytes of ring data follow it.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EmuLogHeader {
    /// Firmware, at boot before `ready`: [`EMU_LOG_MAGIC`].
    pub magic: u64,
    /// Firmware, at boot before `ready`: bytes of ring data after this header.
    pub capacity: u64,
    /// Firmware (Release, after the frame's bytes): bytes ever written (monotonic); the next
    /// frame starts at `write % capacity`.
    pub write: u64,
    /// Firmware: frames dropped because the ring had no room for them (monotonic).
    pub dropped_frames: u64,
    /// Firmware: frames written (monotonic).
    pub written_frames: u64,
    /// Explicit padding: the rest of the firmware's line.
    pub _pad0: [u8; 24],
    /// Host (Release, after it has copied the bytes out): bytes ever consumed (monotonic,
    /// `read <= write`).
    pub read: u64,
    /// Explicit padding: the rest of the host's line.
    pub _pad1: [u8; 56],
}

/// Offset of the log ring's data from [`EmuAbiRecord::log_ring`].
pub const EMU_LOG_DATA_OFFSET: u64 = core::mem::size_of::<EmuLogHeader>() as u64;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn host_and_firmware_words_never_share_a_line() {
        assert_eq!(offset_of!(EmuControlBlock, doorbell) % 64, 0);
        assert_eq!(offset_of!(EmuControlBlock, fault) % 64, 0);
        assert_eq!(offset_of!(EmuLaunchSlot, done_seq), 64);
        assert_eq!(offset_of!(EmuLogHeader, read), 64);
        assert_eq!(size_of::<EmuLaunchSlot>(), 128);
        assert_eq!(size_of::<EmuAbiRecord>(), 128);
    }

    #[test]
    fn program_names_map_back_and_unknown_values_are_rejected() {
        for &p in EmuProgram::ALL {
            assert_eq!(EmuProgram::from_binary_name(p.name().as_bytes()), Some(p));
        }
        assert_eq!(EmuProgram::from_binary_name(b"pto_aicpu"), None);
        assert_eq!(EmuLaunchStatus::try_from(13), Err(13));
    }

    fn good() -> EmuAbiRecord {
        EmuAbiRecord {
            magic: EMU_ABI_MAGIC,
            abi_version: crate::ABI_VERSION,
            record_size: size_of::<EmuAbiRecord>() as u32,
            abi_fingerprint: crate::ABI_FINGERPRINT,
            ram_base: EMU_GUEST_RAM_BASE,
            image_base: 0,
            image_limit: 0,
            control_block: DevAddr::NULL,
            control_block_size: 0,
            log_ring: DevAddr::NULL,
            log_ring_size: 0,
            heap_base: DevAddr::NULL,
            mapped_ram_end: 0,
            min_ram_bytes: 0,
            names_offset: size_of::<EmuAbiRecord>() as u32,
            name_count: 0,
            name_entry_size: size_of::<EmuNameEntry>() as u32,
            min_vcpus: EMU_MIN_VCPUS as u32,
            max_vcpus: EMU_MAX_VCPUS as u32,
            launch_slots: EMU_LAUNCH_SLOTS as u32,
        }
    }

    #[test]
    fn check_reports_the_first_mismatch() {
        assert_eq!(good().check(), Ok(()));
        let r = EmuAbiRecord { abi_fingerprint: 1, ..good() };
        assert_eq!(r.check(), Err(EmuAbiError::Fingerprint(1)));
        let r = EmuAbiRecord { magic: 7, abi_fingerprint: 1, ..good() };
        assert_eq!(r.check(), Err(EmuAbiError::BadMagic(7)));
        let r = EmuAbiRecord { abi_version: 99, ..good() };
        assert_eq!(r.check(), Err(EmuAbiError::Version(99)));
        extern crate std;
        use std::string::ToString;
        let text = EmuAbiError::Fingerprint(0xab).to_string();
        assert!(text.contains("0x00000000000000ab") && text.contains("this host has"), "{text}");
    }
}
