//! `pto info` (ABI version, fingerprint, capacities, backends), `pto error CODE` (every runtime
//! and boot code with its name, meaning and what to change) and the long `--version` text.

use std::io::Write;

use clap::Args;
use pto_abi::consts::{MAX_AICPU_THREADS, MAX_CLUSTERS, MAX_CORES, MAX_FUNC_IDS, MAX_SCOPE_DEPTH, RING_COUNT};
use pto_abi::consts::{MAX_SCALAR_ARGS, MAX_TENSOR_ARGS};
use pto_abi::error::{BootErrorCode, DeviceErrorCode, RuntimeErrorCode};
use pto_abi::{ABI_FINGERPRINT, ABI_VERSION};
use serde_json::json;

use super::device::BackendKind;
use super::{json as jsonout, CliError};

/// Every backend `--backend` takes, and whether it can open on this host now (`Err`: why not, or
/// what it needs).
pub fn availability() -> Vec<(&'static str, Result<(), String>)> {
    use clap::ValueEnum;
    BackendKind::value_variants()
        .iter()
        .map(|k| match k {
            BackendKind::Sim => ("sim", crate::backend::sim::SimBackend::new().map(|_| ()).map_err(|e| e.to_string())),
            BackendKind::Emu => {
                let qemu = std::env::var("PTO_QEMU").unwrap_or_else(|_| "qemu-system-aarch64".into());
                let found =
                    std::process::Command::new(&qemu).arg("--version").output().is_ok_and(|o| o.status.success());
                let r = if found { Ok(()) } else { Err(format!("{qemu} is not installed (Debian: qemu-system-arm)")) };
                ("emu", r)
            }
            // Loading the library only: no device is set and nothing is allocated.
            BackendKind::Onboard => (
                "onboard",
                crate::backend::onboard::LibrarySearch::from_env().open().map(|_| ()).map_err(|e| e.to_string()),
            ),
        })
        .collect()
}

/// `pto --version`: the crate version, the ABI version and the ABI fingerprint.
pub fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!("{} (ABI v{ABI_VERSION}, fingerprint {ABI_FINGERPRINT:#018x})", env!("CARGO_PKG_VERSION"))
    })
}

