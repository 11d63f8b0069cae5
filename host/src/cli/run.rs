//! `pto run`: registers a ChipCallable (a built-in example, or a blob file written by
//! `pto callable …`) on a runner, runs it by callable id on the chosen backend (`--backend sim|emu|onboard`), and reports the
//! task count, the bind time (cold on the first run, cached on the next), the run time and the time
//! per task. The vector example also checks its result.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};
use pto_abi::task::DType;
use pto_device::runtime::Budgets;
use serde_json::{json, Value};

use super::device::{CliDevice, DeviceArgs};
use super::input::{self, parse_duration_ns};
use super::sizing_args::SizingArgs;
use super::{json as jsonout, CliError};
use crate::callable::ChipCallable;
use crate::examples::{vector_args, vector_example_callable, VECTOR_EXPECTED, VECTOR_LEN, VECTOR_RESULT_ARG};
use crate::image::Image;
use crate::runner::{CallableRunConfig, CallableRunError, DeviceRunner, RunArg, RunError, RunMode};

pub mod chips;

/// The callable id `pto run` registers its callable under.
pub const EXAMPLE_CID: u32 = 0;

/// Largest blob or argument file `pto run` reads (64 MiB).
pub const MAX_RUN_FILE: u64 = 64 << 20;

/// Smallest and largest no-progress budget (1 ms ..= 1 h).
pub const BUDGET_RANGE_NS: (u64, u64) = (1_000_000, 3_600_000_000_000);

/// The examples `pto run` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Example {
    /// f = (a+b+1)·(a+b+2) + (a+b) over 16,384 f32, a = 2, b = 3: five tasks in two nested scopes.
    Vector,
}

/// Parses a no-progress budget: `500ms`, `2s`, or a bare number of milliseconds, in 1 ms ..= 1 h.
pub fn parse_budget(text: &str) -> Result<u64, String> {
    parse_duration_ns(text, 1_000_000, BUDGET_RANGE_NS.0, BUDGET_RANGE_NS.1)
}

/// Flags of `pto run`.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("source").required(true).args(["example", "callable"])))]
pub struct RunArgs {
    /// The built-in example to run.
    #[arg(long, value_enum)]
    pub example: Option<Example>,
    /// A ChipCallable blob file to run (`-` = stdin), e.g. one written by `pto callable example`.
    #[arg(long, value_name = "FILE", requires = "args_given")]
    pub callable: Option<PathBuf>,
    /// Arguments of `--callable`, one per flag in signature order: `in:f32:len=N:fill=V`,
    /// `in:f32:file=PATH`, `out:f32:len=N[:file=PATH]`, `inout:f32:file=PATH[:out=PATH]`,
    /// `scalar:N` (dtypes f32, i32, i8, u8).
    #[arg(long = "arg", value_name = "SPEC", group = "args_given", conflicts_with = "example")]
    pub arg: Vec<String>,
    /// A JSON file of `--callable` arguments: `{"args": [{"dir": "in", "dtype": "f32", "len": 4,
    /// "fill": 2}, {"dir": "scalar", "value": 4}, …]}` with the keys of `--arg`.
    #[arg(long, value_name = "FILE", group = "args_given", conflicts_with_all = ["example", "arg"])]
    pub args_file: Option<PathBuf>,
    /// Boot a saved image file (written by `pto image build`): it is validated as by `pto image
    /// inspect`, its bytes are uploaded unchanged as the arena image, the first boot verifies its
    /// checksum on the device, and its sizing is the run's (no sizing flags).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["window", "heap", "dep_pool", "chips"])]
    pub image: Option<PathBuf>,
    /// AICPU threads of the threaded mode (the last orchestrates, the others schedule): 2..=4.
    #[arg(long, value_parser = input::count::<u32>(2, pto_abi::consts::MAX_AICPU_THREADS as u64),
          conflicts_with = "deterministic")]
    pub threads: Option<u32>,
    /// AICore clusters of the simulated device (3 cores each): 1..=24 (default 2).
    #[arg(long, value_parser = input::count::<u32>(1, pto_abi::consts::MAX_CLUSTERS as u64),
          conflicts_with = "deterministic")]
    pub clusters: Option<u32>,
    /// Run the deterministic single-thread mode (virtual cores driven by the scheduler itself).
    #[arg(long)]
    pub deterministic: bool,
    /// Runs on the same runner: the first binds cold, the later ones reuse the resident image.
    #[arg(long, default_value_t = 2, value_parser = input::count::<u32>(1, 1_000_000))]
    pub runs: u32,
    /// Orchestrator no-progress budget: `500ms`, `2s`, or bare milliseconds; 1ms ..= 1h.
    #[arg(long, alias = "orch-timeout-ms", value_name = "DURATION", default_value = "500ms",
          value_parser = parse_budget)]
    pub orch_timeout: u64,
    /// Scheduler no-progress budget: `500ms`, `2s`, or bare milliseconds; 1ms ..= 1h.
    #[arg(long, alias = "sched-timeout-ms", value_name = "DURATION", default_value = "500ms",
          value_parser = parse_budget)]
    pub sched_timeout: u64,
    /// Print one JSON report instead of text.
    #[arg(long)]
    pub json: bool,
    /// Spread the runs over this many chip workers (one process each) and report runs per second
    /// for 1, 2, 4 … chips up to it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub chips: Option<u32>,
    /// The device.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Arena sizing.
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Trace output.
    #[command(flatten)]
    pub trace: super::trace::TraceOutArgs,
}

