//! The AICPU side of the protocol: one scheduler thread's channels to the cores it owns.
//!
//! Usage by a scheduler thread (single owner of its [`CoreChannels`]):
//!
//! ```text
//! let mut ch = unsafe { CoreChannels::for_scheduler(tables, sched, sched_count, clusters)? };
//! ch.wait_online(&platform, budget)?;            // optional: every owned core announced itself
//! loop {
//!     for core in ch.owned() {
//!         let p = ch.poll(core)?;              // one acquire load of the condition register
//!         for c in p.completions() { /* complete c.task_id / c.block_idx; c.outcome */ }
//!     }
//!     for (core, work) in ready_work_for_cores_that(ch.can_prepare(core)) {
//!         ch.prepare(core, &work)?;            // writes the payload buffer of the next token
//!     }
//!     ch.publish();                            // one release fence, then every prepared token
//! }
//! ch.shutdown(&platform, budget)?;                // EXIT to every core, wait for COND_EXITED
//! ```
//!
//! **Pipelining.** A core runs its tokens strictly in order. At most two tokens of a core are in
//! flight (published, not yet seen finished): the running one and the next, whose payload sits in
//! the other buffer. So `prepare` is allowed while `in_flight <= 1` and no payload is prepared;
//! a scheduler that wants one task per core at a time prepares only when `in_flight == 0`.
//!
//! **Ordering.** `prepare` writes the payload with volatile stores; `publish` issues one release
//! fence and then stores every prepared token (relaxed): a core whose acquire load sees a token
//! sees its payload. The core writes `ACK`/`FIN`/`FAULT` with release stores and `poll` reads with
//! acquire, so once `poll` reports a completion, everything the kernel wrote is visible to this
//! thread (and, through the next `publish`, to the cores it dispatches to next).
//!
//! **Completions.** One condition read can reveal up to two finished tokens (the core may already
//! have moved on to the next one: `ACK | t+1` implies `t` finished). A finished token's outcome is
//! [`TaskOutcome::Finished`] unless the core reported a fault for it (`FAULT | t` in the register or
//! the fault word of the token's parity), which is reported as [`TaskOutcome::Faulted`]. Both count
//! as the end of that block: the scheduler decides what a fault means for the run.

use core::fmt;
use core::ptr::{self, addr_of, addr_of_mut};
use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use pto_abi::consts::{MAX_CORES, MAX_KERNEL_ARGS};
use pto_abi::launch::{AicorePayload, CoreFault, HandshakeRecord, DISPATCH_EXIT, PAYLOAD_FLAG_STAMP};
use pto_abi::DevAddr;

use super::ownership::{cluster_of, lane_of, owned_cores, CoreMask, OwnershipError};
use super::signal::{fault_of, parity, Condition, LAST_TOKEN};
use super::tables::CoreTables;
use crate::platform::{Backoff, Platform};

/// One block of one task to run on a core.
#[derive(Clone, Copy, Debug)]
pub struct Dispatch<'a> {
    /// Kernel code address (what the core's resolver maps to code).
    pub kernel: DevAddr,
    /// The task; returned in the completion.
    pub task_id: u64,
    /// This block's index in `0..block_num`; returned in the completion.
    pub block_idx: u32,
    /// The task's block count.
    pub block_num: u32,
    /// Argument words, at most `MAX_KERNEL_ARGS`: tensor addresses then scalars.
    pub args: &'a [u64],
}

/// How a dispatched block ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The core wrote `FIN`: the kernel ran to completion.
    Finished,
    /// The core wrote `FAULT`: the kernel did not run to completion, for this reason.
    Faulted(CoreFault),
    /// The core reported a fault with a reason code this firmware does not know (raw value), or
    /// wrote `FAULT` without a matching fault word.
    UnknownFault(u32),
}

/// A finished token of a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The core.
    pub core: u32,
    /// The token.
    pub token: u64,
    /// `Dispatch::task_id` of the token.
    pub task_id: u64,
    /// `Dispatch::block_idx` of the token.
    pub block_idx: u32,
    /// `Dispatch::kernel` of the token.
    pub kernel: DevAddr,
    /// How it ended.
    pub outcome: TaskOutcome,
}

