//! Compiles `init/main.rs` into a small statically linked program (`skiff-init`) that is
//! embedded in skiff and bind-mounted into every `exec` container (see `init/main.rs`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let source = PathBuf::from("init").join("main.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    let binary = out.join("skiff-init");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-name",
            "skiff_init",
            "--target",
            &target,
        ])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "target-feature=+crt-static", "-C", "codegen-units=1"])
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run rustc for skiff-init");
    assert!(status.success(), "building skiff-init failed");
}
