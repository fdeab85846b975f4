//! lb-ctl: the controller of the lb load balancer, as a library.
//!
//! The binary (`src/main.rs`) is a thin CLI over these modules; the
//! integration tests in `tests/` use them directly against the real kernel.
pub mod api;
pub mod bgp;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod decap;
pub mod desired;
pub mod errors;
pub mod explain;
pub mod fleet;
pub mod health;
pub mod iface;
pub mod maglev;
pub mod map_writer;
pub mod netns;
pub mod nic;
pub mod pins;
pub mod programs;
pub mod reconcile;
pub mod vocab;
