//! Protocol tests with the core stepped on the test thread (no other thread involved).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::RefCell;
use std::vec::Vec;

use pto_abi::consts::MAX_KERNEL_ARGS;
use pto_abi::launch::{CoreFault, COND_FIN, DISPATCH_EXIT};
use pto_abi::DevAddr;

use super::channel::read_payload;
use super::signal::Condition;
use super::tables::TABLE_BYTES;
use super::*;
use crate::kernel::{KernelInvocation, SimKernelFn};
use crate::platform::Platform;

/// Zeroed, 64-aligned core tables in host memory.
struct TestTables {
    bases: [*mut u8; 3],
    tables: CoreTables,
}

impl TestTables {
    fn new() -> TestTables {
        let bases = TABLE_BYTES.map(|n| {
            // SAFETY: a non-zero size with a valid alignment.
            unsafe { alloc_zeroed(Layout::from_size_align(n as usize, 64).unwrap()) }
        });
        let tables = CoreTables {
            registers: DevAddr(bases[0] as u64),
            handshakes: DevAddr(bases[1] as u64),
            payloads: DevAddr(bases[2] as u64),
        };
        // SAFETY: the three tables were just allocated with their full sizes; only this thread uses them.
        unsafe { reset_core_tables(&tables) };
        TestTables { bases, tables }
    }

    fn endpoint(&self, core: u32) -> CoreEndpoint {
        // SAFETY: the tables live as long as `self`; each test makes one endpoint per core.
        unsafe { CoreEndpoint::new(&self.tables, core).unwrap() }
    }

    fn channels(&self, owned: &[u32]) -> CoreChannels {
        let mut m = CoreMask::EMPTY;
        for &c in owned {
            m.insert(c);
        }
        // SAFETY: as for `endpoint`.
        unsafe { CoreChannels::new(self.tables, m).unwrap() }
    }
}

impl Drop for TestTables {
    fn drop(&mut self) {
        for (b, n) in self.bases.iter().zip(TABLE_BYTES) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(*b, Layout::from_size_align(n as usize, 64).unwrap()) };
        }
    }
}

// Output of the test kernels: (first arg, block idx, block num, arg count) per run, per thread.
std::thread_local! {
    static RUNS: RefCell<Vec<(u64, u32, u32, usize)>> = const { RefCell::new(Vec::new()) };
}

fn record(inv: &KernelInvocation<'_>) {
    RUNS.with(|r| {
        r.borrow_mut().push((inv.args.first().copied().unwrap_or(0), inv.block_idx, inv.block_num, inv.args.len()))
    });
}

fn boom(_: &KernelInvocation<'_>) {
    panic!("kernel failure");
}

const RECORD: DevAddr = DevAddr(0x1000);
const BOOM: DevAddr = DevAddr(0x2000);

/// Resolves RECORD and BOOM; catches panics like the simulated device does.
struct Table;

impl KernelResolver for Table {
    fn resolve(&self, kernel: DevAddr) -> Option<SimKernelFn> {
        match kernel {
            RECORD => Some(record),
            BOOM => Some(boom),
            _ => None,
        }
    }

    fn invoke(&self, f: SimKernelFn, inv: &KernelInvocation<'_>) -> Result<(), CoreFault> {
        std::panic::catch_unwind(|| f(inv)).map_err(|_| CoreFault::KernelFailed)
    }
}

fn work(kernel: DevAddr, task_id: u64, args: &[u64]) -> Dispatch<'_> {
    Dispatch { kernel, task_id, block_idx: (task_id % 3) as u32, block_num: 3, args }
}

fn runs() -> Vec<(u64, u32, u32, usize)> {
    RUNS.with(|r| r.take())
}

