//! The `pto` command line tool.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use pto_host::cli::{self, CliError};

#[derive(Parser)]
#[command(
    name = "pto",
    version = cli::info::long_version(),
    about = "PTO runtime: arena layout, images, callables and runs on a device backend",
    after_help = cli::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the arena layout for a sizing.
    Layout(cli::layout::LayoutArgs),
    /// Build an arena image file, or validate and describe one.
    Image(cli::image::ImageArgs),
    /// Inspect or write ChipCallable blobs.
    Callable(cli::callable::CallableArgs),
    /// Benchmark the runtime: whole task cycle, tensor map, ready queue (deterministic mode).
    Bench(cli::bench::BenchArgs),
    /// Inspect an emulated-device firmware ELF.
    Firmware(cli::firmware::FirmwareArgs),
    /// Run a ChipCallable (a built-in example or a blob file) on a device backend.
    Run(cli::run::RunArgs),
    /// ABI version, fingerprint, capacities and the backends available on this host.
    Info(cli::info::InfoArgs),
    /// Name, meaning and what to change for a runtime or boot error code.
    Error(cli::info::ErrorArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// A chip worker serving its mailbox (started by a chip pool).
    #[command(hide = true)]
    Worker(cli::worker::WorkerArgs),
    /// Read run traces written by `pto run --trace`.
    Trace(cli::trace::TraceArgs),
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json_wanted = cli::json::wanted(&argv);
    let mut stdout = std::io::stdout().lock();
    let matches = match cli::allow_negative_numbers(Cli::command()).try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) if json_wanted && e.use_stderr() => {
            let err = CliError { exit_code: e.exit_code(), message: e.to_string().trim().to_string() };
            cli::report_error(&err, true, &mut stdout);
            return ExitCode::from(e.exit_code() as u8);
        }
        Err(e) => e.exit(),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result: Result<(), CliError> = match &cli.command {
        Command::Layout(args) => cli::layout::run(args, &mut stdout),
        Command::Image(args) => cli::image::run(args, &mut stdout),
        Command::Callable(args) => cli::callable::run(args, &mut stdout),
        Command::Bench(args) => cli::bench::run(args, &mut stdout),
        Command::Run(args) => cli::run::run(args, &mut stdout),
        Command::Worker(args) => cli::worker::run(args),
        Command::Firmware(args) => cli::firmware::run(args, &mut stdout),
        Command::Info(args) => cli::info::info(args, &mut stdout),
        Command::Error(args) => cli::info::error(args, &mut stdout),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut cli::allow_negative_numbers(Cli::command()), "pto", &mut stdout);
            Ok(())
        }
        Command::Trace(args) => cli::trace::run(args, &mut stdout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::report_error(&e, json_wanted, &mut stdout);
            ExitCode::from(e.exit_code as u8)
        }
    }
}
