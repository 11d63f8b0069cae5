//! The code compiled into the firmware, the `.pto_abi` section that lists it, and the resolvers
//! that find it by name from device memory (see `pto_abi::emu`, "Code found by name").

use core::mem::{offset_of, size_of};
use core::ptr::{addr_of, read_volatile};

use pto_abi::callable::{
    ChipCallableHeader, CoreCallableHeader, CHIP_CALLABLE_MAGIC, CHIP_HEADER_SIZE, CORE_CALLABLE_MAGIC,
    CORE_CODE_OFFSET, NAME_BYTES,
};
use pto_abi::emu::{
    EmuAbiRecord, EmuNameEntry, EmuNameKind, EMU_ABI_MAGIC, EMU_LAUNCH_SLOTS, EMU_MAX_VCPUS, EMU_MIN_VCPUS,
};
use pto_abi::{DevAddr, ABI_FINGERPRINT, ABI_VERSION};
use pto_device::aicore::KernelResolver;
use pto_device::examples::fatal::{self, FATAL_SCENARIOS};
use pto_device::examples::vector;
use pto_device::kernel::SimKernelFn;
use pto_device::orch::OrchestrationFn;

use super::{layout, probes};

/// Kernels compiled into the firmware, by the names callables use for them.
pub const KERNELS: &[(&str, SimKernelFn)] = &[
    ("vector_add", vector::add),
    ("vector_add_scalar", vector::add_scalar),
    ("vector_mul", vector::mul),
    (probes::PROBE_READ, probes::read_word),
    (probes::PROBE_PANIC, probes::panic_now),
    (probes::PROBE_STACK_OVERFLOW, probes::overflow_stack),
    (fatal::SLEEP_MS, fatal::sleep_ms),
];

/// Orchestrations compiled into the firmware, by the names callables use for them.
pub const ORCHESTRATIONS: &[(&str, OrchestrationFn)] = &orchestrations();

const FIXED_ORCHESTRATIONS: [(&str, OrchestrationFn); 2] =
    [("vector_example", vector::vector_orchestration), (probes::PROBE_ONE_TASK, probes::one_task)];
const ORCHESTRATION_COUNT: usize = FIXED_ORCHESTRATIONS.len() + FATAL_SCENARIOS.len();

