//! Builds `lb-ebpf` for the BPF target (nightly + `rust-src` + `bpf-linker`)
//! and leaves the objects in `OUT_DIR`, where `src/programs.rs` embeds
//! them; and compiles the control API (`proto/lb.proto`, with `protoc`).
/// Where Debian's golang-github-osrg-gobgp-dev puts GoBGP's API protos.
const GOBGP_PROTO_DIR: &str = "/usr/share/gocode/src/github.com/osrg/gobgp/api";

/// The GoBGP v3 client, from the protos of the installed GoBGP (no copy of
/// them lives in this repository). `LB_GOBGP_PROTO_DIR` overrides the path.
fn gobgp_client() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=LB_GOBGP_PROTO_DIR");
    let dir = std::env::var("LB_GOBGP_PROTO_DIR").unwrap_or_else(|_| GOBGP_PROTO_DIR.to_owned());
    let gobgp = std::path::Path::new(&dir).join("gobgp.proto");
    let attribute = std::path::Path::new(&dir).join("attribute.proto");
    if !gobgp.exists() || !attribute.exists() {
        anyhow::bail!(
            "GoBGP's API protos are not in {dir} (gobgp.proto, attribute.proto): \
             install Debian's golang-github-osrg-gobgp-dev (`cargo xtask setup` does), \
             or point LB_GOBGP_PROTO_DIR at a GoBGP v3 `api` directory"
        );
    }
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&[gobgp.as_path(), attribute.as_path()], &[std::path::Path::new(&dir), std::path::Path::new("/usr/include")])
        .map_err(|err| {
            anyhow::anyhow!(
                "compiling GoBGP's protos from {dir} failed: {err}\n\
                 (they need protoc and the well-known types: Debian's protobuf-compiler and libprotobuf-dev)"
            )
        })?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=proto/lb.proto");
    tonic_prost_build::configure()
        // `--json` prints the replies; tests (and scripts) decode them into
        // the same types, refusing any field the type does not have.
        .type_attribute(
            ".lb.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(deny_unknown_fields)]",
        )
        .compile_protos(&["proto/lb.proto"], &["proto"])
        .map_err(|err| {
            anyhow::anyhow!(
                "compiling proto/lb.proto failed: {err}\n\
                 (it needs protoc from Debian's protobuf-compiler: run `cargo xtask setup`)"
            )
        })?;
    gobgp_client()?;
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
