//! Compiles the BPF programs with clang and generates their Rust skeleton (libbpf-cargo).
use libbpf_cargo::SkeletonBuilder;
use std::path::PathBuf;

const SRC: &str = "src/bpf/monitor.bpf.c";

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("monitor.skel.rs");
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH")
        .expect("target arch")
        .as_str()
    {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        other => panic!("the JCS monitor does not support {other} yet"),
    };
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args([
            "-Isrc/bpf",
            "-Wall",
            "-Werror",
            &format!("-D__TARGET_ARCH_{arch}"),
        ])
        .build_and_generate(&out)
        .expect("compile the BPF programs (needs clang; see scripts/install-deps.sh)");
    for f in [SRC, "src/bpf/monitor.h", "src/bpf/vmlinux.h"] {
        println!("cargo:rerun-if-changed={f}");
    }
}
