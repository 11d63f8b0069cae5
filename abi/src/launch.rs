//! What a launch hands the device: the launch descriptor, `KernelArgs`, and the AICore protocol
//! records (registers, handshake, payload).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::DevAddr;
use crate::consts::{MAX_FUNC_IDS, MAX_KERNEL_ARGS};

/// `LaunchDescriptor::magic`: "PTOLAUNC" little-endian.
pub const LAUNCH_MAGIC: u64 = u64::from_le_bytes(*b"PTOLAUNC");

/// Per-launch description of the device regions and run parameters.
///
/// It carries each region's real size so the device can bound-check the image against the memory
/// it really has.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct LaunchDescriptor {
    /// [`LAUNCH_MAGIC`].
    pub magic: u64,
    /// ABI fingerprint of the host that wrote this descriptor.
    pub abi_fingerprint: u64,
    /// Runtime arena base (the resident image).
    pub arena_base: DevAddr,
    /// Bytes of the arena region.
    pub arena_region_size: u64,
    /// SM base.
    pub sm_base: DevAddr,
    /// Bytes of the SM region.
    pub sm_region_size: u64,
    /// GM heap base.
    pub heap_base: DevAddr,
    /// Bytes of the GM heap region.
    pub heap_region_size: u64,
    /// Orchestration entry (a device address of its bytes or a registered function).
    pub orchestration: DevAddr,
    /// Device address of the orchestration's arguments ([`OrchArg`] array).
    pub orch_args: DevAddr,
    /// Number of [`OrchArg`]s at `orch_args`.
    pub orch_arg_count: u32,
    /// AICPU threads of this run (the last is the orchestrator).
    pub aicpu_thread_count: u32,
    /// AICore clusters to drive.
    pub cluster_count: u32,
    /// Used entries of `func_table`.
    pub func_count: u32,
    /// Orchestrator no-progress budget, nanoseconds.
    pub orch_timeout_ns: u64,
    /// Scheduler no-progress budget, nanoseconds.
    pub sched_timeout_ns: u64,
    /// Run flags (`LAUNCH_FLAG_*`).
    pub flags: u64,
    /// Device address of the [`BootReport`] the device writes for this launch (null = none).
    pub boot_report: DevAddr,
    /// Bytes of the image the host placed at `arena_base` (the resident image's size).
    pub image_bytes: u64,
    /// Device address of the run's trace region ([`crate::trace::TraceHeader`] first), or null
    /// when the run is not traced (level 0).
    pub trace_base: DevAddr,
    /// Bytes of the trace region (0 when not traced).
    pub trace_bytes: u64,
    /// Trace level of the run (0 = off, up to [`crate::trace::MAX_TRACE_LEVEL`]).
    pub trace_level: u32,
    /// Explicit padding.
    pub _pad0: [u8; 4],
    /// Explicit padding to a whole number of lines.
    pub _pad: [u8; 32],
    /// Kernel code address by func id (null = unused).
    pub func_table: [DevAddr; MAX_FUNC_IDS],
}

/// `LaunchDescriptor::flags`: run the deterministic single-thread mode (the orchestrator thread
/// also schedules, virtual cores complete a task when it is dispatched).
pub const LAUNCH_FLAG_DETERMINISTIC: u64 = 1 << 0;
/// `LaunchDescriptor::flags`, with [`LAUNCH_FLAG_DETERMINISTIC`]: virtual cores complete a task
/// without running its kernels (scheduling-cost measurements).
pub const LAUNCH_FLAG_NOOP_CORES: u64 = 1 << 1;
/// `LaunchDescriptor::flags`: the image's bytes arrived fresh (the first boot after an upload):
/// boot checks `ImageHeader::checksum` before trusting anything past the header.
pub const LAUNCH_FLAG_VERIFY_IMAGE: u64 = 1 << 2;

/// `OrchArg::kind`: a tensor (`value` = device address, `bytes` = size).
pub const ORCH_ARG_TENSOR: u32 = 0;
/// `OrchArg::kind`: a scalar (`value` = raw 64-bit word, `bytes` = 0).
pub const ORCH_ARG_SCALAR: u32 = 1;

/// One argument of a run, as the orchestration receives it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct OrchArg {
    /// Device address of a tensor, or a scalar's raw value.
    pub value: u64,
    /// Bytes of a tensor; 0 for a scalar.
    pub bytes: u64,
    /// [`ORCH_ARG_TENSOR`] or [`ORCH_ARG_SCALAR`].
    pub kind: u32,
    /// A `DType` value of a tensor (0 for a scalar).
    pub dtype: u32,
}

/// `BootReport::state`: the boot of this launch has not finished yet.
pub const BOOT_STATE_PENDING: u32 = 0;
/// `BootReport::state`: boot succeeded and the runtime is ready.
pub const BOOT_STATE_READY: u32 = 1;
/// `BootReport::state`: boot failed; `code`, `expected`, `found`, `limit` and `subject` say why.
pub const BOOT_STATE_FAILED: u32 = 2;
/// Bytes of `BootReport::subject`.
pub const BOOT_SUBJECT_BYTES: usize = 64;

