//! The install status store: `out/fleet/status.db`, an SQLite database
//! (bundled with rusqlite) in WAL mode with full fsync, owner-only (0600,
//! like its WAL files, in a 0700 directory). It holds each host's token,
//! stage and times, the log tail of its last failure, and every event.
//!
//! One `--serve` writes it (it holds `out/fleet/.lock` while it runs);
//! `--status` reads it at any time, also while a server writes: WAL lets a
//! reader see the last commit without waiting.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::status::{Event, HostStatus, Stage};

/// The store's directory under `out/`.
pub const DIR: &str = "fleet";
const FILE: &str = "status.db";
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hosts(
  name TEXT PRIMARY KEY,
  token TEXT NOT NULL,
  active INTEGER NOT NULL,
  position INTEGER NOT NULL,
  stage TEXT NOT NULL,
  since INTEGER, served_at INTEGER, installing_at INTEGER,
  installed_at INTEGER, ready_at INTEGER, failed_at INTEGER,
  peer TEXT, log TEXT);
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY,
  host TEXT NOT NULL, at INTEGER NOT NULL, event TEXT NOT NULL,
  peer TEXT NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', '1');
";

/// The store's path in `out`.
pub fn db_path(out: &Path) -> PathBuf {
    out.join(DIR).join(FILE)
}

/// One event to record for a host.
#[derive(Debug, Clone)]
pub struct Record {
    pub host: String,
    pub event: Event,
    pub at: i64,
    pub peer: String,
    pub log: Option<String>,
}

/// The open store.
pub struct Store {
    conn: Connection,
}

/// The hosts of a serve, registered: their tokens and rows in inventory
/// order, and how many were new.
pub struct Registered {
    pub tokens: Vec<String>,
    pub hosts: Vec<HostStatus>,
    pub new: usize,
    /// Hosts of earlier serves that this one does not serve (kept, hidden).
    pub retired: usize,
}

