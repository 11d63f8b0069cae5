//! `pto callable`: `inspect FILE` validates a ChipCallable blob and prints its layout, children and
//! hashes; `example NAME -o FILE` writes a built-in example blob.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use pto_abi::task::TensorDirection;
use serde_json::json;

use pto_abi::callable::{ChipCallableHeader, CHIP_CALLABLE_MAGIC, CHIP_HEADER_SIZE};
use pto_abi::image::IMAGE_MAGIC;
use zerocopy::FromBytes;

use super::{input, json as jsonout, CliError};
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
        /// The blob file (`-` = stdin). At most the size its header states is read.
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
        /// Output file (`-` = stdout; the summary then goes to stderr).
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
            input::write_output(output, blob.as_bytes())?;
            let mut stderr = std::io::stderr();
            let out: &mut dyn Write = if input::is_stdio(output) { &mut stderr } else { out };
            writeln!(
                out,
                "wrote {} ({} bytes, content hash {:#018x})",
                input::shown(output, false),
                blob.total_size(),
                blob.content_hash()
            )?;
            Ok(())
        }
    }
}

/// The blob format for [`input::read_bounded`]: the header states the blob's total size.
struct BlobFormat;

impl input::Bounded for BlobFormat {
    fn header(&self) -> u64 {
        CHIP_HEADER_SIZE
    }

    fn total(&self, header: &[u8]) -> Result<u64, String> {
        if header.len() >= 8 && u64::from_le_bytes(header[..8].try_into().unwrap_or_default()) == IMAGE_MAGIC {
            return Err("this is an arena image, not a ChipCallable blob; read it with `pto image inspect`".into());
        }
        if header.starts_with(b"\x7fELF") {
            return Err(
                "this is an ELF file, not a ChipCallable blob; read firmware with `pto firmware inspect`".into()
            );
        }
        let h = ChipCallableHeader::read_from_prefix(header)
            .map_err(|_| {
                format!("invalid ChipCallable: {} bytes, shorter than its {CHIP_HEADER_SIZE}-byte header", header.len())
            })?
            .0;
        if h.magic != CHIP_CALLABLE_MAGIC {
            return Err(format!(
                "invalid ChipCallable: magic {:#010x}, expected {CHIP_CALLABLE_MAGIC:#010x} (\"PTOC\")",
                h.magic
            ));
        }
        if h.total_size < CHIP_HEADER_SIZE || h.total_size > MAX_BLOB_SIZE {
            return Err(format!(
                "invalid ChipCallable: total_size = {} must be in {CHIP_HEADER_SIZE} ..= {MAX_BLOB_SIZE}",
                h.total_size
            ));
        }
        Ok(h.total_size)
    }
}

/// Largest blob `pto callable inspect` reads (64 MiB).
pub const MAX_BLOB_SIZE: u64 = 64 << 20;

fn inspect(file: &std::path::Path, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let name = input::shown(file, true);
    let bytes = input::read_bounded(file, &BlobFormat)?;
    let layout = compute_chip_callable_layout(&bytes)
        .map_err(|e| CliError::bad_input(format!("{name}: invalid ChipCallable: {e}")))?;
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
        print_table(&name, &layout, kernel_of, out)
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
        "valid": true,
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
        "content_hash_verified": true,
        "aicore_image_hash": format!("{:#018x}", layout.aicore_image_hash),
        "children": children,
    });
    jsonout::write(out, "callable", doc)
}

fn print_table(
    file: &str,
    layout: &ChipCallableLayout,
    kernel_of: impl Fn(usize) -> String,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    writeln!(out, "ChipCallable {file}: {} bytes, valid", layout.total_size)?;
    writeln!(out, "header             {} bytes", layout.header_size)?;
    writeln!(
        out,
        "orchestration      {:?} (config {:?}) at {:#x}, {} bytes",
        layout.orchestration_name, layout.config_name, layout.orchestration_offset, layout.orchestration_size
    )?;
    writeln!(out, "signature          {} args [{}]", layout.signature.len(), signature_text(&layout.signature))?;
    writeln!(
        out,
        "content hash       {:#018x} (verified: the bytes hash to the header's checksum)",
        layout.content_hash
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect_bytes(bytes: &[u8], tag: &str) -> Result<String, CliError> {
        let p = std::env::temp_dir().join(format!("pto-callable-{}-{tag}.blob", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        let mut out = Vec::new();
        let r = inspect(&p, false, &mut out);
        std::fs::remove_file(&p).unwrap();
        r.map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn blobs_are_read_to_their_stated_size_and_other_files_are_named() {
        let blob = vector_example_callable().unwrap().as_bytes().to_vec();
        assert!(inspect_bytes(&blob, "ok").unwrap().contains("valid"));
        let mut longer = blob.clone();
        longer.push(0);
        let e = inspect_bytes(&longer, "long").unwrap_err();
        assert!(e.message.contains("refused without reading it"), "{e}");
        let mut image = IMAGE_MAGIC.to_le_bytes().to_vec();
        image.resize(CHIP_HEADER_SIZE as usize, 0);
        let e = inspect_bytes(&image, "img").unwrap_err();
        assert!(e.message.contains("an arena image, not a ChipCallable blob; read it with `pto image inspect`"), "{e}");
        let e = inspect_bytes(&[0u8; 16384], "zero").unwrap_err();
        assert!(e.message.contains("magic"), "{e}");
        assert_eq!(e.exit_code, 2);
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused_with_the_checksum_error() {
        let blob = vector_example_callable().unwrap();
        let text = inspect_bytes(blob.as_bytes(), "sum").unwrap();
        assert!(text.contains(&format!("content hash       {:#018x} (verified", blob.content_hash())), "{text}");
        let bytes = blob.as_bytes();
        let view = blob.view();
        let first = view.children().next().unwrap();
        // Header padding, the stored checksum, a name, the orchestration, a child's code, the last byte.
        let positions = [
            pto_abi::callable::CALLABLE_CHECKSUM_OFFSET + 8,
            pto_abi::callable::CALLABLE_CHECKSUM_OFFSET,
            std::mem::offset_of!(pto_abi::callable::ChipCallableHeader, orchestration_name) + 1,
            first.offset as usize + 8,
            first.code_offset as usize,
            bytes.len() - 1,
        ];
        for at in positions {
            let mut b = bytes.to_vec();
            b[at] ^= 0x10;
            let e = inspect_bytes(&b, "flip").unwrap_err();
            assert_eq!(e.exit_code, 2, "byte {at}: {e}");
            assert!(e.message.contains("checksum mismatch"), "byte {at}: {e}");
        }
    }
}
