//! A Postfix lookup table that cannot fail when mailcanary is gone: the
//! best provider's next hop, written as a CDB file (`PATH.cdb`, Postfix's
//! `cdb:` table, Debian's postfix-cdb) for
//!
//! ```text
//! transport_maps = cdb:/var/lib/mailcanary/relay
//! ```
//!
//! with the one entry `*` → `:NEXTHOP` (the default transport, through
//! that next hop). The file is written beside its final name and renamed
//! over it, so Postfix reads the old table or the new one, never half of
//! one; Postfix notices the replaced file within seconds (trivial-rewrite
//! checks its tables every 10 s) and restarts the process that reads it.
//! mailcanary killed, hung or restarting leaves the last table in place:
//! no change, never a failed lookup. No next hop at all writes an empty
//! table, and Postfix uses its own `relayhost`.

use super::Steering;
use crate::shutdown::stopped;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// The table's one key: transport(5)'s wildcard.
pub const KEY: &str = "*";

/// The value for `nexthop`: the default transport through it.
pub fn value(nexthop: &str) -> String {
    format!(":{nexthop}")
}

/// `PATH.cdb` for the configured `PATH`.
pub fn cdb_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".cdb");
    PathBuf::from(name)
}

/// A constant database (D. J. Bernstein's cdb format, as Postfix's `cdb:`
/// tables and tinycdb read it) holding `entries`.
pub fn cdb(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    fn hash(key: &[u8]) -> u32 {
        key.iter().fold(5381u32, |h, &c| (h << 5).wrapping_add(h) ^ u32::from(c))
    }
    let mut out = vec![0u8; 2048];
    let mut slots: Vec<Vec<(u32, u32)>> = vec![Vec::new(); 256];
    for (key, data) in entries {
        let (h, pos) = (hash(key), out.len() as u32);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(data);
        slots[(h & 0xff) as usize].push((h, pos));
    }
    for (i, records) in slots.iter().enumerate() {
        let len = records.len() * 2;
        let mut table = vec![(0u32, 0u32); len];
        for &(h, pos) in records {
            let mut at = (h as usize >> 8) % len;
            while table[at].1 != 0 {
                at = (at + 1) % len;
            }
            table[at] = (h, pos);
        }
        let start = out.len() as u32;
        out[i * 8..i * 8 + 4].copy_from_slice(&start.to_le_bytes());
        out[i * 8 + 4..i * 8 + 8].copy_from_slice(&(len as u32).to_le_bytes());
        for (h, pos) in table {
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&pos.to_le_bytes());
        }
    }
    out
}

/// Replaces the table at `path` (`PATH.cdb`) with one naming `nexthop`,
/// or an empty one: written beside it, synced, renamed over it, readable
/// by Postfix (0644; it holds a host name, no secret).
pub fn write(path: &Path, nexthop: Option<&str>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let target = cdb_path(path);
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let value = nexthop.map(value);
    let entries: Vec<(&[u8], &[u8])> = value.iter().map(|v| (KEY.as_bytes(), v.as_bytes())).collect();
    let tmp = dir.join(format!(".{}.tmp", target.file_name().unwrap_or_default().to_string_lossy()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
    file.write_all(&cdb(&entries))?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &target)?;
    // The rename itself survives a crash only once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

/// How soon a table that could not be written is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps the table at `path` in step with the steering decision until
/// `shutdown`: written when the next hop changes, and at start only when
/// no table exists yet (an empty one) or the decision rests on evidence, so
/// that a restart never undoes the last decision on no evidence.
pub async fn keep(path: PathBuf, mut steering: watch::Receiver<Arc<Steering>>, mut shutdown: watch::Receiver<bool>) {
    let mut written: Option<Option<String>> = None;
    if !cdb_path(&path).exists() {
        save(&path, None, &mut written);
    }
    loop {
        let now = steering.borrow_and_update().clone();
        if now.informed && written.as_ref() != Some(&now.nexthop) {
            save(&path, now.nexthop.as_deref(), &mut written);
        }
        // A write that failed is tried again; the decision is sent only when it changes.
        let behind = now.informed && written.as_ref() != Some(&now.nexthop);
        tokio::select! {
            changed = steering.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RETRY), if behind => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

fn save(path: &Path, nexthop: Option<&str>, written: &mut Option<Option<String>>) {
    match write(path, nexthop) {
        Ok(()) => {
            tracing::info!(table = %cdb_path(path).display(), nexthop = nexthop.unwrap_or("(none: relayhost)"), "Postfix table written");
            *written = Some(nexthop.map(str::to_string));
        }
        // Tried again after RETRY; meanwhile Postfix keeps the last table.
        Err(e) => tracing::error!(table = %cdb_path(path).display(), error = %e, "cannot write the Postfix table"),
    }
}
