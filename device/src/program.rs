//! What the device programs built from this crate carry, shared by the emulated device's firmware
//! (`pto-firmware`) and the onboard AICPU shared object (`pto-aicpu`): the example kernels and
//! orchestrations compiled into both, the `.pto_abi` section that lists them (an
//! [`EmuAbiRecord`] followed by its [`EmuNameEntry`] table), and the resolvers that find that code
//! by the names in the callable headers the host uploaded.
//!
//! A device program cannot run host functions, so the host's callables name their code: the
//! orchestration by the `orchestration_name` of the [`ChipCallableHeader`] that starts
//! [`CHIP_HEADER_SIZE`] bytes before `LaunchDescriptor::orchestration`, a kernel by the `name` of
//! the [`CoreCallableHeader`] that starts [`CORE_CODE_OFFSET`] bytes before its code address.

use core::mem::{align_of, size_of};
use core::ptr::{addr_of, read_volatile};

use pto_abi::callable::{
    ChipCallableHeader, CoreCallableHeader, CHIP_CALLABLE_MAGIC, CHIP_HEADER_SIZE, CORE_CALLABLE_MAGIC,
    CORE_CODE_OFFSET, NAME_BYTES,
};
use pto_abi::consts::MAX_AICPU_THREADS;
use pto_abi::emu::{EmuAbiRecord, EmuNameEntry, EmuNameKind, EMU_ABI_MAGIC};
use pto_abi::launch::LaunchDescriptor;
use pto_abi::{DevAddr, ABI_FINGERPRINT, ABI_VERSION};

use crate::aicpu::{run_aicpu_thread, AicpuEnv, AicpuExit};
use crate::platform::Platform;

use crate::examples::fatal::{self, FATAL_SCENARIOS};
use crate::examples::vector;
use crate::kernel::SimKernelFn;
use crate::orch::OrchestrationFn;

