//! Input handling shared by the subcommands: checked counts and durations, files read with a bound
//! taken from their header, and `-` for stdin or stdout.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use super::CliError;

/// `-` names stdin (for an input) or stdout (for an output).
pub const STDIO: &str = "-";

/// True when `path` is `-`.
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == STDIO
}

/// How a file argument is shown in messages: `<stdin>` for `-`, else the path.
pub fn shown(path: &Path, stdin: bool) -> String {
    match (is_stdio(path), stdin) {
        (true, true) => "<stdin>".to_string(),
        (true, false) => "<stdout>".to_string(),
        _ => path.display().to_string(),
    }
}

fn reject_negative(text: &str) -> Result<&str, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("`{text}` must not be negative"));
    }
    Ok(t)
}

/// Parses a decimal count in `min ..= max`; negative values get "must not be negative".
pub fn parse_count(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = reject_negative(text)?;
    let n: u64 = t.parse().map_err(|_| {
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            format!("`{text}` does not fit in 64 bits; must be in {min} ..= {max}")
        } else {
            format!("`{text}` is not a whole number")
        }
    })?;
    if n < min || n > max {
        let nearest = n.clamp(min, max);
        return Err(format!("{n} is outside {min} ..= {max}; nearest legal value: {nearest}"));
    }
    Ok(n)
}

/// A clap value parser for a count of type `T` in `min ..= max` (see [`parse_count`]).
pub fn count<T: TryFrom<u64> + Clone + Send + Sync + 'static>(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let n = parse_count(text, min, max)?;
        T::try_from(n).map_err(|_| format!("{n} does not fit the flag's type"))
    }
}