fn human(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 10_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// One argument of `--callable` with where its output goes.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgSpec {
    /// The run argument.
    pub arg: RunArg,
    /// File the read-back bytes are written to after the last run.
    pub output_file: Option<PathBuf>,
}

fn dtype_of(name: &str) -> Result<DType, String> {
    match name {
        "f32" => Ok(DType::F32),
        "i32" => Ok(DType::I32),
        "i8" => Ok(DType::I8),
        "u8" => Ok(DType::U8),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::Bf16),
        other => Err(format!("unknown dtype `{other}`; use f32, i32, i8, u8, f16 or bf16")),
    }
}

fn fill_bytes(dtype: DType, value: &str, len: u64) -> Result<Vec<u8>, String> {
    let one: Vec<u8> = match dtype {
        DType::F32 => value
            .parse::<f32>()
            .map(|v| v.to_le_bytes().to_vec())
            .map_err(|_| format!("fill `{value}` is not an f32"))?,
        DType::I32 => value
            .parse::<i32>()
            .map(|v| v.to_le_bytes().to_vec())
            .map_err(|_| format!("fill `{value}` is not an i32"))?,
        DType::I8 => {
            value.parse::<i8>().map(|v| v.to_le_bytes().to_vec()).map_err(|_| format!("fill `{value}` is not an i8"))?
        }
        DType::U8 => value.parse::<u8>().map(|v| vec![v]).map_err(|_| format!("fill `{value}` is not a u8"))?,
        DType::F16 | DType::Bf16 => {
            return Err("fill values exist for f32, i32, i8 and u8; give f16/bf16 tensors as file=PATH".into())
        }
    };
    let bytes = len
        .checked_mul(one.len() as u64)
        .filter(|b| *b <= MAX_RUN_FILE)
        .ok_or_else(|| format!("len {len} is more than {MAX_RUN_FILE} bytes"))?;
    Ok(one.repeat((bytes / one.len() as u64) as usize))
}

