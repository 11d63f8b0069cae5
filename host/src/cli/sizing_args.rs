//! Sizing flags shared by every subcommand that takes an arena sizing. An invalid sizing is
//! reported with the flag the user typed, the ring, the field, the rule and the nearest legal
//! values.

use clap::Args;
use pto_abi::consts::RING_COUNT;
use pto_abi::sizing::{ArenaSizingKey, SizingError, SizingField, SizingRule, HEAP_GRANULE};

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
    if t.starts_with('-') {
        return Err(format!("--{flag}: `{text}` must not be negative"));
    }
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1u64 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1u64 << 30),
        _ => (t, 1u64),
    };
    let n: u64 = digits.parse().map_err(|_| {
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            format!("--{flag}: `{text}` does not fit in 64 bits")
        } else {
            format!("--{flag}: `{text}` is not a number")
        }
    })?;
    n.checked_mul(mult).ok_or_else(|| format!("--{flag}: `{text}` overflows 64 bits"))
}

/// Per-ring values and whether the user gave one value for all rings.
fn parse_per_ring(flag: &str, text: &str) -> Result<([u64; RING_COUNT], bool), String> {
    let parts: Vec<&str> = text.split(',').collect();
    match parts.len() {
        1 => Ok(([parse_size(flag, parts[0])?; RING_COUNT], true)),
        RING_COUNT => {
            let mut out = [0u64; RING_COUNT];
            for (slot, p) in out.iter_mut().zip(&parts) {
                *slot = parse_size(flag, p)?;
            }
            Ok((out, false))
        }
        n => Err(format!("--{flag}: expected one value or {RING_COUNT} comma-separated values, got {n}")),
    }
}

/// The flag that sets a sizing field.
pub fn flag_of(field: SizingField) -> &'static str {
    match field {
        SizingField::TaskWindow => "--window",
        SizingField::HeapSize => "--heap",
        SizingField::DepPoolCapacity => "--dep-pool",
    }
}

/// The legal values nearest to `value` under `rule` (one or two of them).
fn nearest(rule: SizingRule, value: u64) -> Vec<u64> {
    match rule {
        SizingRule::PowerOfTwo => {
            let below = if value == 0 { 1 } else { 1u64 << (63 - value.leading_zeros()) };
            let mut v = vec![below];
            if let Some(above) = below.checked_mul(2).filter(|a| *a != below) {
                v.push(above);
            }
            v
        }
        SizingRule::Range { min, max } => vec![value.clamp(min, max)],
        SizingRule::MultipleOf { granule } => {
            let below = value / granule * granule;
            let mut v = Vec::new();
            if below >= granule {
                v.push(below);
            }
            if let Some(above) = below.checked_add(granule) {
                v.push(above);
            }
            v
        }
        SizingRule::SumAtMost { .. } => Vec::new(),
    }
}

fn list(values: &[u64]) -> String {
    values.iter().map(u64::to_string).collect::<Vec<_>>().join(" or ")
}

/// An invalid key in the flags' terms: flag, ring, field, value, rule, nearest legal values.
/// `uniform[f]` is true when the user gave one value for every ring of field `f`.
pub fn describe(key: &ArenaSizingKey, e: &SizingError, uniform: bool) -> String {
    let flag = flag_of(e.field);
    let field = e.field.name();
    match e.ring {
        Some(r) => {
            let at = if uniform { "all rings".to_string() } else { format!("ring {r}") };
            let mut msg = format!("{flag} ({at}): {field}[{r}] = {}: ", e.value);
            msg.push_str(&match e.rule {
                SizingRule::PowerOfTwo => "must be a power of two".to_string(),
                SizingRule::Range { min, max } if max == u64::MAX => format!("must be at least {min}"),
                SizingRule::Range { min, max } => format!("must be in {min} ..= {max}"),
                SizingRule::MultipleOf { granule } => format!("must be a multiple of {granule}"),
                SizingRule::SumAtMost { max } => format!("the sum must be at most {max}"),
            });
            let near = nearest(e.rule, e.value);
            if !near.is_empty() {
                msg.push_str(&format!(
                    "; nearest legal value{}: {}",
                    if near.len() > 1 { "s" } else { "" },
                    list(&near)
                ));
            }
            msg
        }
        None => {
            // The real sum, computed without overflow.
            let values: Vec<u128> = match e.field {
                SizingField::TaskWindow => key.task_window_sizes.iter().map(|v| *v as u128).collect(),
                SizingField::HeapSize => key.heap_sizes.iter().map(|v| *v as u128).collect(),
                SizingField::DepPoolCapacity => key.dep_pool_capacities.iter().map(|v| *v as u128).collect(),
            };
            let sum: u128 = values.iter().sum();
            let max = match e.rule {
                SizingRule::SumAtMost { max } => max,
                _ => u64::MAX,
            };
            // The largest value that is legal for every ring when all four are equal.
            let mut per_ring = max / RING_COUNT as u64;
            match e.field {
                SizingField::TaskWindow => per_ring = 1u64 << (63 - per_ring.max(1).leading_zeros()),
                SizingField::HeapSize => per_ring = per_ring / HEAP_GRANULE * HEAP_GRANULE,
                SizingField::DepPoolCapacity => {}
            }
            format!(
                "{flag}: sum of {field} over the {RING_COUNT} rings = {sum}: must be at most {max}; \
                 the largest legal value for all rings is {per_ring}"
            )
        }
    }
}