/// Nanoseconds per unit of the duration suffixes `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`.
const UNITS: [(&str, u64); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// A duration in the largest whole unit that states it exactly (`1h`, `500ms`, `64ns`).
pub fn format_ns(ns: u64) -> String {
    for (unit, per) in [("h", 3_600_000_000_000u64), ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
        if ns >= per && ns % per == 0 {
            return format!("{}{unit}", ns / per);
        }
    }
    format!("{ns}ns")
}

/// Parses a duration: a whole number with a unit (`500ms`, `2s`, `250us`, `1m`), or a bare number
/// of `bare_unit_ns` nanoseconds. Checked arithmetic; the result must lie in `min_ns ..= max_ns`.
pub fn parse_duration_ns(text: &str, bare_unit_ns: u64, min_ns: u64, max_ns: u64) -> Result<u64, String> {
    let t = reject_negative(text)?;
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(digits_end);
    let per = match unit.trim() {
        "" => bare_unit_ns,
        u => UNITS.iter().find(|(name, _)| *name == u).map(|(_, per)| *per).ok_or_else(|| {
            format!(
                "`{text}`: unknown unit `{u}`; use ns, us, ms, s, m or h (a bare number is {})",
                format_ns(bare_unit_ns)
            )
        })?,
    };
    let range = format!("{} ..= {}", format_ns(min_ns), format_ns(max_ns));
    let n: u64 = digits.parse().map_err(|_| {
        if digits.is_empty() {
            format!("`{text}` is not a duration (e.g. 500ms, 2s)")
        } else {
            format!("`{text}` does not fit in 64 bits; must be in {range}")
        }
    })?;
    let ns = n.checked_mul(per).ok_or_else(|| {
        format!("`{text}` overflows 64-bit nanoseconds; must be in {range}; nearest legal value: {}", format_ns(max_ns))
    })?;
    if ns < min_ns || ns > max_ns {
        return Err(format!(
            "`{text}` is outside {range}; nearest legal value: {}",
            format_ns(ns.clamp(min_ns, max_ns))
        ));
    }
    Ok(ns)
}

/// A readable input: a file, or stdin for `-`.
fn open_input(path: &Path) -> Result<(Box<dyn Read>, Option<u64>), CliError> {
    if is_stdio(path) {
        return Ok((Box::new(io::stdin().lock()), None));
    }
    let f = File::open(path).map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", path.display())))?;
    let meta = f.metadata().map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", path.display())))?;
    let len = meta.is_file().then_some(meta.len());
    Ok((Box::new(f), len))
}

/// Reads until `buf` holds `want` bytes or the input ends.
fn fill(reader: &mut dyn Read, buf: &mut Vec<u8>, want: u64, name: &str) -> Result<(), CliError> {
    let have = buf.len() as u64;
    if want > have {
        reader
            .take(want - have)
            .read_to_end(buf)
            .map_err(|e| CliError::bad_input(format!("cannot read {name}: {e}")))?;
    }
    Ok(())
}

/// What a file format tells a bounded reader: how many bytes the whole file must have, once the
/// first `header` bytes are known.
pub trait Bounded {
    /// Bytes to read before [`Bounded::total`] can answer.
    fn header(&self) -> u64;
    /// The whole file's size as the header states it, or the error that the header alone shows.
    fn total(&self, header: &[u8]) -> Result<u64, String>;
}

/// Reads `source` (a path or `-`) with at most the size its header states plus one byte (to see
/// trailing data). A regular file whose length differs from the stated size is refused before
/// its body is read.
pub fn read_bounded(path: &Path, format: &dyn Bounded) -> Result<Vec<u8>, CliError> {
    let name = shown(path, true);
    let (mut reader, file_len) = open_input(path)?;
    read_bounded_from(&mut *reader, file_len, &name, format)
}

/// [`read_bounded`] over any reader (`file_len`: the length when it is a regular file).
pub fn read_bounded_from(
    reader: &mut dyn Read,
    file_len: Option<u64>,
    name: &str,
    format: &dyn Bounded,
) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    fill(reader, &mut buf, format.header(), name)?;
    let total = format.total(&buf).map_err(|e| CliError::bad_input(format!("{name}: {e}")))?;
    if let Some(len) = file_len {
        if len != total {
            let what = if len < total { "truncated: " } else { "" };
            return Err(CliError::bad_input(format!(
                "{name}: {what}file is {len} bytes but its header says {total} bytes; refused without reading it"
            )));
        }
    }
    fill(reader, &mut buf, total.saturating_add(1), name)?;
    let got = buf.len() as u64;
    if got > total {
        return Err(CliError::bad_input(format!("{name}: trailing data after the {total} bytes its header states")));
    }
    if got < total {
        return Err(CliError::bad_input(format!(
            "{name}: truncated: {got} bytes present but its header says {total} bytes"
        )));
    }
    Ok(buf)
}

/// Writes `bytes` to `path`, or to stdout for `-`. A file that cannot be written is bad input
/// (exit 2), like a file that cannot be read.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    if is_stdio(path) {
        let mut out = io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|e| CliError::bad_input(format!("cannot write {}: {e}", path.display())))
}