/// Flags of `pto info`.
#[derive(Args, Debug, Clone, Default)]
pub struct InfoArgs {
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pto info`.
pub fn info(args: &InfoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let backends = availability();
    let caps = [
        ("rings", RING_COUNT),
        ("aicpu_threads", MAX_AICPU_THREADS),
        ("clusters", MAX_CLUSTERS),
        ("aicore_cores", MAX_CORES),
        ("func_ids", MAX_FUNC_IDS),
        ("scope_depth", MAX_SCOPE_DEPTH),
        ("tensor_args", MAX_TENSOR_ARGS),
        ("scalar_args", MAX_SCALAR_ARGS),
    ];
    if args.json {
        let b: Vec<_> = backends
            .iter()
            .map(|(k, r)| json!({"name": k, "available": r.is_ok(), "why_not": r.as_ref().err()}))
            .collect();
        let c: serde_json::Map<_, _> = caps.iter().map(|(n, v)| (n.to_string(), json!(v))).collect();
        return jsonout::write(
            out,
            "info",
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "abi_version": ABI_VERSION,
                "abi_fingerprint": format!("{ABI_FINGERPRINT:#018x}"),
                "capacities": c,
                "backends": b,
            }),
        );
    }
    writeln!(out, "pto {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "ABI version      {ABI_VERSION}")?;
    writeln!(out, "ABI fingerprint  {ABI_FINGERPRINT:#018x}")?;
    writeln!(out, "capacities       {}", caps.iter().map(|(n, v)| format!("{n} {v}")).collect::<Vec<_>>().join(", "))?;
    for (k, r) in &backends {
        match r {
            Ok(()) => writeln!(out, "backend {k:<8} available")?,
            Err(why) => writeln!(out, "backend {k:<8} not available: {why}")?,
        }
    }
    Ok(())
}

/// What to change for a code, in general terms (a failed run's message names the ring and the
/// amounts).
pub fn hint(code: DeviceErrorCode) -> &'static str {
    use BootErrorCode as B;
    use RuntimeErrorCode as R;
    match code {
        DeviceErrorCode::Runtime(c) => match c {
            R::ScopeDeadlock => "a scope submitted more tasks than its ring's task window holds; enlarge --window for that ring or end scopes sooner",
            R::HeapRingDeadlock => "the ring's output heap cannot hold the outputs its open scope pins; enlarge --heap for that ring",
            R::FlowControlDeadlock => "the ring's task window stayed full for the whole orchestrator budget; enlarge --window or raise --orch-timeout",
            R::DepPoolOverflow => "the ring's dep-list pool cannot hold the edges needed; enlarge --dep-pool for that ring",
            R::InvalidArgs => "the orchestration passed an argument the runtime refuses; the failed run's message names the argument and the reason",
            R::RequireSyncStartInvalid => "a task asked for a synchronised start it cannot get; check the task's lane mask and core counts",
            R::TensorWaitTimeout => "a tensor's producer never finished within the budget; check the producing task or raise --orch-timeout",
            R::ExplicitOrchFatal => "the orchestration stopped itself (or panicked); see its detail word",
            R::ScopeTasksOverflow => "open scopes hold more tasks than the scope task list tracks; end scopes sooner or enlarge --window",
            R::TensormapOverflow => "the tensor map is full (it holds 2 entries per task-window slot); enlarge --window or end scopes sooner",
            R::SchedulerTimeout => "no progress within the scheduler budget; the stall class says why; raise --sched-timeout if the work is just slow",
            R::SlotLockTimeout => "a task slot's lock stayed held for the whole scheduler budget (a stuck device thread or overwritten device memory); the failed run's message names the task; reboot the runtime and report it",
        },
        DeviceErrorCode::Boot(c) => match c {
            B::BadLaunchDescriptor => "the host and the firmware disagree on the launch block; rebuild both from the same source",
            B::BadMagic => "the bytes are not an arena image; check which file was loaded (`pto image inspect FILE`)",
            B::UnsupportedVersion | B::FingerprintMismatch | B::HeaderSizeMismatch => {
                "the image and the firmware were built from different ABI sources; rebuild the image (`pto image build`) with this build"
            }
            B::ImageTruncated => "the image is cut short; copy or build it again",
            B::ImageLargerThanRegion => "the arena region is smaller than the image; allocate the region from the image's layout",
            B::MisalignedBase => "device regions must start on 1024-byte boundaries; allocate them through the runner",
            B::NullBase => "a device region was not allocated; set up the static arena before booting",
            B::LayoutMismatch => "the stored layout differs from the one its sizing gives; the image is corrupt or from another layout engine: rebuild it",
            B::InvalidSizing => "the stored sizing breaks a sizing rule; rebuild the image with a legal sizing (`pto layout` shows the rules' results)",
            B::SmRegionTooSmall => "the SM region is smaller than the layout needs; allocate it from `pto layout`'s SM size",
            B::HeapRegionTooSmall => "the GM heap region is smaller than the layout needs; allocate it from `pto layout`'s heap size",
            B::BadRuntimeHeader => "the runtime header inside the image is corrupt; rebuild the image",
            B::PointerAuditFailed => "a baked pointer lands outside its region: the image was built for other bases or is corrupt; rebuild it",
            B::BadLaunchParameters => "the launch asks for more AICPU threads or clusters than the ABI supports (see `pto info`)",
            B::BadTraceRegion => "the trace region the host staged does not match the launch's trace level and size, or its header is corrupt; stage it through the runner (`--trace-level`)",
            B::ImageChecksumMismatch => "a byte of the image changed after it was built (a corrupted file or copy); rebuild it with `pto image build`, or let the runner upload it again",
        },
    }
}

/// Every code the device can report, runtime codes first.
pub fn all_codes() -> Vec<DeviceErrorCode> {
    RuntimeErrorCode::ALL
        .iter()
        .map(|&c| DeviceErrorCode::Runtime(c))
        .chain(BootErrorCode::ALL.iter().map(|&c| DeviceErrorCode::Boot(c)))
        .collect()
}

/// Finds a code by number (`1003`), negated run status (`-1003`) or name (`BOOT_BAD_MAGIC`,
/// case-insensitive, `BOOT_` optional).
pub fn find_code(text: &str) -> Result<DeviceErrorCode, String> {
    let t = text.trim();
    let number = t.strip_prefix('-').unwrap_or(t);
    if let Ok(n) = number.parse::<u32>() {
        return DeviceErrorCode::from_raw(n)
            .map_err(|v| format!("{v} is not a runtime or boot code; `pto error --list` lists them"));
    }
    let upper = t.to_ascii_uppercase();
    all_codes()
        .into_iter()
        .find(|c| c.name() == upper || c.name() == format!("BOOT_{upper}"))
        .ok_or_else(|| format!("`{t}` is not a code name or number; `pto error --list` lists them"))
}

/// Flags of `pto error`.
#[derive(Args, Debug, Clone, Default)]
pub struct ErrorArgs {
    /// A code: its number (`1003`), a run status (`-1003`) or its name (`BOOT_FINGERPRINT_MISMATCH`).
    #[arg(value_name = "CODE", allow_hyphen_values = true, required_unless_present = "list")]
    pub code: Option<String>,
    /// List every runtime and boot code.
    #[arg(long)]
    pub list: bool,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

fn code_json(c: DeviceErrorCode) -> serde_json::Value {
    let class = match c {
        DeviceErrorCode::Runtime(_) => "runtime",
        DeviceErrorCode::Boot(_) => "boot",
    };
    json!({"code": c.raw(), "name": c.name(), "class": class, "meaning": c.description(), "hint": hint(c)})
}

/// Runs `pto error`.
pub fn error(args: &ErrorArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let codes = match &args.code {
        Some(t) if !args.list => vec![find_code(t).map_err(CliError::bad_input)?],
        _ => all_codes(),
    };
    if args.json {
        let list: Vec<_> = codes.iter().map(|&c| code_json(c)).collect();
        return jsonout::write(out, "error_codes", json!({"codes": list}));
    }
    for c in codes {
        writeln!(out, "{} {}: {}", c.raw(), c.name(), c.description())?;
        writeln!(out, "    {}", hint(c))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_hint_and_is_found_by_number_status_and_name() {
        for c in all_codes() {
            assert!(!hint(c).is_empty(), "{}", c.name());
            assert_eq!(find_code(&c.raw().to_string()), Ok(c));
            assert_eq!(find_code(&format!("-{}", c.raw())), Ok(c));
            assert_eq!(find_code(&c.name().to_ascii_lowercase()), Ok(c));
        }
        assert_eq!(find_code("bad_magic"), Ok(DeviceErrorCode::Boot(BootErrorCode::BadMagic)));
        assert!(find_code("6").unwrap_err().contains("not a runtime or boot code"));
        let mut out = Vec::new();
        error(&ErrorArgs { code: Some("100".into()), ..Default::default() }, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("100 SCHEDULER_TIMEOUT: ") && text.contains("--sched-timeout"), "{text}");
        let e = error(&ErrorArgs { code: Some("nope".into()), ..Default::default() }, &mut Vec::new()).unwrap_err();
        assert_eq!(e.exit_code, 2);
    }

    #[test]
    fn info_names_the_fingerprint_and_the_sim_backend() {
        let mut out = Vec::new();
        info(&InfoArgs { json: true }, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["abi_fingerprint"], format!("{ABI_FINGERPRINT:#018x}"));
        assert_eq!(v["backends"][0]["name"], "sim");
        assert!(long_version().contains(&format!("{ABI_FINGERPRINT:#018x}")));
    }
}