#[test]
fn tokens_alternate_payload_buffers_and_complete_in_order_with_their_task() {
    let t = TestTables::new();
    let mut ch = t.channels(&[4]);
    let mut core = t.endpoint(4);
    core.announce();
    let _ = runs();
    for task in 1..=6u64 {
        assert!(ch.is_idle(4));
        let token = ch.prepare(4, &work(RECORD, 100 + task, &[task * 10, 7])).unwrap();
        assert_eq!(token, task, "tokens count 1, 2, 3 … per core");
        // SAFETY: the payload table of the test tables; the core does not run.
        let p = unsafe { read_payload(&t.tables, 4, (token & 1) as usize) };
        assert_eq!(
            (p.task_id, p.arg_count, p.args[0]),
            (100 + task, 2, task * 10),
            "payload in buffer of the token's parity"
        );
        assert_eq!(core.step(&Table), Step::Idle, "nothing runs before publish");
        assert_eq!(ch.publish(), 1);
        assert_eq!(ch.in_flight(4), 1);
        assert_eq!(core.step(&Table), Step::Ran { token, fault: None });
        let p = ch.poll(4).unwrap();
        assert_eq!(p.completions().len(), 1);
        let c = p.completions()[0];
        assert_eq!(
            (c.core, c.token, c.task_id, c.block_idx, c.kernel),
            (4, token, 100 + task, (100 + task) as u32 % 3, RECORD)
        );
        assert_eq!(c.outcome, TaskOutcome::Finished);
        assert!(ch.poll(4).unwrap().is_empty(), "a completion is reported once");
    }
    let r = runs();
    assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [10, 20, 30, 40, 50, 60]);
    assert!(r.iter().all(|x| x.2 == 3 && x.3 == 2));
}

#[test]
fn two_tokens_in_flight_run_in_order_and_one_poll_reports_both_with_a_hidden_fault() {
    let t = TestTables::new();
    let mut ch = t.channels(&[0]);
    let mut core = t.endpoint(0);
    let _ = runs();
    ch.prepare(0, &work(BOOM, 1, &[])).unwrap();
    ch.publish();
    ch.prepare(0, &work(RECORD, 2, &[5])).unwrap();
    assert!(!ch.can_prepare(0));
    assert_eq!(ch.prepare(0, &work(RECORD, 3, &[])), Err(ChannelError::Busy { core: 0, in_flight: 1, prepared: true }));
    ch.publish();
    assert_eq!(ch.in_flight(0), 2);
    assert_eq!(
        ch.prepare(0, &work(RECORD, 3, &[])),
        Err(ChannelError::Busy { core: 0, in_flight: 2, prepared: false })
    );
    // The core runs both before the scheduler looks: FAULT|1 is overwritten by ACK|2 then FIN|2.
    assert_eq!(core.step(&Table), Step::Ran { token: 1, fault: Some(CoreFault::KernelFailed) });
    assert_eq!(core.step(&Table), Step::Ran { token: 2, fault: None });
    let p = ch.poll(0).unwrap();
    let got: Vec<_> = p.completions().iter().map(|c| (c.token, c.task_id, c.outcome)).collect();
    assert_eq!(got, [(1, 1, TaskOutcome::Faulted(CoreFault::KernelFailed)), (2, 2, TaskOutcome::Finished)]);
    assert_eq!(runs(), [(5, 2, 3, 1)]);
    assert!(ch.is_idle(0));
}

#[test]
fn a_core_that_skips_ahead_in_the_register_still_runs_every_token() {
    // The scheduler published tokens 1 and 2 before the core first looked: it runs 1, then 2.
    let t = TestTables::new();
    let mut ch = t.channels(&[2]);
    let mut core = t.endpoint(2);
    let _ = runs();
    ch.prepare(2, &work(RECORD, 1, &[11])).unwrap();
    ch.publish();
    ch.prepare(2, &work(RECORD, 2, &[22])).unwrap();
    ch.publish();
    assert_eq!(core.step(&Table), Step::Ran { token: 1, fault: None });
    let p = ch.poll(2).unwrap();
    assert_eq!(p.completions().iter().map(|c| c.token).collect::<Vec<_>>(), [1]);
    assert_eq!(core.step(&Table), Step::Ran { token: 2, fault: None });
    assert_eq!(runs().iter().map(|r| r.0).collect::<Vec<_>>(), [11, 22]);
}

#[test]
fn an_unknown_kernel_address_faults_the_token_and_the_core_stays_in_service() {
    let t = TestTables::new();
    let mut ch = t.channels(&[1]);
    let mut core = t.endpoint(1);
    ch.prepare(1, &work(DevAddr(0xdead_0000), 9, &[])).unwrap();
    ch.publish();
    assert_eq!(core.step(&Table), Step::Ran { token: 1, fault: Some(CoreFault::UnknownKernel) });
    let p = ch.poll(1).unwrap();
    assert_eq!(p.completions()[0].outcome, TaskOutcome::Faulted(CoreFault::UnknownKernel));
    assert_eq!(p.completions()[0].kernel, DevAddr(0xdead_0000));
    ch.prepare(1, &work(RECORD, 10, &[1])).unwrap();
    ch.publish();
    assert_eq!(core.step(&Table), Step::Ran { token: 2, fault: None });
    assert_eq!(ch.poll(1).unwrap().completions()[0].outcome, TaskOutcome::Finished);
    assert_eq!(core.report(CoreExit::Exited).faults, 1);
}

