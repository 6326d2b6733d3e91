//! The state directory is private to the user that runs mailcanary, whatever
//! the umask. It holds the ledger (the tags in flight are enough to forge an
//! application's email into a delivered verdict; bounce diagnostics name
//! recipients) and, by default, the signing key. So the directory is 0700
//! and every file mailcanary makes in it 0600, and those an earlier version
//! made under the umask (0755 and 0644 under 022) are tightened at start.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The ledger's file in the state directory.
pub const LEDGER: &str = "ledger.sqlite";
/// The files mailcanary makes in the state directory: the ledger, SQLite's
/// companions of it, and the signing key when no other place is configured.
const FILES: [&str; 5] = [LEDGER, "ledger.sqlite-wal", "ledger.sqlite-shm", "ledger.sqlite-journal", "signing.key"];

/// Makes `dir` (0700) if it is missing, takes group and other permissions
/// off it and off the files above, and creates the ledger's file 0600 if
/// missing: SQLite gives the database it creates 0644 less the umask, and
/// gives its `-wal` and `-shm` files the database file's own mode.
pub fn make_private(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    tighten(dir, 0o700);
    for name in FILES {
        let path = dir.join(name);
        if path.exists() {
            tighten(&path, 0o600);
        }
    }
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(dir.join(LEDGER)).map(drop)
}

/// Takes off `path` every permission bit outside `allowed`. One that cannot
/// be changed (a directory owned by someone else) is logged, not fatal: the
/// ledger is still better kept than not.
fn tighten(path: &Path, allowed: u32) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !allowed == 0 {
        return;
    }
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & allowed)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot make the state directory private to its owner");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_open_state_dir_and_its_files_are_tightened() {
        let dir = std::env::temp_dir().join(format!("mailcanary-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["signing.key", "ledger.sqlite-wal", "other.txt"] {
            std::fs::write(dir.join(name), "x").unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::write(dir.join("ledger.sqlite-shm"), "x").unwrap();
        std::fs::set_permissions(dir.join("ledger.sqlite-shm"), std::fs::Permissions::from_mode(0o400)).unwrap();
        make_private(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("signing.key")), 0o600);
        assert_eq!(mode(&dir.join("ledger.sqlite-wal")), 0o600);
        assert_eq!(mode(&dir.join(LEDGER)), 0o600, "made for SQLite, private");
        assert_eq!(mode(&dir.join("ledger.sqlite-shm")), 0o400, "tighter already: left as it is");
        assert_eq!(mode(&dir.join("other.txt")), 0o644, "not mailcanary's: left alone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
