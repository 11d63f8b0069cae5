//! The code compiled into the firmware (`pto_device::program`'s examples plus the probes), the
//! `.pto_abi` section that lists it, and the resolvers that find it by name from device memory
//! (see `pto_abi::emu`, "Code found by name"): a header is read only from the device heap.

use pto_abi::emu::{EmuAbiRecord, EMU_LAUNCH_SLOTS, EMU_MAX_VCPUS, EMU_MIN_VCPUS};
use pto_abi::DevAddr;
use pto_device::aicore::KernelResolver;
use pto_device::kernel::SimKernelFn;
use pto_device::program::{
    abi_record, concat, name_table, AbiSection, CodeTable, NamedKernel, NamedOrchestration, EXAMPLE_KERNELS,
    EXAMPLE_ORCHESTRATIONS, EXAMPLE_ORCHESTRATION_COUNT,
};

use super::{layout, probes};

const PROBE_KERNELS: [NamedKernel; 3] = [
    (probes::PROBE_READ, probes::read_word),
    (probes::PROBE_PANIC, probes::panic_now),
    (probes::PROBE_STACK_OVERFLOW, probes::overflow_stack),
];
const PROBE_ORCHESTRATIONS: [NamedOrchestration; 1] = [(probes::PROBE_ONE_TASK, probes::one_task)];

const KERNEL_COUNT: usize = EXAMPLE_KERNELS.len() + PROBE_KERNELS.len();
const ORCHESTRATION_COUNT: usize = EXAMPLE_ORCHESTRATION_COUNT + PROBE_ORCHESTRATIONS.len();

/// Kernels compiled into the firmware, by the names callables use for them: the examples', then
/// the probes.
pub const KERNELS: [NamedKernel; KERNEL_COUNT] = concat(EXAMPLE_KERNELS, PROBE_KERNELS);

/// Orchestrations compiled into the firmware, by the names callables use for them: the examples',
/// then the probe's.
pub const ORCHESTRATIONS: [NamedOrchestration; ORCHESTRATION_COUNT] =
    concat(EXAMPLE_ORCHESTRATIONS, PROBE_ORCHESTRATIONS);

/// Entries of the name table.
pub const NAME_COUNT: usize = KERNEL_COUNT + ORCHESTRATION_COUNT;

/// The `.pto_abi` section: the record, then the name table.
pub type FirmwareAbi = AbiSection<NAME_COUNT>;

/// The `.pto_abi` section (kept by the linker script; read by the host from the ELF file).
#[used]
#[no_mangle]
#[link_section = ".pto_abi"]
pub static PTO_ABI: FirmwareAbi = FirmwareAbi {
    record: EmuAbiRecord {
        ram_base: layout::RAM_BASE,
        image_base: layout::ORIGIN,
        image_limit: layout::IMAGE_LIMIT,
        control_block: DevAddr(layout::CONTROL_BLOCK),
        control_block_size: layout::CONTROL_BLOCK_SIZE,
        log_ring: DevAddr(layout::LOG_RING),
        log_ring_size: layout::LOG_RING_SIZE,
        heap_base: DevAddr(layout::HEAP_BASE),
        mapped_ram_end: layout::MAPPED_RAM_END,
        min_ram_bytes: layout::MIN_RAM_BYTES,
        min_vcpus: EMU_MIN_VCPUS as u32,
        max_vcpus: EMU_MAX_VCPUS as u32,
        launch_slots: EMU_LAUNCH_SLOTS as u32,
        ..abi_record::<NAME_COUNT>()
    },
    names: name_table(&KERNELS, &ORCHESTRATIONS),
};

/// The firmware's code: headers are read only from aligned ranges of the device heap.
pub const CODE: CodeTable = CodeTable { kernels: &KERNELS, orchestrations: &ORCHESTRATIONS, readable: layout::in_heap };

/// The kernel whose `CoreCallableHeader` starts `CORE_CODE_OFFSET` bytes before `kernel`, if its
/// name is compiled in.
pub fn resolve_kernel(kernel: DevAddr) -> Option<SimKernelFn> {
    CODE.resolve_kernel(kernel)
}

/// Kernel addresses → the compiled-in kernels, for the AICore cores and the deterministic mode.
pub struct FirmwareKernels;

impl KernelResolver for FirmwareKernels {
    fn resolve(&self, kernel: DevAddr) -> Option<SimKernelFn> {
        resolve_kernel(kernel)
    }
}