/// What one [`CoreChannels::poll`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorePoll {
    done: [Completion; 2],
    count: u8,
    /// The token the core has acknowledged and is running, if the register shows `ACK`.
    pub running: Option<u64>,
    /// The core has exited (it wrote `COND_EXITED`); every later `prepare` for it fails.
    pub exited: bool,
}

const NO_COMPLETION: Completion =
    Completion { core: 0, token: 0, task_id: 0, block_idx: 0, kernel: DevAddr::NULL, outcome: TaskOutcome::Finished };

impl CorePoll {
    const EMPTY: CorePoll = CorePoll { done: [NO_COMPLETION; 2], count: 0, running: None, exited: false };

    /// Tokens newly seen finished by this poll (0, 1 or 2), oldest first.
    pub fn completions(&self) -> &[Completion] {
        &self.done[..self.count as usize]
    }

    /// True when the poll saw no completion, no running token and no exit.
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.running.is_none() && !self.exited
    }

    fn push(&mut self, c: Completion) {
        self.done[self.count as usize] = c;
        self.count += 1;
    }
}

/// A refused channel operation; nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// The core is not owned by these channels (or not below `MAX_CORES`).
    NotOwned {
        /// The core given.
        core: u32,
    },
    /// The core cannot take another payload: two tokens in flight, or one already prepared.
    Busy {
        /// The core.
        core: u32,
        /// Tokens published and not yet seen finished.
        in_flight: u32,
        /// A payload is prepared and not yet published.
        prepared: bool,
    },
    /// More argument words than a payload holds.
    TooManyArgs {
        /// The core.
        core: u32,
        /// Words given.
        count: usize,
    },
    /// The core has exited.
    CoreExited {
        /// The core.
        core: u32,
    },
    /// The core used every token (`LAST_TOKEN`); a new boot restarts them.
    TokensExhausted {
        /// The core.
        core: u32,
    },
    /// The channels were shut down.
    ShutDown,
    /// The condition register holds a value the protocol does not allow now.
    BadCondition {
        /// The core.
        core: u32,
        /// The raw register value.
        value: u64,
        /// The last token published to the core.
        published: u64,
        /// The last token seen finished.
        finished: u64,
    },
    /// Scheduler ownership parameters are invalid.
    Ownership(OwnershipError),
    /// A table base is null or not 64-byte aligned.
    Tables,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChannelError::NotOwned { core } => write!(f, "core {core} is not owned by this scheduler"),
            ChannelError::Busy { core, in_flight, prepared } => write!(
                f,
                "core {core} cannot take a payload: {in_flight} token(s) in flight{}",
                if prepared { " and one prepared" } else { "" }
            ),
            ChannelError::TooManyArgs { core, count } => {
                write!(f, "payload for core {core} has {count} argument words; at most {MAX_KERNEL_ARGS} fit")
            }
            ChannelError::CoreExited { core } => write!(f, "core {core} has exited"),
            ChannelError::TokensExhausted { core } => write!(f, "core {core} used all {LAST_TOKEN} dispatch tokens"),
            ChannelError::ShutDown => f.write_str("the core channels were shut down"),
            ChannelError::BadCondition { core, value, published, finished } => write!(
                f,
                "core {core} condition register holds {value:#x}, not a valid report for tokens {}..={published}",
                finished + 1
            ),
            ChannelError::Ownership(e) => e.fmt(f),
            ChannelError::Tables => f.write_str("a core table base is null or not 64-byte aligned"),
        }
    }
}

impl From<OwnershipError> for ChannelError {
    fn from(e: OwnershipError) -> Self {
        ChannelError::Ownership(e)
    }
}

/// Owned cores that did not acknowledge exit before the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownError {
    /// The cores still not showing `COND_EXITED`.
    pub not_exited: CoreMask,
    /// The budget that ran out, nanoseconds.
    pub timeout_ns: u64,
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} did not acknowledge exit within {} ns", self.not_exited, self.timeout_ns)
    }
}

