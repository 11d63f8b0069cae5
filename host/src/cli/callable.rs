//! `pto callable`: `inspect FILE` validates a ChipCallable blob and prints its layout, children and
//! hashes; `example NAME -o FILE` writes a built-in example blob.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use pto_abi::task::TensorDirection;
use serde_json::json;

use super::CliError;
use crate::backend::sim::sim_kernel_name;
use crate::callable::{compute_chip_callable_layout, ChipCallableLayout};
use crate::examples::vector_example_callable;

/// Flags of `pto callable`.
#[derive(Args, Debug, Clone)]
pub struct CallableArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CallableCommand,
}

/// Subcommands of `pto callable`.
#[derive(Subcommand, Debug, Clone)]
pub enum CallableCommand {
    /// Validate a blob and print its layout, children and hashes.
    Inspect {
        /// The blob file.
        file: PathBuf,
        /// Print machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a built-in example blob.
    Example {
        /// Which example.
        #[arg(value_enum)]
        name: ExampleName,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Built-in example callables.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleName {
    /// f = (a+b+1)·(a+b+2) + (a+b): one orchestration, three kernels.
    Vector,
}

/// Short name of a direction for tables.
pub fn direction_tag(d: TensorDirection) -> &'static str {
    match d {
        TensorDirection::Input => "in",
        TensorDirection::Output => "out",
        TensorDirection::InOut => "inout",
        TensorDirection::OutputExisting => "out_existing",
        TensorDirection::NoDep => "nodep",
    }
}

fn signature_text(signature: &[TensorDirection]) -> String {
    signature.iter().map(|&d| direction_tag(d)).collect::<Vec<_>>().join(",")
}

/// Runs `pto callable`, writing to `out`.
pub fn run(args: &CallableArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.command {
        CallableCommand::Inspect { file, json } => inspect(file, *json, out),
        CallableCommand::Example { name, output } => {
            let blob = match name {
                ExampleName::Vector => vector_example_callable(),
            }
            .map_err(|e| CliError::failed(format!("building the example: {e}")))?;
            std::fs::write(output, blob.as_bytes())
                .map_err(|e| CliError::failed(format!("{}: cannot write: {e}", output.display())))?;
            writeln!(
                out,
                "wrote {} ({} bytes, content hash {:#018x})",
                output.display(),
                blob.total_size(),
                blob.content_hash()
            )?;
            Ok(())
        }
    }
}

fn inspect(file: &PathBuf, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let bytes =
        std::fs::read(file).map_err(|e| CliError::bad_input(format!("{}: cannot read: {e}", file.display())))?;
    let layout = compute_chip_callable_layout(&bytes)
        .map_err(|e| CliError::bad_input(format!("{}: invalid ChipCallable: {e}", file.display())))?;
    let kernel_of = |index: usize| -> String {
        let child = &layout.children[index];
        let code = &bytes[child.code_offset as usize..(child.code_offset + child.code_size) as usize];
        match sim_kernel_name(code) {
            Ok(name) => format!("sim:{name}"),
            Err(_) => format!("native ({} bytes)", code.len()),
        }
    };
    if json {
        print_json(&layout, kernel_of, out)
    } else {
        print_table(file, &layout, kernel_of, out)
    }
}

fn print_json(
    layout: &ChipCallableLayout,
    kernel_of: impl Fn(usize) -> String,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let children: Vec<_> = layout
        .children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "func_id": c.func_id,
                "name": c.name,
                "offset": c.offset,
                "code_offset": c.code_offset,
                "code_size": c.code_size,
                "signature": c.signature.iter().map(|&d| direction_tag(d)).collect::<Vec<_>>(),
                "kernel": kernel_of(i),
            })
        })
        .collect();
    let doc = json!({
        "header_size": layout.header_size,
        "total_size": layout.total_size,
        "orchestration": {
            "name": layout.orchestration_name,
            "config_name": layout.config_name,
            "offset": layout.orchestration_offset,
            "size": layout.orchestration_size,
        },
        "signature": layout.signature.iter().map(|&d| direction_tag(d)).collect::<Vec<_>>(),
        "content_hash": format!("{:#018x}", layout.content_hash),
        "aicore_image_hash": format!("{:#018x}", layout.aicore_image_hash),
        "children": children,
    });
    writeln!(out, "{}", serde_json::to_string_pretty(&doc).map_err(|e| CliError::failed(e.to_string()))?)?;
    Ok(())
}

fn print_table(
    file: &std::path::Path,
    layout: &ChipCallableLayout,
    kernel_of: impl Fn(usize) -> String,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    writeln!(out, "ChipCallable {}: {} bytes, valid", file.display(), layout.total_size)?;
    writeln!(out, "header             {} bytes", layout.header_size)?;
    writeln!(
        out,
        "orchestration      {:?} (config {:?}) at {:#x}, {} bytes",
        layout.orchestration_name, layout.config_name, layout.orchestration_offset, layout.orchestration_size
    )?;
    writeln!(out, "signature          {} args [{}]", layout.signature.len(), signature_text(&layout.signature))?;
    writeln!(out, "content hash       {:#018x}", layout.content_hash)?;
    writeln!(out, "AICore image hash  {:#018x}", layout.aicore_image_hash)?;
    writeln!(out, "children           {}", layout.children.len())?;
    if layout.children.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "  {:>7} {:<24} {:>10} {:>10} {:>8}  {:<24} kernel",
        "func_id", "name", "offset", "code", "size", "args"
    )?;
    for (i, c) in layout.children.iter().enumerate() {
        writeln!(
            out,
            "  {:>7} {:<24} {:>#10x} {:>#10x} {:>8}  {:<24} {}",
            c.func_id,
            c.name,
            c.offset,
            c.code_offset,
            c.code_size,
            format!("[{}]", signature_text(&c.signature)),
            kernel_of(i)
        )?;
    }
    Ok(())
}