#[test]
fn batched_publish_releases_every_prepared_core_at_once() {
    let t = TestTables::new();
    let owned = [3, 4, 5, 9];
    let mut ch = t.channels(&owned);
    let mut cores: Vec<_> = owned.iter().map(|&c| t.endpoint(c)).collect();
    let _ = runs();
    for &c in &owned {
        ch.prepare(c, &work(RECORD, c as u64, &[c as u64])).unwrap();
    }
    for core in &mut cores {
        assert_eq!(core.step(&Table), Step::Idle, "prepared but unpublished");
    }
    assert_eq!(ch.publish(), 4);
    assert_eq!(ch.publish(), 0, "nothing left to publish");
    for core in &mut cores {
        assert_eq!(core.step(&Table), Step::Ran { token: 1, fault: None });
    }
    let mut done: Vec<u64> =
        owned.iter().flat_map(|&c| ch.poll(c).unwrap().completions().to_vec()).map(|c| c.task_id).collect();
    done.sort();
    assert_eq!(done, [3, 4, 5, 9]);
}

#[test]
fn refused_operations_name_the_rule_and_write_nothing() {
    let t = TestTables::new();
    let mut ch = t.channels(&[0]);
    assert_eq!(ch.prepare(1, &work(RECORD, 1, &[])), Err(ChannelError::NotOwned { core: 1 }));
    assert_eq!(ch.poll(200).unwrap_err(), ChannelError::NotOwned { core: 200 });
    let args = [0u64; MAX_KERNEL_ARGS + 1];
    assert_eq!(
        ch.prepare(0, &work(RECORD, 1, &args)),
        Err(ChannelError::TooManyArgs { core: 0, count: MAX_KERNEL_ARGS + 1 })
    );
    assert_eq!(ch.prepared_token(0), None);
    assert_eq!(ch.publish(), 0);
    let s = std::format!("{}", ChannelError::TooManyArgs { core: 0, count: 49 });
    assert!(s.contains("49 argument words") && s.contains("at most 48"), "{s}");
}

#[test]
fn a_condition_value_the_protocol_forbids_is_an_error_naming_the_core_and_value() {
    let t = TestTables::new();
    let mut ch = t.channels(&[6]);
    let regs = t.tables.registers_of(6);
    // FIN of a token never published.
    // SAFETY: the test owns the register table; no core thread runs.
    unsafe { (*regs).condition = COND_FIN | 3 };
    let e = ch.poll(6).unwrap_err();
    assert_eq!(e, ChannelError::BadCondition { core: 6, value: COND_FIN | 3, published: 0, finished: 0 });
    assert!(std::format!("{e}").contains("core 6 condition register holds 0x200000000000003"), "{e}");
    // SAFETY: as above.
    unsafe { (*regs).condition = 0x7700 };
    assert!(matches!(ch.poll(6), Err(ChannelError::BadCondition { value: 0x7700, .. })));
}

/// A platform whose yields step some cores and advance time, so shutdown is tested on one thread.
struct SteppingPlatform<'a> {
    now: std::sync::atomic::AtomicU64,
    cores: std::sync::Mutex<Vec<&'a mut CoreEndpoint>>,
}

impl SteppingPlatform<'_> {
    fn new(cores: Vec<&mut CoreEndpoint>) -> SteppingPlatform<'_> {
        SteppingPlatform { now: 0.into(), cores: std::sync::Mutex::new(cores) }
    }
}

impl Platform for SteppingPlatform<'_> {
    fn now_ns(&self) -> u64 {
        self.now.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn yield_now(&self) {
        self.now.fetch_add(1000, std::sync::atomic::Ordering::Relaxed);
        for c in self.cores.lock().unwrap().iter_mut() {
            c.step(&Table);
        }
    }
}