/// Owned cores whose handshake is missing or wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// These cores did not come online before the deadline.
    NotOnline {
        /// The cores.
        cores: CoreMask,
        /// The budget that ran out, nanoseconds.
        timeout_ns: u64,
    },
    /// A core announced an identity that is not its own.
    Mismatch {
        /// The core (index of its handshake record).
        core: u32,
        /// `core_id`, `lane` or `cluster`.
        field: &'static str,
        /// The value the core's index implies.
        expected: u32,
        /// The value announced.
        found: u32,
    },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HandshakeError::NotOnline { cores, timeout_ns } => {
                write!(f, "{cores} did not come online within {timeout_ns} ns")
            }
            HandshakeError::Mismatch { core, field, expected, found } => {
                write!(f, "core {core} announced {field} {found}, expected {expected}")
            }
        }
    }
}

/// What the channels remember of a token in flight (by parity).
#[derive(Clone, Copy, Debug)]
struct InFlight {
    task_id: u64,
    block_idx: u32,
    kernel: DevAddr,
}

const NO_TOKEN: InFlight = InFlight { task_id: 0, block_idx: 0, kernel: DevAddr::NULL };

/// Per-core channel state.
#[derive(Clone, Copy, Debug)]
struct CoreState {
    /// Last token published (0 = none).
    published: u64,
    /// Last token seen finished.
    finished: u64,
    /// Task of each payload buffer's current token.
    slots: [InFlight; 2],
}

const CORE_STATE: CoreState = CoreState { published: 0, finished: 0, slots: [NO_TOKEN; 2] };

/// One scheduler thread's channels to the cores it owns.
///
/// Not shared: exactly one thread owns a `CoreChannels` and is the only writer of its cores'
/// dispatch registers and payload buffers.
pub struct CoreChannels {
    tables: CoreTables,
    owned: CoreMask,
    prepared: CoreMask,
    exited: CoreMask,
    shut_down: bool,
    /// Payloads ask the cores to stamp kernel start and end (traced runs).
    stamp: bool,
    cores: [CoreState; MAX_CORES],
}

impl fmt::Debug for CoreChannels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreChannels")
            .field("tables", &self.tables)
            .field("owned", &self.owned)
            .field("prepared", &self.prepared)
            .field("exited", &self.exited)
            .field("shut_down", &self.shut_down)
            .finish_non_exhaustive()
    }
}

// SAFETY: the channels hold device addresses and private state; the memory behind the addresses is
// shared by protocol (atomics and one writer per word), so the owning thread may be any thread.
unsafe impl Send for CoreChannels {}

impl CoreChannels {
    /// Channels to the cores in `owned`, whose registers were reset by this boot (no token
    /// published yet).
    ///
    /// # Safety
    /// `tables` must describe the per-core tables of a booted runtime, valid while the channels
    /// are used; no other `CoreChannels` may own any core of `owned` during this run.
    pub unsafe fn new(tables: CoreTables, owned: CoreMask) -> Result<CoreChannels, ChannelError> {
        if !tables.is_well_formed() {
            return Err(ChannelError::Tables);
        }
        Ok(CoreChannels {
            tables,
            owned,
            prepared: CoreMask::EMPTY,
            exited: CoreMask::EMPTY,
            shut_down: false,
            stamp: false,
            cores: [CORE_STATE; MAX_CORES],
        })
    }

    /// Channels of scheduler `sched` of `sched_count` when `clusters` clusters are driven: the
    /// cores of every cluster `k` with `k % sched_count == sched`.
    ///
    /// # Safety
    /// As for [`CoreChannels::new`].
    pub unsafe fn for_scheduler(
        tables: CoreTables,
        sched: u32,
        sched_count: u32,
        clusters: u32,
    ) -> Result<CoreChannels, ChannelError> {
        let owned = owned_cores(sched, sched_count, clusters)?;
        // SAFETY: forwarded contract.
        unsafe { CoreChannels::new(tables, owned) }
    }

    /// Makes every later payload ask its core to stamp the kernel's start and end on the core's
    /// clock ([`CoreChannels::stamps`] reads them once the token is seen finished).
    pub fn set_stamping(&mut self, on: bool) {
        self.stamp = on;
    }

