//! The onboard AICPU program (`libpto_aicpu.so`, built by `cargo aicpu-build`) as the host checks
//! it: an aarch64 ELF shared object that exports the two entries the onboard backend names
//! ([`AICPU_INIT_ENTRY`], [`AICPU_EXEC_ENTRY`]), imports no symbol (it calls nothing outside
//! itself), and carries a `.pto_abi` section in the firmware's format (an [`EmuAbiRecord`] with
//! this host's magic, version and fingerprint and no memory map, then the name table of the
//! orchestrations and kernels compiled in).

use std::fmt;
use std::path::{Path, PathBuf};

use object::{Object, ObjectKind, ObjectSymbol};
use pto_abi::emu::{EmuAbiError, EmuAbiRecord, EmuNameEntry, EmuNameKind, EMU_ABI_MAGIC};
use pto_abi::{ABI_FINGERPRINT, ABI_VERSION};

use super::{AICPU_EXEC_ENTRY, AICPU_INIT_ENTRY};
use crate::backend::emu::elf::{ElfError, ElfFile};
use crate::backend::emu::firmware::{read_abi_section, FirmwareError, FirmwareName};

/// Where `cargo aicpu-build` puts the shared object, relative to the workspace root.
pub const AICPU_SO_DEFAULT_PATH: &str = "target/aarch64-unknown-linux-gnu/release/libpto_aicpu.so";

/// The workspace's build of the AICPU program ([`AICPU_SO_DEFAULT_PATH`] under the workspace
/// root, found from this crate's manifest directory).
pub fn default_aicpu_so_path() -> PathBuf {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    host.parent().unwrap_or(host).join(AICPU_SO_DEFAULT_PATH)
}

/// True when `bytes` are an ELF shared object (`ET_DYN`), as the AICPU program is.
pub fn is_shared_object(bytes: &[u8]) -> bool {
    object::File::parse(bytes).is_ok_and(|f| f.format() == object::BinaryFormat::Elf && f.kind() == ObjectKind::Dynamic)
}

/// The AICPU shared object as read (not necessarily accepted: see [`AicpuSo::check`]).
#[derive(Clone, Debug)]
pub struct AicpuSo {
    elf: ElfFile,
    record: EmuAbiRecord,
    names: Vec<FirmwareName>,
    exports: Vec<String>,
    imports: Vec<String>,
}

impl AicpuSo {
    /// Reads the shared object at `path`: its dynamic symbols, `.pto_abi` record and name table.
    pub fn read(path: &Path) -> Result<AicpuSo, FirmwareError> {
        let elf = ElfFile::read(path)?;
        let path = elf.path().to_owned();
        let file = object::File::parse(elf.bytes())
            .map_err(|e| ElfError::NotElf { path: path.clone(), detail: e.to_string() })?;
        if file.kind() != ObjectKind::Dynamic {
            return Err(FirmwareError::Field {
                path,
                field: "e_type",
                value: 0,
                rule: format!("the AICPU program is a shared object (ET_DYN); this file is {:?}", file.kind()),
            });
        }
        let mut exports = Vec::new();
        let mut imports = Vec::new();
        for s in file.dynamic_symbols() {
            let Ok(name) = s.name() else { continue };
            if name.is_empty() {
                continue;
            }
            if s.is_undefined() {
                imports.push(name.to_owned());
            } else if s.is_global() {
                exports.push(name.to_owned());
            }
        }
        exports.sort();
        imports.sort();
        let (record, names) = read_abi_section(&elf)?;
        Ok(AicpuSo { elf, record, names, exports, imports })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.elf.path()
    }

    /// The `.pto_abi` record as found.
    pub fn record(&self) -> &EmuAbiRecord {
        &self.record
    }

    /// Defined global dynamic symbols, sorted.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// Undefined dynamic symbols (what the object would take from other libraries), sorted.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// The names of one kind, sorted.
    pub fn names_of(&self, kind: EmuNameKind) -> Vec<String> {
        let mut v: Vec<String> = self.names.iter().filter(|n| n.kind == kind).map(|n| n.name.clone()).collect();
        v.sort();
        v
    }