/// Builds one argument from its `key=value` fields (`dir`, `dtype`, `len`, `fill`, `file`, `out`,
/// `value`).
pub fn arg_from_fields(fields: &[(String, String)]) -> Result<ArgSpec, String> {
    let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    for (k, _) in fields {
        if !["dir", "dtype", "len", "fill", "file", "out", "value"].contains(&k.as_str()) {
            return Err(format!("unknown key `{k}`; keys are dir, dtype, len, fill, file, out, value"));
        }
    }
    let dir = get("dir").ok_or("missing dir (in, out, inout or scalar)")?;
    if dir == "scalar" {
        let v = get("value").ok_or("a scalar needs value=N")?;
        let n = input::parse_count(v, 0, u64::MAX)?;
        return Ok(ArgSpec { arg: RunArg::Scalar(n), output_file: None });
    }
    let dtype = dtype_of(get("dtype").ok_or("missing dtype")?)?;
    let len = get("len").map(|l| input::parse_count(l, 1, MAX_RUN_FILE)).transpose()?;
    let data = |must: bool| -> Result<Option<Vec<u8>>, String> {
        match (get("file"), get("fill")) {
            (Some(_), Some(_)) => Err("give file= or fill=, not both".into()),
            (Some(f), None) => {
                let bytes = input::read_small(Path::new(f), MAX_RUN_FILE).map_err(|e| e.message)?;
                if bytes.len() as u64 % dtype.size() != 0 {
                    return Err(format!(
                        "{f}: {} bytes is not a whole number of {}-byte elements",
                        bytes.len(),
                        dtype.size()
                    ));
                }
                if let Some(l) = len.filter(|l| l * dtype.size() != bytes.len() as u64) {
                    return Err(format!("{f}: {} bytes but len={l} needs {}", bytes.len(), l * dtype.size()));
                }
                Ok(Some(bytes))
            }
            (None, Some(v)) => Ok(Some(fill_bytes(dtype, v, len.ok_or("fill= needs len=N")?)?)),
            (None, None) if must => Err(format!("`{dir}` needs file=PATH or fill=V with len=N")),
            (None, None) => Ok(None),
        }
    };
    match dir {
        "in" => Ok(ArgSpec { arg: RunArg::Input { data: data(true)?.unwrap_or_default(), dtype }, output_file: None }),
        "inout" => Ok(ArgSpec {
            arg: RunArg::InOut { data: data(true)?.unwrap_or_default(), dtype },
            output_file: get("out").map(PathBuf::from),
        }),
        "out" => {
            let l = len.ok_or("`out` needs len=N")?;
            Ok(ArgSpec {
                arg: RunArg::Output { bytes: l * dtype.size(), dtype },
                output_file: get("file").map(PathBuf::from),
            })
        }
        other => Err(format!("unknown dir `{other}`; use in, out, inout or scalar")),
    }
}

/// Parses one `--arg` spec: `DIR[:DTYPE][:key=value]…`, or `scalar:N`.
pub fn parse_arg_spec(spec: &str) -> Result<ArgSpec, String> {
    let mut parts = spec.split(':');
    let dir = parts.next().unwrap_or_default();
    let mut fields = vec![("dir".to_string(), dir.to_string())];
    for (i, p) in parts.enumerate() {
        match p.split_once('=') {
            Some((k, v)) => fields.push((k.to_string(), v.to_string())),
            None if i == 0 && dir == "scalar" => fields.push(("value".into(), p.into())),
            None if i == 0 => fields.push(("dtype".into(), p.into())),
            None => return Err(format!("`{p}` is not key=value")),
        }
    }
    arg_from_fields(&fields).map_err(|e| format!("--arg {spec}: {e}"))
}

/// Parses the JSON argument file format (see `--args-file`).
pub fn parse_args_json(text: &str) -> Result<Vec<ArgSpec>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = v.get("args").and_then(Value::as_array).ok_or("expected an object with an \"args\" array")?;
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let obj = a.as_object().ok_or_else(|| format!("args[{i}]: expected an object"))?;
            let fields = obj
                .iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        other => return Err(format!("args[{i}].{k}: {other} is not a string or number")),
                    };
                    Ok((k.clone(), s))
                })
                .collect::<Result<Vec<_>, String>>()?;
            arg_from_fields(&fields).map_err(|e| format!("args[{i}]: {e}"))
        })
        .collect()
}

/// The run mode the flags ask for (threaded 3 threads / 2 clusters unless set).
pub fn run_mode(args: &RunArgs) -> RunMode {
    if args.deterministic {
        RunMode::Deterministic { noop_cores: false }
    } else {
        RunMode::Threaded { threads: args.threads.unwrap_or(3), clusters: args.clusters.unwrap_or(2) }
    }
}

