//! The onboard backend through the real FFI path, on the stand-in vendor runtime
//! (`tests/cann-standin`, a shared library exporting the CANN runtime functions on the simulated
//! device): the call sequence of a bind and N runs, error codes becoming errors with their names,
//! the runner's rollback, and libraries that cannot serve.
//!
//! The stand-in keeps one device and one call log per process, so the tests here take turns.

use std::ffi::CString;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use pto_host::examples::{vector_args, vector_example_callable, VECTOR_EXPECTED, VECTOR_LEN, VECTOR_RESULT_ARG};
use pto_host::onboard::{LibrarySearch, OnboardBackend, OnboardPrograms};
use pto_host::{
    ArenaSizingKey, BackendError, Budgets, CallableRunConfig, CallableRunError, DeviceBackend, DeviceRunner, RunError,
    RunMode, RunnerError,
};

const STANDIN: &str = env!("PTO_CANN_STANDIN");
const INCOMPLETE: &str = env!("PTO_CANN_INCOMPLETE");
const TOOL: &str = env!("PTO_TOOL");
const CID: u32 = 3;

/// The stand-in's test hooks.
struct Hooks {
    log: unsafe extern "C" fn(*mut u8, usize) -> usize,
    clear_log: unsafe extern "C" fn(),
    fail: unsafe extern "C" fn(*const std::ffi::c_char, u64, i32),
    clear_faults: unsafe extern "C" fn(),
    live: unsafe extern "C" fn() -> u64,
    _lib: libloading::Library,
}

fn hooks() -> &'static Hooks {
    static HOOKS: OnceLock<Hooks> = OnceLock::new();
    HOOKS.get_or_init(|| {
        // SAFETY: the stand-in runtime built for these tests; its initialisers only set up Rust
        // statics. The backend opens the same file, so both see one stand-in state.
        unsafe {
            let lib = libloading::Library::new(STANDIN).expect("the stand-in runtime loads");
            Hooks {
                log: *lib.get(b"pto_standin_log\0").unwrap(),
                clear_log: *lib.get(b"pto_standin_clear_log\0").unwrap(),
                fail: *lib.get(b"pto_standin_fail\0").unwrap(),
                clear_faults: *lib.get(b"pto_standin_clear_faults\0").unwrap(),
                live: *lib.get(b"pto_standin_live_allocations\0").unwrap(),
                _lib: lib,
            }
        }
    })
}

/// One test at a time owns the stand-in; its log starts empty and no fault is armed.
fn standin() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let h = hooks();
    // SAFETY: plain hook calls.
    unsafe {
        (h.clear_faults)();
        (h.clear_log)();
    }
    turn
}

/// The stand-in's call log, one vendor call per entry (its detail lines folded into the entry).
fn calls() -> Vec<String> {
    let h = hooks();
    // SAFETY: a null buffer of capacity 0 asks for the length; then a buffer of that length.
    let text = unsafe {
        let n = (h.log)(std::ptr::null_mut(), 0);
        let mut buf = vec![0u8; n];
        (h.log)(buf.as_mut_ptr(), n);
        String::from_utf8(buf).unwrap()
    };
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("  ") {
            Some(detail) => out.last_mut().expect("a detail follows its call").push_str(&format!(" | {detail}")),
            None => out.push(line.to_owned()),
        }
    }
    out
}

fn fail(func: &str, nth: u64, code: i32) {
    let f = CString::new(func).unwrap();
    // SAFETY: a NUL-terminated name.
    unsafe { (hooks().fail)(f.as_ptr(), nth, code) };
}

fn live_allocations() -> u64 {
    // SAFETY: plain hook call.
    unsafe { (hooks().live)() }
}

fn backend() -> Arc<OnboardBackend> {
    Arc::new(OnboardBackend::open_path(Path::new(STANDIN), 0, OnboardPrograms::sim()).expect("stand-in opens"))
}

fn config() -> CallableRunConfig {
    CallableRunConfig {
        sizing: ArenaSizingKey::uniform(64, 1 << 20, 256),
        mode: RunMode::Threaded { threads: 2, clusters: 1 },
        budgets: Budgets::DEFAULT,
    }
}

