//! Golden ABI checks: the checked-in layout snapshot and the generated const assertions must match
//! the current structs, every byte of every struct is a listed field, and every fingerprint input
//! moves the fingerprint.
//!
//! After a deliberate layout change, re-bless both files with:
//!
//! ```text
//! RUSTFLAGS="--cfg pto_abi_bless" PTO_BLESS=1 cargo test -p pto-abi --test abi_golden
//! ```
//!
//! (`--cfg pto_abi_bless` leaves out the stale const assertions so the crate compiles.) Blessing
//! refuses to write while the registry check fails (a struct byte not covered by a field listed in
//! `ABI_TYPES`). Then review the diff of `abi/layout.snapshot` and commit both files.

use std::path::PathBuf;

use pto_abi::fingerprint::{
    check_registry, fingerprint, write_assert_layouts, write_layout_snapshot, FieldLayout, RegistryProblem, TypeLayout,
    ABI_CAPACITIES, ABI_TYPES, REBLESS_COMMAND,
};
use pto_abi::{ABI_FINGERPRINT, ABI_VERSION};

fn crate_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn line_diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("line {:>4} - {x}\n", i + 1));
                }
                if let Some(y) = y {
                    out.push_str(&format!("line {:>4} + {y}\n", i + 1));
                }
            }
        }
    }
    out
}

fn check_golden(rel: &str, actual: &str) {
    let path = crate_file(rel);
    if std::env::var_os("PTO_BLESS").is_some() {
        if let Err(problem) = check_registry(ABI_TYPES) {
            panic!("refusing to bless {rel}: {problem}");
        }
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{rel} is out of date (- checked in, + current):\n{}\nIf the change is deliberate, re-bless: {REBLESS_COMMAND}",
        line_diff(&expected, actual)
    );
}

#[test]
fn layout_snapshot_matches() {
    let mut s = String::new();
    write_layout_snapshot(&mut s).unwrap();
    check_golden("layout.snapshot", &s);
}

#[test]
fn generated_assertions_match() {
    let mut s = String::new();
    write_assert_layouts(&mut s).unwrap();
    check_golden("src/generated/assert_layouts.rs", &s);
}

#[test]
fn every_byte_of_every_struct_is_a_listed_field() {
    for ty in ABI_TYPES {
        let mut at = 0;
        for f in ty.fields {
            assert_eq!(f.offset, at, "{}.{}: hidden padding or a field missing from the registry", ty.name, f.name);
            at += f.size;
        }
        assert_eq!(at, ty.size, "{}: trailing bytes not covered by listed fields", ty.name);
        assert!(ty.size % ty.align == 0, "{}", ty.name);
    }
}

#[test]
fn the_registry_check_finds_a_missing_field_a_trailing_one_and_an_out_of_order_one() {
    assert_eq!(check_registry(ABI_TYPES), Ok(()));
    let header = ABI_TYPES.iter().position(|t| t.name == "ImageHeader").unwrap();
    let without = |skip: usize| {
        let mut types = ABI_TYPES.to_vec();
        let fields: Vec<FieldLayout> =
            ABI_TYPES[header].fields.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, f)| *f).collect();
        types[header].fields = Box::leak(fields.into_boxed_slice());
        leak_types(types)
    };
    // `image_size` left out of the registry.
    let fields = ABI_TYPES[header].fields;
    let image_size = fields.iter().position(|f| f.name == "image_size").unwrap();
    let (from, to) = (fields[image_size].offset, fields[image_size + 1].offset);
    let problem = check_registry(without(image_size)).unwrap_err();
    assert_eq!(
        problem,
        RegistryProblem::Uncovered { ty: "ImageHeader", from, to, before: Some(fields[image_size + 1].name) }
    );
    assert_eq!(
        problem.to_string(),
        format!(
            "pto-abi: ABI registry: ImageHeader bytes {from}..{to} (before field {}) are not covered by a field \
             listed in ABI_TYPES. List every field of the struct, `_pad` fields included, in declaration order in \
             ABI_TYPES (abi/src/fingerprint.rs)",
            fields[image_size + 1].name
        )
    );
    let last = fields.len() - 1;
    assert_eq!(
        check_registry(without(last)).unwrap_err(),
        RegistryProblem::Uncovered {
            ty: "ImageHeader",
            from: fields[last].offset,
            to: ABI_TYPES[header].size,
            before: None
        }
    );
    let mut types = ABI_TYPES.to_vec();
    let mut swapped = fields.to_vec();
    swapped.swap(0, 1);
    types[header].fields = Box::leak(swapped.into_boxed_slice());
    assert!(matches!(
        check_registry(leak_types(types)),
        Err(RegistryProblem::Uncovered { ty: "ImageHeader", from: 0, to, before: Some("abi_version") }) if to == fields[1].offset
    ));
    let mut types = ABI_TYPES.to_vec();
    let mut twice = fields.to_vec();
    twice.insert(1, fields[0]);
    types[header].fields = Box::leak(twice.into_boxed_slice());
    assert_eq!(
        check_registry(leak_types(types)),
        Err(RegistryProblem::OutOfOrder { ty: "ImageHeader", field: "magic", offset: 0, previous_end: fields[0].size })
    );
}

fn leak_types(types: Vec<TypeLayout>) -> &'static [TypeLayout] {
    Box::leak(types.into_boxed_slice())
}

#[test]
fn every_input_changes_the_fingerprint() {
    let base = fingerprint(ABI_VERSION, ABI_TYPES, ABI_CAPACITIES);
    assert_eq!(base, ABI_FINGERPRINT);
    assert_ne!(fingerprint(ABI_VERSION + 1, ABI_TYPES, ABI_CAPACITIES), base, "version");

    let mut seen = std::collections::HashSet::new();
    let mut check = |fp: u64, what: String| {
        assert_ne!(fp, base, "changing {what} left the fingerprint unchanged");
        assert!(seen.insert(fp), "changing {what} collided with another change");
    };
    // Under Miri (an interpreter) a sample of the types and capacities keeps the test short.
    let step = if cfg!(miri) { 9 } else { 1 };
    for (t, ty) in ABI_TYPES.iter().enumerate().step_by(step) {
        for mutate in 0..3 {
            let mut types = ABI_TYPES.to_vec();
            match mutate {
                0 => types[t].size += 8,
                1 => types[t].align *= 2,
                _ => types[t].name = "Renamed",
            }
            check(fingerprint(ABI_VERSION, leak_types(types), ABI_CAPACITIES), format!("{} #{mutate}", ty.name));
        }
        for (f, field) in ty.fields.iter().enumerate() {
            for mutate in 0..2 {
                let mut fields: Vec<FieldLayout> = ty.fields.to_vec();
                match mutate {
                    0 => fields[f].offset += 4,
                    _ => fields[f].size += 4,
                }
                let mut types = ABI_TYPES.to_vec();
                types[t].fields = Box::leak(fields.into_boxed_slice());
                check(
                    fingerprint(ABI_VERSION, leak_types(types), ABI_CAPACITIES),
                    format!("{}.{} #{mutate}", ty.name, field.name),
                );
            }
        }
    }
    for (c, (name, _)) in ABI_CAPACITIES.iter().enumerate().step_by(step) {
        let mut caps = ABI_CAPACITIES.to_vec();
        caps[c].1 = caps[c].1.wrapping_add(1);
        check(fingerprint(ABI_VERSION, ABI_TYPES, &caps), format!("capacity {name}"));
    }
}
