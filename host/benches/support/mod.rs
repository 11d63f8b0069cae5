//! Shared by the criterion benchmarks: ratios of two benchmarks measured in the same run.

use std::path::PathBuf;

/// Mean of one benchmark of this run, in nanoseconds, from criterion's estimates file.
fn mean_ns(group: &str, bench: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("criterion").join(group).join(bench).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

/// One printed ratio: `(group, bench)` over `(base group, base bench)`, with its label.
pub struct Ratio {
    /// The measured benchmark.
    pub figure: (&'static str, &'static str),
    /// The baseline of the same run.
    pub base: (&'static str, &'static str),
    /// What the ratio says.
    pub label: &'static str,
}

/// Prints every ratio of this run (a missing benchmark, e.g. filtered out, is said so).
pub fn print_ratios(ratios: &[Ratio]) {
    println!("\nratios (this run):");
    for r in ratios {
        match (mean_ns(r.figure.0, r.figure.1), mean_ns(r.base.0, r.base.1)) {
            (Some(x), Some(y)) => println!("  {}: {x:.0} ns / {y:.0} ns = {:.2}x", r.label, x / y),
            _ => println!("  {}: not measured in this run", r.label),
        }
    }
}
