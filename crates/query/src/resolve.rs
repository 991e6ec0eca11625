//! From what a user names to the variables it means.
//!
//! A file is one variable (its identity: device, inode, generation); its names are bindings
//! in time (`model::at::Name`): a path inside one VE from one moment to another, and a
//! store-level name (`persist:APP:/data/x`, `shared:NAME/x`) for files of persistent or shared
//! storage. A query by name asks "which file had this name": in the VEs of the scope, at the
//! time asked, or — without a time, or when nothing had it then — the file that has it now
//! (else the last one that had it). Two different files that fit are an error that lists them: the user narrows it with
//! `--ve`/`--app`, `--at`, a store-level name or `file:[DEV:INO:GEN]`.
//!
//! Variables of version-1 journals (files known by path) are still matched by their path.

use crate::{QueryError, Result};
use model::at::{Name, VarDef, VarId};
use record::VarQuery;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Where and when a name is resolved.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only names given in these VEs (None: any VE).
    pub ves: Option<HashSet<u64>>,
    /// The moment the name is asked about (None: now).
    pub at_ns: Option<u64>,
}

/// One binding of a name to a file: from `since_ns` to `until_ns` (None: still bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub var: VarId,
    pub ve: u64,
    pub path: String,
    pub store: Option<String>,
    pub since_ns: u64,
    pub until_ns: Option<u64>,
}

/// The bindings the name records describe, matching `q` and in the VEs of `scope`.
pub fn bindings(q: &VarQuery, names: &[Name], scope: &Scope) -> Vec<Binding> {
    // (var, ve, path) → the binding open now.
    let mut open: HashMap<(VarId, u64, &str), usize> = HashMap::new();
    let mut out: Vec<Binding> = Vec::new();
    for n in names {
        if !q.matches_name(n) || scope.ves.as_ref().is_some_and(|v| !v.contains(&n.ve)) {
            continue;
        }
        let k = (n.var, n.ve, n.path.as_str());
        if n.bound {
            if open.contains_key(&k) {
                continue; // already bound (a repeated record)
            }
            open.insert(k, out.len());
            out.push(Binding {
                var: n.var,
                ve: n.ve,
                path: n.path.clone(),
                store: n.store.clone(),
                since_ns: n.time_ns,
                until_ns: None,
            });
        } else if let Some(i) = open.remove(&k) {
            out[i].until_ns = Some(n.time_ns);
        }
    }
    out
}

