//! `pto image build` writes an arena image to a file; `pto image inspect` validates one with the
//! device's own checks and prints its header, layout and fingerprint.

use std::io::Write;
use std::mem::size_of;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use pto_abi::callable::CHIP_CALLABLE_MAGIC;
use pto_abi::error::BootErrorCode;
use pto_abi::image::ImageHeader;
use pto_abi::runtime::SmHandle;
use pto_abi::{reserve_layout, ABI_FINGERPRINT, ABI_VERSION};
use pto_device::boot::audit::audit_pointers;
use pto_device::boot::validate::{validate_image, ValidatedImage};
use serde_json::json;
use zerocopy::FromBytes;

use super::layout::human_bytes;
use super::sizing_args::SizingArgs;
use super::{input, json as jsonout, CliError};
use crate::image::{build_runtime_image, nominal_regions, Image};

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
    /// Output file (`-` = stdout; the summary then goes to stderr).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `pto image inspect`.
#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// The image file (`-` = stdin). At most the size its header states is read.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print machine-readable JSON instead of a table.
    #[arg(long)]
    pub json: bool,
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
    input::write_output(&args.output, image.bytes())?;
    let size = image.bytes().len() as u64;
    let name = input::shown(&args.output, false);
    // With the image on stdout the summary goes to stderr.
    let mut stderr = std::io::stderr();
    let out: &mut dyn Write = if input::is_stdio(&args.output) { &mut stderr } else { out };
    if args.json {
        return jsonout::write(
            out,
            "image_build",
            json!({"file": name, "image_size": size, "abi_version": ABI_VERSION,
                   "abi_fingerprint": format!("{ABI_FINGERPRINT:#018x}")}),
        );
    }
    writeln!(
        out,
        "wrote {name} ({size} bytes, {}), ABI v{ABI_VERSION}, fingerprint {ABI_FINGERPRINT:#018x}",
        human_bytes(size)
    )?;
    Ok(())
}

/// What a file that is not an arena image is, by its first bytes, and the command that reads it.
pub fn other_format(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() >= 4 && u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == CHIP_CALLABLE_MAGIC {
        return Some("a ChipCallable blob, not an arena image; read it with `pto callable inspect`");
    }
    if bytes.starts_with(b"\x7fELF") {
        return Some(
            "an ELF file (a firmware or kernel binary), not an arena image; read firmware with `pto firmware inspect`",
        );
    }
    None
}

/// The image format for [`input::read_bounded`]: the header states the image size.
struct ImageFormat;

impl input::Bounded for ImageFormat {
    fn header(&self) -> u64 {
        size_of::<ImageHeader>() as u64
    }

    fn total(&self, header: &[u8]) -> Result<u64, String> {
        if let Some(what) = other_format(header) {
            return Err(format!("this is {what}"));
        }
        let h = match validate_image(header, u64::MAX) {
            // Only the header is here: a complaint about the missing body is expected.
            Err(e) if e.code == BootErrorCode::ImageTruncated && header.len() == size_of::<ImageHeader>() => {
                ImageHeader::read_from_prefix(header).map_err(|_| e.to_string())?.0
            }
            Err(e) => return Err(e.to_string()),
            Ok(v) => v.header,
        };
        // The stated size must be the one the stored sizing gives, so a corrupt size cannot make
        // the reader take more than the layout needs.
        let layout = reserve_layout(&h.layout.sizing).map_err(|e| format!("image header: sizing: {e}"))?;
        if layout.offsets.arena_size != h.image_size {
            return Err(format!(
                "BOOT_LAYOUT_MISMATCH: the header says image_size = {} but its sizing gives {}",
                h.image_size, layout.offsets.arena_size
            ));
        }
        Ok(h.image_size)
    }
}

/// Reads (bounded by its header) and validates an image file with the device's boot checks and
/// the pointer audit.
pub fn read_image(path: &Path) -> Result<ValidatedImage, CliError> {
    Ok(load(path)?.1)
}

/// Reads and validates an image file as [`read_image`] does and keeps its bytes, to upload them.
pub fn read_image_file(path: &Path) -> Result<Image, CliError> {
    let name = input::shown(path, true);
    let (bytes, _) = load(path)?;
    Image::from_bytes(bytes).map_err(|e| CliError::bad_input(format!("{name}: {e}")))
}

fn load(path: &Path) -> Result<(Vec<u8>, ValidatedImage), CliError> {
    let name = input::shown(path, true);
    let bytes = input::read_bounded(path, &ImageFormat)?;
    // A file has no region around it: only the bytes present bound the image.
    let v = validate_image(&bytes, u64::MAX).map_err(|e| CliError::bad_input(format!("{name}: {e}")))?;
    if bytes.len() as u64 != v.header.image_size {
        return Err(CliError::bad_input(format!(
            "{name}: file is {} bytes but the image header says image_size = {}",
            bytes.len(),
            v.header.image_size
        )));
    }
    let at = v.layout.offsets.sm_handle.offset as usize;
    let handle = bytes
        .get(at..at + size_of::<SmHandle>())
        .and_then(|b| SmHandle::read_from_bytes(b).ok())
        .ok_or_else(|| CliError::bad_input(format!("{name}: SM handle lies outside the file")))?;
    audit_pointers(&v.runtime_header, &handle, &v.built_regions())
        .map_err(|e| CliError::bad_input(format!("{name}: baked pointers: {e}")))?;
    Ok((bytes, v))
}

