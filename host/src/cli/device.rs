//! `--backend sim|emu|onboard`, `--firmware ELF`, `--device-log`: which device a `pto` command runs on.
//!
//! `sim` is the simulated device (the example's names defined in its name tables). `emu` starts
//! one emulated device for the command: qemu with the firmware ELF (checked against this host's
//! ABI first), guest RAM sized for the run's sizing (at least 256 MiB), and one vCPU for the
//! control core, one per AICPU thread and one serving the AICore cores. After every run the
//! device's warnings and errors are printed; `--device-log` prints every decoded line with its
//! timestamp and file:line. `onboard` loads the vendor runtime (CANN `libruntime.so`) at run time.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use pto_abi::emu::EMU_GUEST_RAM_BASE;
use pto_abi::layout::{heap_layout, reserve_layout, sm_layout};
use pto_abi::sizing::ArenaSizingKey;

use super::CliError;
use crate::backend::emu::{EmuBackend, EmuConfig, Firmware, DEFAULT_RAM_BYTES};
use crate::backend::sim::SimBackend;
use crate::backend::DeviceBackend;
use crate::examples::define_vector_symbols;
use crate::runner::RunMode;

/// Which device a command runs on (`--backend` of `run` and `bench`: one parser, one set of
/// names; the hidden `pto worker` takes the name as text, so that even an unknown one reaches its
/// parent as a start-up failure through the mailbox).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The simulated device (threads of this process).
    #[default]
    Sim,
    /// The emulated aarch64 device: qemu running the real firmware build.
    Emu,
    /// The chip behind the CANN runtime (`libruntime.so`, looked for at run time).
    Onboard,
}

impl BackendKind {
    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Sim => "sim",
            BackendKind::Emu => "emu",
            BackendKind::Onboard => "onboard",
        }
    }
}

/// Refuses every backend but the simulated one for `what` (a command that only the simulated
/// device can serve), as bad input naming the backend asked for and why.
pub fn sim_only(kind: BackendKind, what: &str, why: &str) -> Result<(), CliError> {
    match kind {
        BackendKind::Sim => Ok(()),
        other => Err(CliError::bad_input(format!(
            "{what} runs on the simulated device only, not --backend {}: {why}",
            other.name()
        ))),
    }
}

/// Device flags.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// The device to run on.
    #[arg(long, value_enum, default_value_t = BackendKind::Sim)]
    pub backend: BackendKind,
    /// Firmware ELF of the emulated device (default: $PTO_FIRMWARE, else the workspace's
    /// `cargo fw-build` output).
    #[arg(long, value_name = "ELF")]
    pub firmware: Option<PathBuf>,
    /// Print every decoded line of the emulated device's log (timestamp, level, message,
    /// file:line), not only its warnings and errors.
    #[arg(long)]
    pub device_log: bool,
}

/// The device a command opened.
pub struct CliDevice {
    backend: Arc<dyn DeviceBackend>,
    emu: Option<Arc<EmuBackend>>,
    device_log: bool,
}

/// Guest RAM for `sizing`: the firmware's own 16 MiB, the three regions, 64 MiB for tensors and
/// callables, rounded up to 64 MiB; at least [`DEFAULT_RAM_BYTES`].
pub fn emu_ram_for(sizing: &ArenaSizingKey, firmware: &Firmware) -> Result<u64, String> {
    let arena = reserve_layout(sizing).map_err(|e| e.to_string())?.offsets.arena_size;
    let sm = sm_layout(sizing).map_err(|e| e.to_string())?.total_size;
    let heap = heap_layout(sizing).map_err(|e| e.to_string())?.total_size;
    let own = firmware.record().heap_base.get().saturating_sub(EMU_GUEST_RAM_BASE);
    let need = [arena, sm, heap, own, 64 << 20].iter().try_fold(0u64, |a, &b| a.checked_add(b));
    let need = need.and_then(|n| n.checked_next_multiple_of(64 << 20)).unwrap_or(u64::MAX).max(DEFAULT_RAM_BYTES);
    let most = firmware.record().mapped_ram_end.saturating_sub(EMU_GUEST_RAM_BASE);
    if need > most {
        return Err(format!(
            "this sizing needs {} MiB of guest RAM (arena {arena}, SM {sm}, GM heap {heap} bytes) but the firmware maps \
             at most {} MiB: choose smaller --window / --heap",
            need >> 20,
            most >> 20
        ));
    }
    Ok(need)
}

impl CliDevice {
    /// Opens the device `args` name for runs of `sizing` in `mode`.
    pub fn open(args: &DeviceArgs, sizing: &ArenaSizingKey, mode: RunMode) -> Result<CliDevice, CliError> {
        match args.backend {
            BackendKind::Sim => {
                let sim = Arc::new(SimBackend::new().map_err(|e| CliError::failed(format!("simulated device: {e}")))?);
                // The simulated device resolves the blob's names in its name tables.
                define_vector_symbols(&mut sim.symbols()).map_err(|e| CliError::failed(e.to_string()))?;
                Ok(CliDevice { backend: sim, emu: None, device_log: args.device_log })
            }
            BackendKind::Emu => {
                let path = args.firmware.clone().unwrap_or_else(Firmware::default_path);
                let firmware = Firmware::read(&path).map_err(|e| CliError::bad_input(e.to_string()))?;
                let ram_bytes = emu_ram_for(sizing, &firmware).map_err(CliError::bad_input)?;
                let threads = match mode {
                    RunMode::Threaded { threads, .. } => threads,
                    RunMode::Deterministic { .. } => 1,
                };
                let config = EmuConfig { firmware: path, vcpus: threads + 2, ram_bytes, ..EmuConfig::default() };
                let emu = Arc::new(
                    EmuBackend::start_with(&config, firmware)
                        .map_err(|e| CliError::failed(format!("emulated device: {e}")))?,
                );
                Ok(CliDevice { backend: emu.clone(), emu: Some(emu), device_log: args.device_log })
            }
            // A vendor runtime that cannot be loaded is bad input (exit 2) naming every path tried.
            BackendKind::Onboard => match crate::backend::onboard::OnboardBackend::from_env(0) {
                Ok(b) => Ok(CliDevice { backend: Arc::new(b), emu: None, device_log: args.device_log }),
                Err(crate::backend::BackendError::Unsupported(m)) => Err(CliError::bad_input(m)),
                Err(e) => Err(CliError::failed(format!("onboard backend: {e}"))),
            },
        }
    }