/// A kernel compiled into a device program, by the name callables use for it.
pub type NamedKernel = (&'static str, SimKernelFn);
/// An orchestration compiled into a device program, by the name callables use for it.
pub type NamedOrchestration = (&'static str, OrchestrationFn);

/// The example kernels every device program carries: the vector example's three and the fatal
/// scenarios' [`fatal::SLEEP_MS`].
pub const EXAMPLE_KERNELS: [NamedKernel; 4] = [
    ("vector_add", vector::add),
    ("vector_add_scalar", vector::add_scalar),
    ("vector_mul", vector::mul),
    (fatal::SLEEP_MS, fatal::sleep_ms),
];

/// Orchestrations of [`EXAMPLE_ORCHESTRATIONS`].
pub const EXAMPLE_ORCHESTRATION_COUNT: usize = 1 + FATAL_SCENARIOS.len();

/// The example orchestrations every device program carries: `vector_example`, then every fatal
/// scenario's.
pub const EXAMPLE_ORCHESTRATIONS: [NamedOrchestration; EXAMPLE_ORCHESTRATION_COUNT] = example_orchestrations();

const fn example_orchestrations() -> [NamedOrchestration; EXAMPLE_ORCHESTRATION_COUNT] {
    let mut t: [NamedOrchestration; EXAMPLE_ORCHESTRATION_COUNT] =
        [("vector_example", vector::vector_orchestration); EXAMPLE_ORCHESTRATION_COUNT];
    let mut j = 0;
    while j < FATAL_SCENARIOS.len() {
        t[1 + j] = (FATAL_SCENARIOS[j].name, FATAL_SCENARIOS[j].orchestration);
        j += 1;
    }
    t
}

/// `a` followed by `b` (`C` must be `A + B`), for building a program's tables from shared parts
/// in a constant.
pub const fn concat<T: Copy, const A: usize, const B: usize, const C: usize>(a: [T; A], b: [T; B]) -> [T; C] {
    assert!(A + B == C && C > 0, "concat: C must be A + B");
    let mut out = [if A > 0 { a[0] } else { b[0] }; C];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < B {
        out[A + j] = b[j];
        j += 1;
    }
    out
}

/// The `.pto_abi` section of a device program: the record, then `N` name entries.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AbiSection<const N: usize> {
    /// ABI identity (and, for the emulated device's firmware, its memory map).
    pub record: EmuAbiRecord,
    /// Every kernel, then every orchestration.
    pub names: [EmuNameEntry; N],
}

/// The record fields every program sets the same way (magic, version, sizes, fingerprint, name
/// table shape); the memory-map fields are zero and the launch-slot count is zero (a program
/// without the emulated device's control block).
pub const fn abi_record<const N: usize>() -> EmuAbiRecord {
    EmuAbiRecord {
        magic: EMU_ABI_MAGIC,
        abi_version: ABI_VERSION,
        record_size: size_of::<EmuAbiRecord>() as u32,
        abi_fingerprint: ABI_FINGERPRINT,
        ram_base: 0,
        image_base: 0,
        image_limit: 0,
        control_block: DevAddr(0),
        control_block_size: 0,
        log_ring: DevAddr(0),
        log_ring_size: 0,
        heap_base: DevAddr(0),
        mapped_ram_end: 0,
        min_ram_bytes: 0,
        names_offset: core::mem::offset_of!(AbiSection<N>, names) as u32,
        name_count: N as u32,
        name_entry_size: size_of::<EmuNameEntry>() as u32,
        min_vcpus: 0,
        max_vcpus: 0,
        launch_slots: 0,
    }
}

const fn name_field(name: &str) -> [u8; NAME_BYTES] {
    let b = name.as_bytes();
    assert!(!b.is_empty() && b.len() < NAME_BYTES, "a device code name must be 1..=63 bytes");
    let mut out = [0u8; NAME_BYTES];
    let mut i = 0;
    while i < b.len() {
        assert!(b[i] != 0, "a device code name must not contain NUL");
        out[i] = b[i];
        i += 1;
    }
    out
}

const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The name table of `kernels` then `orchestrations` (`N` must be their total); fails the build
/// when two entries of one kind share a name, so a lookup is never ambiguous.
pub const fn name_table<const N: usize>(
    kernels: &[NamedKernel],
    orchestrations: &[NamedOrchestration],
) -> [EmuNameEntry; N] {
    assert!(kernels.len() + orchestrations.len() == N, "name_table: N must count every entry");
    let empty = EmuNameEntry { name: [0; NAME_BYTES], kind: 0, index: 0 };
    let mut t = [empty; N];
    let mut i = 0;
    while i < kernels.len() {
        let mut k = 0;
        while k < i {
            assert!(!same_name(kernels[k].0, kernels[i].0), "two kernels of a device program share a name");
            k += 1;
        }
        t[i] = EmuNameEntry { name: name_field(kernels[i].0), kind: EmuNameKind::Kernel as u32, index: i as u32 };
        i += 1;
    }
    let mut j = 0;
    while j < orchestrations.len() {
        let mut k = 0;
        while k < j {
            assert!(
                !same_name(orchestrations[k].0, orchestrations[j].0),
                "two orchestrations of a device program share a name"
            );
            k += 1;
        }
        t[i + j] = EmuNameEntry {
            name: name_field(orchestrations[j].0),
            kind: EmuNameKind::Orchestration as u32,
            index: j as u32,
        };
        j += 1;
    }
    t
}

fn name_of(field: &[u8; NAME_BYTES]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
    &field[..end]
}

/// Which addresses a program may read a callable header at: `(addr, len, align)` → true when
/// `[addr, addr + len)` is readable device memory and `addr` a multiple of `align`.
pub type ReadableFn = fn(u64, u64, u64) -> bool;

/// A device program's compiled-in code and the rule for the header addresses it dereferences.
#[derive(Clone, Copy)]
pub struct CodeTable {
    /// Kernels, by name.
    pub kernels: &'static [NamedKernel],
    /// Orchestrations, by name.
    pub orchestrations: &'static [NamedOrchestration],
    /// The address rule. It must only accept memory the program may read: the resolvers read a
    /// header wherever it says yes.
    pub readable: ReadableFn,
}

impl CodeTable {
    /// The kernel whose [`CoreCallableHeader`] starts [`CORE_CODE_OFFSET`] bytes before
    /// `kernel`, if its magic is right and its name is compiled in.
    pub fn resolve_kernel(&self, kernel: DevAddr) -> Option<SimKernelFn> {
        let header = kernel.get().checked_sub(CORE_CODE_OFFSET)?;
        if !(self.readable)(header, size_of::<CoreCallableHeader>() as u64, align_of::<CoreCallableHeader>() as u64) {
            return None;
        }
        let h = header as usize as *const CoreCallableHeader;
        // SAFETY: `readable` accepted an aligned CoreCallableHeader-sized range; the host wrote it
        // before the launch and does not change it while the launch runs.
        let (magic, name) = unsafe { (read_volatile(addr_of!((*h).magic)), read_volatile(addr_of!((*h).name))) };
        if magic != CORE_CALLABLE_MAGIC {
            return None;
        }
        let wanted = name_of(&name);
        self.kernels.iter().find(|(n, _)| n.as_bytes() == wanted).map(|&(_, f)| f)
    }

    /// The orchestration whose [`ChipCallableHeader`] starts [`CHIP_HEADER_SIZE`] bytes before
    /// `orchestration` (with `orchestration_offset == CHIP_HEADER_SIZE`), if its magic is right
    /// and its name is compiled in.
    pub fn resolve_orchestration(&self, orchestration: DevAddr) -> Option<OrchestrationFn> {
        let header = orchestration.get().checked_sub(CHIP_HEADER_SIZE)?;
        let (len, align) = (size_of::<ChipCallableHeader>() as u64, align_of::<ChipCallableHeader>() as u64);
        if !(self.readable)(header, len, align) {
            return None;
        }
        let h = header as usize as *const ChipCallableHeader;
        // SAFETY: `readable` accepted an aligned ChipCallableHeader-sized range, written by the
        // host before the launch.
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
        let wanted = name_of(&name);
        self.orchestrations.iter().find(|(n, _)| n.as_bytes() == wanted).map(|&(_, f)| f)
    }
}

/// How one part (block) of an AICPU launch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartOutcome {
    /// A thread index at or beyond the descriptor's thread count: nothing to do.
    Extra,
    /// `LaunchDescriptor::orchestration` (this address) names no compiled-in orchestration.
    UnknownOrchestration(u64),
    /// The thread ran.
    Exit(AicpuExit),
}