fn inspect(args: &InspectArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let path = input::shown(&args.file, true);
    let (_, v) = load(&args.file)?;
    let h = &v.header;
    let s = &v.layout.sizing;
    if args.json {
        let regions: Vec<_> = v
            .layout
            .offsets
            .regions()
            .iter()
            .map(|r| json!({"name": r.name, "offset": r.region.offset, "size": r.region.size}))
            .collect();
        return jsonout::write(
            out,
            "image",
            json!({
                "file": path,
                "valid": true,
                "abi_version": h.abi_version,
                "abi_fingerprint": format!("{:#018x}", h.abi_fingerprint),
                "image_size": h.image_size,
                "header_size": h.header_size,
                "runtime_header_offset": h.runtime_header_offset,
                "checksum": format!("{:#018x}", h.checksum),
                "checksum_verified": true,
                "built_bases": {"arena": h.built_arena_base.0, "sm": h.built_sm_base.0, "heap": h.built_heap_base.0},
                "sm_size": h.sm_size,
                "heap_size": h.heap_size,
                "sizing": {
                    "task_window_sizes": s.task_window_sizes,
                    "heap_sizes": s.heap_sizes,
                    "dep_pool_capacities": s.dep_pool_capacities,
                },
                "pointer_audit": "ok",
                "regions": regions,
            }),
        );
    }
    writeln!(out, "{path}: valid PTO arena image")?;
    writeln!(out, "ABI version       {}", h.abi_version)?;
    writeln!(out, "ABI fingerprint   {:#018x} (this build: {ABI_FINGERPRINT:#018x})", h.abi_fingerprint)?;
    writeln!(out, "image size        {} bytes ({})", h.image_size, human_bytes(h.image_size))?;
    writeln!(out, "header size       {} bytes", h.header_size)?;
    writeln!(out, "runtime header at {:#x}", h.runtime_header_offset)?;
    writeln!(out, "checksum          {:#018x} (verified over all {} bytes)", h.checksum, h.image_size)?;
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
        let args =
            ImageArgs { command: ImageCommand::Build(BuildArgs { sizing, output: path.to_path_buf(), json: false }) };
        let mut out = Vec::new();
        run(&args, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("fingerprint"));
    }

    fn inspect_file(path: &std::path::Path) -> Result<String, CliError> {
        let mut out = Vec::new();
        let file = path.to_path_buf();
        run(&ImageArgs { command: ImageCommand::Inspect(InspectArgs { file, json: false }) }, &mut out)?;
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
            ("truncated: file is", good[..good.len() / 2].to_vec()),
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
            ("refused without reading it", {
                let mut b = good.clone();
                b.extend_from_slice(&[0; 64]);
                b
            }),
            ("a ChipCallable blob, not an arena image; read it with `pto callable inspect`", {
                crate::examples::vector_example_callable().unwrap().as_bytes().to_vec()
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

    #[test]
    fn a_changed_byte_anywhere_is_refused_with_the_checksum_error() {
        let p = temp_path("sum");
        build_small(&p);
        let good = std::fs::read(&p).unwrap();
        let text = inspect_file(&p).unwrap();
        assert!(text.contains("checksum          0x") && text.contains("verified"), "{text}");
        let v = validate_image(&good, u64::MAX).unwrap();
        let rt = v.layout.offsets.runtime_header.offset as usize;
        // Header (a built base, the checksum itself, its padding), the runtime header, the arena
        // body, the trailing byte.
        let positions = [
            std::mem::offset_of!(ImageHeader, built_sm_base) + 2,
            pto_abi::image::IMAGE_CHECKSUM_OFFSET + 3,
            std::mem::offset_of!(ImageHeader, _pad_tail),
            rt + 200,
            good.len() / 2,
            good.len() - 1,
        ];
        for at in positions {
            let mut b = good.clone();
            b[at] ^= 0x04;
            std::fs::write(&p, &b).unwrap();
            let e = inspect_file(&p).unwrap_err();
            assert_eq!(e.exit_code, 2, "byte {at}: {e}");
            assert!(e.message.contains("BOOT_IMAGE_CHECKSUM_MISMATCH"), "byte {at}: {e}");
        }
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn dev_zero_is_refused_after_its_header_not_read_to_the_end() {
        if !std::path::Path::new("/dev/zero").exists() {
            println!("SKIP: /dev/zero is missing on this system");
            return;
        }
        let e = inspect_file(std::path::Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.exit_code, 2);
        assert!(e.message.contains("BOOT_BAD_MAGIC"), "{e}");
    }
}
