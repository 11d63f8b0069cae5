//! A firmware ELF as the host checks it before starting qemu: its `.pto_abi` record (magic, ABI
//! version, fingerprint, where the control block, log ring and device heap lie), the name table
//! of the orchestrations and kernels compiled into it, and what `pto firmware inspect` prints.

use std::fmt;
use std::path::{Path, PathBuf};

use pto_abi::emu::{
    EmuAbiError, EmuAbiRecord, EmuControlBlock, EmuLogHeader, EmuNameEntry, EmuNameKind, EMU_ABI_SECTION,
    EMU_GUEST_RAM_BASE,
};
use pto_abi::{ABI_FINGERPRINT, ABI_VERSION};
use zerocopy::FromBytes;

use super::elf::{ElfError, ElfFile, SectionInfo};

/// Environment variable naming the firmware ELF the emulated device boots.
pub const FIRMWARE_ENV: &str = "PTO_FIRMWARE";

/// Where the firmware build puts the ELF, relative to the workspace root.
pub const FIRMWARE_DEFAULT_PATH: &str = "target/aarch64-unknown-none/release/pto-firmware";

/// One orchestration or kernel the firmware carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareName {
    /// The name.
    pub name: String,
    /// Kernel or orchestration.
    pub kind: EmuNameKind,
    /// Its slot among the entries of its kind.
    pub index: u32,
}

/// Why a firmware ELF is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareError {
    /// The ELF itself is unusable.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// The `.pto_abi` section is shorter than the record.
    #[error("firmware `{path}`: section .pto_abi is {found} bytes, shorter than the {needed}-byte record")]
    ShortRecord {
        /// The file.
        path: PathBuf,
        /// Bytes found.
        found: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The record was built from another ABI.
    #[error("firmware `{path}` is refused: {error}")]
    Abi {
        /// The file.
        path: PathBuf,
        /// The first mismatch.
        error: EmuAbiError,
    },
    /// A field of the record is unusable.
    #[error("firmware `{path}`: .pto_abi field `{field}` = {value:#x}: {rule}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The rule it breaks.
        rule: String,
    },
    /// The name table is malformed.
    #[error("firmware `{path}`: name table entry {entry}: {detail}")]
    NameTable {
        /// The file.
        path: PathBuf,
        /// Entry index.
        entry: usize,
        /// What is wrong.
        detail: String,
    },
}

/// A firmware ELF whose `.pto_abi` record was read (not necessarily accepted: see
/// [`Firmware::check`]).
#[derive(Clone, Debug)]
pub struct Firmware {
    elf: ElfFile,
    record: EmuAbiRecord,
    names: Vec<FirmwareName>,
}

