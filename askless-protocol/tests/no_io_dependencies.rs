//! The protocol crate stays free of I/O and runtimes: its normal dependency tree has no tokio,
//! no socket or TLS library, no clock crate and no OS entropy source.

use std::process::Command;

#[test]
fn dependency_tree_has_no_runtime_or_io_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "askless-protocol",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"serde_json"), "unexpected tree:\n{tree}");
    for forbidden in [
        "tokio",
        "mio",
        "socket2",
        "tungstenite",
        "rustls",
        "chrono",
        "time",
        "getrandom",
    ] {
        assert!(
            !crates.contains(&forbidden),
            "askless-protocol depends on {forbidden}:\n{tree}"
        );
    }
}
