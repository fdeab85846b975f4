//! Builds `lb-ebpf` for the BPF target (nightly + `rust-src` + `bpf-linker`)
//! and leaves the objects in `OUT_DIR`, where `src/programs.rs` embeds
//! them; and compiles the control API (`proto/lb.proto`, with `protoc`).
fn main() -> anyhow::Result<()> {
    tonic_prost_build::configure()
        .type_attribute(".lb.v1", "#[derive(serde::Serialize)]")
        .compile_protos(&["proto/lb.proto"], &["proto"])
        .map_err(|err| {
            anyhow::anyhow!(
                "compiling proto/lb.proto failed: {err}\n\
                 (it needs protoc from Debian's protobuf-compiler: run `cargo xtask setup`)"
            )
        })?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "lb-ebpf",
            root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../lb-ebpf"),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .map_err(|err| {
        anyhow::anyhow!(
            "building the XDP programs failed: {err:#}\n\
             (they need the nightly toolchain with rust-src and bpf-linker 0.10.3: \
             run `cargo xtask setup`)"
        )
    })
}