/// What `pto run` runs, with its arguments.
struct Plan {
    what: String,
    blob: ChipCallable,
    args: Vec<ArgSpec>,
    check_vector: bool,
    source: Value,
}

fn plan(args: &RunArgs) -> Result<Plan, CliError> {
    if let Some(Example::Vector) = args.example {
        let blob = vector_example_callable().map_err(|e| CliError::failed(e.to_string()))?;
        return Ok(Plan {
            what: format!("example vector: f = (a+b+1)·(a+b+2) + (a+b) over {VECTOR_LEN} f32, a = 2, b = 3"),
            blob,
            args: vector_args().into_iter().map(|arg| ArgSpec { arg, output_file: None }).collect(),
            check_vector: true,
            source: json!({"example": "vector"}),
        });
    }
    let path = args.callable.as_ref().ok_or_else(|| CliError::bad_input("give --example or --callable"))?;
    let name = input::shown(path, true);
    let bytes = input::read_small(path, MAX_RUN_FILE)?;
    let blob = ChipCallable::from_bytes(bytes)
        .map_err(|e| CliError::bad_input(format!("{name}: invalid ChipCallable: {e}")))?;
    let specs = match &args.args_file {
        Some(f) => {
            let text = input::read_small(f, 1 << 20)?;
            let text =
                String::from_utf8(text).map_err(|_| CliError::bad_input(format!("{}: not UTF-8", f.display())))?;
            parse_args_json(&text).map_err(|e| CliError::bad_input(format!("{}: {e}", f.display())))?
        }
        None => args.arg.iter().map(|s| parse_arg_spec(s)).collect::<Result<_, _>>().map_err(CliError::bad_input)?,
    };
    Ok(Plan {
        what: format!("callable {name}"),
        blob,
        args: specs,
        check_vector: false,
        source: json!({"callable": name}),
    })
}

/// A saved image `pto run --image` boots.
struct LoadedImage {
    /// The file as shown in messages.
    name: String,
    /// Its validated bytes.
    image: Image,
}

fn load_image(args: &RunArgs) -> Result<Option<LoadedImage>, CliError> {
    let Some(path) = &args.image else { return Ok(None) };
    let image = super::image::read_image_file(path)?;
    Ok(Some(LoadedImage { name: input::shown(path, true), image }))
}

/// A run failure's message; for a run on a saved image, a sizing hint names the image instead of
/// the sizing flags (its sizing is fixed: the image must be rebuilt).
fn image_hint(message: String, loaded: Option<&LoadedImage>) -> String {
    match loaded {
        Some(l) if message.contains("--window") || message.contains("--heap") || message.contains("--dep-pool") => {
            format!(
                "{message}\n  (the sizing is the image's: {} was built too small for this callable; rebuild it with \
                 `pto image build` and the larger sizing flag)",
                l.name
            )
        }
        _ => message,
    }
}

/// A run failure as JSON: the device code's name, meaning and hint where there is one.
fn failure_json(e: &CallableRunError, message: &str, exit_code: i32) -> Value {
    let mut v = json!({"exit_code": exit_code, "message": message});
    if let CallableRunError::Run(RunError::Device(f)) = e {
        v["code"] = json!(f.code);
        v["name"] = json!(f.name);
        v["description"] = json!(f.description);
        v["hint"] = json!(f.hint);
        v["ring"] = json!(f.ring);
    }
    v
}

