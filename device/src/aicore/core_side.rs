//! The core side of the protocol: what one AICore runs (on the simulated device, a host thread).
//!
//! 1. [`wait_for_boot`]: wait until this launch's boot report says READY (boot has reset the
//!    registers; see [`reset_core_tables`](super::tables::reset_core_tables)), or return if it
//!    failed.
//! 2. [`CoreEndpoint::announce`]: write core id, lane and cluster into the handshake record, then
//!    `online = 1` (release).
//! 3. Poll the dispatch register (acquire). Tokens are run strictly in order: when it holds a token
//!    above the last one run, run the next token `t = last + 1` ([`CoreEndpoint::step`]): read
//!    payload buffer `t & 1`, write `ACK | t` (release), resolve and run the kernel, write
//!    `FIN | t` (release); a payload with `PAYLOAD_FLAG_STAMP` also gets the kernel's start and end
//!    on the core's own clock in the registers' stamps of parity `t & 1`, written before the end
//!    is reported — or, if the kernel address is unknown, the argument count too large or
//!    the kernel failed, write the fault word of parity `t & 1` and then `FAULT | t` (release). The
//!    core stays in service after a fault.
//! 4. On [`DISPATCH_EXIT`]: `online = 0`, then `COND_EXITED` (release), and return. Tokens
//!    published but not yet started are abandoned; a running kernel finishes first.
//!
//! Single writer per word: the core writes only its condition register and its handshake record.

use core::ptr::{self, addr_of, addr_of_mut};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use pto_abi::consts::{MAX_CORES, MAX_KERNEL_ARGS};
use pto_abi::launch::{
    AicorePayload, BootReport, CoreFault, CoreRegisters, HandshakeRecord, BOOT_STATE_FAILED, BOOT_STATE_READY,
    DISPATCH_EXIT, DISPATCH_IDLE, PAYLOAD_FLAG_STAMP,
};
use pto_abi::DevAddr;

use super::ownership::{cluster_of, lane_of};
use super::signal::{fault_word, parity, Condition, LAST_TOKEN};
use super::tables::CoreTables;
use crate::kernel::{KernelInvocation, SimKernelFn};
use crate::platform::Platform;

/// Maps a kernel address from a payload to code the core can run.
///
/// On the simulated device the host provides a table from the device address of each uploaded
/// kernel to its Rust function.
pub trait KernelResolver {
    /// The kernel at `kernel`, or `None` when the address names no kernel (reported as
    /// [`CoreFault::UnknownKernel`], never a panic).
    fn resolve(&self, kernel: DevAddr) -> Option<SimKernelFn>;

    /// Runs a resolved kernel for one block. The default calls it; an implementation that can
    /// catch a failing kernel (the simulated device catches panics) returns
    /// `Err(CoreFault::KernelFailed)`.
    fn invoke(&self, kernel: SimKernelFn, invocation: &KernelInvocation<'_>) -> Result<(), CoreFault> {
        kernel(invocation);
        Ok(())
    }
}

/// How a core waits while it has nothing to do, and whether it must stop without an exit token.
pub trait CoreWait {
    /// Called between two polls that found nothing; `empty_polls` counts them (0 for the first).
    fn idle(&mut self, empty_polls: u32);

    /// True when the core must return at once (the simulated device's stop flag, raised when the
    /// AICPU side died). Checked only while the core is idle. Firmware returns `false`.
    fn must_stop(&self) -> bool;
}

/// Why [`run_core`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreExit {
    /// The core saw `DISPATCH_EXIT` and wrote `COND_EXITED`.
    Exited,
    /// [`CoreWait::must_stop`] said so; the condition register was left as it was.
    Stopped,
    /// The launch's boot failed; the core never touched its registers.
    BootFailed,
}

/// What one core did until it returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreReport {
    /// The core index.
    pub core: u32,
    /// Why it returned.
    pub exit: CoreExit,
    /// The last token it ran (0 = none); every token `1..=last_token` was run in order.
    pub last_token: u64,
    /// Tokens that ended in a fault.
    pub faults: u64,
}