/// Runs AICPU thread `thread` of the launch at `desc` with `code`'s orchestration and kernels:
/// what a block of a run does on the firmware and in the onboard AICPU program. The thread count
/// is the descriptor's, clamped to `1..=MAX_AICPU_THREADS`.
///
/// # Safety
/// `desc` is a readable, aligned launch descriptor in device memory, written by the host before
/// the launch and not changed while it runs; every part of the launch runs one distinct `thread`;
/// the AICore side of the run (unless deterministic) serves its clusters.
pub unsafe fn run_aicpu_part(
    desc: *const LaunchDescriptor,
    thread: u32,
    platform: &dyn Platform,
    code: &CodeTable,
) -> PartOutcome {
    // SAFETY: the caller's contract.
    let (threads, orchestration) = unsafe {
        (read_volatile(addr_of!((*desc).aicpu_thread_count)), read_volatile(addr_of!((*desc).orchestration)))
    };
    let threads = threads.clamp(1, MAX_AICPU_THREADS as u32);
    if thread >= threads {
        return PartOutcome::Extra;
    }
    let Some(orchestration) = code.resolve_orchestration(orchestration) else {
        return PartOutcome::UnknownOrchestration(orchestration.get());
    };
    let env = AicpuEnv { platform, kernels: code, orchestration };
    // SAFETY: the caller's contract; `thread` is below the descriptor's thread count.
    PartOutcome::Exit(unsafe { run_aicpu_thread(desc, thread, &env) })
}

impl crate::aicore::KernelResolver for CodeTable {
    fn resolve(&self, kernel: DevAddr) -> Option<SimKernelFn> {
        self.resolve_kernel(kernel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: [EmuNameEntry; 4 + EXAMPLE_ORCHESTRATION_COUNT] =
        name_table(&EXAMPLE_KERNELS, &EXAMPLE_ORCHESTRATIONS);

    #[test]
    fn the_name_table_lists_kernels_then_orchestrations_with_their_slots() {
        assert_eq!(TABLE[0].name_bytes(), b"vector_add");
        assert_eq!((TABLE[0].kind, TABLE[0].index), (EmuNameKind::Kernel as u32, 0));
        assert_eq!(TABLE[3].name_bytes(), fatal::SLEEP_MS.as_bytes());
        assert_eq!(TABLE[4].name_bytes(), b"vector_example");
        assert_eq!((TABLE[4].kind, TABLE[4].index), (EmuNameKind::Orchestration as u32, 0));
        assert_eq!(TABLE[5].name_bytes(), FATAL_SCENARIOS[0].name.as_bytes());
    }

    #[test]
    fn concat_keeps_both_halves_in_order() {
        let c: [u32; 5] = concat([1, 2], [3, 4, 5]);
        assert_eq!(c, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_shared_record_carries_this_builds_identity_and_table_shape() {
        let r = abi_record::<7>();
        assert_eq!((r.magic, r.abi_version, r.abi_fingerprint), (EMU_ABI_MAGIC, ABI_VERSION, ABI_FINGERPRINT));
        assert_eq!(r.names_offset as usize, size_of::<EmuAbiRecord>());
        assert_eq!((r.name_count, r.name_entry_size as usize), (7, size_of::<EmuNameEntry>()));
    }

    fn never(_: u64, _: u64, _: u64) -> bool {
        false
    }

    #[test]
    fn a_header_the_rule_refuses_is_never_read() {
        let t = CodeTable { kernels: &EXAMPLE_KERNELS, orchestrations: &EXAMPLE_ORCHESTRATIONS, readable: never };
        assert!(t.resolve_kernel(DevAddr(0x1000 + CORE_CODE_OFFSET)).is_none());
        assert!(t.resolve_orchestration(DevAddr(0x1000 + CHIP_HEADER_SIZE)).is_none());
        // An address below the header size underflows: no header at all.
        assert!(t.resolve_kernel(DevAddr(1)).is_none());
    }
}
