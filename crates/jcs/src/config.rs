//! `/etc/jcs/config.toml` (or `$JCS_CONFIG`): the host's defaults. A flag wins over an
//! environment variable, which wins over the file, which wins over the built-in default.
//!
//! The file's settings reach the code that reads them as environment variables (`store` →
//! `JCS_HOME`, `bridge_cidr` → `JCS_BRIDGE_CIDR`, …) set at start-up when the variable is not
//! set already: one mechanism for both, and the daemon that `jcs run` starts inherits them.
//! The retention defaults are read by `jcs gc` and `jcs versions gc` directly.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where the file is when `JCS_CONFIG` does not say.
pub const DEFAULT_PATH: &str = "/etc/jcs/config.toml";

/// The file. Unknown keys are errors: a typo must not be silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store directory (`JCS_HOME`, `--home`).
    pub store: Option<PathBuf>,
    /// The private range of the VEs' bridge (`JCS_BRIDGE_CIDR`).
    pub bridge_cidr: Option<String>,
    /// Journal segment size, a size such as `64M` (`JCS_SEGMENT_BYTES`).
    pub segment_size: Option<String>,
    /// The largest file an integrity report hashes, a size (`JCS_HASH_MAX`).
    pub hash_max: Option<String>,
    /// Below this many MiB free on the store's disk, `jcs run` warns (`JCS_LOW_SPACE_MB`).
    pub low_space_mb: Option<u64>,
    /// The most bytes a detached VE's output log keeps, a size (`JCS_LOGS_MAX`; 16M).
    pub logs_max: Option<String>,
    /// The group whose members may read the journal and the catalog: a name or a number
    /// (`JCS_ANALYST_GROUP`; default `jcs-analyst`).
    pub analyst_group: Option<String>,
    /// Where the daemon serves Prometheus metrics, ADDR:PORT (`JCS_METRICS`).
    pub metrics: Option<String>,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub ship: Ship,
}

/// The daemon's shipping of the journal to NATS (`jcs daemon --ship`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ship {
    /// nats://HOST:PORT[,…] (`JCS_SHIP`): the daemon ships continuously when set.
    pub to: Option<String>,
    /// The host's name in subjects (`JCS_SHIP_HOST`; default: the host name).
    pub host: Option<String>,
    /// The stream (`JCS_SHIP_STREAM`; default JOURNAL).
    pub stream: Option<String>,
    /// Copies the stream keeps when the daemon creates it (`JCS_SHIP_REPLICAS`; default 3).
    pub replicas: Option<usize>,
}

/// How long things are kept by default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// `jcs gc`'s default `--older-than`: finished VEs' dirties younger than this stay.
    pub dirties: Option<String>,
    /// `jcs versions gc`'s default `--keep`: pre-images of VEs that ended within this stay.
    pub preimages: Option<String>,
    /// The daemon's `--retain` (`JCS_RETAIN`): the journal older than each age summarized
    /// into that tier, e.g. `T1 after 1d, T4 after 30d`.
    pub journal: Option<String>,
}

impl Config {
    /// The file at `$JCS_CONFIG` (which must exist), else /etc/jcs/config.toml when it
    /// exists, else the defaults.
    pub fn load() -> Result<Config> {
        match std::env::var_os("JCS_CONFIG") {
            Some(p) => Config::read(Path::new(&p)),
            None if Path::new(DEFAULT_PATH).exists() => Config::read(Path::new(DEFAULT_PATH)),
            None => Ok(Config::default()),
        }
    }

