//! Reading the firmware ELF on the host (with the `object` crate): entry point, sections,
//! loadable segments and the bytes the image places at a guest address. Nothing here trusts the
//! file: every range is checked and every failure names what is wrong.

use std::path::{Path, PathBuf};

use object::{Architecture, Object, ObjectSection, ObjectSegment, ObjectSymbol, SectionKind, SymbolKind};

/// One section of the ELF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    /// Section name.
    pub name: String,
    /// Guest address (0 for sections that are not loaded).
    pub address: u64,
    /// Bytes.
    pub size: u64,
    /// True when the section occupies guest memory at run time.
    pub allocated: bool,
}

/// A loadable segment: `file_bytes` at `address`, zero-filled up to `mem_size`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    address: u64,
    mem_size: u64,
    file_range: (usize, usize),
}

/// A firmware ELF file read into memory.
#[derive(Clone, Debug)]
pub struct ElfFile {
    path: PathBuf,
    bytes: Vec<u8>,
    entry: u64,
    sections: Vec<SectionInfo>,
    segments: Vec<Segment>,
    /// Function symbols as (address, size, name), sorted by address.
    functions: Vec<(u64, u64, String)>,
}

/// Why an ELF file cannot be used as firmware.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The file could not be read.
    #[error("cannot read firmware `{path}`: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        detail: String,
    },
    /// Not a parsable object file.
    #[error("firmware `{path}` is not an ELF file: {detail}")]
    NotElf {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        detail: String,
    },
    /// An ELF for another machine.
    #[error("firmware `{path}` is built for {found}; the emulated device needs a 64-bit little-endian AArch64 ELF")]
    WrongMachine {
        /// The file.
        path: PathBuf,
        /// What it is built for.
        found: String,
    },
    /// A required section is missing.
    #[error("firmware `{path}` has no `{section}` section")]
    MissingSection {
        /// The file.
        path: PathBuf,
        /// The section.
        section: String,
    },
    /// A section has the wrong size.
    #[error("firmware `{path}`: section `{section}` is {found} bytes; this host expects {expected}")]
    SectionSize {
        /// The file.
        path: PathBuf,
        /// The section.
        section: String,
        /// Bytes this host expects.
        expected: u64,
        /// Bytes found.
        found: u64,
    },
    /// A guest range the image does not initialise.
    #[error("firmware `{path}`: guest range {addr:#x}+{len:#x} ({what}) is not inside the image's loaded bytes")]
    NotInImage {
        /// The file.
        path: PathBuf,
        /// What was looked up.
        what: String,
        /// Start of the range.
        addr: u64,
        /// Its length.
        len: u64,
    },
}

impl ElfFile {
    /// Reads and parses the ELF at `path`.
    pub fn read(path: &Path) -> Result<ElfFile, ElfError> {
        let bytes = std::fs::read(path).map_err(|e| ElfError::Read { path: path.to_owned(), detail: e.to_string() })?;
        Self::parse(path, bytes)
    }

    /// Parses `bytes` as the ELF named `path`.
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<ElfFile, ElfError> {
        let path = path.to_owned();
        let file = object::File::parse(bytes.as_slice())
            .map_err(|e| ElfError::NotElf { path: path.clone(), detail: e.to_string() })?;
        if file.format() != object::BinaryFormat::Elf
            || file.architecture() != Architecture::Aarch64
            || !file.is_64()
            || !file.is_little_endian()
        {
            let found = format!(
                "{:?} {:?}, {}-bit {}-endian",
                file.format(),
                file.architecture(),
                if file.is_64() { 64 } else { 32 },
                if file.is_little_endian() { "little" } else { "big" }
            );
            return Err(ElfError::WrongMachine { path, found });
        }
        let sections = file
            .sections()
            .filter_map(|s| {
                let name = s.name().ok()?.to_owned();
                if name.is_empty() {
                    return None;
                }
                let allocated = !matches!(
                    s.kind(),
                    SectionKind::Metadata | SectionKind::Debug | SectionKind::Other | SectionKind::Note
                ) && s.address() != 0;
                Some(SectionInfo { name, address: s.address(), size: s.size(), allocated })
            })
            .collect();
        let base = bytes.as_ptr() as usize;
        let segments = file
            .segments()
            .filter_map(|seg| {
                let data = seg.data().ok()?;
                let start = (data.as_ptr() as usize).checked_sub(base)?;
                Some(Segment { address: seg.address(), mem_size: seg.size(), file_range: (start, start + data.len()) })
            })
            .collect();
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_owned())))
            .collect();
        functions.sort();
        let entry = file.entry();
        Ok(ElfFile { path, bytes, entry, sections, segments, functions })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The entry point (a guest address).
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// Every named section.
    pub fn sections(&self) -> &[SectionInfo] {
        &self.sections
    }

    /// The contents of the section named `name`.
    pub fn section_data(&self, name: &str) -> Result<&[u8], ElfError> {
        let missing = || ElfError::MissingSection { path: self.path.clone(), section: name.to_owned() };
        let file = object::File::parse(self.bytes.as_slice()).map_err(|_| missing())?;
        let s = file.section_by_name(name).ok_or_else(missing)?;
        s.data().map_err(|_| missing())
    }

    /// Where the contents of the section named `name` lie in the file, as (offset, length).
    pub fn section_file_range(&self, name: &str) -> Option<(usize, usize)> {
        let file = object::File::parse(self.bytes.as_slice()).ok()?;
        let (off, len) = file.section_by_name(name)?.file_range()?;
        Some((usize::try_from(off).ok()?, usize::try_from(len).ok()?))
    }

    /// The bytes the image places at `[addr, addr + len)` (zero where a segment's memory size goes
    /// beyond its file bytes).
    pub fn read_guest(&self, addr: u64, len: u64, what: &str) -> Result<Vec<u8>, ElfError> {
        let err = || ElfError::NotInImage { path: self.path.clone(), what: what.to_owned(), addr, len };
        let end = addr.checked_add(len).ok_or_else(err)?;
        let seg = self
            .segments
            .iter()
            .find(|s| addr >= s.address && s.address.checked_add(s.mem_size).is_some_and(|e| end <= e))
            .ok_or_else(err)?;
        let mut out = vec![0u8; len as usize];
        let off = (addr - seg.address) as usize;
        let (fs, fe) = seg.file_range;
        let file_len = fe - fs;
        if off < file_len {
            let n = (file_len - off).min(out.len());
            out[..n].copy_from_slice(&self.bytes[fs + off..fs + off + n]);
        }
        Ok(out)
    }

    /// The function containing `addr` and the offset into it, from the symbol table.
    pub fn function_at(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.functions.partition_point(|f| f.0 <= addr).checked_sub(1)?;
        let (start, size, name) = &self.functions[i];
        (addr < start + (*size).max(1)).then(|| (name.as_str(), addr - start))
    }

    /// Lowest and highest guest address any loadable segment occupies.
    pub fn loaded_span(&self) -> Option<(u64, u64)> {
        let lo = self.segments.iter().filter(|s| s.mem_size > 0).map(|s| s.address).min()?;
        let hi = self.segments.iter().filter(|s| s.mem_size > 0).map(|s| s.address + s.mem_size).max()?;
        Some((lo, hi))
    }
}
