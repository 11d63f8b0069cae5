//! The launch block: `KernelArgs`, `LaunchDescriptor` and `BootReport` in one device allocation,
//! written with one upload per launch; and the host's reading of a boot report.

use std::fmt;
use std::mem::{offset_of, size_of};

use pto_abi::consts::MAX_FUNC_IDS;
use pto_abi::error::BootErrorCode;
use pto_abi::launch::{BootReport, KernelArgs, LaunchDescriptor, BOOT_STATE_FAILED, BOOT_STATE_READY, LAUNCH_MAGIC};
use pto_abi::layout::ArenaOffsets;
use pto_abi::{DevAddr, ABI_FINGERPRINT};
use pto_device::aicore::CoreTables;
use pto_device::boot::{write_boot_error, DeviceRegions};

use super::kernels::LaunchError;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// Parameters of one launch that the descriptor carries besides the regions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchParams {
    /// AICPU threads (the last is the orchestrator).
    pub aicpu_thread_count: u32,
    /// AICore clusters to drive.
    pub cluster_count: u32,
    /// Orchestration entry.
    pub orchestration: DevAddr,
    /// Device address of the orchestration's argument words.
    pub orch_args: DevAddr,
    /// Number of argument words.
    pub orch_arg_count: u32,
    /// Orchestrator no-progress budget, nanoseconds.
    pub orch_timeout_ns: u64,
    /// Scheduler no-progress budget, nanoseconds.
    pub sched_timeout_ns: u64,
    /// Run flags.
    pub flags: u64,
    /// Kernel code address by func id (at most `MAX_FUNC_IDS`).
    pub func_table: Vec<DevAddr>,
    /// The run's trace region base, bytes and level (null, 0, 0 when untraced).
    pub trace: (DevAddr, u64, u32),
}

impl Default for LaunchParams {
    fn default() -> Self {
        LaunchParams {
            aicpu_thread_count: 1,
            cluster_count: 0,
            orchestration: DevAddr::NULL,
            orch_args: DevAddr::NULL,
            orch_arg_count: 0,
            orch_timeout_ns: 500_000_000,
            sched_timeout_ns: 500_000_000,
            flags: 0,
            func_table: Vec::new(),
            trace: (DevAddr::NULL, 0, 0),
        }
    }
}

/// The host-side image of the launch block: the `KernelArgs` both kernels of a launch receive
/// (descriptor, per-core tables, core count, flags), the launch descriptor, the boot report.
#[repr(C, align(64))]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct LaunchBlockImage {
    pub args: KernelArgs,
    pub _pad: [u8; 32],
    pub descriptor: LaunchDescriptor,
    pub report: BootReport,
}

/// Bytes of the launch block.
pub(crate) const LAUNCH_BLOCK_BYTES: u64 = size_of::<LaunchBlockImage>() as u64;

/// Where the parts of a runner's launch block lie in device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchBlock {
    /// Base of the allocation.
    pub base: DevAddr,
}

impl LaunchBlock {
    /// The `KernelArgs` every launch receives.
    pub fn kernel_args(&self) -> DevAddr {
        DevAddr(self.base.get() + offset_of!(LaunchBlockImage, args) as u64)
    }

    /// The launch descriptor (`KernelArgs::runtime_desc`).
    pub fn descriptor(&self) -> DevAddr {
        DevAddr(self.base.get() + offset_of!(LaunchBlockImage, descriptor) as u64)
    }

    /// The boot report.
    pub fn boot_report(&self) -> DevAddr {
        DevAddr(self.base.get() + offset_of!(LaunchBlockImage, report) as u64)
    }
}

