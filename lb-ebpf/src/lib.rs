//! Empty on purpose: this library target exists so that `lb-ctl` can list
//! `lb-ebpf` as a build-dependency and cargo re-runs its build script when
//! the XDP sources or `lb-common` change. The programs live in `main.rs`.
#![no_std]
