//! The SQLite catalog: templates, apps and their versions, VEs, and the variable dictionary.
//! VE ids come from an AUTOINCREMENT key, so they are never reused, not even after `jcs rm`
//! or a restart.

use crate::StoreError;
use model::at::{VarDef, VarId};
use model::{AppSpec, Name, VeId};
use record::VarKey;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// `PRAGMA user_version` of the catalog this code writes.
const SCHEMA_VERSION: i64 = 8;

/// Version 2: the variable dictionary (the journal's variable definitions).
const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS vars(id INTEGER PRIMARY KEY, name TEXT NOT NULL, def TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS vars_by_name ON vars(name);
";

/// Version 3: variables are looked up by their stable key (`record::VarKey`), not by how
/// they print (`name`, kept for people reading the database).
const SCHEMA_V3: &str = "
ALTER TABLE vars ADD COLUMN key TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS vars_by_key ON vars(key);
";

/// Version 4: where each VE's record stands (`record`): NULL never watched, `watching` (the
/// recorder watches it; nothing final is durable yet), `complete` (its counters are durable),
/// `gap` (it ended while no recorder could finish it: a gap says so in the journal).
const SCHEMA_V4: &str = "
ALTER TABLE ves ADD COLUMN record TEXT;
";

/// Version 5: the names files got and lost (the journal's `N` records), so that a query by
/// name and a restarted recorder find files without reading the journal.
const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS names(
  time_ns INTEGER NOT NULL, ve INTEGER NOT NULL, var INTEGER NOT NULL, path TEXT NOT NULL,
  store TEXT, bound INTEGER NOT NULL,
  UNIQUE(time_ns, ve, var, path, bound));
CREATE INDEX IF NOT EXISTS names_by_path ON names(path);
CREATE INDEX IF NOT EXISTS names_by_store ON names(store);
";

/// Version 6: names by file, so that `jcs log` prints each file by the name it had when a
/// transaction touched it.
const SCHEMA_V6: &str = "
CREATE INDEX IF NOT EXISTS names_by_var ON names(var);
";

/// Version 8: the network ends (`ADDR:PORT`) of endpoint and flow variables, so that a
/// question about an endpoint finds its flows without reading every definition.
const SCHEMA_V8: &str = "
CREATE TABLE IF NOT EXISTS var_ends(addr TEXT NOT NULL, var INTEGER NOT NULL, UNIQUE(addr, var));
";

/// The network ends of a variable: an endpoint's address, a flow's two ends.
fn ends_of(d: &VarDef) -> Vec<String> {
    match d {
        VarDef::Endpoint { addr, port } => {
            vec![std::net::SocketAddr::new(*addr, *port).to_string()]
        }
        VarDef::Flow { from, to, .. } => vec![from.to_string(), to.to_string()],
        _ => vec![],
    }
}

/// Version 7: a VE's name (`jcs run --name`), unique among the VEs not removed.
const SCHEMA_V7: &str = "
ALTER TABLE ves ADD COLUMN name TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS ves_by_name ON ves(name) WHERE name IS NOT NULL AND removed = 0;
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS templates(
  name TEXT NOT NULL, version INTEGER NOT NULL, source TEXT NOT NULL, created_ms INTEGER NOT NULL,
  PRIMARY KEY(name, version));
CREATE TABLE IF NOT EXISTS apps(name TEXT PRIMARY KEY, spec TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS app_versions(
  app TEXT NOT NULL, version INTEGER NOT NULL, via TEXT NOT NULL, created_ms INTEGER NOT NULL,
  PRIMARY KEY(app, version));
CREATE TABLE IF NOT EXISTS ves(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  app TEXT NOT NULL, app_version INTEGER NOT NULL, kind TEXT NOT NULL, cmd TEXT NOT NULL,
  state TEXT NOT NULL, pid INTEGER, pid_start INTEGER, cgroup_id INTEGER,
  started_ms INTEGER NOT NULL, ended_ms INTEGER, exit_code INTEGER, error TEXT,
  removed INTEGER NOT NULL DEFAULT 0);
";

fn name_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<model::at::Name> {
    Ok(model::at::Name {
        time_ns: r.get::<_, i64>(0)? as u64,
        ve: r.get::<_, i64>(1)? as u64,
        var: r.get::<_, i64>(2)? as VarId,
        path: r.get(3)?,
        store: r.get(4)?,
        bound: r.get(5)?,
    })
}

fn json<T: serde::de::DeserializeOwned>(what: &'static str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|source| StoreError::Json { what, source })
}

fn to_json<T: Serialize + ?Sized>(what: &'static str, v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|source| StoreError::Json { what, source })
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TemplateRow {
    pub name: String,
    pub version: u32,
    pub source: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AppVersionRow {
    pub version: u32,
    pub via: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VeRow {
    /// The VE's id (`ve` in JSON, as everywhere).
    #[serde(rename = "ve")]
    pub id: u64,
    pub app: String,
    pub app_version: u32,
    /// `app` or `maintenance`.
    pub kind: String,
    pub cmd: Vec<String>,
    /// `creating`, `running`, `exited`, `failed`, `lost` (its `jcs run` died without tearing
    /// it down; `jcs gc` cleans it up).
    pub state: String,
    #[serde(skip)]
    pub pid: Option<i32>,
    #[serde(skip)]
    pub pid_start: Option<u64>,
    pub cgroup_id: Option<u64>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub removed: bool,
    /// `jcs run --name`.
    pub name: Option<String>,
}

/// WAL pages after which a commit checkpoints (see `Catalog::open`).
const CHECKPOINT_PAGES: u32 = 1024;

#[derive(Debug)]
pub struct Catalog {
    conn: Connection,
}

impl Catalog {
    pub fn open(path: &Path) -> Result<Catalog> {
        let open_err = |source| StoreError::OpenCatalog {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        // Each jcs process is usually the only connection; by default closing it would
        // checkpoint the WAL into the database and delete it — four fsyncs and an unlink per
        // command, 1-2 ms of every `jcs run`. Instead the WAL stays, and a commit checkpoints
        // it once it holds 1,024 pages (4 MiB: a bounded amount to re-read when a process
        // opens the catalog while no other has it open). Not 64: the recorder's dictionary
        // thread commits small batches all the time, rewriting the same index pages in each,
        // and a checkpoint every 64 pages (two fsyncs, each page written) was half of its time
        // in a VE that creates files; every connection has the same threshold, so that a
        // `jcs run` is not the one that checkpoints what the dictionary wrote. Committed
        // transactions survive a crash of jcs either way; with
        // synchronous=NORMAL a power failure can lose the last VE records (never the file):
        // changes to templates and apps are made durable at once by `durable()`.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(open_err)?;
        conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
            .map_err(open_err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        let c = Catalog { conn };
        match version {
            SCHEMA_VERSION => {}
            1..SCHEMA_VERSION => {
                c.upgrade(version)
                    .map_err(|source| StoreError::UpgradeCatalog {
                        path: path.to_path_buf(),
                        from: version,
                        source: Box::new(source),
                    })?
            }
            0 => {
                // A new catalog. WAL mode is a property of the file and persists.
                c.conn
                    .pragma_update(None, "journal_mode", "WAL")
                    .map_err(open_err)?;
                c.conn
                    .execute_batch(&format!(
                        "{SCHEMA}{SCHEMA_V2}{SCHEMA_V3}{SCHEMA_V4}{SCHEMA_V5}{SCHEMA_V6}{SCHEMA_V7}{SCHEMA_V8}"
                    ))
                    .map_err(open_err)?;
                c.conn
                    .pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(open_err)?;
            }
            v => {
                return Err(StoreError::CatalogSchema {
                    path: path.to_path_buf(),
                    found: v,
                    known: SCHEMA_VERSION,
                })
            }
        }
        Ok(c)
    }

    /// Brings an older catalog to this version, in one transaction: the dictionary table
    /// (1 → 2), every variable's key computed from its definition (2 → 3), the VEs' record
    /// state (3 → 4; VEs of an older store count as complete: nothing says otherwise), the
    /// names table (4 → 5; older journals have no names), names by file (5 → 6), VE names (6 → 7).
    fn upgrade(&self, from: i64) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        if from < 2 {
            tx.execute_batch(SCHEMA_V2)?;
        }
        if from < 3 {
            tx.execute_batch(SCHEMA_V3)?;
        }
        if from < 4 {
            tx.execute_batch(SCHEMA_V4)?;
            tx.execute(
                "UPDATE ves SET record='complete' WHERE cgroup_id IS NOT NULL",
                [],
            )?;
        }
        tx.execute_batch(SCHEMA_V5)?;
        tx.execute_batch(SCHEMA_V6)?;
        if from < 7 {
            tx.execute_batch(SCHEMA_V7)?;
        }
        if from < 8 {
            tx.execute_batch(SCHEMA_V8)?;
            let mut read = tx.prepare("SELECT id, def FROM vars")?;
            let rows: Vec<(i64, String)> = read
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut write =
                tx.prepare("INSERT OR IGNORE INTO var_ends(addr, var) VALUES (?1, ?2)")?;
            for (id, def) in rows {
                let d: VarDef = json("a variable in the catalog", &def)?;
                for e in ends_of(&d) {
                    write.execute(params![e, id])?;
                }
            }
        }
        if from < 3 {
            let mut read = tx.prepare("SELECT id, def FROM vars")?;
            let rows: Vec<(i64, String)> = read
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut write = tx.prepare("UPDATE vars SET key = ?2 WHERE id = ?1")?;
            for (id, def) in rows {
                let d: VarDef = json("a variable in the catalog", &def)?;
                write.execute(params![id, VarKey::of(&d).as_str()])?;
            }
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }

    /// Checkpoints the WAL into the database file with fsync: after this, everything
    /// committed so far survives a power failure. Used after changes to templates and apps,
    /// whose directories exist on disk and must not be forgotten.
    fn durable(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
            .map_err(|source| StoreError::Sql {
                what: "checkpoint the catalog",
                source,
            })
    }

    /// Adds variable definitions to the dictionary (ids already there are kept as they are:
    /// an id names one variable forever).
    pub fn add_vars(&self, defs: &[(VarId, VarDef)]) -> Result<()> {
        if defs.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction()?;
        self.insert_vars(defs)?;
        tx.commit().map_err(|source| StoreError::Sql {
            what: "add variables to the catalog",
            source,
        })
    }

    /// [`Catalog::add_vars`] and [`Catalog::add_names`] in one transaction (one commit: the
    /// recorder's dictionary thread, a batch at a time).
    pub fn add_vars_and_names(
        &self,
        defs: &[(VarId, VarDef)],
        names: &[model::at::Name],
    ) -> Result<()> {
        if defs.is_empty() && names.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction()?;
        self.insert_vars(defs)?;
        self.insert_names(names)?;
        tx.commit().map_err(|source| StoreError::Sql {
            what: "add variables and names to the catalog",
            source,
        })
    }

    /// The rows of `defs`, in the caller's transaction.
    fn insert_vars(&self, defs: &[(VarId, VarDef)]) -> Result<()> {
        let mut st = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO vars(id, name, def, key) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut ends = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO var_ends(addr, var) VALUES (?1, ?2)")?;
        for (id, d) in defs {
            st.execute(params![
                i64::from(*id),
                d.to_string(),
                to_json("a variable", d)?,
                VarKey::of(d).as_str()
            ])?;
            for e in ends_of(d) {
                ends.execute(params![e, i64::from(*id)])?;
            }
        }
        Ok(())
    }

    /// Adds names files got and lost (the journal's `N` records; one already there is kept).
    pub fn add_names(&self, names: &[model::at::Name]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction()?;
        self.insert_names(names)?;
        tx.commit().map_err(|source| StoreError::Sql {
            what: "add names to the catalog",
            source,
        })
    }

    /// The rows of `names`, in the caller's transaction.
    fn insert_names(&self, names: &[model::at::Name]) -> Result<()> {
        let mut st = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO names(time_ns, ve, var, path, store, bound) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for n in names {
            st.execute(params![
                n.time_ns as i64,
                n.ve as i64,
                i64::from(n.var),
                n.path,
                n.store,
                n.bound
            ])?;
        }
        Ok(())
    }

    /// Every name record with this path inside a VE (`path`) or this store-level name
    /// (`store`), oldest first.
    pub fn names(&self, path: Option<&str>, store: Option<&str>) -> Result<Vec<model::at::Name>> {
        let mut st = self.conn.prepare_cached(
            "SELECT time_ns, ve, var, path, store, bound FROM names \
             WHERE (?1 IS NOT NULL AND path = ?1) OR (?2 IS NOT NULL AND store = ?2) \
             ORDER BY time_ns, rowid",
        )?;
        let rows = st.query_map(params![path, store], name_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Every name record whose path inside a VE (`path`) or store-level name (`store`) starts
    /// with the prefix given, oldest first.
    pub fn names_with_prefix(
        &self,
        path: Option<&str>,
        store: Option<&str>,
    ) -> Result<Vec<model::at::Name>> {
        let mut st = self.conn.prepare_cached(
            "SELECT time_ns, ve, var, path, store, bound FROM names \
             WHERE (?1 IS NOT NULL AND substr(path, 1, length(?1)) = ?1) \
                OR (?2 IS NOT NULL AND substr(store, 1, length(?2)) = ?2) \
             ORDER BY time_ns, rowid",
        )?;
        let rows = st.query_map(params![path, store], name_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Every name record of file `var`, oldest first.
    pub fn names_of(&self, var: VarId) -> Result<Vec<model::at::Name>> {
        let mut st = self.conn.prepare_cached(
            "SELECT time_ns, ve, var, path, store, bound FROM names WHERE var = ?1 \
             ORDER BY time_ns, rowid",
        )?;
        let rows = st.query_map(params![i64::from(var)], name_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The store-level names a file has now (the last record of each says it got it): what a
    /// restarted recorder needs to find files by name across VEs.
    pub fn current_store_names(&self) -> Result<Vec<(String, VarId)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT store, var, bound FROM names WHERE store IS NOT NULL ORDER BY time_ns, rowid",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as VarId,
                r.get::<_, bool>(2)?,
            ))
        })?;
        let mut now: std::collections::BTreeMap<String, Option<VarId>> = Default::default();
        for r in rows {
            let (store, var, bound) = r?;
            match (bound, now.get(&store)) {
                (true, _) => {
                    now.insert(store, Some(var));
                }
                (false, Some(Some(v))) if *v == var => {
                    now.insert(store, None);
                }
                _ => {}
            }
        }
        Ok(now.into_iter().filter_map(|(s, v)| Some((s, v?))).collect())
    }

    /// The largest variable id in the dictionary (0 when empty).
    /// Of `defs`, those whose ids the catalog has no row for (one range read of the ids, not a
    /// statement per definition: a recorder that starts checks a whole segment's).
    pub fn missing_vars<'a>(
        &self,
        defs: &'a [(VarId, VarDef)],
    ) -> Result<Vec<&'a (VarId, VarDef)>> {
        let (Some(lo), Some(hi)) = (
            defs.iter().map(|d| d.0).min(),
            defs.iter().map(|d| d.0).max(),
        ) else {
            return Ok(Vec::new());
        };
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM vars WHERE id BETWEEN ?1 AND ?2")?;
        let have: std::collections::HashSet<i64> = st
            .query_map(params![i64::from(lo), i64::from(hi)], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(defs
            .iter()
            .filter(|d| !have.contains(&i64::from(d.0)))
            .collect())
    }

    /// Of `names`, those the catalog has no row for (one read of the rows in their time
    /// range).
    pub fn missing_names<'a>(
        &self,
        names: &'a [model::at::Name],
    ) -> Result<Vec<&'a model::at::Name>> {
        let (Some(lo), Some(hi)) = (
            names.iter().map(|n| n.time_ns).min(),
            names.iter().map(|n| n.time_ns).max(),
        ) else {
            return Ok(Vec::new());
        };
        let mut st = self.conn.prepare_cached(
            "SELECT time_ns, ve, var, path, bound FROM names WHERE time_ns BETWEEN ?1 AND ?2",
        )?;
        let have: std::collections::HashSet<(i64, i64, i64, String, bool)> = st
            .query_map(params![lo as i64, hi as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(names
            .iter()
            .filter(|n| {
                !have.contains(&(
                    n.time_ns as i64,
                    n.ve as i64,
                    i64::from(n.var),
                    n.path.clone(),
                    n.bound,
                ))
            })
            .collect())
    }

    pub fn max_var_id(&self) -> Result<VarId> {
        let m: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM vars", [], |r| r.get(0))?;
        Ok(m.unwrap_or(0) as VarId)
    }

    /// The ids of the variables with this key (a file known by its identity and by its
    /// name alone has several).
    /// Leaves checkpointing the WAL to the other connections (the recorder's draining thread
    /// commits a VE's start and end; the dictionary thread, which writes most pages, and the
    /// other jcs processes checkpoint).
    pub fn no_autocheckpoint(&self) {
        let _ = self.conn.pragma_update(None, "wal_autocheckpoint", 0);
    }

    /// Starts a read transaction on this connection, unless one is open: the lookups until
    /// [`Catalog::end_read`] take the database's lock and see its pages once, not once each
    /// (the recorder's lookups of a batch's new variables).
    pub fn begin_read(&self) {
        if self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("BEGIN DEFERRED");
        }
    }

    /// Ends what [`Catalog::begin_read`] began.
    pub fn end_read(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("COMMIT");
        }
    }

    pub fn var_ids(&self, key: &VarKey) -> Result<Vec<VarId>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM vars WHERE key = ?1")?;
        let rows = st.query_map([key.as_str()], |r| r.get::<_, i64>(0))?;
        Ok(rows
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|i| i as VarId)
            .collect())
    }

    /// The whole variable dictionary.
    pub fn all_vars(&self) -> Result<Vec<(VarId, VarDef)>> {
        let mut st = self.conn.prepare_cached("SELECT id, def FROM vars")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, def) = row?;
            out.push((id as VarId, json("a variable in the catalog", &def)?));
        }
        Ok(out)
    }

    /// The endpoint variable at `end` and every flow to or from it.
    pub fn vars_at(&self, end: std::net::SocketAddr) -> Result<Vec<(VarId, VarDef)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT v.id, v.def FROM var_ends e JOIN vars v ON v.id = e.var WHERE e.addr = ?1",
        )?;
        let rows = st.query_map([end.to_string()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, def) = row?;
            out.push((id as VarId, json("a variable in the catalog", &def)?));
        }
        Ok(out)
    }

    /// Every name record, oldest first.
    pub fn all_names(&self) -> Result<Vec<model::at::Name>> {
        let mut st = self.conn.prepare_cached(
            "SELECT time_ns, ve, var, path, store, bound FROM names ORDER BY time_ns, rowid",
        )?;
        let rows = st.query_map([], name_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn var(&self, id: VarId) -> Result<Option<VarDef>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT def FROM vars WHERE id = ?1")?;
        let def: Option<String> = st.query_row([i64::from(id)], |r| r.get(0)).optional()?;
        def.map(|d| json("a variable in the catalog", &d))
            .transpose()
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta(key,value) VALUES(?1,?2) ON CONFLICT(key) DO UPDATE SET value=?2",
            params![key, value],
        )?;
        self.durable()?;
        Ok(())
    }

    /// Makes sure the next VE id is above `floor` (used when the store has VE directories the
    /// catalog does not know, e.g. after the catalog was restored from a backup).
    pub fn raise_ve_sequence(&self, floor: u64) -> Result<()> {
        let cur: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name='ves'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match cur {
            Some(c) if c as u64 >= floor => {}
            Some(_) => {
                self.conn.execute(
                    "UPDATE sqlite_sequence SET seq=?1 WHERE name='ves'",
                    [floor as i64],
                )?;
            }
            None => {
                self.conn.execute(
                    "INSERT INTO sqlite_sequence(name,seq) VALUES('ves',?1)",
                    [floor as i64],
                )?;
            }
        }
        Ok(())
    }

    // --- templates ---

    pub fn templates(&self) -> Result<Vec<TemplateRow>> {
        let mut st = self.conn.prepare(
            "SELECT name,version,source,created_ms FROM templates ORDER BY name,version",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TemplateRow {
                name: r.get(0)?,
                version: r.get(1)?,
                source: r.get(2)?,
                created_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn template_latest(&self, name: &Name) -> Result<Option<u32>> {
        Ok(self.conn.query_row(
            "SELECT MAX(version) FROM templates WHERE name=?1",
            [name.as_str()],
            |r| r.get(0),
        )?)
    }

    pub fn template_exists(&self, name: &Name, version: u32) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM templates WHERE name=?1 AND version=?2",
                params![name.as_str(), version],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn add_template(&self, name: &Name, version: u32, source: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO templates(name,version,source,created_ms) VALUES(?1,?2,?3,?4)",
            params![name.as_str(), version, source, now_ms()],
        )?;
        self.durable()?;
        Ok(())
    }

    pub fn remove_template(&self, name: &Name, version: Option<u32>) -> Result<usize> {
        let n = match version {
            Some(v) => self.conn.execute(
                "DELETE FROM templates WHERE name=?1 AND version=?2",
                params![name.as_str(), v],
            )?,
            None => self
                .conn
                .execute("DELETE FROM templates WHERE name=?1", [name.as_str()])?,
        };
        self.durable()?;
        Ok(n)
    }

    // --- apps ---

    pub fn apps(&self) -> Result<Vec<AppSpec>> {
        let mut st = self.conn.prepare("SELECT spec FROM apps ORDER BY name")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|s| json("decode app spec", &s?)).collect()
    }

    pub fn app(&self, name: &Name) -> Result<Option<AppSpec>> {
        let s: Option<String> = self
            .conn
            .query_row(
                "SELECT spec FROM apps WHERE name=?1",
                [name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        s.map(|s| json("decode app spec", &s)).transpose()
    }

    pub fn add_app(&self, spec: &AppSpec, via: &str) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO apps(name,spec,created_ms) VALUES(?1,?2,?3)",
            params![spec.name.as_str(), to_json("an app spec", spec)?, now_ms()],
        )?;
        tx.execute(
            "INSERT INTO app_versions(app,version,via,created_ms) VALUES(?1,1,?2,?3)",
            params![spec.name.as_str(), via, now_ms()],
        )?;
        tx.commit()?;
        self.durable()?;
        Ok(())
    }

    pub fn remove_app(&self, name: &Name) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM apps WHERE name=?1", [name.as_str()])?;
        tx.execute("DELETE FROM app_versions WHERE app=?1", [name.as_str()])?;
        tx.commit()?;
        self.durable()?;
        Ok(())
    }

    pub fn app_versions(&self, name: &Name) -> Result<Vec<AppVersionRow>> {
        let mut st = self.conn.prepare(
            "SELECT version,via,created_ms FROM app_versions WHERE app=?1 ORDER BY version",
        )?;
        let rows = st.query_map([name.as_str()], |r| {
            Ok(AppVersionRow {
                version: r.get(0)?,
                via: r.get(1)?,
                created_ms: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn app_latest(&self, name: &Name) -> Result<u32> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(MAX(version),0) FROM app_versions WHERE app=?1",
            [name.as_str()],
            |r| r.get(0),
        )?)
    }

    pub fn add_app_version(&self, name: &Name, version: u32, via: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO app_versions(app,version,via,created_ms) VALUES(?1,?2,?3,?4)",
            params![name.as_str(), version, via, now_ms()],
        )?;
        self.durable()?;
        Ok(())
    }

    // --- VEs ---

    /// A new VE row (`creating`); `name`: unique among the VEs not removed (else
    /// [`StoreError::VeNameInUse`]).
    pub fn new_ve(
        &self,
        app: &Name,
        version: u32,
        kind: &str,
        cmd: &[String],
        name: Option<&str>,
    ) -> Result<VeId> {
        let in_use = |name: &str| -> Result<StoreError> {
            let holder = self.ve_by_name(name)?.filter(|r| !r.removed);
            Ok(StoreError::VeNameInUse {
                name: name.to_string(),
                ve: holder.map_or(0, |r| r.id),
            })
        };
        if let Some(n) = name {
            if self.ve_by_name(n)?.is_some_and(|r| !r.removed) {
                return Err(in_use(n)?);
            }
        }
        let r = self.conn.execute(
            "INSERT INTO ves(app,app_version,kind,cmd,state,started_ms,name) VALUES(?1,?2,?3,?4,'creating',?5,?6)",
            params![app.as_str(), version, kind, to_json("a command", cmd)?, now_ms(), name],
        );
        match (r, name) {
            // (Another jcs run took it between the look and the insert.)
            (Err(rusqlite::Error::SqliteFailure(e, _)), Some(n))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(in_use(n)?)
            }
            (r, _) => {
                r?;
                Ok(VeId(self.conn.last_insert_rowid() as u64))
            }
        }
    }

    /// The VE named `name`: the one not removed that has it, else the last removed one.
    pub fn ve_by_name(&self, name: &str) -> Result<Option<VeRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {} FROM ves WHERE name=?1 ORDER BY removed ASC, id DESC LIMIT 1",
            Self::VE_COLS
        ))?;
        let mut rows = st.query_map([name], Self::ve_from_row)?;
        Ok(rows.next().transpose()?)
    }

    pub fn ve_running(&self, id: VeId, pid: i32, pid_start: u64, cgroup_id: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE ves SET state='running', pid=?2, pid_start=?3, cgroup_id=?4 WHERE id=?1",
            params![id.0 as i64, pid, pid_start as i64, cgroup_id as i64],
        )?;
        Ok(())
    }

    pub fn ve_ended(
        &self,
        id: VeId,
        state: &str,
        exit_code: Option<i32>,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE ves SET state=?2, ended_ms=?3, exit_code=?4, error=?5 WHERE id=?1",
            params![id.0 as i64, state, now_ms(), exit_code, error],
        )?;
        Ok(())
    }

    /// Where VE `id`'s record stands (see the schema's version 4).
    pub fn set_ve_record(&self, id: u64, state: &str) -> Result<()> {
        // (Cached: the recorder's connection runs it at every VE's watch and end.)
        self.conn
            .prepare_cached("UPDATE ves SET record=?2 WHERE id=?1")?
            .execute(params![id as i64, state])?;
        Ok(())
    }

    /// VEs whose record the recorder started and never finished (`watching`).
    pub fn ves_watching(&self) -> Result<Vec<VeRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {} FROM ves WHERE record='watching' ORDER BY id",
            Self::VE_COLS
        ))?;
        let rows = st.query_map([], Self::ve_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn ve_removed(&self, id: VeId) -> Result<()> {
        self.conn
            .execute("UPDATE ves SET removed=1 WHERE id=?1", [id.0 as i64])?;
        Ok(())
    }

    fn ve_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VeRow> {
        let cmd: String = r.get(4)?;
        Ok(VeRow {
            id: r.get::<_, i64>(0)? as u64,
            app: r.get(1)?,
            app_version: r.get(2)?,
            kind: r.get(3)?,
            cmd: serde_json::from_str(&cmd).unwrap_or_default(),
            state: r.get(5)?,
            pid: r.get(6)?,
            pid_start: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
            cgroup_id: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
            started_ms: r.get(9)?,
            ended_ms: r.get(10)?,
            exit_code: r.get(11)?,
            error: r.get(12)?,
            removed: r.get::<_, i64>(13)? != 0,
            name: r.get(14)?,
        })
    }

    const VE_COLS: &'static str =
        "id,app,app_version,kind,cmd,state,pid,pid_start,cgroup_id,started_ms,ended_ms,exit_code,error,removed,name";

    pub fn ves(&self) -> Result<Vec<VeRow>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {} FROM ves ORDER BY id", Self::VE_COLS))?;
        let rows = st.query_map([], Self::ve_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn ve(&self, id: VeId) -> Result<Option<VeRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {} FROM ves WHERE id=?1", Self::VE_COLS),
                [id.0 as i64],
                Self::ve_from_row,
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endpoint's flows are found by its address, in a new catalog and in one upgraded
    /// from version 7 (whose definitions are read once to fill the table).
    #[test]
    fn endpoints_find_their_flows() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c.db");
        let sa = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let defs = vec![
            (
                1,
                VarDef::Endpoint {
                    addr: sa("10.0.0.9:80").ip(),
                    port: 80,
                },
            ),
            (
                2,
                VarDef::Flow {
                    from: sa("10.0.0.2:4000"),
                    to: sa("10.0.0.9:80"),
                    udp: false,
                },
            ),
            (
                3,
                VarDef::Flow {
                    from: sa("10.0.0.2:4001"),
                    to: sa("10.0.0.9:8080"),
                    udp: false,
                },
            ),
            (4, VarDef::Memory { ve: 1 }),
        ];
        let ids = |c: &Catalog| -> Vec<VarId> {
            let mut v: Vec<VarId> = c
                .vars_at(sa("10.0.0.9:80"))
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            v.sort();
            v
        };
        {
            let c = Catalog::open(&path).unwrap();
            c.add_vars(&defs).unwrap();
            assert_eq!(ids(&c), [1, 2]);
            c.conn
                .execute_batch("DROP TABLE var_ends; PRAGMA user_version = 7;")
                .unwrap();
        }
        let c = Catalog::open(&path).unwrap();
        assert_eq!(ids(&c), [1, 2], "the upgrade fills the table");
    }

    #[test]
    fn template_changes_are_checkpointed_ve_rows_are_not() {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(&d.path().join("c.db")).unwrap();
        // (busy, frames in the WAL, frames checkpointed) of a passive checkpoint.
        let frames = |c: &Catalog| -> (i64, i64) {
            c.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(1)?, r.get(2)?))
                })
                .unwrap()
        };
        c.new_ve(&Name::parse("a").unwrap(), 1, "app", &[], None)
            .unwrap();
        c.add_template(&Name::parse("t").unwrap(), 1, "test")
            .unwrap();
        let (log, done) = frames(&c);
        assert_eq!(log, done, "a template change left frames un-checkpointed");
        drop(c);
        // Closing does not checkpoint (NO_CKPT_ON_CLOSE): a VE row stays in the WAL until
        // the automatic checkpoint, and is read back from it.
        let c = Catalog::open(&d.path().join("c.db")).unwrap();
        c.new_ve(&Name::parse("a").unwrap(), 1, "app", &[], None)
            .unwrap();
        drop(c);
        assert!(std::fs::metadata(d.path().join("c.db-wal")).unwrap().len() > 0);
        let c = Catalog::open(&d.path().join("c.db")).unwrap();
        assert_eq!(c.ves().unwrap().len(), 2);
        assert_eq!(c.templates().unwrap().len(), 1);
    }

    #[test]
    fn ve_ids_never_reused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.db");
        let app = Name::parse("a").unwrap();
        let a = {
            let c = Catalog::open(&p).unwrap();
            c.new_ve(&app, 1, "app", &[], None).unwrap()
        };
        // Reopen (a restart) after deleting the row: the id still moves on.
        let c = Catalog::open(&p).unwrap();
        c.conn.execute("DELETE FROM ves", []).unwrap();
        let b = c.new_ve(&app, 1, "app", &[], None).unwrap();
        assert!(b > a);
        c.raise_ve_sequence(100).unwrap();
        assert_eq!(c.new_ve(&app, 1, "app", &[], None).unwrap(), VeId(101));
        c.raise_ve_sequence(5).unwrap();
        assert_eq!(c.new_ve(&app, 1, "app", &[], None).unwrap(), VeId(102));
    }

    #[test]
    fn variables_are_found_by_key() {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(&d.path().join("c.db")).unwrap();
        let file = VarDef::File {
            dev: 1,
            ino: 2,
            path: Some("/data/x".into()),
        };
        let path = VarDef::Path {
            path: "/data/x".into(),
        };
        c.add_vars(&[(4, file.clone()), (9, path), (5, VarDef::Memory { ve: 1 })])
            .unwrap();
        let q = record::VarQuery::parse("file:/data/x").unwrap();
        assert_eq!(c.var_ids(&q.key().unwrap()).unwrap(), vec![4, 9]);
        assert_eq!(c.var(4).unwrap(), Some(file));
        assert_eq!(c.max_var_id().unwrap(), 9);
    }

    #[test]
    fn names_are_kept_and_the_current_store_names_found() {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(&d.path().join("c.db")).unwrap();
        let n = |t: u64, var: VarId, path: &str, bound: bool| model::at::Name {
            time_ns: t,
            ve: 1,
            var,
            path: path.into(),
            store: Some(format!("persist:web:{path}")),
            bound,
        };
        let all = [
            n(1, 5, "/data/a", true),
            n(2, 5, "/data/a", false),
            n(2, 5, "/data/b", true),
            n(3, 6, "/data/c", true),
            n(4, 6, "/data/c", false),
        ];
        // Of these, what the catalog lacks: everything, then what was not added.
        assert_eq!(c.missing_names(&all).unwrap().len(), all.len());
        c.add_names(&all[1..4]).unwrap();
        let lacking = [
            n(2, 5, "/data/a", true),
            n(2, 5, "/data/x", false),
            n(9, 5, "/data/a", false),
        ];
        let asked: Vec<model::at::Name> = all.iter().chain(&lacking).cloned().collect();
        let missing: Vec<model::at::Name> = c
            .missing_names(&asked)
            .unwrap()
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(
            missing,
            [&all[..1], &all[4..], &lacking[..]].concat(),
            "the rows not added; another bound, path or time is another row"
        );
        c.add_names(&all).unwrap();
        assert!(c.missing_names(&all).unwrap().is_empty());
        c.add_names(&all[..2]).unwrap(); // again: kept once
        assert_eq!(c.names(Some("/data/a"), None).unwrap(), all[..2].to_vec());
        assert_eq!(
            c.names(None, Some("persist:web:/data/b")).unwrap(),
            [all[2].clone()]
        );
        assert_eq!(
            c.current_store_names().unwrap(),
            [("persist:web:/data/b".to_string(), 5)]
        );
    }

    /// Catalogs of every older schema open (upgraded in place), not only 1 and 2.
    #[test]
    fn every_older_schema_is_upgraded() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c.db");
        drop(Catalog::open(&path).unwrap());
        for v in [3, 4, 5, 6] {
            {
                // (Before version 7 a VE had no name; before 5 there were no names of files.)
                let conn = Connection::open(&path).unwrap();
                conn.execute_batch(
                    "DROP INDEX IF EXISTS ves_by_name; ALTER TABLE ves DROP COLUMN name;",
                )
                .unwrap();
                if v < 5 {
                    conn.execute_batch("DROP TABLE IF EXISTS names").unwrap();
                }
                conn.pragma_update(None, "user_version", v).unwrap();
            }
            // (Version 3 had no `record` column; dropping it needs SQLite 3.35, so version 4's
            // table is kept and the upgrade must not add it twice.)
            let c = if v == 3 {
                let conn = Connection::open(&path).unwrap();
                conn.execute_batch("ALTER TABLE ves DROP COLUMN record")
                    .unwrap();
                drop(conn);
                Catalog::open(&path)
            } else {
                Catalog::open(&path)
            }
            .unwrap_or_else(|e| panic!("version {v}: {e}"));
            assert!(c.names(Some("/x"), None).unwrap().is_empty());
            assert!(c.ve_by_name("x").unwrap().is_none());
        }
    }
}