    /// The kernel start and end `core` stamped for `token`, a token [`CoreChannels::poll`] has
    /// reported finished and whose payload asked for stamps (0, 0 for a core not owned). Valid
    /// until the next token of the same parity is published.
    pub fn stamps(&self, core: u32, token: u64) -> (u64, u64) {
        if !self.owned.contains(core) {
            return (0, 0);
        }
        let r = self.tables.registers_of(core);
        let p = parity(token);
        // SAFETY: `core < MAX_CORES` (owned), the registers table is valid and aligned; the core
        // wrote these words before the release store of the token's end, which `poll` acquired.
        unsafe {
            (
                AtomicU64::from_ptr(addr_of_mut!((*r).start_ns[p])).load(Ordering::Relaxed),
                AtomicU64::from_ptr(addr_of_mut!((*r).end_ns[p])).load(Ordering::Relaxed),
            )
        }
    }

    /// The cores these channels own.
    pub fn owned(&self) -> CoreMask {
        self.owned
    }

    /// The owned cores seen exited.
    pub fn exited(&self) -> CoreMask {
        self.exited
    }

    /// Tokens of `core` published and not yet seen finished (0, 1 or 2); 0 for a core not owned.
    pub fn in_flight(&self, core: u32) -> u32 {
        match self.cores.get(core as usize) {
            Some(s) if self.owned.contains(core) => (s.published - s.finished) as u32,
            _ => 0,
        }
    }

    /// True when `core` has nothing in flight and nothing prepared.
    pub fn is_idle(&self, core: u32) -> bool {
        self.owned.contains(core) && self.in_flight(core) == 0 && !self.prepared.contains(core)
    }

    /// True when [`CoreChannels::prepare`] would accept a payload for `core`.
    pub fn can_prepare(&self, core: u32) -> bool {
        !self.shut_down
            && self.owned.contains(core)
            && !self.exited.contains(core)
            && !self.prepared.contains(core)
            && self.in_flight(core) <= 1
            && self.cores[core as usize].published < LAST_TOKEN
    }

    /// The token the next [`CoreChannels::publish`] will give `core`, if a payload is prepared.
    pub fn prepared_token(&self, core: u32) -> Option<u64> {
        self.prepared.contains(core).then(|| self.cores[core as usize].published + 1)
    }

    /// Pretends `core` published and finished every token up to `last`.
    #[cfg(test)]
    pub(super) fn skip_tokens_for_test(&mut self, core: u32, last: u64) {
        self.cores[core as usize].published = last;
        self.cores[core as usize].finished = last;
    }

    fn check(&self, core: u32) -> Result<(), ChannelError> {
        if self.shut_down {
            return Err(ChannelError::ShutDown);
        }
        if !self.owned.contains(core) {
            return Err(ChannelError::NotOwned { core });
        }
        Ok(())
    }

    /// Writes `work` into the payload buffer of `core`'s next token (its parity), without
    /// publishing it. Returns that token. Allowed while the core has at most one token in flight
    /// and no payload prepared; on error nothing is written.
    pub fn prepare(&mut self, core: u32, work: &Dispatch<'_>) -> Result<u64, ChannelError> {
        self.check(core)?;
        if self.exited.contains(core) {
            return Err(ChannelError::CoreExited { core });
        }
        let s = &self.cores[core as usize];
        let in_flight = (s.published - s.finished) as u32;
        let prepared = self.prepared.contains(core);
        if prepared || in_flight > 1 {
            return Err(ChannelError::Busy { core, in_flight, prepared });
        }
        if s.published >= LAST_TOKEN {
            return Err(ChannelError::TokensExhausted { core });
        }
        if work.args.len() > MAX_KERNEL_ARGS {
            return Err(ChannelError::TooManyArgs { core, count: work.args.len() });
        }
        let token = s.published + 1;
        let p = self.tables.payload_of(core, parity(token));
        // SAFETY: the buffer of `token`'s parity last served token - 2, which is finished
        // (in_flight <= 1), so the core does not read it until it sees `token` published; the
        // tables are valid (constructor contract). Volatile: the core reads it from another thread.
        unsafe {
            ptr::write_volatile(addr_of_mut!((*p).kernel), work.kernel);
            ptr::write_volatile(addr_of_mut!((*p).task_id), work.task_id);
            ptr::write_volatile(addr_of_mut!((*p).block_idx), work.block_idx);
            ptr::write_volatile(addr_of_mut!((*p).block_num), work.block_num);
            ptr::write_volatile(addr_of_mut!((*p).arg_count), work.args.len() as u32);
            ptr::write_volatile(addr_of_mut!((*p).flags), if self.stamp { PAYLOAD_FLAG_STAMP } else { 0 });
            for (i, &a) in work.args.iter().enumerate() {
                ptr::write_volatile(addr_of_mut!((*p).args[i]), a);
            }
        }
        self.cores[core as usize].slots[parity(token)] =
            InFlight { task_id: work.task_id, block_idx: work.block_idx, kernel: work.kernel };
        self.prepared.insert(core);
        Ok(token)
    }