/// The result of one [`CoreEndpoint::step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// No new token.
    Idle,
    /// Ran this token; `fault` is `Some` when it ended in `COND_FAULT`.
    Ran {
        /// The token.
        token: u64,
        /// Why it faulted, if it did.
        fault: Option<CoreFault>,
    },
    /// Saw `DISPATCH_EXIT`, wrote `COND_EXITED`.
    Exited,
    /// The kernel of this token returned after the core was told to stop: the core went offline
    /// without writing the token's end, so a later run that reset the tables never sees it.
    Stopped {
        /// The token whose end was not written.
        token: u64,
    },
}

/// A core index at or above `MAX_CORES`, or tables that are null or misaligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointError {
    /// The core index is not below `MAX_CORES`.
    CoreIndex {
        /// The index given.
        core: u32,
    },
    /// A table base is null or not 64-byte aligned.
    Tables,
}

impl core::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            EndpointError::CoreIndex { core } => write!(f, "core index {core} is not below {MAX_CORES}"),
            EndpointError::Tables => f.write_str("a core table base is null or not 64-byte aligned"),
        }
    }
}

/// The core's end of its channel: its registers, handshake record and payload buffers, the last
/// token it ran, and the clock it stamps kernel start and end with.
pub struct CoreEndpoint {
    core: u32,
    regs: *mut CoreRegisters,
    handshake: *mut HandshakeRecord,
    payloads: [*const AicorePayload; 2],
    last: u64,
    faults: u64,
    clock: Option<&'static dyn Platform>,
}

impl core::fmt::Debug for CoreEndpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CoreEndpoint")
            .field("core", &self.core)
            .field("last", &self.last)
            .field("faults", &self.faults)
            .field("clock", &self.clock.is_some())
            .finish_non_exhaustive()
    }
}

// SAFETY: an endpoint is a set of device addresses plus the core's own counters; the memory behind
// them is shared by protocol (atomics for the registers, one writer per word), so moving the
// endpoint to the thread that plays the core is sound.
unsafe impl Send for CoreEndpoint {}

impl CoreEndpoint {
    /// The endpoint of `core` in `tables`, which has run no token yet.
    ///
    /// # Safety
    /// `tables` must describe the per-core tables of a booted runtime (reset by this boot), valid
    /// for as long as the endpoint is used, and only one endpoint per core may exist at a time.
    pub unsafe fn new(tables: &CoreTables, core: u32) -> Result<CoreEndpoint, EndpointError> {
        if core as usize >= MAX_CORES {
            return Err(EndpointError::CoreIndex { core });
        }
        if !tables.is_well_formed() {
            return Err(EndpointError::Tables);
        }
        Ok(CoreEndpoint {
            core,
            regs: tables.registers_of(core),
            handshake: tables.handshake_of(core),
            payloads: [tables.payload_of(core, 0), tables.payload_of(core, 1)],
            last: 0,
            faults: 0,
            clock: None,
        })
    }

