//! `pto image build` writes an arena image to a file; `pto image inspect` validates one with the
//! device's own checks and prints its header, layout and fingerprint.

use std::io::Write;
use std::mem::size_of;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use pto_abi::runtime::SmHandle;
use pto_abi::{reserve_layout, ABI_FINGERPRINT, ABI_VERSION};
use pto_device::boot::audit::audit_pointers;
use pto_device::boot::validate::validate_image;
use zerocopy::FromBytes;

use super::layout::human_bytes;
use super::sizing_args::SizingArgs;
use super::CliError;
use crate::image::{build_runtime_image, nominal_regions};

/// Flags of `pto image`.
#[derive(Args, Debug, Clone)]
pub struct ImageArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// `pto image` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum ImageCommand {
    /// Build the arena image of a sizing and write it to a file.
    Build(BuildArgs),
    /// Validate an image file and print its header, layout and fingerprint.
    Inspect(InspectArgs),
}

/// Flags of `pto image build`.
#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// Arena sizing.
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Output file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

/// Flags of `pto image inspect`.
#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// The image file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Runs `pto image …`, writing to `out`.
pub fn run(args: &ImageArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.command {
        ImageCommand::Build(b) => build(b, out),
        ImageCommand::Inspect(i) => inspect(i, out),
    }
}

fn build(args: &BuildArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let sizing = args.sizing.to_key().map_err(CliError::bad_input)?;
    let layout = reserve_layout(&sizing).map_err(|e| CliError::bad_input(e.to_string()))?;
    let regions = nominal_regions(&layout).map_err(|e| CliError::failed(e.to_string()))?;
    let image = build_runtime_image(&layout, &regions).map_err(|e| CliError::failed(e.to_string()))?;
    std::fs::write(&args.output, image.bytes())
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", args.output.display())))?;
    writeln!(
        out,
        "wrote {} ({} bytes, {}), ABI v{ABI_VERSION}, fingerprint {ABI_FINGERPRINT:#018x}",
        args.output.display(),
        image.bytes().len(),
        human_bytes(image.bytes().len() as u64)
    )?;
    Ok(())
}

fn inspect(args: &InspectArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = args.file.display();
    let bytes = std::fs::read(&args.file).map_err(|e| CliError::bad_input(format!("cannot read {path}: {e}")))?;
    // A file has no region around it: only the bytes present bound the image.
    let v = validate_image(&bytes, u64::MAX).map_err(|e| CliError::bad_input(format!("{path}: {e}")))?;
    let h = &v.header;
    if bytes.len() as u64 != h.image_size {
        return Err(CliError::bad_input(format!(
            "{path}: file is {} bytes but the image header says image_size = {}",
            bytes.len(),
            h.image_size
        )));
    }
    let at = v.layout.offsets.sm_handle.offset as usize;
    let handle = SmHandle::read_from_bytes(&bytes[at..at + size_of::<SmHandle>()])
        .map_err(|_| CliError::bad_input(format!("{path}: SM handle lies outside the file")))?;
    audit_pointers(&v.runtime_header, &handle, &v.built_regions())
        .map_err(|e| CliError::bad_input(format!("{path}: baked pointers: {e}")))?;

    let s = &v.layout.sizing;
    writeln!(out, "{path}: valid PTO arena image")?;
    writeln!(out, "ABI version       {}", h.abi_version)?;
    writeln!(out, "ABI fingerprint   {:#018x} (this build: {ABI_FINGERPRINT:#018x})", h.abi_fingerprint)?;
    writeln!(out, "image size        {} bytes ({})", h.image_size, human_bytes(h.image_size))?;
    writeln!(out, "header size       {} bytes", h.header_size)?;
    writeln!(out, "runtime header at {:#x}", h.runtime_header_offset)?;
    writeln!(
        out,
        "built for         arena {} · SM {} · heap {}",
        h.built_arena_base, h.built_sm_base, h.built_heap_base
    )?;
    writeln!(out, "SM size           {} bytes ({})", h.sm_size, human_bytes(h.sm_size))?;
    writeln!(out, "GM heap size      {} bytes ({})", h.heap_size, human_bytes(h.heap_size))?;
    writeln!(out, "sizing window     {:?}", s.task_window_sizes)?;
    writeln!(out, "       heap       {:?}", s.heap_sizes)?;
    writeln!(out, "       dep pool   {:?}", s.dep_pool_capacities)?;
    writeln!(out, "pointer audit     ok (every baked pointer lies in the regions it was built for)")?;
    writeln!(out)?;
    writeln!(out, "{:<22} {:>12} {:>12}", "region", "offset", "size")?;
    for r in v.layout.offsets.regions() {
        writeln!(out, "{:<22} {:>#12x} {:>12}", r.name, r.region.offset, r.region.size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn temp_path(tag: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("pto-image-{}-{tag}-{n}.img", std::process::id()))
    }

    fn build_small(path: &std::path::Path) {
        let sizing = SizingArgs { window: Some("8".into()), heap: Some("64K".into()), dep_pool: Some("16".into()) };
        let args = ImageArgs { command: ImageCommand::Build(BuildArgs { sizing, output: path.to_path_buf() }) };
        let mut out = Vec::new();
        run(&args, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("fingerprint"));
    }

    fn inspect_file(path: &std::path::Path) -> Result<String, CliError> {
        let mut out = Vec::new();
        run(&ImageArgs { command: ImageCommand::Inspect(InspectArgs { file: path.to_path_buf() }) }, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn build_then_inspect_round_trips() {
        let p = temp_path("ok");
        build_small(&p);
        let text = inspect_file(&p).unwrap();
        assert!(text.contains("valid PTO arena image"), "{text}");
        assert!(text.contains(&format!("{ABI_FINGERPRINT:#018x}")), "{text}");
        assert!(text.contains("sizing window     [8, 8, 8, 8]"), "{text}");
        assert!(text.contains("ready_queue[dep_only]"), "{text}");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn bad_files_give_the_specific_error_and_exit_code_2() {
        let p = temp_path("bad");
        build_small(&p);
        let good = std::fs::read(&p).unwrap();

        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("BOOT_IMAGE_TRUNCATED", good[..good.len() / 2].to_vec()),
            ("BOOT_IMAGE_TRUNCATED", good[..10].to_vec()),
            ("BOOT_BAD_MAGIC", {
                let mut b = good.clone();
                b[0] ^= 0xff;
                b
            }),
            ("BOOT_FINGERPRINT_MISMATCH", {
                let mut b = good.clone();
                b[16] ^= 1;
                b
            }),
            ("image_size", {
                let mut b = good.clone();
                b.extend_from_slice(&[0; 64]);
                b
            }),
        ];
        for (want, bytes) in cases {
            std::fs::write(&p, &bytes).unwrap();
            let e = inspect_file(&p).unwrap_err();
            assert_eq!(e.exit_code, 2, "{e}");
            assert!(e.message.contains(want), "wanted {want}: {e}");
        }
        std::fs::remove_file(&p).unwrap();
        let e = inspect_file(&p).unwrap_err();
        assert_eq!(e.exit_code, 2);
        assert!(e.message.contains("cannot read"), "{e}");
    }
}