/// Runs `pto run`, writing to `out`.
pub fn run(args: &RunArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let loaded = load_image(args)?;
    let sizing = match &loaded {
        Some(l) => l.image.layout().sizing,
        None => args.sizing.to_key().map_err(CliError::bad_input)?,
    };
    if let Some(chips) = args.chips {
        return chips::run(args, chips, sizing, out);
    }
    let mode = run_mode(args);
    let budgets = Budgets { orch_ns: args.orch_timeout, sched_ns: args.sched_timeout };
    let plan = plan(args)?;
    let device = CliDevice::open(&args.device, &sizing, mode)?;
    let backend_name = format!("{:?}", args.device.backend).to_lowercase();
    let mut runner = DeviceRunner::new(device.backend());
    runner.set_trace(args.trace.config());
    if let Some(l) = &loaded {
        device.check_image_fingerprint(&l.name, l.image.header().abi_fingerprint)?;
        // The file's bytes become the resident image; every run's bind is then a hit on it.
        runner.bind_image(&l.image).map_err(|e| CliError::failed(format!("{}: uploading the image: {e}", l.name)))?;
    }
    // The callable is uploaded once and run by callable id; an unknown kernel or orchestration
    // name is refused here, before any device call, with the names the backend carries.
    runner
        .register_callable(EXAMPLE_CID, &plan.blob)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", plan.what)))?;
    let run_args: Vec<RunArg> = plan.args.iter().map(|a| a.arg.clone()).collect();
    let config = CallableRunConfig { sizing, mode, budgets };
    let how = match mode {
        RunMode::Threaded { threads, clusters } => {
            format!("threaded: {threads} AICPU threads, {clusters} cluster(s) = {} AICore cores", clusters * 3)
        }
        RunMode::Deterministic { .. } => "deterministic single-thread mode".to_string(),
    };
    if !args.json {
        writeln!(
            out,
            "{} ({how}) on {}; callable id {EXAMPLE_CID}, {} bytes, content hash {:#018x}",
            plan.what,
            backend_name,
            plan.blob.total_size(),
            plan.blob.content_hash()
        )?;
        if let Some(d) = device.describe() {
            writeln!(out, "{d}")?;
        }
        if let Some(l) = &loaded {
            writeln!(
                out,
                "image {}: {} bytes uploaded unchanged as the arena image (checksum {:#018x}, verified by the first \
                 boot)",
                l.name,
                l.image.bytes().len(),
                l.image.header().checksum
            )?;
        }
    }
    let mut runs = Vec::new();
    let mut failure: Option<(CliError, Value)> = None;
    let mut last = None;
    for i in 1..=args.runs {
        let result = runner.run_callable(EXAMPLE_CID, &run_args, &config);
        if !args.json {
            device.print_log(out)?;
        }
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                let cli = match &e {
                    CallableRunError::Run(RunError::Request(m)) => CliError::bad_input(m.clone()),
                    CallableRunError::Bind(_) => CliError::bad_input(format!("run {i}: {e}")),
                    e => CliError::failed(format!("run {i}: {e}")),
                };
                let cli = CliError { message: image_hint(cli.message, loaded.as_ref()), ..cli };
                let v = failure_json(&e, &cli.message, cli.exit_code);
                failure = Some((cli, v));
                break;
            }
        };
        let check = plan.check_vector.then(|| {
            let f = report.output_f32(VECTOR_RESULT_ARG);
            let wrong = f.iter().filter(|x| **x != VECTOR_EXPECTED).count();
            (wrong == 0 && f.len() == VECTOR_LEN, wrong, f.len())
        });
        runs.push(json!({
            "run": i,
            "status": if check.is_none_or(|c| c.0) { "ok" } else { "wrong_result" },
            "tasks": report.tasks_completed,
            "bind_ns": report.bind_time.as_nanos() as u64,
            "bind": if report.bind_cache_hit { "cached" } else { "cold" },
            "run_ns": report.run_time.as_nanos() as u64,
            "per_task_ns": report.per_task().as_nanos() as u64,
            "check": check.map(|c| if c.0 { "ok" } else { "failed" }),
        }));
        if !args.json {
            let check_text = match check {
                Some((true, _, _)) => format!("check OK: all {VECTOR_LEN} elements = {VECTOR_EXPECTED}; "),
                Some((false, wrong, n)) => {
                    format!("check FAILED: {wrong} of {n} elements differ from {VECTOR_EXPECTED}; ")
                }
                None => String::new(),
            };
            writeln!(
                out,
                "run {i}: {check_text}{} tasks; bind {} ({}); run {}; {} per task",
                report.tasks_completed,
                human(report.bind_time),
                if report.bind_cache_hit { "cached" } else { "cold" },
                human(report.run_time),
                human(report.per_task()),
            )?;
        }
        if check.is_some_and(|c| !c.0) {
            let e = CliError::failed(format!("run {i}: the result is wrong"));
            let v = json!({"exit_code": 1, "message": e.message});
            failure = Some((e, v));
            break;
        }
        last = Some(report);
    }
    if failure.is_none() {
        if let Some(report) = &last {
            // Trace slices are named by the callable's own kernel names.
            let names: Vec<(u32, String)> =
                plan.blob.view().children().map(|c| (c.func_id, c.name.to_string())).collect();
            let name_of = |func_id: u32| {
                names.iter().find(|(f, _)| *f == func_id).map_or_else(|| format!("func {func_id}"), |(_, n)| n.clone())
            };
            for note in args.trace.write(report.trace.as_deref(), &name_of)? {
                if !args.json {
                    writeln!(out, "{note}")?;
                }
            }
            for (i, spec) in plan.args.iter().enumerate() {
                if let (Some(file), Some(Some(bytes))) = (&spec.output_file, report.outputs.get(i)) {
                    input::write_output(file, bytes)?;
                }
            }
        }
    }
    if args.json {
        jsonout::write(
            out,
            "run",
            json!({
                "status": if failure.is_none() { "ok" } else { "failed" },
                "source": plan.source,
                "backend": backend_name,
                "mode": how,
                "content_hash": format!("{:#018x}", plan.blob.content_hash()),
                "image": loaded.as_ref().map(|l| json!({
                    "file": l.name,
                    "image_size": l.image.bytes().len(),
                    "checksum": format!("{:#018x}", l.image.header().checksum),
                })),
                "sizing": {
                    "task_window_sizes": sizing.task_window_sizes,
                    "heap_sizes": sizing.heap_sizes,
                    "dep_pool_capacities": sizing.dep_pool_capacities,
                },
                "budgets_ns": {"orchestrator": budgets.orch_ns, "scheduler": budgets.sched_ns},
                "runs": runs,
                "error": failure.as_ref().map(|f| f.1.clone()),
            }),
        )?;
        // The report already says what failed: only the exit code is left to give.
        return match failure {
            Some((e, _)) => Err(CliError { exit_code: e.exit_code, message: String::new() }),
            None => Ok(()),
        };
    }
    match failure {
        Some((e, _)) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let cmd = super::super::allow_negative_numbers(<T as clap::CommandFactory>::command());
        let m = cmd.try_get_matches_from(std::iter::once("run").chain(args.iter().copied()))?;
        <T as clap::FromArgMatches>::from_arg_matches(&m).map(|t| t.run)
    }

    #[test]
    fn huge_budgets_are_refused_with_the_flag_not_wrapped_or_panicking() {
        let e = parse(&["--example", "vector", "--orch-timeout-ms", "18446744073709551615"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.contains("--orch-timeout") && text.contains("overflows"), "{text}");
        let e = parse(&["--example", "vector", "--sched-timeout-ms", "76480200929599801"]).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
        let a = parse(&["--example", "vector", "--orch-timeout", "2s", "--sched-timeout", "750"]).unwrap();
        assert_eq!((a.orch_timeout, a.sched_timeout), (2_000_000_000, 750_000_000));
        let a = parse(&["--example", "vector"]).unwrap();
        assert_eq!((a.orch_timeout, a.sched_timeout), (500_000_000, 500_000_000));
    }

    #[test]
    fn negative_numbers_and_ignored_flags_are_refused() {
        let e = parse(&["--example", "vector", "--runs", "-5"]).unwrap_err();
        assert!(e.to_string().contains("must not be negative"), "{e}");
        let e = parse(&["--example", "vector", "--orch-timeout", "-1"]).unwrap_err();
        assert!(e.to_string().contains("must not be negative"), "{e}");
        let e = parse(&["--example", "vector", "--deterministic", "--threads", "2"]).unwrap_err();
        assert!(e.to_string().contains("cannot be used with"), "{e}");
        let e = parse(&["--example", "vector", "--arg", "scalar:4"]).unwrap_err();
        assert!(e.to_string().contains("cannot be used with"), "{e}");
        assert!(parse(&["--runs", "2"]).is_err(), "a source is required");
    }

    #[test]
    fn arg_specs_from_the_command_line_and_json_agree() {
        let cli = ["in:f32:len=4:fill=2", "out:f32:len=4:file=target/x.bin", "scalar:4"]
            .iter()
            .map(|s| parse_arg_spec(s).unwrap())
            .collect::<Vec<_>>();
        let file = parse_args_json(
            r#"{"args": [{"dir": "in", "dtype": "f32", "len": 4, "fill": 2},
                         {"dir": "out", "dtype": "f32", "len": 4, "file": "target/x.bin"},
                         {"dir": "scalar", "value": 4}]}"#,
        )
        .unwrap();
        assert_eq!(cli, file);
        assert_eq!(cli[0].arg, RunArg::input_f32(&[2.0; 4]));
        assert_eq!(cli[1].output_file.as_deref(), Some(Path::new("target/x.bin")));
        assert_eq!(cli[2].arg, RunArg::Scalar(4));
        assert!(parse_arg_spec("in:f32").unwrap_err().contains("needs file=PATH or fill=V"));
        assert!(parse_arg_spec("in:f64:len=1:fill=1").unwrap_err().contains("unknown dtype"));
        assert!(parse_arg_spec("scalar:-1").unwrap_err().contains("must not be negative"));
        assert!(parse_arg_spec("out:f32:len=4:color=red").unwrap_err().contains("unknown key"));
        assert!(parse_args_json("{}").unwrap_err().contains("\"args\" array"));
    }

    fn run_text(args: &[&str]) -> Result<String, CliError> {
        let a = parse(args).unwrap();
        let mut out = Vec::new();
        run(&a, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_blob_file_runs_with_command_line_arguments_and_writes_its_output() {
        let dir = std::env::temp_dir().join(format!("pto-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let blob = dir.join("vector.blob");
        std::fs::write(&blob, vector_example_callable().unwrap().as_bytes()).unwrap();
        let f = dir.join("f.bin");
        let n = VECTOR_LEN.to_string();
        let (a, b, o, s) = (
            format!("in:f32:len={n}:fill=2"),
            format!("in:f32:len={n}:fill=3"),
            format!("out:f32:len={n}:file={}", f.display()),
            format!("scalar:{n}"),
        );
        let blob_s = blob.display().to_string();
        let base = ["--callable", &blob_s, "--deterministic", "--runs", "1", "--window", "64", "--heap", "1M"];
        let mut argv: Vec<&str> = base.to_vec();
        argv.extend(["--arg", &a, "--arg", &b, "--arg", &o, "--arg", &s]);
        let text = run_text(&argv).unwrap();
        assert!(text.contains("run 1: 5 tasks"), "{text}");
        let got = crate::runner::f32s(&std::fs::read(&f).unwrap());
        assert!(got.len() == VECTOR_LEN && got.iter().all(|x| *x == VECTOR_EXPECTED));

        // JSON: a report with the schema version; a wrong argument count is bad input (exit 2).
        let mut argv: Vec<&str> = base.to_vec();
        argv.extend(["--arg", &a, "--json"]);
        let a2 = parse(&argv).unwrap();
        let mut out = Vec::new();
        let e = run(&a2, &mut out).unwrap_err();
        assert_eq!(e.exit_code, 2);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!((v["schema_version"].as_u64(), v["status"].as_str()), (Some(1), Some("failed")));
        assert_eq!(v["error"]["exit_code"], 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unknown_kernel_name_is_refused_listing_what_the_backend_has() {
        use crate::callable::{CoreCallable, Orchestration};
        use pto_abi::task::TensorDirection::Input;
        let blob = ChipCallable::build(
            &[Input],
            &Orchestration { name: "no_such_orchestration".into(), config_name: "default".into(), bytes: Vec::new() },
            &[CoreCallable::sim(0, "vector_add", &[Input])],
        )
        .unwrap();
        let path = std::env::temp_dir().join(format!("pto-run-unknown-{}.blob", std::process::id()));
        std::fs::write(&path, blob.as_bytes()).unwrap();
        let p = path.display().to_string();
        let e = run_text(&["--callable", &p, "--arg", "in:u8:len=1:fill=1"]).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(e.exit_code, 2);
        assert!(e.message.contains("no_such_orchestration") && e.message.contains("vector_example"), "{e}");
    }

    #[test]
    fn a_saved_image_is_booted_from_its_own_bytes_and_a_corrupted_one_is_refused() {
        use super::super::image::{run as image_run, BuildArgs, ImageArgs, ImageCommand};
        let path = std::env::temp_dir().join(format!("pto-run-image-{}.img", std::process::id()));
        let sizing = SizingArgs { window: Some("64".into()), heap: Some("1M".into()), dep_pool: Some("64".into()) };
        let build = ImageArgs { command: ImageCommand::Build(BuildArgs { sizing, output: path.clone(), json: false }) };
        image_run(&build, &mut Vec::new()).unwrap();
        let p = path.display().to_string();

        // The runner uploads the file's bytes unchanged and a run's bind is a hit on them.
        let image = super::super::image::read_image_file(&path).unwrap();
        assert_eq!(image.bytes(), &std::fs::read(&path).unwrap()[..]);
        let sim = std::sync::Arc::new(crate::backend::sim::SimBackend::with_capacity(256 << 20).unwrap());
        let mut runner = DeviceRunner::new(sim.clone() as std::sync::Arc<dyn crate::backend::DeviceBackend>);
        let bound = runner.bind_image(&image).unwrap();
        let mut resident = vec![0u8; bound.image_size as usize];
        crate::backend::DeviceBackend::copy_from_device(sim.as_ref(), bound.regions.arena.base, &mut resident).unwrap();
        assert_eq!(resident, image.bytes(), "the arena holds the file's bytes");
        assert!(runner.bind(&image.layout().sizing).unwrap().cache_hit);
        assert_eq!(runner.bind_stats().images_built, 0);

        let a = parse(&["--example", "vector", "--image", &p, "--deterministic", "--runs", "2", "--json"]).unwrap();
        let mut out = Vec::new();
        run(&a, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["sizing"]["task_window_sizes"][0], 64);
        assert_eq!(v["image"]["image_size"], image.bytes().len());
        for r in 0..2 {
            assert_eq!(v["runs"][r]["check"], "ok", "{v}");
            assert_eq!(v["runs"][r]["bind"], "cached", "no run builds an image: {v}");
        }
        let text = run_text(&["--example", "vector", "--image", &p, "--deterministic", "--runs", "1"]).unwrap();
        assert!(text.contains("uploaded unchanged as the arena image"), "{text}");

        assert!(parse(&["--example", "vector", "--image", &p, "--window", "8"]).is_err(), "sizing flags conflict");
        assert!(
            parse(&["--example", "vector", "--image", &p, "--chips", "2"]).is_err(),
            "chip workers build their own"
        );
        let mut corrupt = image.bytes().to_vec();
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 1;
        std::fs::write(&path, &corrupt).unwrap();
        let e = run_text(&["--example", "vector", "--image", &p]).unwrap_err();
        assert_eq!(e.exit_code, 2);
        assert!(e.message.contains("BOOT_IMAGE_CHECKSUM_MISMATCH"), "{e}");
        std::fs::write(&path, b"not an image").unwrap();
        let a = parse(&["--example", "vector", "--image", &p]).unwrap();
        assert_eq!(run(&a, &mut Vec::new()).unwrap_err().exit_code, 2);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn an_image_too_small_for_the_callable_says_to_rebuild_the_image() {
        let l = LoadedImage {
            name: "small.img".into(),
            image: {
                let key = pto_abi::sizing::ArenaSizingKey::uniform(64, 1 << 20, 64);
                let layout = pto_abi::reserve_layout(&key).unwrap();
                crate::image::build_runtime_image(&layout, &crate::image::nominal_regions(&layout).unwrap()).unwrap()
            },
        };
        let m = image_hint("HEAP_RING_DEADLOCK: ring 1 … enlarge --heap".into(), Some(&l));
        assert!(m.contains("small.img was built too small") && m.contains("pto image build"), "{m}");
        assert_eq!(image_hint("x --heap".into(), None), "x --heap");
    }
}
