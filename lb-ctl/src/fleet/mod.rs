//! Fleet mode: many LB hosts follow one desired state kept in etcd
//! (docs/FLEET.md). The store is the source of desired state only: it is
//! never on the packet path, and losing it changes nothing a host does (it
//! keeps its last known good state, forwarding and announcements).
//!
//! [`schema`] is the keys and values, [`store`] the etcd operations,
//! [`sync`] a host's "list then watch" loop that offers each revision (and
//! the checker's results) to the daemon's controller, [`health`] the rule
//! by which a host believes the checker, [`checker`] the elected,
//! fenced fleet health checker, [`status`] what `fleet status` shows,
//! [`edit`] one `lb-ctl vip`/`real` change made to the store, [`lease`]
//! a lease kept alive across the loss of an etcd member.
pub mod checker;
pub mod edit;
pub mod health;
pub mod lease;
pub mod schema;
pub mod status;
pub mod store;
pub mod sync;