/// Reads a whole small file (or stdin for `-`) of at most `max` bytes.
pub fn read_small(path: &Path, max: u64) -> Result<Vec<u8>, CliError> {
    let name = shown(path, true);
    let (reader, file_len) = open_input(path)?;
    if let Some(len) = file_len.filter(|l| *l > max) {
        return Err(CliError::bad_input(format!("{name}: {len} bytes; at most {max} bytes are read")));
    }
    let mut buf = Vec::new();
    reader.take(max + 1).read_to_end(&mut buf).map_err(|e| CliError::bad_input(format!("cannot read {name}: {e}")))?;
    if buf.len() as u64 > max {
        return Err(CliError::bad_input(format!("{name}: more than {max} bytes; at most {max} bytes are read")));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_are_range_checked_without_overflow() {
        let ms = 1_000_000;
        let (min, max) = (ms, 3_600_000 * ms);
        assert_eq!(parse_duration_ns("500", ms, min, max), Ok(500 * ms));
        assert_eq!(parse_duration_ns("500ms", ms, min, max), Ok(500 * ms));
        assert_eq!(parse_duration_ns("2s", ms, min, max), Ok(2_000 * ms));
        assert_eq!(parse_duration_ns("1500us", ms, min, max), Ok(1_500_000));
        assert_eq!(parse_duration_ns("1h", ms, min, max), Ok(max));
        let e = parse_duration_ns("18446744073709551615", ms, min, max).unwrap_err();
        assert!(e.contains("overflows 64-bit nanoseconds") && e.contains("nearest legal value: 1h"), "{e}");
        let e = parse_duration_ns("76480200929599801", ms, min, max).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
        let e = parse_duration_ns("2h", ms, min, max).unwrap_err();
        assert!(e.contains("outside 1ms ..= 1h") && e.contains("nearest legal value: 1h"), "{e}");
        assert!(parse_duration_ns("0", ms, min, max).unwrap_err().contains("nearest legal value: 1ms"));
        assert!(parse_duration_ns("-5", ms, min, max).unwrap_err().contains("must not be negative"));
        assert!(parse_duration_ns("5 parsecs", ms, min, max).unwrap_err().contains("unknown unit"));
        assert!(parse_duration_ns("ms", ms, min, max).unwrap_err().contains("not a duration"));
        assert!(parse_duration_ns("99999999999999999999999", ms, min, max).unwrap_err().contains("64 bits"));
    }

    #[test]
    fn counts_refuse_negatives_and_name_the_nearest_legal_value() {
        assert_eq!(parse_count("3", 2, 4), Ok(3));
        assert!(parse_count("-1", 0, 4).unwrap_err().contains("must not be negative"));
        assert!(parse_count("9", 2, 4).unwrap_err().contains("nearest legal value: 4"));
        assert!(parse_count("x", 2, 4).unwrap_err().contains("not a whole number"));
        assert_eq!(count::<u32>(0, u64::MAX)("5000000000").unwrap_err(), "5000000000 does not fit the flag's type");
    }

    struct Fixed(u64);
    impl Bounded for Fixed {
        fn header(&self) -> u64 {
            8
        }
        fn total(&self, header: &[u8]) -> Result<u64, String> {
            if header.iter().all(|b| *b == 0) {
                return Err("all zero".into());
            }
            Ok(self.0)
        }
    }

    /// A reader that counts what was taken from it.
    struct Counting<R>(R, u64);
    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn an_endless_input_is_read_no_further_than_its_header_allows() {
        let mut zeros = Counting(io::repeat(0), 0);
        let e = read_bounded_from(&mut zeros, None, "zeros", &Fixed(64)).unwrap_err();
        assert_eq!(e.exit_code, 2);
        assert!(e.message.contains("all zero"), "{e}");
        assert_eq!(zeros.1, 8, "only the header is read");
        let mut ones = Counting(io::repeat(1), 0);
        let e = read_bounded_from(&mut ones, None, "ones", &Fixed(64)).unwrap_err();
        assert!(e.message.contains("trailing data"), "{e}");
        assert_eq!(ones.1, 65, "the stated size plus one byte");
        let mut short = &[1u8; 20][..];
        assert!(read_bounded_from(&mut short, None, "s", &Fixed(64)).unwrap_err().message.contains("truncated"));
        let mut exact = &[1u8; 64][..];
        assert_eq!(read_bounded_from(&mut exact, None, "s", &Fixed(64)).unwrap().len(), 64);
        let mut big = Counting(io::repeat(1), 0);
        let e = read_bounded_from(&mut big, Some(1 << 30), "big", &Fixed(64)).unwrap_err();
        assert!(e.message.contains("refused without reading it"), "{e}");
        assert_eq!(big.1, 8);
    }

    #[test]
    fn dev_zero_is_refused_after_its_header() {
        if !Path::new("/dev/zero").exists() {
            println!("SKIP: /dev/zero is missing on this system");
            return;
        }
        let e = read_bounded(Path::new("/dev/zero"), &Fixed(1 << 40)).unwrap_err();
        assert!(e.message.contains("all zero"), "{e}");
    }
}
