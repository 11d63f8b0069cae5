//! The AICore protocol across boots: cores started before the boot wait for it, every boot resets
//! the registers so tokens restart at 1 (a previous run's EXIT is never seen), and a failed boot
//! sends the cores home without touching their registers.

mod aicore_support;
mod image_support;

use std::time::Duration;

use pto_abi::image::ImageHeader;
use pto_abi::launch::LaunchDescriptor;
use pto_abi::DevAddr;
use pto_device::aicore::{CoreChannels, CoreExit, CoreTables, Dispatch, TaskOutcome};
use pto_device::boot::{boot, dev_ptr};
use pto_device::platform::HostPlatform;
use pto_host::sim::{sim_pause, SimCoreConfig, SimCores};
use pto_host::{BoundImage, DeviceBackend, DeviceRunner, LaunchParams};

use aicore_support::{kernels, HANG_GUARD, WRITE};
use image_support::{runner, sim, sizing};

const CLUSTERS: u32 = 2;

fn params() -> LaunchParams {
    LaunchParams { aicpu_thread_count: 2, cluster_count: CLUSTERS, ..LaunchParams::default() }
}

/// One run: write the launch block, start gated workers, boot, dispatch one task per core that
/// writes `stamp + core` into `out[core]`, shut down, join.
fn run_once(
    r: &mut DeviceRunner,
    sim: &std::sync::Arc<pto_host::sim::SimBackend>,
    bound: &BoundImage,
    out: DevAddr,
    stamp: u64,
) {
    let block = r.prepare_launch(bound, &params()).unwrap();
    let tables = CoreTables::from_arena(bound.regions.arena.base, &bound.layout.offsets);
    let cfg = SimCoreConfig { clusters: CLUSTERS, tables, boot_report: Some(block.boot_report()) };
    // SAFETY: the tables and report lie in the runner's live regions; boot resets the tables
    // before it reports READY, which the workers wait for.
    let mut cores = unsafe { SimCores::start(sim, &cfg, kernels()).unwrap() };
    // SAFETY: the launch descriptor was just uploaded into the sim pool.
    let booted = unsafe { boot(dev_ptr::<LaunchDescriptor>(block.descriptor())) }.unwrap();
    // SAFETY: the header is wired by this boot.
    let wired = CoreTables::from_header(unsafe { &*booted.header() });
    assert_eq!(wired, tables, "boot wired the tables the host computed");

    // SAFETY: tables of this boot; one scheduler owns every core.
    let mut ch = unsafe { CoreChannels::for_scheduler(tables, 0, 1, CLUSTERS).unwrap() };
    let platform = HostPlatform;
    ch.wait_online(&platform, HANG_GUARD.as_nanos() as u64).unwrap();
    for core in ch.owned() {
        let args = [out.get(), core as u64, stamp + core as u64];
        let token = ch
            .prepare(core, &Dispatch { kernel: WRITE, task_id: core as u64, block_idx: 0, block_num: 1, args: &args })
            .unwrap();
        assert_eq!(token, 1, "tokens restart at 1 after every boot");
    }
    ch.publish();
    let mut done = 0;
    let mut polls = 0;
    while done < ch.owned().len() {
        for core in ch.owned() {
            for c in ch.poll(core).unwrap().completions() {
                assert_eq!((c.token, c.outcome), (1, TaskOutcome::Finished));
                done += 1;
            }
        }
        sim_pause(polls);
        polls += 1;
    }
    ch.shutdown(&platform, HANG_GUARD.as_nanos() as u64).unwrap();
    let reports = cores.join(HANG_GUARD).unwrap();
    assert!(reports.iter().all(|r| r.exit == CoreExit::Exited && r.last_token == 1), "{reports:?}");
}

#[test]
fn cores_started_before_boot_serve_every_run_of_a_resident_image() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(16)).unwrap();
    let n = CLUSTERS as u64 * 3;
    let out = r.alloc(n * 8).unwrap();
    for (run, stamp) in [1000u64, 2000, 3000].into_iter().enumerate() {
        let bound = if run == 0 { bound } else { r.bind(&sizing(16)).unwrap() };
        assert_eq!(bound.cache_hit, run > 0);
        run_once(&mut r, &sim, &bound, out, stamp);
        let mut bytes = vec![0u8; (n * 8) as usize];
        sim.copy_from_device(out, &mut bytes).unwrap();
        let words: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words, (0..n).map(|c| stamp + c).collect::<Vec<_>>(), "run {run}");
    }
}

#[test]
fn a_failed_boot_sends_waiting_cores_home_without_touching_their_registers() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(16)).unwrap();
    let block = r.prepare_launch(&bound, &params()).unwrap();
    let tables = CoreTables::from_arena(bound.regions.arena.base, &bound.layout.offsets);
    let cfg = SimCoreConfig { clusters: CLUSTERS, tables, boot_report: Some(block.boot_report()) };
    // SAFETY: as in `run_once`.
    let mut cores = unsafe { SimCores::start(&sim, &cfg, kernels()).unwrap() };
    // Corrupt the image magic: boot fails and reports it.
    let magic = bound.regions.arena.base.get() + std::mem::offset_of!(ImageHeader, magic) as u64;
    sim.copy_to_device(DevAddr(magic), &0xdead_beefu64.to_le_bytes()).unwrap();
    // SAFETY: the launch descriptor was just uploaded into the sim pool.
    assert!(unsafe { boot(dev_ptr::<LaunchDescriptor>(block.descriptor())) }.is_err());
    let reports = cores.join(Duration::from_secs(10)).unwrap();
    assert_eq!(reports.len(), 6);
    assert!(reports.iter().all(|r| r.exit == CoreExit::BootFailed && r.last_token == 0), "{reports:?}");
    // No core announced itself.
    // SAFETY: the tables lie in the runner's arena.
    let mut ch = unsafe { CoreChannels::for_scheduler(tables, 0, 1, CLUSTERS).unwrap() };
    assert!(ch.wait_online(&HostPlatform, 1_000_000).is_err());
    assert!(ch.poll(0).unwrap().is_empty());
}
