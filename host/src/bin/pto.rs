//! The `pto` command line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pto_host::cli::{self, CliError};

#[derive(Parser)]
#[command(name = "pto", version, about = "PTO runtime: arena layout, images and runs on the simulated device")]
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
    /// Run an example task graph on the simulated device and check its result.
    Run(cli::run::RunArgs),
    /// Read run traces written by `pto run --trace`.
    Trace(cli::trace::TraceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let result: Result<(), CliError> = match &cli.command {
        Command::Layout(args) => cli::layout::run(args, &mut stdout),
        Command::Image(args) => cli::image::run(args, &mut stdout),
        Command::Callable(args) => cli::callable::run(args, &mut stdout),
        Command::Bench(args) => cli::bench::run(args, &mut stdout),
        Command::Run(args) => cli::run::run(args, &mut stdout),
        Command::Trace(args) => cli::trace::run(args, &mut stdout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("pto: {e}");
            }
            ExitCode::from(e.exit_code as u8)
        }
    }
}
