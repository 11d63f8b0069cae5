//! The `pto` command line tool.
fn main() {}