fn runner(b: &Arc<OnboardBackend>) -> DeviceRunner {
    let mut r = DeviceRunner::new(b.clone() as Arc<dyn DeviceBackend>);
    r.register_callable(CID, &vector_example_callable().unwrap()).unwrap();
    r
}

fn run_ok(r: &mut DeviceRunner) -> pto_host::RunReport {
    let report = r.run_callable(CID, &vector_args(), &config()).expect("the run succeeds");
    let f = report.output_f32(VECTOR_RESULT_ARG);
    assert_eq!(f.len(), VECTOR_LEN);
    assert!(f.iter().all(|&x| x == VECTOR_EXPECTED), "f = {:?}…", &f[..4]);
    assert_eq!(report.tasks_completed, 5);
    report
}

fn run_err(r: &mut DeviceRunner) -> CallableRunError {
    r.run_callable(CID, &vector_args(), &config()).unwrap_err()
}

fn named<'a>(calls: &'a [String], func: &str) -> Vec<(usize, &'a String)> {
    let prefix = format!("{func} ");
    calls.iter().enumerate().filter(|(_, c)| c.starts_with(&prefix)).collect()
}

/// The value of `key=` in a logged call.
fn field(call: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    call.split_whitespace().find_map(|w| w.strip_prefix(&prefix)).unwrap_or_else(|| panic!("{key} in {call}")).into()
}

fn num(call: &str, key: &str) -> u64 {
    field(call, key).parse().unwrap()
}

#[test]
fn a_bind_and_three_runs_make_the_vendor_calls_in_order_and_finalize_frees_everything() {
    let _turn = standin();
    let b = backend();
    let mut r = runner(&b);
    let reports: Vec<_> = (0..3).map(|_| run_ok(&mut r)).collect();
    assert!(!reports[0].bind_cache_hit && reports[1].bind_cache_hit && reports[2].bind_cache_hit);
    r.finalize().unwrap();
    drop(r);
    drop(b);
    let log = calls();

    // One registration per binary for three runs: the AICore binary once, the AICPU program
    // copied to the device once.
    let regs = named(&log, "rtRegisterAllKernel");
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert_eq!(field(regs[0].1, "magic"), "0x43554245", "RT_DEV_BINARY_MAGIC_ELF");

    // Each run launches AICore (batch mode, one argument word) before AICPU (the exec entry).
    let aicore = named(&log, "rtKernelLaunchWithHandleV2");
    let aicpu = named(&log, "rtAicpuKernelLaunchExWithArgs");
    assert_eq!((aicore.len(), aicpu.len()), (3, 3));
    for ((ic, c), (ip, p)) in aicore.iter().zip(&aicpu) {
        assert!(ic < ip, "AICore launched before AICPU: {c} / {p}");
        assert_eq!((num(c, "schemMode"), num(c, "argsSize"), num(c, "blocks")), (1, 8, 3));
        assert_eq!(
            (num(p, "type"), field(p, "op"), field(p, "kernel")),
            (5, "AST_DYN_AICPU".into(), "pto_aicpu_exec".into())
        );
        assert_eq!((num(p, "blocks"), num(p, "argsSize")), (2, 128));
        assert!(!c.contains("->") && !p.contains("->"), "launches succeed: {c} / {p}");
    }
    // The AICore kernel is collected with a bounded wait after every AICPU launch.
    let waits = named(&log, "rtStreamSynchronizeWithTimeout");
    assert_eq!(waits.len(), 3, "{waits:?}");
    for ((iw, w), (ip, _)) in waits.iter().zip(&aicpu) {
        assert!(iw > ip && num(w, "timeout_ms") > 0, "{w}");
    }

    // Copies: host→device for the inputs (a and b, 64 KiB each per run), device→host for f;
    // every destMax is at least the count, and H2D destMax never exceeds the allocation.
    let copies = named(&log, "rtMemcpy");
    let (mut h2d_inputs, mut d2h_outputs) = (0, 0);
    for (_, c) in &copies {
        let (kind, cnt, max) = (field(c, "kind"), num(c, "cnt"), num(c, "destMax"));
        assert!(kind == "H2D" || kind == "D2H", "{c}");
        assert!(max >= cnt && !c.contains("->"), "{c}");
        let bytes = (VECTOR_LEN * 4) as u64;
        if cnt == bytes {
            match kind.as_str() {
                "H2D" => h2d_inputs += 1,
                _ => d2h_outputs += 1,
            }
            if kind == "D2H" {
                assert_eq!(max, cnt, "a host destination's destMax is its length");
            }
        }
    }
    assert_eq!((h2d_inputs, d2h_outputs), (6, 3));
    let memsets = named(&log, "rtMemset");
    assert!(memsets.iter().all(|(_, m)| num(m, "destMax") >= num(m, "cnt")), "{memsets:?}");

    // Every allocation is freed (the runner's at finalize, the AICPU program's copy when the
    // backend drops), then the device is reset.
    let mallocs = named(&log, "rtMalloc");
    let frees = named(&log, "rtFree");
    assert!(mallocs.iter().all(|(_, m)| num(m, "type") == 2), "HBM only");
    assert_eq!(mallocs.len(), frees.len(), "{} mallocs, {} frees", mallocs.len(), frees.len());
    assert_eq!(live_allocations(), 0);
    let creates = named(&log, "rtStreamCreate").len();
    assert!(creates >= 2 && named(&log, "rtStreamDestroy").len() == creates);
    let last = log.last().unwrap();
    assert!(last.starts_with("rtDeviceReset") && last.contains("0 allocation(s) reclaimed"), "{last}");
}

