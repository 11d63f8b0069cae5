//! Sizing flags shared by every subcommand that takes an arena sizing.

use clap::Args;
use pto_abi::consts::RING_COUNT;
use pto_abi::sizing::ArenaSizingKey;

/// `--window`, `--heap`, `--dep-pool`: one value for all rings or four comma-separated values.
#[derive(Args, Debug, Clone, Default)]
pub struct SizingArgs {
    /// Task window per ring: one value for all rings or four comma-separated values (default 16384).
    #[arg(long, value_name = "N|N,N,N,N")]
    pub window: Option<String>,
    /// Heap bytes per ring: one value or four; suffixes K, M, G (powers of 1024) allowed (default 256M).
    #[arg(long, value_name = "BYTES|B,B,B,B")]
    pub heap: Option<String>,
    /// Dep-list pool capacity per ring: one value or four (default 16384).
    #[arg(long = "dep-pool", value_name = "N|N,N,N,N")]
    pub dep_pool: Option<String>,
}

/// Parses `123`, `4K`, `256M`, `1G` (binary multiples).
fn parse_size(flag: &str, text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1u64 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1u64 << 30),
        _ => (t, 1u64),
    };
    let n: u64 = digits.parse().map_err(|_| format!("--{flag}: `{text}` is not a number"))?;
    n.checked_mul(mult).ok_or_else(|| format!("--{flag}: `{text}` overflows 64 bits"))
}

fn parse_per_ring(flag: &str, text: &str) -> Result<[u64; RING_COUNT], String> {
    let parts: Vec<&str> = text.split(',').collect();
    match parts.len() {
        1 => Ok([parse_size(flag, parts[0])?; RING_COUNT]),
        RING_COUNT => {
            let mut out = [0u64; RING_COUNT];
            for (slot, p) in out.iter_mut().zip(&parts) {
                *slot = parse_size(flag, p)?;
            }
            Ok(out)
        }
        n => Err(format!("--{flag}: expected one value or {RING_COUNT} comma-separated values, got {n}")),
    }
}

impl SizingArgs {
    /// The sizing key these flags describe (defaults for absent flags), validated.
    pub fn to_key(&self) -> Result<ArenaSizingKey, String> {
        let mut key = ArenaSizingKey::default();
        if let Some(w) = &self.window {
            key.task_window_sizes = parse_per_ring("window", w)?;
        }
        if let Some(h) = &self.heap {
            key.heap_sizes = parse_per_ring("heap", h)?;
        }
        if let Some(d) = &self.dep_pool {
            let v = parse_per_ring("dep-pool", d)?;
            for (slot, x) in key.dep_pool_capacities.iter_mut().zip(v) {
                *slot = u32::try_from(x)
                    .map_err(|_| format!("--dep-pool: {x} does not fit in 32 bits (dep pool capacities are u32)"))?;
            }
        }
        key.validate().map_err(|e| format!("invalid sizing: {e}"))?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(window: Option<&str>, heap: Option<&str>, dep: Option<&str>) -> SizingArgs {
        SizingArgs { window: window.map(Into::into), heap: heap.map(Into::into), dep_pool: dep.map(Into::into) }
    }

    #[test]
    fn one_or_four_values() {
        let k = args(Some("4"), Some("1K"), Some("4,8,16,32")).to_key().unwrap();
        assert_eq!(k.task_window_sizes, [4; 4]);
        assert_eq!(k.heap_sizes, [1024; 4]);
        assert_eq!(k.dep_pool_capacities, [4, 8, 16, 32]);
        assert_eq!(args(None, None, None).to_key().unwrap(), ArenaSizingKey::default());
    }

    #[test]
    fn errors_name_the_flag_and_rule() {
        assert!(args(Some("4,8"), None, None).to_key().unwrap_err().contains("one value or 4"));
        assert!(args(None, Some("x"), None).to_key().unwrap_err().contains("--heap"));
        let e = args(Some("4,8,12,16"), None, None).to_key().unwrap_err();
        assert_eq!(e, "invalid sizing: task_window_sizes[2] = 12: must be a power of two");
        assert!(args(None, None, Some("5000000000")).to_key().unwrap_err().contains("32 bits"));
    }
}
