//! Builds `lb-ebpf` for the BPF target (nightly + `rust-src` + `bpf-linker`)
//! and leaves the object in `OUT_DIR`, where `src/programs.rs` embeds it.
fn main() -> anyhow::Result<()> {
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
