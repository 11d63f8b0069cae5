//! `pto firmware inspect ELF [--json]`: what a firmware ELF carries and whether this host accepts
//! it: ABI fingerprint and version beside this host's, entry point, section sizes, the control
//! block, log ring and device heap its `.pto_abi` record names, and the orchestrations and kernels
//! compiled into it. A file this host refuses is still described, then the command exits 2.
//!
//! An ELF shared object is read as the onboard AICPU program (`libpto_aicpu.so`): its two entries,
//! its exports and imports, its `.pto_abi` record against this host, and the code compiled in.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::CliError;
use crate::backend::emu::Firmware;
use crate::backend::onboard::aicpu_so::{is_shared_object, AicpuSo};

/// Flags of `pto firmware`.
#[derive(Args, Debug, Clone)]
pub struct FirmwareArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: FirmwareCommand,
}

/// `pto firmware` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum FirmwareCommand {
    /// Describe a firmware ELF and say whether this host accepts it.
    Inspect(InspectArgs),
}

/// Flags of `pto firmware inspect`.
#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// The firmware ELF or the onboard AICPU shared object (default: $PTO_FIRMWARE, else the
    /// workspace's release build of the firmware).
    #[arg(value_name = "ELF")]
    pub file: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pto firmware …`, writing to `out`.
pub fn run(args: &FirmwareArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.command {
        FirmwareCommand::Inspect(i) => inspect(i, out),
    }
}

fn inspect(args: &InspectArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = args.file.clone().unwrap_or_else(Firmware::default_path);
    if std::fs::read(&path).is_ok_and(|b| is_shared_object(&b)) {
        let so = AicpuSo::read(&path).map_err(|e| CliError::bad_input(e.to_string()))?;
        let report = so.report();
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json()).expect("JSON of plain values"))?;
        } else {
            writeln!(out, "{report}")?;
        }
        return match report.refusal {
            None => Ok(()),
            Some(why) => {
                Err(CliError::bad_input(format!("AICPU shared object `{}` is refused: {why}", path.display())))
            }
        };
    }
    let fw = Firmware::read(&path).map_err(|e| CliError::bad_input(e.to_string()))?;
    let report = fw.report();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json()).expect("JSON of plain values"))?;
    } else {
        writeln!(out, "{report}")?;
    }
    match report.refusal {
        None => Ok(()),
        Some(why) => Err(CliError::bad_input(format!("firmware `{}` is refused: {why}", path.display()))),
    }
}