/// What the device reports about one boot; the host writes it as PENDING with every launch.
///
/// It lives next to the launch descriptor, not inside the arena, so a boot that rejects the image
/// can still report. `state` is written last (release) and is the one word AICPU threads and the
/// host wait on.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct BootReport {
    /// `BOOT_STATE_*`.
    pub state: u32,
    /// A `BootErrorCode` value when failed, else 0.
    pub code: u32,
    /// The value the firmware required (meaning depends on `code`).
    pub expected: u64,
    /// The value the firmware found.
    pub found: u64,
    /// A second bound when the rule is a range (e.g. the end of the region a pointer must lie in).
    pub limit: u64,
    /// Runtime epoch after a successful boot.
    pub epoch: u64,
    /// Boots of the resident image, including this one, after a successful boot.
    pub boot_count: u64,
    /// Explicit padding to the end of the first line.
    pub _pad: [u8; 16],
    /// NUL-padded ASCII name of the field or region concerned.
    pub subject: [u8; BOOT_SUBJECT_BYTES],
}

/// The one struct every AICPU and AICore program receives (96 bytes; offsets 0 and 8 are frozen).
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KernelArgs {
    /// Device address of the [`LaunchDescriptor`].
    pub runtime_desc: DevAddr,
    /// Device address of the AICore register table.
    pub register_table: DevAddr,
    /// Device address of the handshake records.
    pub handshake_table: DevAddr,
    /// Device address of the AICore payloads.
    pub core_payloads: DevAddr,
    /// AICore cores launched.
    pub core_count: u32,
    /// AICore block dimension of the launch.
    pub block_dim: u32,
    /// Launch flags.
    pub flags: u64,
    /// Reserved; zero.
    pub reserved: [u64; 6],
}

/// Dispatch register value: the core is idle (no task).
pub const DISPATCH_IDLE: u64 = 0;
/// Dispatch register value: the core must exit.
pub const DISPATCH_EXIT: u64 = u64::MAX;
/// Condition register: kind bits for an acknowledgement (token in the low 56 bits).
pub const COND_ACK: u64 = 1 << 56;
/// Condition register: kind bits for a finished task (token in the low 56 bits).
pub const COND_FIN: u64 = 2 << 56;
/// Condition register: kind bits for an exit acknowledgement.
pub const COND_EXITED: u64 = 3 << 56;
/// Condition register: kind bits for a task that did not run to completion (token in the low 56
/// bits); the reason is in the core's [`HandshakeRecord::faults`] word of the token's parity.
pub const COND_FAULT: u64 = 4 << 56;
/// Mask of the token bits of a condition register value.
pub const COND_TOKEN_MASK: u64 = (1 << 56) - 1;
/// Mask of the kind bits of a condition register value (0 = nothing reported since boot).
pub const COND_KIND_MASK: u64 = !COND_TOKEN_MASK;
/// Bits of a [`HandshakeRecord::faults`] word below the token: the [`CoreFault`] reason.
pub const FAULT_REASON_BITS: u32 = 8;

crate::abi_enum! {
    /// Why a core reported [`COND_FAULT`] for a token instead of [`COND_FIN`].
    pub enum CoreFault {
        /// The payload's kernel address names no kernel the core can run.
        UnknownKernel = 1,
        /// The payload's `arg_count` exceeds `MAX_KERNEL_ARGS`.
        BadArgCount = 2,
        /// The kernel started but did not complete (a panic on the simulated device).
        KernelFailed = 3,
    }
}

/// `AicorePayload::flags`: the core stamps the token's kernel start and end on its own clock
/// into [`CoreRegisters::start_ns`] / [`CoreRegisters::end_ns`] (traced runs).
pub const PAYLOAD_FLAG_STAMP: u32 = 1;

/// One core's registers; dispatch (AICPU writes) and condition (core writes) on separate lines.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CoreRegisters {
    /// Monotonic dispatch token, or [`DISPATCH_IDLE`] / [`DISPATCH_EXIT`].
    pub dispatch: u64,
    /// Explicit padding: the AICPU's line.
    pub _pad0: [u8; 56],
    /// `COND_*` kind | token.
    pub condition: u64,
    /// Per token parity, the core's clock (nanoseconds) when the token's kernel started; written
    /// by the core before it reports the token's end, only for payloads with
    /// [`PAYLOAD_FLAG_STAMP`].
    pub start_ns: [u64; 2],
    /// Per token parity, the core's clock (nanoseconds) when the token's kernel ended; written
    /// like `start_ns`.
    pub end_ns: [u64; 2],
    /// Explicit padding: the rest of the core's line.
    pub _pad1: [u8; 24],
}

/// A core announces itself through this record before polling its dispatch register.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct HandshakeRecord {
    /// Core index.
    pub core_id: u32,
    /// A `Lane` value.
    pub lane: u32,
    /// Cluster index.
    pub cluster: u32,
    /// Nonzero once the core is polling.
    pub online: u32,
    /// This core's [`CoreRegisters`].
    pub registers: DevAddr,
    /// This core's two [`AicorePayload`]s.
    pub payloads: DevAddr,
    /// Per token parity, the last fault of that parity: `token << FAULT_REASON_BITS | CoreFault`
    /// (0 = none). The core writes it before it publishes [`COND_FAULT`] for the token.
    pub faults: [u64; 2],
    /// Explicit padding to one cache line.
    pub _pad: [u8; 16],
}

/// What a core runs for one dispatch token; two per core, chosen by token parity.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct AicorePayload {
    /// Kernel code address.
    pub kernel: DevAddr,
    /// Task being run.
    pub task_id: u64,
    /// Block index of this dispatch.
    pub block_idx: u32,
    /// Block count of the task.
    pub block_num: u32,
    /// Used entries of `args`.
    pub arg_count: u32,
    /// `PAYLOAD_FLAG_*` bits.
    pub flags: u32,
    /// Argument words: tensor addresses then scalars.
    pub args: [u64; MAX_KERNEL_ARGS],
    /// Explicit padding to a whole number of lines.
    pub _pad1: [u8; 32],
}
