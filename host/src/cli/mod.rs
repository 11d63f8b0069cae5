//! The `pto` command line tool: one module per subcommand; `bin/pto.rs` only dispatches.

pub mod bench;
pub mod callable;
pub mod image;
pub mod layout;
pub mod run;
pub mod sizing_args;
pub mod trace;

use std::fmt;

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