    /// The backend.
    pub fn backend(&self) -> Arc<dyn DeviceBackend> {
        self.backend.clone()
    }

    /// Checks that an image built with ABI fingerprint `fingerprint` (file `name`) can boot on this
    /// device: the emulated device's firmware must carry the same fingerprint (the simulated and
    /// onboard devices run this build's device code, whose fingerprint the image was checked
    /// against when it was read).
    pub fn check_image_fingerprint(&self, name: &str, fingerprint: u64) -> Result<(), CliError> {
        let Some(e) = &self.emu else { return Ok(()) };
        let firmware = e.firmware().record().abi_fingerprint;
        if firmware != fingerprint {
            return Err(CliError::bad_input(format!(
                "{name}: the image was built with ABI fingerprint {fingerprint:#018x} but the emulated device's firmware \
                 ({}) has {firmware:#018x}; rebuild the image or the firmware from the same source",
                e.firmware().path().display()
            )));
        }
        Ok(())
    }

    /// One line about the emulated device (nothing for the simulated one).
    pub fn describe(&self) -> Option<String> {
        match &self.emu {
            None => None,
            Some(e) => {
                let i = e.info();
                Some(format!(
                    "device: emulated aarch64 (qemu pid {}, {} vCPUs: control core, {} AICPU, {} AICore; {} MiB guest \
                     RAM; firmware ready {:.1} ms after qemu started; {})",
                    i.qemu_pid,
                    i.vcpus,
                    i.aicpu_vcpus,
                    i.aicore_vcpus,
                    e.ram_bytes() >> 20,
                    i.start_to_ready.as_secs_f64() * 1e3,
                    e.firmware().path().display()
                ))
            }
        }
    }

    /// Prints the device log since the last call: warnings and errors (every line with
    /// `--device-log`), and how many lines the device dropped.
    pub fn print_log(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let Some(e) = &self.emu else { return Ok(()) };
        let log = e.take_device_log();
        for l in &log.lines {
            if self.device_log {
                writeln!(out, "  device: {l}")?;
            } else if l.is_warning_or_error() {
                writeln!(
                    out,
                    "  device: {}{}",
                    l.short(),
                    l.location.as_ref().map(|x| format!(" ({x})")).unwrap_or_default()
                )?;
            }
        }
        if log.dropped_frames > 0 {
            writeln!(out, "  device: {} log lines dropped by the device (its log ring was full)", log.dropped_frames)?;
        }
        if log.lost_lines > 0 {
            writeln!(out, "  device: {} log lines could not be decoded or kept", log.lost_lines)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    enum T {
        Run(crate::cli::run::RunArgs),
        Bench(crate::cli::bench::BenchArgs),
    }

    fn parse(args: &[&str]) -> Result<T, clap::Error> {
        let m = crate::cli::allow_negative_numbers(T::command()).try_get_matches_from(args)?;
        T::from_arg_matches(&m)
    }

    fn backend_error(args: &[&str]) -> String {
        let e = parse(args).err().expect("an unknown backend is refused");
        assert_eq!(e.exit_code(), 2);
        // The message past the subcommand's usage line is the same for every subcommand.
        e.to_string().lines().next().unwrap().to_string()
    }

    #[test]
    fn every_device_subcommand_parses_backend_alike() {
        let run = backend_error(&["t", "run", "--example", "vector", "--backend", "gpu"]);
        let bench = backend_error(&["t", "bench", "--backend", "gpu"]);
        assert!(run.contains("invalid value 'gpu' for '--backend <BACKEND>'"), "{run}");
        assert_eq!(run, bench);
        for kind in [BackendKind::Sim, BackendKind::Emu, BackendKind::Onboard] {
            let name = kind.name();
            let Ok(T::Run(r)) = parse(&["t", "run", "--example", "vector", "--backend", name]) else { panic!() };
            let Ok(T::Bench(b)) = parse(&["t", "bench", "--backend", name]) else { panic!() };
            assert_eq!((r.device.backend, b.backend), (kind, kind));
        }
    }

    #[test]
    fn sim_only_commands_name_the_backend_they_refuse() {
        assert!(sim_only(BackendKind::Sim, "x", "y").is_ok());
        let e = sim_only(BackendKind::Emu, "--chips", "why").unwrap_err();
        assert_eq!(e.exit_code, 2);
        assert_eq!(e.message, "--chips runs on the simulated device only, not --backend emu: why");
        let Ok(T::Run(r)) = parse(&["t", "run", "--example", "vector", "--chips", "2", "--backend", "onboard"]) else {
            panic!()
        };
        let e = crate::cli::run::run(&r, &mut Vec::new()).unwrap_err();
        assert!(e.message.contains("--chips runs on the simulated device only, not --backend onboard"), "{e}");
    }
}