/// Builds the block for `regions` (with an image of `image_bytes` at the arena base, whose
/// per-core tables lie at `offsets`).
pub(crate) fn launch_block_bytes(
    block: LaunchBlock,
    regions: &DeviceRegions,
    offsets: &ArenaOffsets,
    image_bytes: u64,
    params: &LaunchParams,
) -> Result<LaunchBlockImage, LaunchError> {
    if params.func_table.len() > MAX_FUNC_IDS {
        return Err(LaunchError::FuncTableTooLong(params.func_table.len()));
    }
    let mut b = LaunchBlockImage::new_zeroed();
    // What the AICore kernel reads: the tables boot wires into the runtime header, and its cores.
    let tables = CoreTables::from_arena(regions.arena.base, offsets);
    b.args.runtime_desc = block.descriptor();
    b.args.register_table = tables.registers;
    b.args.handshake_table = tables.handshakes;
    b.args.core_payloads = tables.payloads;
    b.args.core_count = params.cluster_count * pto_abi::consts::LANE_COUNT as u32;
    b.args.block_dim = b.args.core_count;
    b.args.flags = params.flags;
    let d = &mut b.descriptor;
    d.magic = LAUNCH_MAGIC;
    d.abi_fingerprint = ABI_FINGERPRINT;
    d.arena_base = regions.arena.base;
    d.arena_region_size = regions.arena.size;
    d.sm_base = regions.sm.base;
    d.sm_region_size = regions.sm.size;
    d.heap_base = regions.heap.base;
    d.heap_region_size = regions.heap.size;
    d.orchestration = params.orchestration;
    d.orch_args = params.orch_args;
    d.orch_arg_count = params.orch_arg_count;
    d.aicpu_thread_count = params.aicpu_thread_count;
    d.cluster_count = params.cluster_count;
    d.func_count = params.func_table.len() as u32;
    d.orch_timeout_ns = params.orch_timeout_ns;
    d.sched_timeout_ns = params.sched_timeout_ns;
    d.flags = params.flags;
    d.boot_report = block.boot_report();
    d.image_bytes = image_bytes;
    (d.trace_base, d.trace_bytes, d.trace_level) = params.trace;
    d.func_table[..params.func_table.len()].copy_from_slice(&params.func_table);
    // The report goes out PENDING (all zero) with every launch.
    Ok(b)
}

/// A failed boot as the host read it back from the boot report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootFailure {
    /// The raw boot code.
    pub code: u32,
    /// The field or region concerned.
    pub subject: String,
    /// The value the firmware required.
    pub expected: u64,
    /// The value it found.
    pub found: u64,
    /// Upper bound of a range rule.
    pub limit: u64,
}

impl BootFailure {
    /// The decoded code, if the firmware used one this host knows.
    pub fn code(&self) -> Option<BootErrorCode> {
        BootErrorCode::try_from(self.code).ok()
    }
}

impl fmt::Display for BootFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code() {
            Some(code) => write_boot_error(f, code, &self.subject, self.expected, self.found, self.limit),
            None => write!(
                f,
                "unknown boot error code {} about `{}` (expected {:#x}, found {:#x})",
                self.code, self.subject, self.expected, self.found
            ),
        }
    }
}

/// A successful boot as reported by the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootSummary {
    /// Epoch of the boot.
    pub epoch: u64,
    /// Boots of the resident image, this one included.
    pub boot_count: u64,
}

/// What a boot report says: ready, failed, or nothing yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootOutcome {
    /// The runtime is ready.
    Ready(BootSummary),
    /// Boot failed.
    Failed(BootFailure),
    /// The device has not finished (or never started) booting.
    Pending,
}

/// Decodes a boot report read back from the device.
pub(crate) fn decode_boot_report(r: &BootReport) -> BootOutcome {
    match r.state {
        BOOT_STATE_READY => BootOutcome::Ready(BootSummary { epoch: r.epoch, boot_count: r.boot_count }),
        BOOT_STATE_FAILED => {
            let end = r.subject.iter().position(|&b| b == 0).unwrap_or(r.subject.len());
            BootOutcome::Failed(BootFailure {
                code: r.code,
                subject: String::from_utf8_lossy(&r.subject[..end]).into_owned(),
                expected: r.expected,
                found: r.found,
                limit: r.limit,
            })
        }
        _ => BootOutcome::Pending,
    }
}
