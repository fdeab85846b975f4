//! The lab's network: namespaces, veth pairs, addresses and routes. All
//! addresses are documentation ranges; nothing leaves the namespaces.
//!
//! ```text
//!   c1   c2          clients         198.51.100.0/30, .4/30   2001:db8:c1::/64, c2
//!    \   /
//!      R             router (static ECMP route to the VIPs via lbA and lbB)
//!   /  |  \ ...
//! lbA lbB a1 a2 b1 b2
//!                    LB hosts        192.0.2.0/30, .4/30      2001:db8:a::/64, b
//!                    backends        192.0.2.16/30 ... .36/30 2001:db8:a1::/64 ...
//! ```
//!
//! Every link is a veth pair between the router (interface named after the
//! leaf) and the leaf (`eth0`). Links between the router, LB hosts and
//! backends have MTU 1600 so that a full 1500-byte client packet still fits
//! once encapsulated; backends send replies with a route MTU of 1500, what
//! the client links carry.
use std::net::IpAddr;

/// VIP v4, served on TCP port [`HTTP_PORT`] and UDP port [`UDP_PORT`].
pub const VIP4: &str = "203.0.113.10";
/// VIP v6.
pub const VIP6: &str = "2001:db8:f::10";
pub const HTTP_PORT: u16 = 80;
pub const UDP_PORT: u16 = 5300;
/// MTU inside the site (router, LB hosts, backends).
pub const FABRIC_MTU: u16 = 1600;
/// MTU of the client links, and of replies.
pub const EDGE_MTU: u16 = 1500;

/// What a leaf namespace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    LbHost,
    Backend,
}

/// A leaf of the star: its short name, role, site, and addresses.
#[derive(Debug, Clone, Copy)]
pub struct Leaf {
    /// Short name: namespace `<prefix>-<name>`, router interface `<name>`.
    pub name: &'static str,
    pub role: Role,
    /// 'A' or 'B' for LB hosts and backends.
    pub site: Option<char>,
    /// Router's and leaf's IPv4 addresses on the /30.
    pub v4: (&'static str, &'static str),
    /// Router's and leaf's IPv6 addresses on the /64.
    pub v6: (&'static str, &'static str),
}

impl Leaf {
    pub fn addr4(&self) -> IpAddr {
        self.v4.1.parse().expect("lab address")
    }

    pub fn addr6(&self) -> IpAddr {
        self.v6.1.parse().expect("lab address")
    }

    /// The leaf's address of the same family as `vip`.
    pub fn addr_for(&self, vip: IpAddr) -> IpAddr {
        if vip.is_ipv4() {
            self.addr4()
        } else {
            self.addr6()
        }
    }
}

/// The router's namespace short name.
pub const ROUTER: &str = "r";

/// Every leaf of the lab.
pub const LEAVES: &[Leaf] = &[
    Leaf {
        name: "c1",
        role: Role::Client,
        site: None,
        v4: ("198.51.100.1", "198.51.100.2"),
        v6: ("2001:db8:c1::1", "2001:db8:c1::2"),
    },
    Leaf {
        name: "c2",
        role: Role::Client,
        site: None,
        v4: ("198.51.100.5", "198.51.100.6"),
        v6: ("2001:db8:c2::1", "2001:db8:c2::2"),
    },
    Leaf {
        name: "lba",
        role: Role::LbHost,
        site: Some('A'),
        v4: ("192.0.2.1", "192.0.2.2"),
        v6: ("2001:db8:a::1", "2001:db8:a::2"),
    },
    Leaf {
        name: "lbb",
        role: Role::LbHost,
        site: Some('B'),
        v4: ("192.0.2.5", "192.0.2.6"),
        v6: ("2001:db8:b::1", "2001:db8:b::2"),
    },
    Leaf {
        name: "a1",
        role: Role::Backend,
        site: Some('A'),
        v4: ("192.0.2.17", "192.0.2.18"),
        v6: ("2001:db8:a1::1", "2001:db8:a1::2"),
    },
    Leaf {
        name: "a2",
        role: Role::Backend,
        site: Some('A'),
        v4: ("192.0.2.21", "192.0.2.22"),
        v6: ("2001:db8:a2::1", "2001:db8:a2::2"),
    },
    Leaf {
        name: "a3",
        role: Role::Backend,
        site: Some('A'),
        v4: ("192.0.2.25", "192.0.2.26"),
        v6: ("2001:db8:a3::1", "2001:db8:a3::2"),
    },
    Leaf {
        name: "b1",
        role: Role::Backend,
        site: Some('B'),
        v4: ("192.0.2.33", "192.0.2.34"),
        v6: ("2001:db8:b1::1", "2001:db8:b1::2"),
    },
    Leaf {
        name: "b2",
        role: Role::Backend,
        site: Some('B'),
        v4: ("192.0.2.37", "192.0.2.38"),
        v6: ("2001:db8:b2::1", "2001:db8:b2::2"),
    },
];

/// The leaf named `name`.
pub fn leaf(name: &str) -> &'static Leaf {
    LEAVES
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no lab leaf {name}"))
}

/// The leaves of `role` (at `site`, if given).
pub fn leaves(role: Role, site: Option<char>) -> impl Iterator<Item = &'static Leaf> {
    LEAVES
        .iter()
        .filter(move |l| l.role == role && (site.is_none() || l.site == site))
}

/// The backend named by a server's reply (`a1`, ...).
pub fn backend_by_name(name: &str) -> Option<&'static Leaf> {
    LEAVES
        .iter()
        .find(|l| l.role == Role::Backend && l.name == name)
}