impl Firmware {
    /// The firmware ELF to boot: `$PTO_FIRMWARE`, else [`FIRMWARE_DEFAULT_PATH`] under the
    /// workspace root (found from this crate's manifest directory).
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os(FIRMWARE_ENV) {
            return PathBuf::from(p);
        }
        let host = Path::new(env!("CARGO_MANIFEST_DIR"));
        host.parent().unwrap_or(host).join(FIRMWARE_DEFAULT_PATH)
    }

    /// Reads the ELF at `path` and its `.pto_abi` record and name table; refuses a file whose
    /// record or name table cannot be read, but not (yet) one built from another ABI.
    pub fn read(path: &Path) -> Result<Firmware, FirmwareError> {
        Self::from_elf(ElfFile::read(path)?)
    }

    /// As [`Firmware::read`], from ELF bytes already in memory.
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Firmware, FirmwareError> {
        Self::from_elf(ElfFile::parse(path, bytes)?)
    }

    fn from_elf(elf: ElfFile) -> Result<Firmware, FirmwareError> {
        let (record, names) = read_abi_section(&elf)?;
        Ok(Firmware { elf, record, names })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.elf.path()
    }

    /// The ELF.
    pub fn elf(&self) -> &ElfFile {
        &self.elf
    }

    /// The `.pto_abi` record as found.
    pub fn record(&self) -> &EmuAbiRecord {
        &self.record
    }

    /// The name table.
    pub fn names(&self) -> &[FirmwareName] {
        &self.names
    }

    /// The names of one kind, sorted.
    pub fn names_of(&self, kind: EmuNameKind) -> Vec<String> {
        let mut v: Vec<String> = self.names.iter().filter(|n| n.kind == kind).map(|n| n.name.clone()).collect();
        v.sort();
        v
    }

    /// True when the firmware carries `name` of `kind`.
    pub fn carries(&self, kind: EmuNameKind, name: &str) -> bool {
        self.names.iter().any(|n| n.kind == kind && n.name == name)
    }

    /// Checks that the firmware was built from this host's ABI and that its record is usable
    /// with `ram_bytes` of guest RAM: the record's own check (magic, size, version, fingerprint …)
    /// first, then every address it names.
    pub fn check(&self, ram_bytes: u64) -> Result<(), FirmwareError> {
        let path = || self.path().to_owned();
        self.record.check().map_err(|error| FirmwareError::Abi { path: path(), error })?;
        let r = &self.record;
        let field =
            |field: &'static str, value: u64, rule: String| FirmwareError::Field { path: path(), field, value, rule };
        let ram_end = EMU_GUEST_RAM_BASE + ram_bytes;
        if r.ram_base != EMU_GUEST_RAM_BASE {
            return Err(field(
                "ram_base",
                r.ram_base,
                format!("the virt machine's RAM starts at {EMU_GUEST_RAM_BASE:#x}"),
            ));
        }
        if r.min_ram_bytes > ram_bytes {
            return Err(field(
                "min_ram_bytes",
                r.min_ram_bytes,
                format!("the firmware needs more guest RAM than the {ram_bytes} bytes (-m) this device has"),
            ));
        }
        let inside = |name: &'static str, addr: u64, len: u64| -> Result<(), FirmwareError> {
            match addr.checked_add(len) {
                Some(end) if addr >= EMU_GUEST_RAM_BASE && end <= ram_end => Ok(()),
                _ => Err(field(
                    name,
                    addr,
                    format!("{addr:#x}+{len:#x} does not lie in guest RAM {EMU_GUEST_RAM_BASE:#x}..{ram_end:#x}"),
                )),
            }
        };
        let cb = size_of::<EmuControlBlock>() as u64;
        if r.control_block_size < cb || r.control_block.get() % 64 != 0 {
            return Err(field(
                "control_block_size",
                r.control_block_size,
                format!("the control block needs {cb} bytes on a 64-byte boundary (at {})", r.control_block),
            ));
        }
        inside("control_block", r.control_block.get(), r.control_block_size)?;
        let lh = size_of::<EmuLogHeader>() as u64;
        if r.log_ring_size <= lh || r.log_ring.get() % 64 != 0 {
            return Err(field(
                "log_ring_size",
                r.log_ring_size,
                format!("the log ring needs more than its {lh}-byte header on a 64-byte boundary (at {})", r.log_ring),
            ));
        }
        inside("log_ring", r.log_ring.get(), r.log_ring_size)?;
        inside("heap_base", r.heap_base.get(), 0)?;
        if self.heap_end(ram_bytes) <= r.heap_base.get() {
            return Err(field("heap_base", r.heap_base.get(), "leaves no device heap below mapped_ram_end".into()));
        }
        for (name, addr, len) in [
            ("control_block", r.control_block.get(), r.control_block_size),
            ("log_ring", r.log_ring.get(), r.log_ring_size),
        ] {
            if addr.saturating_add(len) > r.heap_base.get() {
                return Err(field(name, addr, format!("overlaps the device heap starting at {}", r.heap_base)));
            }
        }
        Ok(())
    }

    /// End of the device heap with `ram_bytes` of guest RAM: the end of RAM, capped at the
    /// record's `mapped_ram_end`.
    pub fn heap_end(&self, ram_bytes: u64) -> u64 {
        (EMU_GUEST_RAM_BASE + ram_bytes).min(self.record.mapped_ram_end)
    }

    /// What `pto firmware inspect` reports.
    pub fn report(&self) -> FirmwareReport {
        let r = &self.record;
        FirmwareReport {
            path: self.path().to_owned(),
            fingerprint: r.abi_fingerprint,
            abi_version: r.abi_version,
            host_fingerprint: ABI_FINGERPRINT,
            host_abi_version: ABI_VERSION,
            refusal: self.record.check().err().map(|e| e.to_string()),
            entry: self.elf.entry(),
            sections: self
                .elf
                .sections()
                .iter()
                .filter(|s| s.allocated || s.name == EMU_ABI_SECTION)
                .cloned()
                .collect(),
            record: *r,
            orchestrations: self.names_of(EmuNameKind::Orchestration),
            kernels: self.names_of(EmuNameKind::Kernel),
        }
    }
}

/// Reads the `.pto_abi` section of `elf`: its record, and its name table when the record's entry
/// size is this host's (otherwise the names cannot be read with this layout, and the record's
/// check refuses the file).
pub(crate) fn read_abi_section(elf: &ElfFile) -> Result<(EmuAbiRecord, Vec<FirmwareName>), FirmwareError> {
    let path = elf.path();
    let section = elf.section_data(EMU_ABI_SECTION)?;
    let needed = size_of::<EmuAbiRecord>();
    let Ok((record, _)) = EmuAbiRecord::read_from_prefix(section) else {
        return Err(FirmwareError::ShortRecord { path: path.to_owned(), found: section.len(), needed });
    };
    let names = if record.name_entry_size as usize == size_of::<EmuNameEntry>() {
        read_names(path, section, &record)?
    } else {
        Vec::new()
    };
    Ok((record, names))
}

