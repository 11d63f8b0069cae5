//! An emulated device leaves nothing behind: no qemu process and no guest-RAM file after it is
//! dropped idle, dropped in the middle of a launch, or dropped while a panic unwinds; and qemu
//! failing to start, or a firmware that never becomes ready, is a clear error quoting qemu's
//! output, never a hang. These tests start their own qemu processes (that is what they test).

mod emu_support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pto_abi::sizing::ArenaSizingKey;
use pto_host::emu::{EmuBackend, EmuConfig, EmuStartError};
use pto_host::DeviceBackend;
use pto_host::{DeviceRunner, LaunchParams};

/// One test at a time: each counts the processes and files of the whole test process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Children of this process whose name starts with `prefix`, and guest-RAM files it created.
fn leftovers(prefix: &str) -> (usize, usize) {
    let me = std::process::id().to_string();
    let children = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let Some(close) = stat.rfind(')') else { return false };
            let comm = &stat[stat.find('(').map_or(0, |i| i + 1)..close];
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            comm.starts_with(prefix) && ppid == Some(me.as_str())
        })
        .count();
    let file_prefix = format!("pto-emu-{me}-");
    let files = std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&file_prefix)).count())
        .unwrap_or(0);
    (children, files)
}

fn start() -> Option<EmuBackend> {
    if let Some(what) = emu_support::missing() {
        emu_support::skip(&what);
        return None;
    }
    Some(EmuBackend::start(&EmuConfig::default()).expect("start the emulated device"))
}

#[test]
fn a_dropped_device_leaves_no_process_and_no_file() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = leftovers("qemu-system");
    let Some(emu) = start() else { return };
    let during = leftovers("qemu-system");
    assert_eq!(during.0, before.0 + 1, "one qemu runs");
    assert_eq!(during.1, before.1, "the guest-RAM file's name is gone once the firmware is ready");
    assert!(!emu.ram_path().exists());
    drop(emu);
    assert_eq!(leftovers("qemu-system"), before);
}

#[test]
fn a_device_dropped_mid_launch_leaves_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = leftovers("qemu-system");
    let Some(emu) = start() else { return };
    let emu = Arc::new(emu);
    {
        let mut runner = DeviceRunner::new(emu.clone() as Arc<dyn DeviceBackend>);
        let bound = runner.bind(&ArenaSizingKey::uniform(8, 64 << 10, 64)).unwrap();
        let params = LaunchParams { aicpu_thread_count: 2, cluster_count: 1, ..LaunchParams::default() };
        let block = runner.prepare_launch(&bound, &params).unwrap();
        // AICore cores wait for a boot that never comes: the launch runs until it is aborted.
        let aicore = emu.register_kernel_binary(b"pto_aicore_main").unwrap();
        let s = emu.stream_create().unwrap();
        emu.launch_kernel(aicore, s, 3, block.kernel_args()).unwrap();
        let e = emu.stream_synchronize_timeout(s, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(e, pto_host::BackendError::Timeout { .. }), "{e}");
    }
    assert_eq!(Arc::strong_count(&emu), 1);
    drop(emu);
    assert_eq!(leftovers("qemu-system"), before);
}

#[test]
fn a_panic_while_a_device_runs_leaves_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(what) = emu_support::missing() {
        emu_support::skip(&what);
        return;
    }
    let before = leftovers("qemu-system");
    let r = std::thread::spawn(|| {
        let _emu = EmuBackend::start(&EmuConfig::default()).unwrap();
        panic!("a test failing while the device runs");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(leftovers("qemu-system"), before);
}

/// A stand-in for qemu: a shell script named `name` with `body`.
fn fake_qemu(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pto-fake-qemu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn qemu_failing_to_start_is_an_error_quoting_its_stderr() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(firmware) = emu_support::firmware_path() else { return };
    let before = leftovers("qemu-fake");
    let qemu = fake_qemu("qemu-fake-fail", "echo \"qemu-fake: cannot open the memory backend ($#)\" >&2\nexit 3");
    let config = EmuConfig { firmware, qemu, ..EmuConfig::default() };
    let e = EmuBackend::start(&config).err().expect("the fake qemu exits");
    let EmuStartError::Exited { status, output, command } = &e else { panic!("{e}") };
    assert!(status.contains('3'), "{e}");
    assert!(output.contains("qemu-fake: cannot open the memory backend (13)"), "{e}");
    assert!(command.contains("memory-backend-file,id=mem,size=256M") && command.contains("-smp 6"), "{e}");
    assert_eq!(leftovers("qemu-fake"), before, "no guest-RAM file and no process left");

    let missing = EmuConfig { qemu: PathBuf::from("/nonexistent/qemu-system-aarch64"), ..config };
    let e = EmuBackend::start(&missing).err().expect("no such qemu");
    assert!(matches!(e, EmuStartError::QemuMissing(_)), "{e}");
    assert!(e.to_string().contains("apt-get install qemu-system-arm"), "{e}");
}

#[test]
fn a_firmware_that_never_becomes_ready_times_out_and_is_killed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(firmware) = emu_support::firmware_path() else { return };
    let before = leftovers("qemu-fake");
    let qemu = fake_qemu("qemu-fake-hang", "echo booting\nwhile :; do sleep 1; done");
    let config = EmuConfig { firmware, qemu, ready_timeout: Duration::from_millis(300), ..EmuConfig::default() };
    let e = EmuBackend::start(&config).err().expect("the fake qemu never reports ready");
    let EmuStartError::NotReady { waited, output, .. } = &e else { panic!("{e}") };
    assert_eq!(*waited, Duration::from_millis(300));
    assert!(output.contains("guest console: booting"), "{e}");
    assert_eq!(leftovers("qemu-fake"), before, "the stand-in was killed and reaped");
}