impl SizingArgs {
    /// The sizing key these flags describe (defaults for absent flags), validated.
    pub fn to_key(&self) -> Result<ArenaSizingKey, String> {
        self.to_key_over(ArenaSizingKey::default())
    }

    /// The key these flags describe over `base` (the values of absent flags), validated.
    pub fn to_key_over(&self, base: ArenaSizingKey) -> Result<ArenaSizingKey, String> {
        let mut key = base;
        let mut uniform = [false; 3];
        if let Some(w) = &self.window {
            (key.task_window_sizes, uniform[0]) = parse_per_ring("window", w)?;
        }
        if let Some(h) = &self.heap {
            (key.heap_sizes, uniform[1]) = parse_per_ring("heap", h)?;
        }
        if let Some(d) = &self.dep_pool {
            let (v, u) = parse_per_ring("dep-pool", d)?;
            uniform[2] = u;
            for (r, (slot, x)) in key.dep_pool_capacities.iter_mut().zip(v).enumerate() {
                *slot = u32::try_from(x).map_err(|_| {
                    format!(
                        "--dep-pool (ring {r}): dep_pool_capacities[{r}] = {x}: does not fit in 32 bits; nearest legal \
                         value: {}",
                        pto_abi::sizing::MAX_DEP_POOL_CAPACITY
                    )
                })?;
            }
        }
        key.validate().map_err(|e| {
            let u = match e.field {
                SizingField::TaskWindow => uniform[0],
                SizingField::HeapSize => uniform[1],
                SizingField::DepPoolCapacity => uniform[2],
            };
            format!("invalid sizing: {}", describe(&key, &e, u))
        })?;
        Ok(key)
    }

    /// True when any sizing flag is given.
    pub fn any(&self) -> bool {
        self.window.is_some() || self.heap.is_some() || self.dep_pool.is_some()
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
    fn errors_name_the_flag_ring_field_rule_and_nearest_values() {
        assert!(args(Some("4,8"), None, None).to_key().unwrap_err().contains("one value or 4"));
        assert!(args(None, Some("x"), None).to_key().unwrap_err().contains("--heap"));
        let e = args(Some("4,8,12,16"), None, None).to_key().unwrap_err();
        assert_eq!(
            e,
            "invalid sizing: --window (ring 2): task_window_sizes[2] = 12: must be a power of two; nearest legal \
             values: 8 or 16"
        );
        let e = args(Some("12"), None, None).to_key().unwrap_err();
        assert!(e.starts_with("invalid sizing: --window (all rings): task_window_sizes[0] = 12"), "{e}");
        let e = args(None, Some("1500"), None).to_key().unwrap_err();
        assert!(e.contains("--heap (all rings)") && e.contains("nearest legal values: 1024 or 2048"), "{e}");
        let e = args(None, Some("512"), None).to_key().unwrap_err();
        assert!(e.contains("must be at least 1024; nearest legal value: 1024"), "{e}");
        let e = args(None, None, Some("2")).to_key().unwrap_err();
        assert!(e.contains("--dep-pool") && e.contains("nearest legal value: 4"), "{e}");
        assert!(args(None, None, Some("5000000000")).to_key().unwrap_err().contains("32 bits"));
        let e = args(Some("1073741824"), None, None).to_key().unwrap_err();
        assert!(e.contains("--window: sum of task_window_sizes over the 4 rings = 4294967296"), "{e}");
    }

    #[test]
    fn negative_values_must_not_be_negative() {
        assert_eq!(args(Some("-4"), None, None).to_key().unwrap_err(), "--window: `-4` must not be negative");
        assert!(args(None, Some("1K,-1K,1K,1K"), None).to_key().unwrap_err().contains("must not be negative"));
    }

    #[test]
    fn an_overflowing_heap_sum_is_reported_as_the_real_sum() {
        let e = args(None, Some("4611686018427387904"), None).to_key().unwrap_err();
        assert!(e.contains("= 18446744073709551616"), "the real sum, not a saturated one: {e}");
        assert!(!e.contains("18446744073709551615:"), "{e}");
        assert!(e.contains("the largest legal value for all rings is 4611686018427386880"), "{e}");
    }
}