    /// The same endpoint stamping kernel start and end with `clock` (the clock of the machine the
    /// core runs on, the one the AICPU threads read too). Without a clock a payload that asks for
    /// stamps gets 0 for both.
    pub fn with_clock(mut self, clock: &'static dyn Platform) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The core index.
    pub fn core(&self) -> u32 {
        self.core
    }

    /// The last token run (0 = none).
    pub fn last_token(&self) -> u64 {
        self.last
    }

    /// What the core has done so far, as a report with `exit`.
    pub fn report(&self, exit: CoreExit) -> CoreReport {
        CoreReport { core: self.core, exit, last_token: self.last, faults: self.faults }
    }

    fn dispatch(&self) -> &AtomicU64 {
        // SAFETY: `regs` points to this core's aligned CoreRegisters (constructor contract).
        unsafe { AtomicU64::from_ptr(addr_of_mut!((*self.regs).dispatch)) }
    }

    fn condition(&self) -> &AtomicU64 {
        // SAFETY: as for `dispatch`.
        unsafe { AtomicU64::from_ptr(addr_of_mut!((*self.regs).condition)) }
    }

    fn online(&self) -> &AtomicU32 {
        // SAFETY: `handshake` points to this core's aligned HandshakeRecord (constructor contract).
        unsafe { AtomicU32::from_ptr(addr_of_mut!((*self.handshake).online)) }
    }

    fn fault_slot(&self, p: usize) -> &AtomicU64 {
        // SAFETY: as for `online`; `p` is 0 or 1.
        unsafe { AtomicU64::from_ptr(addr_of_mut!((*self.handshake).faults[p])) }
    }

    /// Writes core id, lane and cluster into the handshake record, then `online = 1` (release).
    pub fn announce(&self) {
        // SAFETY: the core is the only writer of these handshake words during a run.
        unsafe {
            ptr::write_volatile(addr_of_mut!((*self.handshake).core_id), self.core);
            ptr::write_volatile(addr_of_mut!((*self.handshake).lane), lane_of(self.core) as u32);
            ptr::write_volatile(addr_of_mut!((*self.handshake).cluster), cluster_of(self.core));
        }
        self.online().store(1, Ordering::Release);
    }

    /// Handles at most one token: polls the dispatch register once and, if a token above the last
    /// one run is there, runs the next token in order. Never blocks (except inside the kernel).
    pub fn step<R: KernelResolver + ?Sized>(&mut self, resolver: &R) -> Step {
        self.step_or_stop(resolver, &|| false)
    }

    /// As [`CoreEndpoint::step`], but when `stop()` holds once the kernel has returned, the core
    /// writes nothing more and goes offline ([`Step::Stopped`]): a core abandoned by a timed-out
    /// launch must not end a token in tables a later launch has reset.
    pub fn step_or_stop<R: KernelResolver + ?Sized>(&mut self, resolver: &R, stop: &dyn Fn() -> bool) -> Step {
        let d = self.dispatch().load(Ordering::Acquire);
        if d == DISPATCH_EXIT {
            self.online().store(0, Ordering::Relaxed);
            self.condition().store(Condition::Exited.encode(), Ordering::Release);
            return Step::Exited;
        }
        if d == DISPATCH_IDLE || d <= self.last || d > LAST_TOKEN {
            return Step::Idle;
        }
        let token = self.last + 1;
        let step = self.run_token(token, resolver, stop);
        self.last = token;
        step
    }

    fn run_token<R: KernelResolver + ?Sized>(&mut self, token: u64, resolver: &R, stop: &dyn Fn() -> bool) -> Step {
        let p = self.payloads[parity(token)];
        // SAFETY: the acquire load of a dispatch value >= `token` made the AICPU's writes of this
        // buffer visible, and the AICPU does not write it again before it sees this token end.
        let (kernel, block_idx, block_num, arg_count, flags) = unsafe {
            (
                ptr::read_volatile(addr_of!((*p).kernel)),
                ptr::read_volatile(addr_of!((*p).block_idx)),
                ptr::read_volatile(addr_of!((*p).block_num)),
                ptr::read_volatile(addr_of!((*p).arg_count)),
                ptr::read_volatile(addr_of!((*p).flags)),
            )
        };
        let mut args = [0u64; MAX_KERNEL_ARGS];
        let n = (arg_count as usize).min(MAX_KERNEL_ARGS);
        for (i, a) in args[..n].iter_mut().enumerate() {
            // SAFETY: as above; `i < MAX_KERNEL_ARGS`.
            *a = unsafe { ptr::read_volatile(addr_of!((*p).args[i])) };
        }
        self.condition().store(Condition::Ack(token).encode(), Ordering::Release);

        let stamp = flags & PAYLOAD_FLAG_STAMP != 0;
        let start_ns = if stamp { self.now_ns() } else { 0 };
        let outcome = if arg_count as usize > MAX_KERNEL_ARGS {
            Err(CoreFault::BadArgCount)
        } else {
            match resolver.resolve(kernel) {
                None => Err(CoreFault::UnknownKernel),
                Some(f) => resolver.invoke(f, &KernelInvocation { args: &args[..n], block_idx, block_num }),
            }
        };
        if stop() {
            self.go_offline();
            return Step::Stopped { token };
        }
        if stamp {
            let end_ns = self.now_ns();
            self.write_stamps(parity(token), start_ns, end_ns);
        }
        match outcome {
            Ok(()) => {
                self.condition().store(Condition::Fin(token).encode(), Ordering::Release);
                Step::Ran { token, fault: None }
            }
            Err(reason) => {
                self.faults += 1;
                self.fault_slot(parity(token)).store(fault_word(token, reason), Ordering::Relaxed);
                self.condition().store(Condition::Fault(token).encode(), Ordering::Release);
                Step::Ran { token, fault: Some(reason) }
            }
        }
    }

    /// The core's clock (0 without one).
    #[inline]
    fn now_ns(&self) -> u64 {
        self.clock.map_or(0, |c| c.now_ns())
    }

    /// Writes the kernel start and end of the token of parity `p`; the release store of the
    /// token's end that follows publishes them.
    #[cold]
    fn write_stamps(&self, p: usize, start_ns: u64, end_ns: u64) {
        // SAFETY: `regs` points to this core's aligned CoreRegisters (constructor contract); the
        // stamps lie on the core's line, whose words only the core writes; `p` is 0 or 1.
        unsafe {
            AtomicU64::from_ptr(addr_of_mut!((*self.regs).start_ns[p])).store(start_ns, Ordering::Relaxed);
            AtomicU64::from_ptr(addr_of_mut!((*self.regs).end_ns[p])).store(end_ns, Ordering::Relaxed);
        }
    }

    /// Marks the core offline without an exit acknowledgement (the stop path).
    fn go_offline(&self) {
        self.online().store(0, Ordering::Release);
    }
}

/// Waits until the launch's boot report is READY (`Ok`), FAILED (`Err(BootFailed)`) or the core
/// must stop (`Err(Stopped)`).
///
/// # Safety
/// `report` must point to the launch's readable [`BootReport`], which the host wrote PENDING
/// before it started the cores.
pub unsafe fn wait_for_boot<W: CoreWait + ?Sized>(report: *const BootReport, wait: &mut W) -> Result<(), CoreExit> {
    // SAFETY: `state` is an aligned u32 of the caller's boot report, written by the booting thread
    // with release ordering.
    let state = unsafe { AtomicU32::from_ptr(addr_of!((*report).state) as *mut u32) };
    let mut empty = 0u32;
    loop {
        match state.load(Ordering::Acquire) {
            BOOT_STATE_READY => return Ok(()),
            BOOT_STATE_FAILED => return Err(CoreExit::BootFailed),
            _ => {}
        }
        if wait.must_stop() {
            return Err(CoreExit::Stopped);
        }
        wait.idle(empty);
        empty = empty.saturating_add(1);
    }
}

/// The core loop: announce, then run tokens in order until `DISPATCH_EXIT` or a stop.
///
/// The endpoint must be fresh for this boot (see [`CoreEndpoint::new`]); the caller has already
/// waited for the boot ([`wait_for_boot`]).
pub fn run_core<R: KernelResolver + ?Sized, W: CoreWait + ?Sized>(
    endpoint: &mut CoreEndpoint,
    resolver: &R,
    wait: &mut W,
) -> CoreReport {
    endpoint.announce();
    let mut empty = 0u32;
    loop {
        match endpoint.step_or_stop(resolver, &|| wait.must_stop()) {
            Step::Exited => return endpoint.report(CoreExit::Exited),
            Step::Stopped { .. } => return endpoint.report(CoreExit::Stopped),
            Step::Ran { .. } => empty = 0,
            Step::Idle => {
                if wait.must_stop() {
                    endpoint.go_offline();
                    return endpoint.report(CoreExit::Stopped);
                }
                wait.idle(empty);
                empty = empty.saturating_add(1);
            }
        }
    }
}