fn read_names(path: &Path, section: &[u8], r: &EmuAbiRecord) -> Result<Vec<FirmwareName>, FirmwareError> {
    let entry = size_of::<EmuNameEntry>();
    let start = r.names_offset as usize;
    let bad = |i: usize, detail: String| FirmwareError::NameTable { path: path.to_owned(), entry: i, detail };
    let end = (r.name_count as usize).checked_mul(entry).and_then(|n| n.checked_add(start));
    let Some(table) = end.and_then(|end| section.get(start..end)) else {
        return Err(bad(
            0,
            format!(
                "{} entries of {entry} bytes at offset {start} do not fit the {}-byte .pto_abi section",
                r.name_count,
                section.len()
            ),
        ));
    };
    let mut names: Vec<FirmwareName> = Vec::with_capacity(r.name_count as usize);
    for (i, chunk) in table.chunks_exact(entry).enumerate() {
        let e = EmuNameEntry::read_from_bytes(chunk).map_err(|_| bad(i, "cannot be read".into()))?;
        let kind = EmuNameKind::try_from(e.kind)
            .map_err(|k| bad(i, format!("kind {k} is neither kernel nor orchestration")))?;
        let name = std::str::from_utf8(e.name_bytes()).map_err(|_| bad(i, "the name is not UTF-8".into()))?;
        if name.is_empty() {
            return Err(bad(i, "the name is empty".into()));
        }
        if names.iter().any(|n| n.kind == kind && n.name == name) {
            return Err(bad(i, format!("{} `{name}` is listed twice", kind.name())));
        }
        names.push(FirmwareName { name: name.to_owned(), kind, index: e.index });
    }
    Ok(names)
}

/// What `pto firmware inspect` prints about one firmware ELF.
#[derive(Clone, Debug)]
pub struct FirmwareReport {
    /// The file.
    pub path: PathBuf,
    /// The firmware's ABI fingerprint.
    pub fingerprint: u64,
    /// The firmware's ABI version.
    pub abi_version: u32,
    /// This host's fingerprint.
    pub host_fingerprint: u64,
    /// This host's ABI version.
    pub host_abi_version: u32,
    /// Why this host refuses the firmware, if it does.
    pub refusal: Option<String>,
    /// Entry point.
    pub entry: u64,
    /// Loaded sections (and `.pto_abi`).
    pub sections: Vec<SectionInfo>,
    /// The whole record.
    pub record: EmuAbiRecord,
    /// Orchestrations carried, sorted.
    pub orchestrations: Vec<String>,
    /// Kernels carried, sorted.
    pub kernels: Vec<String>,
}

impl FirmwareReport {
    /// The report as JSON.
    #[cfg(feature = "bench")]
    pub fn to_json(&self) -> serde_json::Value {
        let r = &self.record;
        serde_json::json!({
            "path": self.path.display().to_string(),
            "abi_fingerprint": format!("{:#018x}", self.fingerprint),
            "abi_version": self.abi_version,
            "host_abi_fingerprint": format!("{:#018x}", self.host_fingerprint),
            "host_abi_version": self.host_abi_version,
            "matches_host": self.refusal.is_none(),
            "refusal": self.refusal,
            "entry": format!("{:#x}", self.entry),
            "sections": self.sections.iter().map(|s| serde_json::json!({
                "name": s.name, "address": format!("{:#x}", s.address), "size": s.size,
            })).collect::<Vec<_>>(),
            "control_block": r.control_block.to_string(),
            "log_ring": r.log_ring.to_string(),
            "log_ring_size": r.log_ring_size,
            "heap_base": r.heap_base.to_string(),
            "mapped_ram_end": format!("{:#x}", r.mapped_ram_end),
            "min_ram_bytes": r.min_ram_bytes,
            "vcpus": [r.min_vcpus, r.max_vcpus],
            "launch_slots": r.launch_slots,
            "orchestrations": self.orchestrations,
            "kernels": self.kernels,
        })
    }
}

impl fmt::Display for FirmwareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.record;
        writeln!(f, "firmware {}", self.path.display())?;
        writeln!(f, "  ABI fingerprint {:#018x}, ABI version {}", self.fingerprint, self.abi_version)?;
        match &self.refusal {
            None => writeln!(
                f,
                "  matches this host (fingerprint {:#018x}, version {})",
                self.host_fingerprint, self.host_abi_version
            )?,
            Some(why) => writeln!(f, "  does NOT match this host: {why}")?,
        }
        writeln!(f, "  entry point {:#x}", self.entry)?;
        writeln!(f, "  sections:")?;
        for s in &self.sections {
            writeln!(f, "    {:<16} {:>#12x} {:>10} bytes", s.name, s.address, s.size)?;
        }
        writeln!(
            f,
            "  control block {}, log ring {} ({} bytes), device heap from {} to at most {:#x}",
            r.control_block, r.log_ring, r.log_ring_size, r.heap_base, r.mapped_ram_end
        )?;
        writeln!(
            f,
            "  needs {} MiB of guest RAM and {}..={} vCPUs; {} launch slots",
            r.min_ram_bytes >> 20,
            r.min_vcpus,
            r.max_vcpus,
            r.launch_slots
        )?;
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        writeln!(f, "  orchestrations ({}): {}", self.orchestrations.len(), list(&self.orchestrations))?;
        write!(f, "  kernels ({}): {}", self.kernels.len(), list(&self.kernels))
    }
}
