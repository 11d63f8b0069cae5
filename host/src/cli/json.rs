//! JSON output: every document carries `schema_version` and `kind` beside its own fields; under `--json` an error is a
//! document of kind `error` on stdout, with the same exit code as without `--json`.

use std::io::Write;

use serde_json::{json, Map, Value};

use super::CliError;

/// Version of every JSON document `pto` prints; raised when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// `body`'s fields after `schema_version` and `kind`.
pub fn document(kind: &str, body: Value) -> Value {
    let mut doc = Map::new();
    doc.insert("schema_version".into(), json!(SCHEMA_VERSION));
    doc.insert("kind".into(), json!(kind));
    match body {
        Value::Object(fields) => doc.extend(fields),
        other => {
            doc.insert("value".into(), other);
        }
    }
    Value::Object(doc)
}

/// Writes a document of `kind` (pretty-printed, one trailing newline).
pub fn write(out: &mut dyn Write, kind: &str, body: Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(&document(kind, body)).map_err(|e| CliError::failed(e.to_string()))?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// The error document for `e`.
pub fn error_document(e: &CliError) -> Value {
    let what = match e.exit_code {
        2 => "bad_input",
        _ => "failed",
    };
    document("error", json!({"error": {"exit_code": e.exit_code, "class": what, "message": e.message}}))
}

/// True when the command line asks for JSON (`--json` before any `--`).
pub fn wanted(args: &[std::ffi::OsString]) -> bool {
    args.iter().take_while(|a| *a != "--").any(|a| a == "--json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_start_with_the_schema_version_and_kind() {
        let d = document("layout", json!({"arena_size": 5}));
        assert_eq!((d["schema_version"].as_u64(), d["kind"].as_str()), (Some(SCHEMA_VERSION as u64), Some("layout")));
        assert_eq!(d["arena_size"], 5);
        let e = error_document(&CliError::bad_input("--window: bad"));
        assert_eq!(e["error"]["exit_code"], 2);
        assert_eq!(e["error"]["message"], "--window: bad");
        assert_eq!(e["kind"], "error");
        assert!(wanted(&["pto".into(), "layout".into(), "--json".into()]));
        assert!(!wanted(&["pto".into(), "--".into(), "--json".into()]));
    }
}