#[test]
fn an_allocation_failure_is_the_vendor_code_with_its_name_and_leaves_nothing_committed_or_cached() {
    let _turn = standin();
    let b = backend();
    let mut r = runner(&b);
    let committed = r.allocator().committed_bytes();
    // The run's bind allocates heap, SM and arena: the second fails.
    fail("rtMalloc", 2, 207001);
    let e = run_err(&mut r);
    let CallableRunError::Run(RunError::Runner(RunnerError::StaticArena(e))) = e else { panic!("{e}") };
    assert_eq!(e.region, "sm");
    let BackendError::Vendor { code, name, ref detail, .. } = e.source else { panic!("{}", e.source) };
    assert_eq!((code, name), (207001, Some("ACL_ERROR_RT_MEMORY_ALLOCATION")));
    assert!(detail.contains("rtMalloc") && detail.contains("memory allocation failure"), "{detail}");
    assert_eq!(r.allocator().committed_bytes(), committed, "the heap region was released again");
    assert_eq!(r.regions(), Default::default());
    assert!(r.cache().is_empty(), "nothing cached");
    assert!(!r.faulted(), "a refused allocation is no device fault");

    // The runner recovers: the next run binds cold and gives the right result.
    assert!(!run_ok(&mut r).bind_cache_hit);
    drop(r);
}

#[test]
fn a_refused_image_upload_leaves_no_resident_image_and_the_next_run_uploads_again() {
    let _turn = standin();
    let b = backend();
    let mut r = runner(&b);
    // The first copy of a cold run is the image upload.
    fail("rtMemcpy", 1, 107000);
    let e = run_err(&mut r);
    let text = e.to_string();
    assert!(text.contains("107000") && text.contains("ACL_ERROR_RT_PARAM_INVALID"), "{text}");
    assert!(
        matches!(
            e,
            CallableRunError::Run(RunError::Runner(RunnerError::Backend(BackendError::Vendor { code: 107000, .. })))
        ),
        "{e:?}"
    );
    assert!(r.cache().is_empty(), "nothing resident after a failed upload");
    let stats = r.bind_stats();
    assert_eq!(stats.uploads, 0);
    let again = run_ok(&mut r);
    assert!(!again.bind_cache_hit);
    assert_eq!(r.bind_stats().uploads, 1);
}

#[test]
fn a_device_error_at_launch_is_a_device_fault_and_finalize_abandons_instead_of_freeing() {
    let _turn = standin();
    let b = backend();
    let mut r = runner(&b);
    fail("rtKernelLaunchWithHandleV2", 1, 507899);
    let e = run_err(&mut r);
    let text = e.to_string();
    assert!(text.contains("507899") && text.contains("ACL_ERROR_RT_DRV_INTERNAL_ERROR"), "{text}");
    assert!(r.faulted(), "{e}");
    let frees_before = named(&calls(), "rtFree").len();
    r.finalize().unwrap();
    assert_eq!(named(&calls(), "rtFree").len(), frees_before, "abandoned, not freed");
    assert!(live_allocations() > 0);
    drop(r);
    drop(b);
    // The device reset reclaims what was abandoned.
    assert_eq!(live_allocations(), 0);
}