    /// Publishes every prepared payload: one release fence, then each prepared core's token
    /// (relaxed stores). Returns how many tokens were published.
    pub fn publish(&mut self) -> u32 {
        let prepared = self.prepared;
        if prepared.is_empty() {
            return 0;
        }
        fence(Ordering::Release);
        for core in prepared {
            let token = self.cores[core as usize].published + 1;
            self.cores[core as usize].published = token;
            self.dispatch(core).store(token, Ordering::Relaxed);
        }
        self.prepared = CoreMask::EMPTY;
        prepared.len()
    }

    fn dispatch(&self, core: u32) -> &AtomicU64 {
        // SAFETY: `core < MAX_CORES` (owned), the registers table is valid and aligned.
        unsafe { AtomicU64::from_ptr(addr_of_mut!((*self.tables.registers_of(core)).dispatch)) }
    }

    fn condition(&self, core: u32) -> &AtomicU64 {
        // SAFETY: as for `dispatch`.
        unsafe { AtomicU64::from_ptr(addr_of_mut!((*self.tables.registers_of(core)).condition)) }
    }

    fn handshake(&self, core: u32) -> *mut HandshakeRecord {
        self.tables.handshake_of(core)
    }

    fn fault_word(&self, core: u32, p: usize) -> u64 {
        // SAFETY: an aligned u64 of the core's handshake record, written by the core (atomically).
        unsafe { AtomicU64::from_ptr(addr_of_mut!((*self.handshake(core)).faults[p])).load(Ordering::Relaxed) }
    }

    /// Reads `core`'s condition register once (acquire) and reports what is new: finished tokens
    /// (oldest first, with their task, block and outcome), the running token, or the exit.
    /// A value that contradicts the protocol (a token never published, going backwards, an unknown
    /// kind) is a [`ChannelError::BadCondition`] and changes nothing.
    pub fn poll(&mut self, core: u32) -> Result<CorePoll, ChannelError> {
        self.check(core)?;
        let mut out = CorePoll::EMPTY;
        if self.exited.contains(core) {
            out.exited = true;
            return Ok(out);
        }
        let value = self.condition(core).load(Ordering::Acquire);
        let s = self.cores[core as usize];
        let bad = ChannelError::BadCondition { core, value, published: s.published, finished: s.finished };
        let (through, current, running) = match Condition::decode(value) {
            Condition::Nothing => return Ok(out),
            Condition::Exited => {
                self.exited.insert(core);
                self.prepared.remove(core);
                out.exited = true;
                return Ok(out);
            }
            Condition::Ack(t) if t > s.finished && t <= s.published => (t - 1, None, Some(t)),
            Condition::Fin(t) if t >= s.finished && t <= s.published => (t, Some((t, TaskOutcome::Finished)), None),
            Condition::Fault(t) if t >= s.finished && t <= s.published => {
                let outcome = match fault_of(self.fault_word(core, parity(t)), t) {
                    Some(Ok(reason)) => TaskOutcome::Faulted(reason),
                    Some(Err(raw)) => TaskOutcome::UnknownFault(raw),
                    None => TaskOutcome::UnknownFault(0),
                };
                (t, Some((t, outcome)), None)
            }
            _ => return Err(bad),
        };
        for token in s.finished + 1..=through {
            let outcome = match current {
                Some((t, o)) if t == token => o,
                // A token the register no longer shows: finished, unless its fault word says otherwise.
                _ => match fault_of(self.fault_word(core, parity(token)), token) {
                    None => TaskOutcome::Finished,
                    Some(Ok(reason)) => TaskOutcome::Faulted(reason),
                    Some(Err(raw)) => TaskOutcome::UnknownFault(raw),
                },
            };
            let slot = s.slots[parity(token)];
            out.push(Completion {
                core,
                token,
                task_id: slot.task_id,
                block_idx: slot.block_idx,
                kernel: slot.kernel,
                outcome,
            });
        }
        self.cores[core as usize].finished = through.max(s.finished);
        out.running = running;
        Ok(out)
    }