    pub fn read(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the configuration {}", path.display()))?;
        let c: Config = toml::from_str(&text).map_err(|e| {
            let msg = e.message().to_string();
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => anyhow::anyhow!("{} line {l}: {msg}", path.display()),
                None => anyhow::anyhow!("{}: {msg}", path.display()),
            }
        })?;
        c.check()
            .with_context(|| format!("the configuration {}", path.display()))?;
        Ok(c)
    }

    /// The values are checked here, once, with the key in the message.
    fn check(&self) -> Result<()> {
        if let Some(s) = &self.store {
            if !s.is_absolute() {
                bail!("store = {:?}: an absolute path", s.display().to_string());
            }
        }
        if let Some(c) = &self.bridge_cidr {
            ve::net::BridgeNet::parse(ve::net::BRIDGE, c)
                .map_err(|e| anyhow::anyhow!("bridge_cidr = {c:?}: {e}"))?;
        }
        for (k, v) in [
            ("segment_size", &self.segment_size),
            ("hash_max", &self.hash_max),
        ] {
            if let Some(v) = v {
                model::limits::parse_size(v).map_err(|e| anyhow::anyhow!("{k} = {v:?}: {e}"))?;
            }
        }
        for (k, v) in [
            ("retention.dirties", &self.retention.dirties),
            ("retention.preimages", &self.retention.preimages),
        ] {
            if let Some(v) = v {
                query::time::parse_age(v).map_err(|e| anyhow::anyhow!("{k} = {v:?}: {e}"))?;
            }
        }
        if let Some(v) = &self.retention.journal {
            query::summarize::Retention::parse(v)
                .map_err(|e| anyhow::anyhow!("retention.journal = {v:?}: {e}"))?;
        }
        if let Some(v) = &self.ship.host {
            fleet::check_host(v).map_err(|e| anyhow::anyhow!("ship.host = {v:?}: {e}"))?;
        }
        if let Some(v) = &self.ship.stream {
            fleet::ship::check_stream(v)
                .map_err(|e| anyhow::anyhow!("ship.stream = {v:?}: {e}"))?;
        }
        if let Some(m) = &self.metrics {
            m.parse::<std::net::SocketAddr>()
                .map_err(|e| anyhow::anyhow!("metrics = {m:?}: {e} (an ADDR:PORT)"))?;
        }
        if self.ship.replicas == Some(0) {
            bail!("ship.replicas = 0: at least 1");
        }
        Ok(())
    }

    /// Sets the environment variables the file gives and the environment does not: before
    /// any thread starts.
    pub fn export(&self) -> Result<()> {
        let size = |v: &Option<String>| -> Result<Option<String>> {
            v.as_deref()
                .map(|s| model::limits::parse_size(s).map(|n| n.to_string()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("{e}"))
        };
        let vars = [
            (
                "JCS_HOME",
                self.store.as_ref().map(|p| p.display().to_string()),
            ),
            ("JCS_BRIDGE_CIDR", self.bridge_cidr.clone()),
            ("JCS_SEGMENT_BYTES", size(&self.segment_size)?),
            ("JCS_HASH_MAX", size(&self.hash_max)?),
            ("JCS_LOGS_MAX", size(&self.logs_max)?),
            ("JCS_LOW_SPACE_MB", self.low_space_mb.map(|n| n.to_string())),
            ("JCS_ANALYST_GROUP", self.analyst_group.clone()),
            ("JCS_RETAIN", self.retention.journal.clone()),
            ("JCS_METRICS", self.metrics.clone()),
            ("JCS_SHIP", self.ship.to.clone()),
            ("JCS_SHIP_HOST", self.ship.host.clone()),
            ("JCS_SHIP_STREAM", self.ship.stream.clone()),
            (
                "JCS_SHIP_REPLICAS",
                self.ship.replicas.map(|n| n.to_string()),
            ),
        ];
        for (k, v) in vars {
            if let Some(v) = v {
                if std::env::var_os(k).is_none() {
                    std::env::set_var(k, v);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, text).unwrap();
        Config::read(&p)
    }

    #[test]
    fn a_full_file_reads() {
        let c = parse(
            "store = \"/srv/jcs\"\nbridge_cidr = \"10.77.0.0/16\"\nsegment_size = \"16M\"\n\
             [retention]\ndirties = \"7d\"\npreimages = \"30d\"\njournal = \"T1 after 1d, T4 after 30d\"\n",
        )
        .unwrap();
        assert_eq!(c.store.unwrap(), Path::new("/srv/jcs"));
        assert_eq!(c.retention.dirties.as_deref(), Some("7d"));
    }

    #[test]
    fn mistakes_are_errors_with_the_line() {
        let e = parse("store = \"/srv\"\nbridge_cdir = \"10.0.0.0/8\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
        assert!(format!("{e:#}").contains("bridge_cdir"), "{e:#}");
        for (bad, key) in [
            ("store = \"relative\"", "store"),
            ("bridge_cidr = \"10.0.0.0/33\"", "bridge_cidr"),
            ("segment_size = \"lots\"", "segment_size"),
            ("[retention]\ndirties = \"soon\"", "retention.dirties"),
            (
                "[retention]\njournal = \"T9 after 1d\"",
                "retention.journal",
            ),
            ("store = [", "line 1"),
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(key), "{bad}: {e}");
        }
    }
}