#[test]
fn shutdown_waits_for_every_exit_and_names_the_cores_that_miss_the_deadline() {
    let t = TestTables::new();
    let mut ch = t.channels(&[0, 1, 2, 3, 4, 5]);
    let mut live: Vec<_> = [0, 1, 2].iter().map(|&c| t.endpoint(c)).collect();
    let platform = SteppingPlatform::new(live.iter_mut().collect());
    let e = ch.shutdown(&platform, 50_000).unwrap_err();
    assert_eq!(e.not_exited.iter().collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(std::format!("{e}"), "cores 3, 4, 5 did not acknowledge exit within 50000 ns");
    assert_eq!(ch.exited().iter().collect::<Vec<_>>(), [0, 1, 2]);
    // SAFETY: the test owns the register table; no core thread runs.
    assert_eq!(unsafe { (*t.tables.registers_of(4)).dispatch }, DISPATCH_EXIT, "exit was written to every core");
    assert_eq!(ch.prepare(0, &work(RECORD, 1, &[])), Err(ChannelError::ShutDown));
    // The late cores exit; a second shutdown call only waits for them.
    let mut late: Vec<_> = [3, 4, 5].iter().map(|&c| t.endpoint(c)).collect();
    for c in &mut late {
        assert_eq!(c.step(&Table), Step::Exited);
    }
    assert_eq!(ch.shutdown(&platform, 0), Ok(()));
    // SAFETY: as above.
    let cond = unsafe { (*t.tables.registers_of(5)).condition };
    assert_eq!(Condition::decode(cond), Condition::Exited);
}

#[test]
fn a_core_seen_exited_by_poll_refuses_new_work() {
    let t = TestTables::new();
    let mut ch = t.channels(&[7]);
    let mut core = t.endpoint(7);
    // SAFETY: the test owns the register table; no core thread runs.
    unsafe { (*t.tables.registers_of(7)).dispatch = DISPATCH_EXIT };
    assert_eq!(core.step(&Table), Step::Exited);
    let p = ch.poll(7).unwrap();
    assert!(p.exited && p.completions().is_empty());
    assert_eq!(ch.prepare(7, &work(RECORD, 1, &[])), Err(ChannelError::CoreExited { core: 7 }));
}

#[test]
fn wait_online_checks_every_announced_identity() {
    let t = TestTables::new();
    let ch = t.channels(&[9, 10, 11]);
    let platform = SteppingPlatform::new(Vec::new());
    let e = ch.wait_online(&platform, 10_000).unwrap_err();
    assert_eq!(e, HandshakeError::NotOnline { cores: ch.owned(), timeout_ns: 10_000 });
    for c in [9, 10, 11] {
        t.endpoint(c).announce();
    }
    assert_eq!(ch.wait_online(&platform, 0), Ok(()));
    // SAFETY: the test owns the handshake table; no core thread runs.
    unsafe { (*t.tables.handshake_of(10)).lane = 0 };
    let e = ch.wait_online(&platform, 0).unwrap_err();
    assert_eq!(e, HandshakeError::Mismatch { core: 10, field: "lane", expected: 1, found: 0 });
}

#[test]
fn tokens_end_before_the_reserved_values_with_a_specific_error() {
    let t = TestTables::new();
    let mut ch = t.channels(&[0]);
    ch.skip_tokens_for_test(0, super::signal::LAST_TOKEN);
    assert!(!ch.can_prepare(0));
    assert_eq!(ch.prepare(0, &work(RECORD, 1, &[])), Err(ChannelError::TokensExhausted { core: 0 }));
}

#[test]
fn a_core_told_to_stop_while_its_kernel_ran_ends_nothing_and_goes_offline() {
    // A core abandoned by a timed-out launch: its kernel returns after the stop flag rose, so it
    // must not write FIN into tables that a later launch may already have reset.
    let t = TestTables::new();
    let mut ch = t.channels(&[0]);
    let mut core = t.endpoint(0);
    core.announce();
    let _ = runs();
    ch.prepare(0, &work(RECORD, 7, &[3])).unwrap();
    ch.publish();
    assert_eq!(core.step_or_stop(&Table, &|| true), Step::Stopped { token: 1 });
    assert_eq!(runs().len(), 1, "the kernel itself ran");
    let p = ch.poll(0).unwrap();
    assert!(p.completions().is_empty(), "no FIN or FAULT was written");
    assert_eq!(p.running, Some(1), "the register still shows the ACK of token 1");
    // SAFETY: the handshake table lives as long as `t`; the core is not running.
    let online = unsafe { (*(t.tables.handshakes.get() as *const pto_abi::launch::HandshakeRecord)).online };
    assert_eq!(online, 0, "the core went offline");
}