    /// Waits until every owned core has announced itself (`online`, with the core id, lane and
    /// cluster its index implies), or the budget runs out.
    pub fn wait_online(&self, platform: &dyn Platform, timeout_ns: u64) -> Result<(), HandshakeError> {
        let deadline = platform.now_ns().saturating_add(timeout_ns);
        let mut backoff = Backoff::new();
        let mut pending = self.owned;
        loop {
            for core in pending {
                let h = self.handshake(core);
                // SAFETY: an aligned u32 of the core's handshake record, written by the core with
                // release ordering after its identity fields.
                let online = unsafe { AtomicU32::from_ptr(addr_of_mut!((*h).online)).load(Ordering::Acquire) };
                if online == 0 {
                    continue;
                }
                // SAFETY: identity fields were written before `online` (acquired above).
                let found = unsafe {
                    [
                        ptr::read_volatile(addr_of!((*h).core_id)),
                        ptr::read_volatile(addr_of!((*h).lane)),
                        ptr::read_volatile(addr_of!((*h).cluster)),
                    ]
                };
                let expected = [core, lane_of(core) as u32, cluster_of(core)];
                for (i, field) in ["core_id", "lane", "cluster"].into_iter().enumerate() {
                    if found[i] != expected[i] {
                        return Err(HandshakeError::Mismatch { core, field, expected: expected[i], found: found[i] });
                    }
                }
                pending.remove(core);
            }
            if pending.is_empty() {
                return Ok(());
            }
            if platform.now_ns() >= deadline {
                return Err(HandshakeError::NotOnline { cores: pending, timeout_ns });
            }
            backoff.snooze(platform);
        }
    }

    /// Ordered shutdown: drops prepared payloads, writes `DISPATCH_EXIT` to every owned core not
    /// already seen exited, and waits until each shows `COND_EXITED` or the budget runs out.
    ///
    /// Each core finishes the kernel it is running; tokens it has not started are abandoned. After
    /// this call (successful or not) every operation but [`CoreChannels::exited`] and the queries
    /// fails with [`ChannelError::ShutDown`]; calling it again waits again for the cores still
    /// missing.
    pub fn shutdown(&mut self, platform: &dyn Platform, timeout_ns: u64) -> Result<(), ShutdownError> {
        self.prepared = CoreMask::EMPTY;
        let mut pending = self.owned.without(self.exited);
        if !self.shut_down {
            for core in pending {
                self.dispatch(core).store(DISPATCH_EXIT, Ordering::Release);
            }
            self.shut_down = true;
        }
        let deadline = platform.now_ns().saturating_add(timeout_ns);
        let mut backoff = Backoff::new();
        loop {
            for core in pending {
                if Condition::decode(self.condition(core).load(Ordering::Acquire)) == Condition::Exited {
                    pending.remove(core);
                    self.exited.insert(core);
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if platform.now_ns() >= deadline {
                return Err(ShutdownError { not_exited: pending, timeout_ns });
            }
            backoff.snooze(platform);
        }
    }
}

/// Reads the payload buffer `parity` of `core` (for inspection and tests).
///
/// # Safety
/// `tables` must be valid and `core < MAX_CORES`; the buffer may be torn if the AICPU is writing it.
pub unsafe fn read_payload(tables: &CoreTables, core: u32, parity: usize) -> AicorePayload {
    // SAFETY: forwarded contract.
    unsafe { ptr::read_volatile(tables.payload_of(core, parity & 1)) }
}
