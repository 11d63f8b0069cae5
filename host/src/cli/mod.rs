//! The `pto` command line tool: one module per subcommand; `bin/pto.rs` only dispatches.

pub mod bench;
pub mod callable;
pub mod device;
pub mod firmware;
pub mod image;
pub mod info;
pub mod input;
pub mod json;
pub mod layout;
pub mod run;
pub mod sizing_args;
pub mod trace;
pub mod worker;

use std::fmt;

/// The exit codes every subcommand keeps, shown at the end of `pto --help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 ok; 1 the run or operation failed; 2 bad input (a flag, a value, \
a file that cannot be read or written, or a file that fails validation). Under --json an error is a JSON \
object on stdout with the same exit code.";

/// `cmd` and every subcommand under it with negative numbers taken as values, so `--runs -5` is
/// answered by the flag's own "must not be negative" instead of "unexpected argument".
pub fn allow_negative_numbers(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    let mut cmd = cmd.allow_negative_numbers(true);
    for name in names {
        cmd = cmd.mut_subcommand(name, allow_negative_numbers);
    }
    cmd
}

/// Prints a failed command's error: as a JSON document on `out` under `--json`, else on stderr.
/// An empty message (a closed pipe, or a report that already said what failed) prints nothing.
pub fn report_error(e: &CliError, json_wanted: bool, out: &mut dyn std::io::Write) {
    if e.message.is_empty() {
        return;
    }
    if json_wanted {
        let text = serde_json::to_string_pretty(&json::error_document(e)).unwrap_or_default();
        let _ = writeln!(out, "{text}");
    } else {
        eprintln!("pto: {e}");
    }
}

/// A failed subcommand: the message for stderr and the process exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Process exit code (2 = bad input, 1 = the operation failed).
    pub exit_code: i32,
    /// What went wrong, in words.
    pub message: String,
}

impl CliError {
    /// Bad input (flags, files): exit code 2.
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError { exit_code: 2, message: message.into() }
    }

    /// The operation itself failed: exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        CliError { exit_code: 1, message: message.into() }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for CliError {
    /// A closed output pipe (`pto layout | head`) ends the command quietly with success.
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError { exit_code: 0, message: String::new() };
        }
        CliError::failed(format!("i/o error: {e}"))
    }
}