/// `out/fleet/.lock`, held by the one process that writes the store: a
/// server, or `--reset`. Taken at once or refused, never waited for.
pub fn lock(out: &Path, what: &str) -> Result<File> {
    let dir = out.join(DIR);
    crate::util::fsx::create_dir(&dir, 0o700)?;
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "another regbake kickstart --serve records installs in {} (it holds {}); \
             stop it before {what}",
            dir.display(),
            path.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

fn configure(conn: &Connection) -> Result<()> {
    // A reader waits for a writer's checkpoint instead of failing.
    conn.busy_timeout(Duration::from_secs(10))
        .context("setting the busy timeout")?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .context("WAL mode")?;
    // Every commit is on disk before a report is answered.
    conn.pragma_update(None, "synchronous", "FULL")
        .context("synchronous = FULL")?;
    Ok(())
}

impl Store {
    /// Open (or create) the store of `out` for writing.
    pub fn open(out: &Path) -> Result<Self> {
        let path = db_path(out);
        let dir = out.join(DIR);
        crate::util::fsx::create_dir(&dir, 0o700)?;
        crate::util::fsx::set_mode(&dir, 0o700)?;
        // Created owner-only before SQLite opens it: its -wal and -shm
        // files take the database's mode.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        crate::util::fsx::set_mode(&path, 0o600)?;
        let conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("creating the tables of {}", path.display()))?;
        Ok(Self { conn })
    }

    /// Open the store of `out` to read it; `None` when there is none yet.
    pub fn open_existing(out: &Path) -> Result<Option<Self>> {
        let path = db_path(out);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))
            .context("setting the busy timeout")?;
        let schema: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .with_context(|| format!("reading {}", path.display()))?;
        if schema.as_deref() != Some("1") {
            bail!(
                "{} is not a regbake status store (schema {schema:?})",
                path.display()
            );
        }
        Ok(Some(Self { conn }))
    }

    /// Make `names` the served hosts, in this order: a new host gets a
    /// token (and is never contacted); a known one keeps its token and
    /// state. Hosts not in `names` stay stored but are no longer shown.
    pub fn register(&mut self, names: &[String]) -> Result<Registered> {
        let tx = self.conn.transaction().context("starting a transaction")?;
        tx.execute("UPDATE hosts SET active = 0", [])?;
        let mut new = 0;
        {
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO hosts(name, token, active, position, stage) VALUES (?1, ?2, 1, ?3, ?4)",
            )?;
            let mut update =
                tx.prepare("UPDATE hosts SET active = 1, position = ?2 WHERE name = ?1")?;
            for (i, name) in names.iter().enumerate() {
                let pos = i64::try_from(i).unwrap_or(i64::MAX);
                new += insert.execute(params![name, new_token()?, pos, Stage::Never.key()])?;
                update.execute(params![name, pos])?;
            }
        }
        let retired: i64 =
            tx.query_row("SELECT count(*) FROM hosts WHERE active = 0", [], |r| {
                r.get(0)
            })?;
        let retired = usize::try_from(retired).unwrap_or(0);
        tx.commit().context("registering the served hosts")?;
        let rows = self.rows(true)?;
        Ok(Registered {
            tokens: rows.iter().map(|(_, t)| t.clone()).collect(),
            hosts: rows.into_iter().map(|(h, _)| h).collect(),
            new,
            retired,
        })
    }

    /// The hosts of the last serve, in its order.
    pub fn active(&self) -> Result<Vec<HostStatus>> {
        Ok(self.rows(false)?.into_iter().map(|(h, _)| h).collect())
    }

    fn rows(&self, tokens: bool) -> Result<Vec<(HostStatus, String)>> {
        let mut q = self.conn.prepare(
            "SELECT name, stage, since, served_at, installing_at, installed_at, ready_at, \
             failed_at, peer, log, token FROM hosts WHERE active = 1 ORDER BY position",
        )?;
        let rows = q.query_map([], |r| {
            let stage: String = r.get(1)?;
            Ok((
                HostStatus {
                    name: r.get(0)?,
                    stage: Stage::from_key(&stage).unwrap_or_default(),
                    since: r.get(2)?,
                    served_at: r.get(3)?,
                    installing_at: r.get(4)?,
                    installed_at: r.get(5)?,
                    ready_at: r.get(6)?,
                    failed_at: r.get(7)?,
                    peer: r.get(8)?,
                    log: r.get(9)?,
                },
                if tokens { r.get(10)? } else { String::new() },
            ))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("reading the hosts")
    }

    /// Record `batch` in one transaction (one fsync for all of it).
    pub fn record(&mut self, batch: &[Record]) -> Result<()> {
        let tx = self.conn.transaction().context("starting a transaction")?;
        {
            let mut get = tx.prepare_cached(
                "SELECT stage, since, served_at, installing_at, installed_at, ready_at, failed_at, \
                 peer, log FROM hosts WHERE name = ?1",
            )?;
            let mut put = tx.prepare_cached(
                "UPDATE hosts SET stage = ?2, since = ?3, served_at = ?4, installing_at = ?5, \
                 installed_at = ?6, ready_at = ?7, failed_at = ?8, peer = ?9, log = ?10 WHERE name = ?1",
            )?;
            let mut event = tx.prepare_cached(
                "INSERT INTO events(host, at, event, peer, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in batch {
                let found = get
                    .query_row([&r.host], |row| {
                        let stage: String = row.get(0)?;
                        Ok(HostStatus {
                            name: r.host.clone(),
                            stage: Stage::from_key(&stage).unwrap_or_default(),
                            since: row.get(1)?,
                            served_at: row.get(2)?,
                            installing_at: row.get(3)?,
                            installed_at: row.get(4)?,
                            ready_at: row.get(5)?,
                            failed_at: row.get(6)?,
                            peer: row.get(7)?,
                            log: row.get(8)?,
                        })
                    })
                    .optional()?;
                let Some(mut h) = found else { continue };
                h.apply(r.event, r.at, &r.peer, r.log.as_deref());
                put.execute(params![
                    h.name,
                    h.stage.key(),
                    h.since,
                    h.served_at,
                    h.installing_at,
                    h.installed_at,
                    h.ready_at,
                    h.failed_at,
                    h.peer,
                    h.log
                ])?;
                let bytes = r.log.as_ref().map_or(0, String::len);
                event.execute(params![r.host, r.at, r.event.name(), r.peer, bytes as i64])?;
            }
        }
        tx.commit().context("committing reports")
    }

    /// Forget what is known of `names`' installs (back to never
    /// contacted; tokens kept). The names not stored are returned, and
    /// then nothing changed.
    pub fn reset(&mut self, names: &[String]) -> Result<Vec<String>> {
        let tx = self.conn.transaction().context("starting a transaction")?;
        let mut unknown = vec![];
        {
            let mut q = tx.prepare(
                "UPDATE hosts SET stage = ?2, since = NULL, served_at = NULL, installing_at = NULL, \
                 installed_at = NULL, ready_at = NULL, failed_at = NULL, peer = NULL, log = NULL \
                 WHERE name = ?1",
            )?;
            let mut ev = tx.prepare(
                "INSERT INTO events(host, at, event, peer, bytes) VALUES (?1, ?2, 'reset', '-', 0)",
            )?;
            for n in names {
                if q.execute(params![n, Stage::Never.key()])? == 0 {
                    unknown.push(n.clone());
                } else {
                    ev.execute(params![n, super::status::now_ms()])?;
                }
            }
        }
        // All or nothing: a name that is not stored changes nothing.
        if unknown.is_empty() {
            tx.commit().context("resetting hosts")?;
        }
        Ok(unknown)
    }
}

/// A new host token: 128 random bits from the OS, as 32 hex digits.
fn new_token() -> Result<String> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn tokens_and_states_survive_a_reopen_and_a_new_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let r = s.register(&names(&["a", "b"])).unwrap();
        assert_eq!(r.new, 2);
        assert_eq!(r.tokens.len(), 2);
        assert!(r.tokens.iter().all(|t| t.len() == 32));
        assert_ne!(r.tokens[0], r.tokens[1]);
        s.record(&[Record {
            host: "a".into(),
            event: Event::PostFailed,
            at: 5,
            peer: "p".into(),
            log: Some("tail\n".into()),
        }])
        .unwrap();
        drop(s);
        let mut s = Store::open(dir.path()).unwrap();
        let again = s.register(&names(&["b", "a", "c"])).unwrap();
        assert_eq!(again.new, 1);
        assert_eq!(again.hosts[1].name, "a");
        assert_eq!(again.hosts[1].stage, Stage::PostFailed);
        assert_eq!(again.hosts[1].log.as_deref(), Some("tail\n"));
        assert_eq!(again.tokens[1], r.tokens[0], "a keeps its token");
        let fewer = s.register(&names(&["c"])).unwrap();
        assert_eq!((fewer.hosts.len(), fewer.retired), (1, 2));
        assert_eq!(s.reset(&names(&["c", "zz"])).unwrap(), ["zz"]);
        for f in std::fs::read_dir(dir.path().join(DIR)).unwrap().flatten() {
            let mode = f.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.path().display());
        }
        let read = Store::open_existing(dir.path()).unwrap().unwrap();
        assert_eq!(read.active().unwrap().len(), 1);
    }
}
