//! Probe code compiled into the firmware for the emulated device's own tests: a one-task
//! orchestration and two kernels that fail the way only real hardware can (an unmapped access, a
//! panic), so the fault and panic records and the host's `DeviceFault` are exercised end to end.

use pto_device::kernel::KernelInvocation;
use pto_device::orch::{OrchArgs, OrchError, Orchestrator, TaskSpec};

/// Name of [`one_task`].
pub const PROBE_ONE_TASK: &str = "pto_probe_one_task";
/// Name of [`read_word`].
pub const PROBE_READ: &str = "pto_probe_read";
/// Name of [`panic_now`].
pub const PROBE_PANIC: &str = "pto_probe_panic";
/// Name of [`overflow_stack`].
pub const PROBE_STACK_OVERFLOW: &str = "pto_probe_stack_overflow";

/// Submits one AIV task of func id 0 whose only argument is the run's scalar argument 0.
pub fn one_task(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let word = args.scalar(0)?;
    o.submit(&TaskSpec::aiv(0, &[]).scalars(&[word]))?;
    Ok(())
}

/// Reads the 64-bit word at the address in `args[0]` (an address at or above 4 GiB is unmapped:
/// a translation fault).
pub fn read_word(inv: &KernelInvocation<'_>) {
    let addr = inv.args.first().copied().unwrap_or(0);
    // SAFETY: none: the probe reads whatever address its caller names, to make the MMU fault.
    let v = unsafe { core::ptr::read_volatile(addr as usize as *const u64) };
    core::hint::black_box(v);
}

/// Panics with a message naming its argument.
pub fn panic_now(inv: &KernelInvocation<'_>) {
    panic!("probe kernel panics on purpose (argument {:#x})", inv.args.first().copied().unwrap_or(0));
}

/// Recurses without end, 1 KiB of stack per frame: the main stack's guard page makes it fault.
pub fn overflow_stack(inv: &KernelInvocation<'_>) {
    #[allow(unconditional_recursion)] // the recursion is the probe: it ends in the guard page
    fn deeper(depth: u64) -> u64 {
        let frame = core::hint::black_box([depth; 128]);
        frame[(depth % 128) as usize].wrapping_add(deeper(depth + 1))
    }
    core::hint::black_box(deeper(inv.args.first().copied().unwrap_or(0)));
}
