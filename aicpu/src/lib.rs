//! `pto-aicpu`: the onboard AICPU program, `libpto_aicpu.so`, the shared object the vendor's AICPU
//! runtime loads on the chip's aarch64 Linux and enters through two C functions:
//!
//! * `int pto_aicpu_init(void *arg)`: the boot-only program (the first block boots the runtime);
//! * `int pto_aicpu_exec(void *arg)`: a run (block `t` is AICPU thread `t`: schedulers, then the
//!   orchestrator).
//!
//! `arg` is the device copy of the host onboard backend's `AicpuLaunchArgs` block; what the
//! entries check and run is `pto_device::onboard` (the same boot, orchestrator and scheduler as
//! the simulated device and the emulated device's firmware). A bad argument returns the nonzero
//! `AicpuStatus` of the first check it fails, never a panic.
//!
//! The object is `no_std` with `panic = "abort"` and calls nothing outside itself: it defines the
//! few memory functions the compiler emits calls to (`memcpy`, `memmove`, `memset`, `memcmp`,
//! `bcmp`) and the two symbols the prebuilt `core` names (`getauxval`, `rust_eh_personality`) as
//! hidden symbols, so its dynamic symbol table exports the two entries and the
//! `pto_aicpu_abi` record and imports nothing. Its `.pto_abi` section has the firmware's format:
//! the ABI record (magic, version, fingerprint; no memory map) and the table of the orchestrations
//! and kernels compiled in.
//!
//! Built with `cargo aicpu-build` (target/aarch64-unknown-linux-gnu/release/libpto_aicpu.so);
//! on every other target this library is empty.
#![cfg_attr(all(target_arch = "aarch64", target_os = "linux", not(test)), no_std)]

#[cfg(all(target_arch = "aarch64", target_os = "linux", not(test)))]
mod onboard {
    use pto_device::onboard::{self, AicpuStatus};
    use pto_device::platform::Aarch64Platform;
    use pto_device::program::{
        abi_record, name_table, AbiSection, CodeTable, EXAMPLE_KERNELS, EXAMPLE_ORCHESTRATIONS,
        EXAMPLE_ORCHESTRATION_COUNT,
    };

    const NAME_COUNT: usize = EXAMPLE_KERNELS.len() + EXAMPLE_ORCHESTRATION_COUNT;

    /// The code compiled in: the examples' kernels and orchestrations, found by the names in the
    /// callable headers the host uploaded.
    const CODE: CodeTable = onboard::code_table(&EXAMPLE_KERNELS, &EXAMPLE_ORCHESTRATIONS);

    static PLATFORM: Aarch64Platform = Aarch64Platform;

    /// The `.pto_abi` section: the ABI record and the name table (exported so the link keeps it).
    #[used]
    #[export_name = "pto_aicpu_abi"]
    #[link_section = ".pto_abi"]
    pub static PTO_AICPU_ABI: AbiSection<NAME_COUNT> =
        AbiSection { record: abi_record::<NAME_COUNT>(), names: name_table(&EXAMPLE_KERNELS, &EXAMPLE_ORCHESTRATIONS) };

    /// The init entry: boots the launch's runtime (first block only).
    ///
    /// # Safety
    /// Called by the vendor's AICPU runtime with null or the address of the launch's
    /// `AicpuLaunchArgs` copy, whose addresses (once they pass the checks) are the launch's
    /// device memory.
    #[no_mangle]
    pub unsafe extern "C" fn pto_aicpu_init(arg: *mut cty::c_void) -> cty::c_int {
        // SAFETY: the caller's contract is `onboard::init`'s.
        let status: AicpuStatus = unsafe { onboard::init(arg.cast()) };
        status as cty::c_int
    }

    /// The exec entry: block `t` runs AICPU thread `t` of the launch.
    ///
    /// # Safety
    /// As for [`pto_aicpu_init`]; the launch's AICore side serves its clusters (unless the launch
    /// is deterministic).
    #[no_mangle]
    pub unsafe extern "C" fn pto_aicpu_exec(arg: *mut cty::c_void) -> cty::c_int {
        // SAFETY: the caller's contract is `onboard::exec`'s.
        let status: AicpuStatus = unsafe { onboard::exec(arg.cast(), &PLATFORM, &CODE) };
        status as cty::c_int
    }

    /// A panic (a bug: every bad input is a status) stops the thread with a breakpoint trap, which
    /// the AICPU runtime reports as an exception; nothing unwinds.
    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        loop {
            // SAFETY: raises a breakpoint exception; touches no memory.
            unsafe { core::arch::asm!("brk #0x7070", options(nomem, nostack)) };
        }
    }

    // The memory functions the compiler's generated code calls, byte loops in assembly (so the
    // compiler cannot turn them back into calls to themselves), hidden: the object's own calls
    // bind to them and no other object sees them. Two more symbols the prebuilt `core` and
    // `compiler_builtins` refer to: `getauxval` (their atomics ask it whether the CPU has the LSE
    // instructions; 0 = no, so they use the load/store-exclusive forms every aarch64 core has)
    // and `rust_eh_personality` (named by unwind tables; with panic = abort nothing unwinds, so
    // it is never called and traps if it were).
    core::arch::global_asm!(include_str!("mem.S"));
}
