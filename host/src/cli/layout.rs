//! `pto layout`: prints every arena region, the SM (per ring: descriptors, payloads, slot states)
//! and GM-heap sizes, the ABI version and fingerprint.

use std::io::Write;

use clap::Args;
use pto_abi::consts::RING_COUNT;
use pto_abi::{heap_layout, reserve_layout, sm_layout, ABI_FINGERPRINT, ABI_VERSION};
use serde_json::json;

use super::sizing_args::SizingArgs;
use super::{json as jsonout, CliError};

/// Flags of `pto layout`.
#[derive(Args, Debug, Clone, Default)]
pub struct LayoutArgs {
    /// Arena sizing.
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Print machine-readable JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Bytes as a short human figure (KiB/MiB/GiB with one decimal).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} B")
}

/// Runs `pto layout`, writing to `out`.
pub fn run(args: &LayoutArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let sizing = args.sizing.to_key().map_err(CliError::bad_input)?;
    let bad = |e: pto_abi::LayoutError| CliError::bad_input(e.to_string());
    let layout = reserve_layout(&sizing).map_err(bad)?;
    let sm = sm_layout(&sizing).map_err(bad)?;
    let heap = heap_layout(&sizing).map_err(bad)?;
    let o = &layout.offsets;

    if args.json {
        let regions: Vec<_> = o
            .regions()
            .iter()
            .map(|r| json!({"name": r.name, "offset": r.region.offset, "size": r.region.size, "align": r.align}))
            .collect();
        let sm_rings: Vec<_> = sm
            .rings
            .iter()
            .enumerate()
            .map(|(r, ring)| {
                let part = |x: &pto_abi::arena::Region| json!({"offset": x.offset, "size": x.size});
                json!({
                    "ring": r,
                    "window": sizing.task_window_sizes[r],
                    "descriptors": part(&ring.descriptors),
                    "payloads": part(&ring.payloads),
                    "slot_states": part(&ring.slot_states),
                    "size": ring.descriptors.size + ring.payloads.size + ring.slot_states.size,
                })
            })
            .collect();
        let doc = json!({
            "abi_version": ABI_VERSION,
            "abi_fingerprint": format!("{ABI_FINGERPRINT:#018x}"),
            "sizing": {
                "task_window_sizes": sizing.task_window_sizes,
                "heap_sizes": sizing.heap_sizes,
                "dep_pool_capacities": sizing.dep_pool_capacities,
            },
            "arena_size": o.arena_size,
            "sm_size": sm.total_size,
            "sm": {"header": {"offset": sm.header.offset, "size": sm.header.size}, "rings": sm_rings},
            "heap_size": heap.total_size,
            "heap_ring_offsets": heap.rings.iter().map(|r| r.offset).collect::<Vec<_>>(),
            "capacities": {
                "ready_queue": o.ready_queue_capacity,
                "tensor_map_entries": o.tensor_map_entry_count,
                "tensor_map_buckets": o.tensor_map_bucket_count,
                "scope_tasks": o.scope_task_capacity,
                "mailbox": o.mailbox_capacity,
            },
            "regions": regions,
        });
        return jsonout::write(out, "layout", doc);
    }

    writeln!(out, "PTO runtime arena layout (ABI v{ABI_VERSION}, fingerprint {ABI_FINGERPRINT:#018x})")?;
    writeln!(out, "sizing    window {:?}", sizing.task_window_sizes)?;
    writeln!(out, "          heap   {:?}", sizing.heap_sizes)?;
    writeln!(out, "          dep    {:?}", sizing.dep_pool_capacities)?;
    writeln!(out)?;
    writeln!(out, "{:<22} {:>12} {:>12} {:>10} {:>6}", "region", "offset", "size", "", "align")?;
    for r in o.regions() {
        writeln!(
            out,
            "{:<22} {:>#12x} {:>12} {:>10} {:>6}",
            r.name,
            r.region.offset,
            r.region.size,
            human_bytes(r.region.size),
            r.align
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{:<22} {:>12} {:>12} {:>10}", "arena", "", o.arena_size, human_bytes(o.arena_size))?;
    writeln!(out, "{:<22} {:>12} {:>12} {:>10}", "shared memory (SM)", "", sm.total_size, human_bytes(sm.total_size))?;
    writeln!(out, "  {:<20} {:>12} {:>12} {:>10}", "SM header", "", sm.header.size, human_bytes(sm.header.size))?;
    for (r, ring) in sm.rings.iter().enumerate() {
        for (what, part) in
            [("descriptors", &ring.descriptors), ("payloads", &ring.payloads), ("slot states", &ring.slot_states)]
        {
            writeln!(
                out,
                "  {:<20} {:>#12x} {:>12} {:>10}",
                format!("ring {r} {what}"),
                part.offset,
                part.size,
                human_bytes(part.size)
            )?;
        }
    }
    writeln!(out, "{:<22} {:>12} {:>12} {:>10}", "GM heap", "", heap.total_size, human_bytes(heap.total_size))?;
    for r in 0..RING_COUNT {
        writeln!(out, "  ring {r} heap at {:#x}, {} bytes", heap.rings[r].offset, heap.rings[r].size)?;
    }
    writeln!(
        out,
        "capacities: ready queue {} cells, tensor map {} entries / {} buckets, scope tasks {}, mailbox {}",
        o.ready_queue_capacity,
        o.tensor_map_entry_count,
        o.tensor_map_bucket_count,
        o.scope_task_capacity,
        o.mailbox_capacity
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sm_is_broken_down_per_ring_in_the_table_and_the_json() {
        let mut out = Vec::new();
        run(&LayoutArgs::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("ring 3 slot states") && text.contains("ring 0 payloads"), "{text}");
        let mut out = Vec::new();
        run(&LayoutArgs { json: true, ..Default::default() }, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["schema_version"], 1);
        let rings = v["sm"]["rings"].as_array().unwrap();
        assert_eq!(rings.len(), RING_COUNT);
        let sum: u64 = rings.iter().map(|r| r["size"].as_u64().unwrap()).sum::<u64>()
            + v["sm"]["header"]["size"].as_u64().unwrap();
        assert!(sum <= v["sm_size"].as_u64().unwrap());
        assert!(rings[0]["payloads"]["size"].as_u64().unwrap() > rings[0]["descriptors"]["size"].as_u64().unwrap());
    }
}
