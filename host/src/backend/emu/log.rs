//! Decoding the firmware's defmt log on the host, with the format-string table of the same ELF
//! whose `.pto_abi` record the host checked.
//!
//! The firmware writes whole defmt frames into its log ring; the host drains the bytes and feeds
//! them here. rzCOBS-encoded frames end with a zero byte, so a frame the ring dropped never
//! corrupts the next one; raw frames are decoded back to back.

#[cfg(feature = "device-log")]
use std::collections::BTreeMap;
use std::fmt;

#[cfg(feature = "device-log")]
use defmt_decoder::{DecodeError, Encoding, Location, Table};

/// One decoded log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// `trace` … `error`, or `None` for a `println`.
    pub level: Option<&'static str>,
    /// The firmware's timestamp, formatted as the firmware declared it.
    pub timestamp: Option<String>,
    /// The message.
    pub message: String,
    /// `file:line` of the log call (needs debug info in the firmware).
    pub location: Option<String>,
}

impl LogLine {
    /// True for warnings and errors: the lines every run shows.
    pub fn is_warning_or_error(&self) -> bool {
        matches!(self.level, Some("warn" | "error"))
    }

    /// `LEVEL message`, without timestamp or location.
    pub fn short(&self) -> String {
        format!("{} {}", self.level.unwrap_or("print").to_uppercase(), self.message)
    }
}

impl fmt::Display for LogLine {
    /// `[timestamp] LEVEL message (file:line)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.timestamp {
            write!(f, "[{t}] ")?;
        }
        write!(f, "{:<5} {}", self.level.unwrap_or("print").to_uppercase(), self.message)?;
        if let Some(l) = &self.location {
            write!(f, " ({l})")?;
        }
        Ok(())
    }
}

/// A defmt decoder for one firmware ELF.
#[cfg(feature = "device-log")]
pub struct LogDecoder {
    table: Table,
    locations: BTreeMap<u64, Location>,
    pending: Vec<u8>,
    malformed: u64,
}

#[cfg(feature = "device-log")]
impl fmt::Debug for LogDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogDecoder")
            .field("locations", &self.locations.len())
            .field("pending", &self.pending.len())
            .field("malformed", &self.malformed)
            .finish()
    }
}

#[cfg(feature = "device-log")]
impl LogDecoder {
    /// The decoder of `elf`, or `None` when the ELF carries no defmt table (a firmware built
    /// without logging).
    pub fn from_elf(elf: &[u8]) -> Result<Option<LogDecoder>, String> {
        let table = match Table::parse(elf) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(None),
            Err(e) => return Err(format!("the firmware's defmt table cannot be read: {e}")),
        };
        // Locations need debug info; a firmware without it still decodes, just without file:line.
        let locations = table.get_locations(elf).unwrap_or_default();
        Ok(Some(LogDecoder { table, locations, pending: Vec::new(), malformed: 0 }))
    }

    /// Frames that could not be decoded so far.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Forgets a partial frame (after the ring reported dropped bytes, the rest of a frame whose
    /// start was lost is garbage).
    pub fn resync(&mut self) {
        if !self.pending.is_empty() {
            self.pending.clear();
            self.malformed += 1;
        }
    }

    /// Decodes `bytes` (following the bytes fed before) into whole lines; a trailing partial
    /// frame waits for the next call.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<LogLine> {
        self.pending.extend_from_slice(bytes);
        match self.table.encoding() {
            Encoding::Rzcobs => self.feed_rzcobs(),
            // Raw and any encoding a newer decoder adds: frames back to back.
            _ => self.feed_raw(),
        }
    }

    fn line(&self, frame: &defmt_decoder::Frame<'_>) -> LogLine {
        LogLine {
            level: frame.level().map(|l| l.as_str()),
            timestamp: frame.display_timestamp().map(|t| t.to_string()),
            message: frame.display_message().to_string(),
            location: self.locations.get(&frame.index()).map(|l| format!("{}:{}", l.file.display(), l.line)),
        }
    }

    fn feed_rzcobs(&mut self) -> Vec<LogLine> {
        let Some(last_zero) = self.pending.iter().rposition(|&b| b == 0) else { return Vec::new() };
        let complete: Vec<u8> = self.pending.drain(..=last_zero).collect();
        let mut lines = Vec::new();
        let mut malformed = 0;
        {
            let mut d = self.table.new_stream_decoder();
            d.received(&complete);
            loop {
                match d.decode() {
                    Ok(frame) => lines.push(self.line(&frame)),
                    Err(DecodeError::UnexpectedEof) => break,
                    Err(DecodeError::Malformed) => malformed += 1,
                }
            }
        }
        self.malformed += malformed;
        lines
    }

    fn feed_raw(&mut self) -> Vec<LogLine> {
        let mut lines = Vec::new();
        let mut used = 0;
        loop {
            match self.table.decode(&self.pending[used..]) {
                Ok((frame, n)) => {
                    lines.push(self.line(&frame));
                    used += n;
                }
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) => {
                    // Raw frames have no delimiter: nothing after a bad frame can be trusted.
                    self.malformed += 1;
                    used = self.pending.len();
                    break;
                }
            }
        }
        self.pending.drain(..used);
        lines
    }
}

/// Without the `device-log` feature pto-host has no defmt decoder (and none of its dependencies):
/// no decoder can exist, so the backend counts the log bytes it drains as lost lines instead of
/// decoding them.
#[cfg(not(feature = "device-log"))]
#[derive(Debug)]
pub enum LogDecoder {}

#[cfg(not(feature = "device-log"))]
impl LogDecoder {
    /// Always `None`: this build cannot decode defmt frames.
    pub fn from_elf(_elf: &[u8]) -> Result<Option<LogDecoder>, String> {
        Ok(None)
    }

    /// Frames that could not be decoded so far.
    pub fn malformed(&self) -> u64 {
        match *self {}
    }

    /// Forgets a partial frame.
    pub fn resync(&mut self) {
        match *self {}
    }

    /// Decodes `bytes` into whole lines.
    pub fn feed(&mut self, _bytes: &[u8]) -> Vec<LogLine> {
        match *self {}
    }
}
