//! `pto bench` end to end on tiny counts: every figure is produced, and the graph runs really
//! submitted, completed and released the tasks they report (no timing is asserted).

use std::process::Command;

fn pto(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pto")).args(args).output().expect("run pto")
}

const TINY: [&str; 12] = [
    "bench",
    "--warmup",
    "300",
    "--tasks",
    "600,1200",
    "--reps",
    "1",
    "--items",
    "4000",
    "--threaded-tasks",
    "300",
    "--window",
];

fn tiny(extra: &[&str]) -> std::process::Output {
    let mut args = TINY.to_vec();
    args.push("1024");
    args.extend_from_slice(extra);
    pto(&args)
}

#[test]
fn json_report_has_every_figure_and_the_task_counts_add_up() {
    let out = tiny(&["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(doc["sizing"]["task_window_sizes"][1], 1024);
    let graphs = doc["graphs"].as_array().unwrap();
    assert_eq!(graphs.len(), 3 * 2 * 2, "3 shapes × 2 modes × 2 task counts");
    for g in graphs {
        let n = |k: &str| g[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {g}"));
        let scope = if g["shape"] == "fanout32" { 231 } else { 256 };
        assert!(n("timed_tasks") >= n("requested_tasks"), "{g}");
        assert_eq!(n("timed_tasks") % scope, 0, "whole scopes: {g}");
        assert!(n("warmup_tasks") >= 300, "{g}");
        assert_eq!(n("submitted"), n("warmup_tasks") + n("timed_tasks"), "{g}");
        assert_eq!(n("completed"), n("submitted"), "{g}");
        let ns = g["ns_per_task"].as_f64().unwrap();
        assert!(ns.is_finite() && ns > 0.0, "{g}");
        assert!(g["baseline_ns"].as_f64().unwrap() > 0.0, "{g}");
        assert!(g.get("reference_ns").is_none(), "no unreproduced C++ figure: {g}");
        assert_eq!(g["sync"], "exclusive", "{g}");
    }
    assert_eq!(doc["tensor_map"].as_array().unwrap().len(), 2);
    assert_eq!(doc["ready_queue"].as_array().unwrap().len(), 4);
    for l in doc["tensor_map"].as_array().unwrap().iter().chain(doc["ready_queue"].as_array().unwrap()) {
        assert_eq!(l["items"], 4000);
        assert!(l["ns_per_item"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l.get("reference_ns").is_none(), "{l}");
    }
    assert_eq!(doc["threaded_setup"]["threads"], 2);
    let threaded = doc["threaded"].as_array().unwrap();
    assert_eq!(threaded.len(), 3 * 2, "every shape and mode in the threaded mode too");
    for t in threaded {
        let scope = if t["shape"] == "fanout32" { 231 } else { 256 };
        assert_eq!(t["tasks"].as_u64().unwrap(), 300u64.div_ceil(scope) * scope, "{t}");
        assert!(t["threaded_ns_per_task"].as_f64().unwrap() > 0.0, "{t}");
        assert!(t["deterministic_ns_per_task"].as_f64().unwrap() > 0.0, "{t}");
    }
}

#[test]
fn text_report_shows_ratios_for_the_selected_figures() {
    let out = tiny(&["--shape", "diamond", "--mode", "rt", "--graphs-only", "--sync", "exclusive,shared"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let streamed: Vec<&str> = text.lines().take_while(|l| l.starts_with('[')).collect();
    assert!(streamed.len() >= 3, "each figure is printed as it is measured, before the tables:\n{text}");
    assert!(streamed[0].starts_with("[1/") && streamed[0].contains("diamond rt"), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("diamond")).collect();
    assert_eq!(rows.len(), 6, "headline and scaling rows of both sync modes, line tally, threaded:\n{text}");
    assert!(rows[0].contains("exclusive") && rows[1].contains("shared"), "{}\n{}", rows[0], rows[1]);
    assert!(!rows[0].contains(" 331 "), "no unreproduced C++ figure: {}", rows[0]);
    assert!(text.contains("cache lines a task touches"), "{text}");
    assert!(!text.contains("chain") && !text.contains("tensor map alone"), "{text}");
    assert!(text.contains("threaded mode beside the deterministic one"), "{text}");
}

#[test]
fn bad_flags_exit_2_with_the_rule() {
    let out = pto(&["bench", "--tasks", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tasks"));
    let out = pto(&["bench", "--window", "128", "--graphs-only"]);
    assert_eq!(out.status.code(), Some(2), "a window below two scopes is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 512"));
}