/// The fixed orchestrations, then every fatal scenario's.
const fn orchestrations() -> [(&'static str, OrchestrationFn); ORCHESTRATION_COUNT] {
    let mut t = [FIXED_ORCHESTRATIONS[0]; ORCHESTRATION_COUNT];
    let mut i = 0;
    while i < FIXED_ORCHESTRATIONS.len() {
        t[i] = FIXED_ORCHESTRATIONS[i];
        i += 1;
    }
    let mut j = 0;
    while j < FATAL_SCENARIOS.len() {
        t[i + j] = (FATAL_SCENARIOS[j].name, FATAL_SCENARIOS[j].orchestration);
        j += 1;
    }
    t
}

/// Entries of the name table.
pub const NAME_COUNT: usize = KERNELS.len() + ORCHESTRATIONS.len();

/// The `.pto_abi` section: the record, then the name table.
#[repr(C)]
pub struct FirmwareAbi {
    /// What the host checks and where everything lives.
    pub record: EmuAbiRecord,
    /// Every kernel, then every orchestration.
    pub names: [EmuNameEntry; NAME_COUNT],
}

const fn name_field(name: &str) -> [u8; NAME_BYTES] {
    let b = name.as_bytes();
    assert!(!b.is_empty() && b.len() < NAME_BYTES, "a firmware code name must be 1..=63 bytes");
    let mut out = [0u8; NAME_BYTES];
    let mut i = 0;
    while i < b.len() {
        assert!(b[i] != 0, "a firmware code name must not contain NUL");
        out[i] = b[i];
        i += 1;
    }
    out
}

const fn name_table() -> [EmuNameEntry; NAME_COUNT] {
    let empty = EmuNameEntry { name: [0; NAME_BYTES], kind: 0, index: 0 };
    let mut t = [empty; NAME_COUNT];
    let mut i = 0;
    while i < KERNELS.len() {
        t[i] = EmuNameEntry { name: name_field(KERNELS[i].0), kind: EmuNameKind::Kernel as u32, index: i as u32 };
        i += 1;
    }
    let mut j = 0;
    while j < ORCHESTRATIONS.len() {
        t[i + j] = EmuNameEntry {
            name: name_field(ORCHESTRATIONS[j].0),
            kind: EmuNameKind::Orchestration as u32,
            index: j as u32,
        };
        j += 1;
    }
    // Names are unique within a kind, so a lookup can never be ambiguous.
    let mut a = 0;
    while a < NAME_COUNT {
        let mut b = a + 1;
        while b < NAME_COUNT {
            let same = t[a].kind == t[b].kind && {
                let mut k = 0;
                while k < NAME_BYTES && t[a].name[k] == t[b].name[k] {
                    k += 1;
                }
                k == NAME_BYTES
            };
            assert!(!same, "two firmware code entries of one kind share a name");
            b += 1;
        }
        a += 1;
    }
    t
}

/// The `.pto_abi` section (kept by the linker script; read by the host from the ELF file).
#[used]
#[no_mangle]
#[link_section = ".pto_abi"]
pub static PTO_ABI: FirmwareAbi = FirmwareAbi {
    record: EmuAbiRecord {
        magic: EMU_ABI_MAGIC,
        abi_version: ABI_VERSION,
        record_size: size_of::<EmuAbiRecord>() as u32,
        abi_fingerprint: ABI_FINGERPRINT,
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
        names_offset: offset_of!(FirmwareAbi, names) as u32,
        name_count: NAME_COUNT as u32,
        name_entry_size: size_of::<EmuNameEntry>() as u32,
        min_vcpus: EMU_MIN_VCPUS as u32,
        max_vcpus: EMU_MAX_VCPUS as u32,
        launch_slots: EMU_LAUNCH_SLOTS as u32,
    },
    names: name_table(),
};

fn name_of(field: &[u8; NAME_BYTES]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
    &field[..end]
}

fn lookup(kind: EmuNameKind, name: &[u8; NAME_BYTES]) -> Option<usize> {
    let wanted = name_of(name);
    PTO_ABI.names.iter().find(|e| e.kind == kind as u32 && e.name_bytes() == wanted).map(|e| e.index as usize)
}

/// The kernel whose `CoreCallableHeader` starts `CORE_CODE_OFFSET` bytes before `kernel`, if its
/// name is compiled in.
pub fn resolve_kernel(kernel: DevAddr) -> Option<SimKernelFn> {
    let header = kernel.get().checked_sub(CORE_CODE_OFFSET)?;
    if !layout::in_heap(header, size_of::<CoreCallableHeader>() as u64, align_of_core_header()) {
        return None;
    }
    let h = header as usize as *const CoreCallableHeader;
    // SAFETY: an aligned CoreCallableHeader-sized range of the heap (checked above); the host
    // wrote it before the launch and does not change it while the launch runs.
    let (magic, name) = unsafe { (read_volatile(addr_of!((*h).magic)), read_volatile(addr_of!((*h).name))) };
    if magic != CORE_CALLABLE_MAGIC {
        return None;
    }
    lookup(EmuNameKind::Kernel, &name).map(|i| KERNELS[i].1)
}

const fn align_of_core_header() -> u64 {
    core::mem::align_of::<CoreCallableHeader>() as u64
}

/// The orchestration whose `ChipCallableHeader` starts `CHIP_HEADER_SIZE` bytes before
/// `orchestration` (with `orchestration_offset == CHIP_HEADER_SIZE`), if its name is compiled in.
pub fn resolve_orchestration(orchestration: DevAddr) -> Option<OrchestrationFn> {
    let header = orchestration.get().checked_sub(CHIP_HEADER_SIZE)?;
    let align = core::mem::align_of::<ChipCallableHeader>() as u64;
    if !layout::in_heap(header, size_of::<ChipCallableHeader>() as u64, align) {
        return None;
    }
    let h = header as usize as *const ChipCallableHeader;
    // SAFETY: an aligned ChipCallableHeader-sized range of the heap (checked above), written by
    // the host before the launch.
    let (magic, offset, name) = unsafe {
        (
            read_volatile(addr_of!((*h).magic)),
            read_volatile(addr_of!((*h).orchestration_offset)),
            read_volatile(addr_of!((*h).orchestration_name)),
        )
    };
    if magic != CHIP_CALLABLE_MAGIC || offset != CHIP_HEADER_SIZE {
        return None;
    }
    lookup(EmuNameKind::Orchestration, &name).map(|i| ORCHESTRATIONS[i].1)
}

/// Kernel addresses → the compiled-in kernels, for the AICore cores and the deterministic mode.
pub struct FirmwareKernels;

impl KernelResolver for FirmwareKernels {
    fn resolve(&self, kernel: DevAddr) -> Option<SimKernelFn> {
        resolve_kernel(kernel)
    }
}
