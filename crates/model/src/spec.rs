//! App and VE specifications.

use crate::names::{InnerPath, Name, Share};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A VE id. Ids increase and are never reused, also across restarts of the store.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct VeId(pub u64);

impl fmt::Display for VeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl VeId {
    /// The VE's hostname, `ve-N`.
    pub fn hostname(self) -> String {
        format!("ve-{}", self.0)
    }
}

/// How a VE is connected to the network.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// A new network namespace with only `lo`.
    #[default]
    None,
    /// A new network namespace with a veth pair into the JCS bridge.
    Bridge,
    /// The network namespace of the caller. Only for maintenance mode (package installs need
    /// the host's network); never for application VEs.
    Host,
}

impl FromStr for NetMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(NetMode::None),
            "bridge" => Ok(NetMode::Bridge),
            "host" => Ok(NetMode::Host),
            _ => Err(format!(
                "unknown network mode {s:?} (expected none, bridge or host)"
            )),
        }
    }
}

impl fmt::Display for NetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetMode::None => "none",
            NetMode::Bridge => "bridge",
            NetMode::Host => "host",
        })
    }
}

/// What an app is: a template, persistent and shared storage, network, default command.
/// The app's branch (its files) is versioned separately; this spec is the same for every
/// version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppSpec {
    pub name: Name,
    pub template: Name,
    pub template_version: u32,
    #[serde(default)]
    pub persist: Vec<InnerPath>,
    #[serde(default)]
    pub shares: Vec<Share>,
    #[serde(default)]
    pub net: NetMode,
    #[serde(default)]
    pub cmd: Vec<String>,
}

/// Why an app spec is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "storage paths {0} and {1} overlap; persistent and shared directories must be disjoint"
    )]
    Overlap(String, String),
    #[error("network mode 'host' is only for maintenance mode (jcs app update)")]
    HostNet,
}

impl AppSpec {
    /// Checks what the individual fields cannot: storage mounts must not nest or repeat, and
    /// application VEs never share the host's network.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.net == NetMode::Host {
            return Err(SpecError::HostNet);
        }
        let all: Vec<&InnerPath> = self
            .persist
            .iter()
            .chain(self.shares.iter().map(|s| &s.path))
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if a.is_within(b) || b.is_within(a) {
                    return Err(SpecError::Overlap(a.to_string(), b.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Every directory inside the VE that is a storage mount point.
    pub fn mount_points(&self) -> impl Iterator<Item = &InnerPath> {
        self.persist
            .iter()
            .chain(self.shares.iter().map(|s| &s.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(persist: &[&str], shares: &[&str]) -> AppSpec {
        AppSpec {
            name: Name::parse("a").unwrap(),
            template: Name::parse("t").unwrap(),
            template_version: 1,
            persist: persist
                .iter()
                .map(|p| InnerPath::parse(p).unwrap())
                .collect(),
            shares: shares.iter().map(|s| Share::parse(s).unwrap()).collect(),
            net: NetMode::None,
            cmd: vec![],
        }
    }

    #[test]
    fn overlap_refused() {
        assert!(spec(&["/data", "/srv"], &["/dl=dl"]).validate().is_ok());
        assert!(matches!(
            spec(&["/data", "/data/x"], &[]).validate(),
            Err(SpecError::Overlap(..))
        ));
        assert!(matches!(
            spec(&["/data"], &["/data=dl"]).validate(),
            Err(SpecError::Overlap(..))
        ));
    }

    #[test]
    fn host_net_refused_for_apps() {
        let mut s = spec(&[], &[]);
        s.net = NetMode::Host;
        assert_eq!(s.validate(), Err(SpecError::HostNet));
    }

    #[test]
    fn spec_round_trips_json() {
        let s = spec(&["/data"], &["/dl=dl"]);
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<AppSpec>(&j).unwrap(), s);
        assert!(serde_json::from_str::<AppSpec>(&j.replace("/data", "/../x")).is_err());
    }
}
