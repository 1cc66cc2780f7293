//! What the validation pass parses the config's text into, once: the model
//! reads these values and never parses the text again. Each type parses
//! itself (`FromStr`, as coreos-installer's types do), and its error says
//! what would be accepted.

use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Serialize, Serializer};

use super::grammar::{is_disk, is_ifname, is_mac};

/// `storage.disk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disk {
    /// The kickstart's %pre picks the one local, non-removable disk.
    Auto,
    /// A disk name (`sda`, `nvme0n1`) or a whole disk's `/dev/disk/by-…/…` link.
    Named(String),
}

impl Disk {
    pub const AUTO: &'static str = "auto";

    /// As regbake.toml and the kickstart write it.
    pub fn as_str(&self) -> &str {
        match self {
            Disk::Auto => Self::AUTO,
            Disk::Named(name) => name,
        }
    }
}

impl FromStr for Disk {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            Self::AUTO => Ok(Disk::Auto),
            _ if is_disk(s) => Ok(Disk::Named(s.to_string())),
            _ => Err("expected \"auto\" (the kickstart finds the one local, non-removable disk), a whole disk's /dev/disk/by-id/… or /dev/disk/by-path/… link, or a disk name such as sda, vda or nvme0n1 (not a partition, by-uuid/by-label file system, optical drive, loop or RAM device)"),
        }
    }
}

/// `network.device`: the interface of the kickstart's `network` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetDevice {
    /// `link`: the first interface with a link.
    Link,
    /// A MAC address, in the colon form anaconda takes.
    Mac(String),
    /// An interface name such as eth0.
    Name(String),
}

impl NetDevice {
    pub const LINK: &'static str = "link";

    /// As regbake.toml and the kickstart write it.
    pub fn as_str(&self) -> &str {
        match self {
            NetDevice::Link => Self::LINK,
            NetDevice::Mac(s) | NetDevice::Name(s) => s,
        }
    }
}

impl FromStr for NetDevice {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == Self::LINK {
            Ok(NetDevice::Link)
        } else if is_ifname(s) {
            Ok(NetDevice::Name(s.to_string()))
        } else if is_mac(s) {
            Ok(NetDevice::Mac(s.to_string()))
        } else {
            Err("expected \"link\" (the first interface with a link), an interface name such as eth0, or a MAC address")
        }
    }
}

/// The templates see these as the text the config holds.
macro_rules! serialize_as_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
serialize_as_str!(Disk, NetDevice);

/// `network.mode`, `network.address` and `network.gateway` together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    Dhcp,
    /// A host address with its prefix length, and a gateway inside it.
    Static {
        net: Ipv4Net,
        gateway: Ipv4Addr,
    },
}

/// The values the validation pass parsed out of a config's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub addressing: Addressing,
    pub device: NetDevice,
    pub disk: Disk,
}