/// The variables `q` names: by definition (endpoints, VEs, files by identity, files of
/// version-1 journals by path) and by name (files that had the name, see the module
/// documentation). `labels` describes a variable for the error that lists ambiguous
/// candidates.
pub fn resolve(
    q: &VarQuery,
    vars: &HashMap<VarId, VarDef>,
    names: &[Name],
    scope: &Scope,
) -> Result<Vec<VarId>> {
    let mut ids: Vec<VarId> = vars
        .iter()
        .filter(|(_, d)| q.matches(d))
        .map(|(id, _)| *id)
        .collect();
    if q.by_name() {
        let b = bindings(q, names, scope);
        let then: Vec<&Binding> = match scope.at_ns {
            Some(t) => b
                .iter()
                .filter(|b| b.since_ns <= t && b.until_ns.is_none_or(|u| t < u))
                .collect(),
            None => Vec::new(),
        };
        // Nothing had the name at that time (or no time was asked): the file that has it
        // now, else the one that had it last.
        let fits: Vec<&Binding> = if !then.is_empty() {
            then
        } else {
            let now: Vec<&Binding> = b.iter().filter(|b| b.until_ns.is_none()).collect();
            if now.is_empty() {
                b.iter().max_by_key(|b| b.until_ns).into_iter().collect()
            } else {
                now
            }
        };
        let files: BTreeMap<VarId, Vec<&Binding>> =
            fits.iter().fold(BTreeMap::new(), |mut m, b| {
                m.entry(b.var).or_default().push(*b);
                m
            });
        if files.len() > 1 {
            let candidates = files
                .iter()
                .map(|(v, bs)| {
                    let what = vars.get(v).map(|d| d.to_string()).unwrap_or_default();
                    let ves: Vec<String> = bs.iter().map(|b| b.ve.to_string()).collect();
                    let store = bs[0]
                        .store
                        .as_deref()
                        .map(|s| format!(", {s}"))
                        .unwrap_or_default();
                    format!(
                        "{} (VE {}{store})",
                        identity(vars.get(v), &what),
                        ves.join(", ")
                    )
                })
                .collect();
            return Err(QueryError::Ambiguous {
                query: q.clone(),
                candidates,
            });
        }
        ids.extend(files.keys());
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// A file's identity as the user can name it (`file:[DEV:INO:GEN]`).
fn identity(d: Option<&VarDef>, fallback: &str) -> String {
    match d {
        Some(VarDef::Inode { dev, ino, gen, .. }) => format!("file:[{dev}:{ino}:{gen}]"),
        _ => fallback.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(t: u64, ve: u64, var: VarId, path: &str, bound: bool) -> Name {
        Name {
            time_ns: t,
            ve,
            var,
            path: path.into(),
            store: path
                .strip_prefix("/data")
                .map(|r| format!("persist:app{ve}:/data{r}")),
            bound,
        }
    }

    fn inode(ino: u64) -> VarDef {
        VarDef::Inode {
            dev: 1,
            ino,
            gen: 7,
            name: None,
        }
    }

    fn q(s: &str) -> VarQuery {
        VarQuery::parse(s).unwrap()
    }

    #[test]
    fn a_rename_moves_the_name_not_the_file() {
        let vars = HashMap::from([(5, inode(50))]);
        let names = [
            name(10, 1, 5, "/data/a", true),
            name(20, 1, 5, "/data/a", false),
            name(20, 1, 5, "/data/b", true),
        ];
        let s = Scope::default();
        assert_eq!(resolve(&q("file:/data/b"), &vars, &names, &s).unwrap(), [5]);
        // The old name: the file that had it last.
        assert_eq!(resolve(&q("file:/data/a"), &vars, &names, &s).unwrap(), [5]);
        let at = |t| Scope {
            at_ns: Some(t),
            ..Scope::default()
        };
        assert_eq!(
            resolve(&q("file:/data/a"), &vars, &names, &at(15)).unwrap(),
            [5]
        );
        // Nothing had the name then: the file that had it last, or has it now.
        assert_eq!(
            resolve(&q("file:/data/a"), &vars, &names, &at(25)).unwrap(),
            [5]
        );
        assert_eq!(
            resolve(&q("file:/data/b"), &vars, &names, &at(15)).unwrap(),
            [5]
        );
    }

    #[test]
    fn two_files_with_one_name_are_ambiguous_until_narrowed() {
        let vars = HashMap::from([(5, inode(50)), (6, inode(60))]);
        let names = [
            name(10, 1, 5, "/data/report.txt", true),
            name(11, 2, 6, "/data/report.txt", true),
        ];
        let e = resolve(
            &q("file:/data/report.txt"),
            &vars,
            &names,
            &Scope::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("file:[1:50:7]") && e.contains("file:[1:60:7]"),
            "{e}"
        );
        let ve2 = Scope {
            ves: Some(HashSet::from([2])),
            ..Scope::default()
        };
        assert_eq!(
            resolve(&q("file:/data/report.txt"), &vars, &names, &ve2).unwrap(),
            [6]
        );
        // The store-level name is unambiguous.
        assert_eq!(
            resolve(
                &q("persist:app1:/data/report.txt"),
                &vars,
                &names,
                &Scope::default()
            )
            .unwrap(),
            [5]
        );
    }

    #[test]
    fn a_reused_inode_number_is_another_file() {
        let mut reused = inode(50);
        if let VarDef::Inode { gen, .. } = &mut reused {
            *gen = 8;
        }
        let vars = HashMap::from([(5, inode(50)), (9, reused)]);
        let names = [
            name(10, 1, 5, "/data/x", true),
            name(20, 1, 5, "/data/x", false),
            name(30, 1, 9, "/data/x", true),
        ];
        let s = Scope::default();
        assert_eq!(resolve(&q("file:/data/x"), &vars, &names, &s).unwrap(), [9]);
        assert_eq!(
            resolve(&q("file:[1:50:7]"), &vars, &names, &s).unwrap(),
            [5]
        );
        assert_eq!(
            resolve(&q("file:[1:50]"), &vars, &names, &s).unwrap(),
            [5, 9]
        );
    }
}