    /// The record's identity against this host's (magic, record size, version, fingerprint,
    /// name entry size), first mismatch first.
    pub fn abi_check(&self) -> Result<(), EmuAbiError> {
        let r = &self.record;
        if r.magic != EMU_ABI_MAGIC {
            return Err(EmuAbiError::BadMagic(r.magic));
        }
        if r.record_size as usize != size_of::<EmuAbiRecord>() {
            return Err(EmuAbiError::RecordSize(r.record_size));
        }
        if r.abi_version != ABI_VERSION {
            return Err(EmuAbiError::Version(r.abi_version));
        }
        if r.abi_fingerprint != ABI_FINGERPRINT {
            return Err(EmuAbiError::Fingerprint(r.abi_fingerprint));
        }
        if r.name_entry_size as usize != size_of::<EmuNameEntry>() {
            return Err(EmuAbiError::NameEntrySize(r.name_entry_size));
        }
        Ok(())
    }

    /// Checks that this host can launch the object: ABI identity, both entries exported, no
    /// symbol imported. The error says the first rule broken.
    pub fn check(&self) -> Result<(), String> {
        self.abi_check().map_err(|e| e.to_string())?;
        for entry in [AICPU_INIT_ENTRY, AICPU_EXEC_ENTRY] {
            if !self.exports.iter().any(|e| e == entry) {
                return Err(format!("the entry `{entry}` is not exported"));
            }
        }
        if !self.imports.is_empty() {
            return Err(format!(
                "it imports {} (the AICPU program must call nothing outside itself)",
                self.imports.join(", ")
            ));
        }
        Ok(())
    }

    /// What `pto firmware inspect` reports.
    pub fn report(&self) -> AicpuSoReport {
        AicpuSoReport {
            path: self.path().to_owned(),
            fingerprint: self.record.abi_fingerprint,
            abi_version: self.record.abi_version,
            refusal: self.check().err(),
            entries: [AICPU_INIT_ENTRY, AICPU_EXEC_ENTRY]
                .iter()
                .map(|e| (e.to_string(), self.exports.iter().any(|x| x == e)))
                .collect(),
            exports: self.exports.clone(),
            imports: self.imports.clone(),
            orchestrations: self.names_of(EmuNameKind::Orchestration),
            kernels: self.names_of(EmuNameKind::Kernel),
        }
    }
}

/// What `pto firmware inspect` prints about the AICPU shared object.
#[derive(Clone, Debug)]
pub struct AicpuSoReport {
    /// The file.
    pub path: PathBuf,
    /// Its ABI fingerprint.
    pub fingerprint: u64,
    /// Its ABI version.
    pub abi_version: u32,
    /// Why this host refuses it, if it does.
    pub refusal: Option<String>,
    /// Each entry the onboard backend calls and whether it is exported.
    pub entries: Vec<(String, bool)>,
    /// Every exported symbol.
    pub exports: Vec<String>,
    /// Every imported symbol.
    pub imports: Vec<String>,
    /// Orchestrations carried, sorted.
    pub orchestrations: Vec<String>,
    /// Kernels carried, sorted.
    pub kernels: Vec<String>,
}

impl AicpuSoReport {
    /// The report as JSON.
    #[cfg(feature = "bench")]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path.display().to_string(),
            "kind": "onboard AICPU shared object",
            "abi_fingerprint": format!("{:#018x}", self.fingerprint),
            "abi_version": self.abi_version,
            "host_abi_fingerprint": format!("{ABI_FINGERPRINT:#018x}"),
            "host_abi_version": ABI_VERSION,
            "matches_host": self.refusal.is_none(),
            "refusal": self.refusal,
            "entries": self.entries.iter().map(|(n, ok)| serde_json::json!({"name": n, "exported": ok}))
                .collect::<Vec<_>>(),
            "exports": self.exports,
            "imports": self.imports,
            "orchestrations": self.orchestrations,
            "kernels": self.kernels,
        })
    }
}

impl fmt::Display for AicpuSoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "onboard AICPU shared object {}", self.path.display())?;
        writeln!(f, "  ABI fingerprint {:#018x}, ABI version {}", self.fingerprint, self.abi_version)?;
        match &self.refusal {
            None => writeln!(f, "  matches this host (fingerprint {ABI_FINGERPRINT:#018x}, version {ABI_VERSION})")?,
            Some(why) => writeln!(f, "  does NOT match this host: {why}")?,
        }
        for (name, ok) in &self.entries {
            writeln!(f, "  entry {name}: {}", if *ok { "exported" } else { "MISSING" })?;
        }
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        writeln!(f, "  exports: {}", list(&self.exports))?;
        writeln!(f, "  imports: {}", list(&self.imports))?;
        writeln!(f, "  orchestrations ({}): {}", self.orchestrations.len(), list(&self.orchestrations))?;
        write!(f, "  kernels ({}): {}", self.kernels.len(), list(&self.kernels))
    }
}
