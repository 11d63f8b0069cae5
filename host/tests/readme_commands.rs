//! The README's `pto` commands run as written from the repository root, succeed, and leave no file
//! behind outside `target/`; the first one shows the cold build (no `-q`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The arguments after `--` of every `cargo run … --bin pto -- …` line in a `sh` block.
fn readme_pto_commands() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut in_sh = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh || !line.starts_with("cargo run") || !line.contains("--bin pto --") {
            continue;
        }
        // The emulated device's commands need qemu and the firmware build, the onboard ones a vendor
        // runtime; their own tests run them (the onboard ones through the stand-in runtime).
        if line.contains("--backend emu") || line.contains(" firmware ") || line.contains("--backend onboard") {
            continue;
        }
        let command = line.split('#').next().unwrap().trim();
        let (_, args) = command.split_once("--bin pto --").unwrap();
        out.push((line.to_string(), args.split_whitespace().map(str::to_string).collect()));
    }
    out
}

fn root_entries() -> BTreeSet<String> {
    std::fs::read_dir(root()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn the_first_command_shows_the_cold_build() {
    let commands = readme_pto_commands();
    assert!(commands.len() >= 8, "{commands:?}");
    assert!(!commands[0].0.contains(" -q "), "the first README command hides the first build: {}", commands[0].0);
}

#[test]
fn readme_commands_succeed_and_write_only_under_target() {
    let before = root_entries();
    for (line, args) in readme_pto_commands() {
        let mut args = args;
        // A redirection is the shell's: the command's output goes to a file under target/.
        let redirect = args.iter().position(|a| a == ">").map(|i| {
            let to = args[i + 1].clone();
            args.truncate(i);
            to
        });
        if let Some(to) = &redirect {
            assert!(to.starts_with("target/"), "{line}: writes {to} outside target/");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_pto")).args(&args).current_dir(root()).output().unwrap();
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        if let Some(to) = redirect {
            std::fs::write(root().join(to), &out.stdout).unwrap();
        }
    }
    let after = root_entries();
    let new: Vec<_> = after.difference(&before).collect();
    assert!(new.is_empty(), "README commands left {new:?} in the repository root");
}
