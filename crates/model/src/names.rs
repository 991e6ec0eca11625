//! Validated names (templates, apps, shared directories) and paths inside a VE.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name {0:?} is longer than 64 characters")]
    TooLong(String),
    #[error("name {0:?} may only contain letters, digits, '.', '_' and '-', and must not start with '.' or '-'")]
    BadChar(String),
}

/// The name of a template, an app or a shared directory: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
/// Names become directory names in the store, so they can never contain `/` or be `..`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Result<Name, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > 64 {
            return Err(NameError::TooLong(s.to_string()));
        }
        let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !first_ok || !rest_ok {
            return Err(NameError::BadChar(s.to_string()));
        }
        Ok(Name(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Name::parse(&s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a path inside the VE was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} must be absolute (start with '/')")]
    NotAbsolute(String),
    #[error("path {0:?} is outside the VE root ('..' is not allowed)")]
    OutsideRoot(String),
    #[error("path {0:?} is the VE root itself; name a directory below it")]
    IsRoot(String),
    #[error("path {0:?} is under {1}, which the VE mounts itself")]
    Reserved(String, &'static str),
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
}

/// Top-level directories that JCS mounts in every VE; storage cannot be mapped onto them.
const RESERVED: &[&str] = &["/proc", "/sys", "/dev"];

/// An absolute, normalized path inside a VE (`/home/user/.mozilla`): no `.` or `..`
/// components, no repeated or trailing slashes, never `/` itself.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct InnerPath(String);

impl InnerPath {
    pub fn parse(s: &str) -> Result<InnerPath, PathError> {
        if s.contains('\0') {
            return Err(PathError::Nul(s.to_string()));
        }
        if !s.starts_with('/') {
            return Err(PathError::NotAbsolute(s.to_string()));
        }
        let mut parts = Vec::new();
        for comp in s.split('/') {
            match comp {
                "" | "." => {}
                ".." => return Err(PathError::OutsideRoot(s.to_string())),
                c => parts.push(c),
            }
        }
        if parts.is_empty() {
            return Err(PathError::IsRoot(s.to_string()));
        }
        let norm = format!("/{}", parts.join("/"));
        for r in RESERVED {
            if norm == *r || norm.starts_with(&format!("{r}/")) {
                return Err(PathError::Reserved(s.to_string(), r));
            }
        }
        Ok(InnerPath(norm))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading slash, for joining below a host directory.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &InnerPath) -> bool {
        self.0 == other.0 || self.0.starts_with(&format!("{}/", other.0))
    }

    /// A flat directory name for this path (`/home/u/.cfg` → `home_u_.cfg`), used to store an
    /// app's persistent directories side by side under `persist/APP/`.
    pub fn flat_name(&self) -> String {
        self.relative().replace('/', "_")
    }
}

impl TryFrom<String> for InnerPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        InnerPath::parse(&s)
    }
}

impl From<InnerPath> for String {
    fn from(p: InnerPath) -> String {
        p.0
    }
}

impl fmt::Display for InnerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `--share PATH=SHARED`: the shared directory `shared/SHARED` mounted at `PATH` in the VE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Share {
    pub path: InnerPath,
    pub shared: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("share {0:?} must look like PATH=NAME (for example /root/Downloads=downloads)")]
    Syntax(String),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("shared directory name: {0}")]
    Name(#[from] NameError),
}

impl Share {
    pub fn parse(s: &str) -> Result<Share, ShareError> {
        let (p, n) = s
            .split_once('=')
            .ok_or_else(|| ShareError::Syntax(s.to_string()))?;
        Ok(Share {
            path: InnerPath::parse(p)?,
            shared: Name::parse(n)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(Name::parse("firefox-esr_1.2").is_ok());
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        for bad in ["..", ".hidden", "-x", "a/b", "a b", "ü"] {
            assert!(Name::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(matches!(
            Name::parse(&"a".repeat(65)),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn inner_paths_normalize() {
        assert_eq!(
            InnerPath::parse("//home//u/./x/").unwrap().as_str(),
            "/home/u/x"
        );
        assert_eq!(InnerPath::parse("/a/b").unwrap().flat_name(), "a_b");
    }

    #[test]
    fn inner_paths_refused() {
        assert!(matches!(
            InnerPath::parse("rel"),
            Err(PathError::NotAbsolute(_))
        ));
        assert!(matches!(
            InnerPath::parse("/a/../../etc"),
            Err(PathError::OutsideRoot(_))
        ));
        assert!(matches!(
            InnerPath::parse("/.."),
            Err(PathError::OutsideRoot(_))
        ));
        assert!(matches!(InnerPath::parse("/"), Err(PathError::IsRoot(_))));
        assert!(matches!(
            InnerPath::parse("/proc/x"),
            Err(PathError::Reserved(_, "/proc"))
        ));
        assert!(InnerPath::parse("/processes").is_ok());
    }

    #[test]
    fn within() {
        let a = InnerPath::parse("/data").unwrap();
        assert!(InnerPath::parse("/data/x").unwrap().is_within(&a));
        assert!(a.is_within(&a));
        assert!(!InnerPath::parse("/database").unwrap().is_within(&a));
    }

    #[test]
    fn shares() {
        let s = Share::parse("/root/Downloads=downloads").unwrap();
        assert_eq!(s.path.as_str(), "/root/Downloads");
        assert_eq!(s.shared.as_str(), "downloads");
        assert!(matches!(Share::parse("/x"), Err(ShareError::Syntax(_))));
        assert!(Share::parse("/x=../etc").is_err());
    }
}
