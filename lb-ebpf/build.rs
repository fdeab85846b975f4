//! Rebuild the XDP object when `bpf-linker` changes: the linker is part of
//! the toolchain that produces it, but cargo does not track it on its own.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