#[test]
fn a_bounded_wait_that_runs_out_aborts_the_aicore_stream_and_the_run_still_completes() {
    let _turn = standin();
    let b = backend();
    let mut r = runner(&b);
    fail("rtStreamSynchronizeWithTimeout", 1, 507046);
    run_ok(&mut r);
    let log = calls();
    let wait = named(&log, "rtStreamSynchronizeWithTimeout");
    let abort = named(&log, "rtStreamAbort");
    assert!(wait[0].1.contains("(injected)"), "{wait:?}");
    assert_eq!(abort.len(), 1, "{abort:?}");
    assert!(abort[0].0 > wait[0].0 && wait.len() == 2 && wait[1].0 > abort[0].0, "wait, abort, grace wait");
}

#[test]
fn a_library_missing_one_function_is_unsupported_and_names_it() {
    let e = OnboardBackend::open_path(Path::new(INCOMPLETE), 0, OnboardPrograms::sim()).err().expect("refused");
    let BackendError::Unsupported(m) = e else { panic!("{e}") };
    assert!(m.contains(INCOMPLETE) && m.contains("rtStreamAbort"), "{m}");

    // Through the search: every candidate is listed with its own reason.
    let search = LibrarySearch {
        explicit: Some(INCOMPLETE.into()),
        ascend_home: Some("/nonexistent/ascend".into()),
        toolkit_home: None,
    };
    let e = search.open().err().expect("no candidate serves");
    let BackendError::Unsupported(m) = e else { panic!("{e}") };
    for want in [
        format!("{INCOMPLETE} ($PTO_CANN_RUNTIME): a function the backend calls is missing"),
        "/nonexistent/ascend/lib64/libruntime.so ($ASCEND_HOME_PATH/lib64): no such file".into(),
        "/nonexistent/ascend/runtime/lib64/libruntime.so ($ASCEND_HOME_PATH/runtime/lib64): no such file".into(),
        "/usr/local/Ascend/ascend-toolkit/latest/lib64/libruntime.so (default toolkit)".into(),
        "libruntime.so (dynamic loader search path): cannot load it".into(),
    ] {
        assert!(m.contains(&want), "missing {want:?} in:\n{m}");
    }
}

#[test]
fn a_file_that_is_not_a_shared_object_is_unsupported() {
    let dir = std::env::temp_dir().join(format!("pto-onboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("libruntime.so");
    std::fs::write(&path, b"this is a text file, not an ELF shared object\n").unwrap();
    // A directory given as $PTO_CANN_RUNTIME means the library inside it.
    let e = OnboardBackend::open_path(&dir, 0, OnboardPrograms::sim()).err().expect("refused");
    std::fs::remove_dir_all(&dir).unwrap();
    let BackendError::Unsupported(m) = e else { panic!("{e}") };
    assert!(m.contains(&path.display().to_string()) && m.contains("cannot load it"), "{m}");
}

#[test]
fn pto_run_on_the_onboard_backend_gives_47_through_the_stand_in_and_exits_2_without_a_runtime() {
    let _turn = standin();
    let out = Command::new(TOOL)
        .args(["run", "--example", "vector", "--backend", "onboard", "--threads", "2", "--clusters", "1"])
        .env("PTO_CANN_RUNTIME", STANDIN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("check OK: all 16384 elements = 47").count(), 2, "{stdout}");

    let out = Command::new(TOOL)
        .args(["run", "--example", "vector", "--backend", "onboard"])
        .env("PTO_CANN_RUNTIME", "/nonexistent/libruntime.so")
        .env_remove("ASCEND_HOME_PATH")
        .env_remove("ASCEND_TOOLKIT_HOME")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/libruntime.so ($PTO_CANN_RUNTIME): no such file"), "{stderr}");
    assert!(stderr.contains("libruntime.so (dynamic loader search path)"), "{stderr}");
}
