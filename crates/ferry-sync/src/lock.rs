//! The lock file (`--lock FILE`): every source reference a sync took, the digest it resolved to, where it
//! went, and every digest of its graph — enough to pin the next run, and to serve as the base of a delta
//! (`ferry export --since LOCK`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Lock files are bounded: a hostile or mistaken path should not be read whole into memory.
pub const MAX_LOCK_BYTES: u64 = 64 << 20;

/// The lock file: what a sync took, for pinning the next run and as a delta's base (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockFile {
    /// Format version (1).
    pub version: u32,
    /// One entry per image taken.
    pub images: Vec<LockedImage>,
}

/// One image a sync took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockedImage {
    /// The reference as the sync file named it (`registry/repository:tag` or `@digest`).
    pub source: String,
    /// The digest of what was copied and named (a platform's manifest chosen from an index, or the
    /// index itself).
    pub digest: String,
    /// The media type of that manifest or index.
    pub media_type: String,
    /// Names at the destination.
    pub destination: Vec<String>,
    /// Every manifest, config and layer digest of the image (and its referrers), sorted.
    pub digests: BTreeSet<String>,
}

/// A lock file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The file exists but could not be read.
    #[error("reading the lock file {path}")]
    Read {
        /// The lock file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_LOCK_BYTES`]: not a lock file.
    #[error("{path} is larger than {MAX_LOCK_BYTES} bytes; not a lock file")]
    TooLarge {
        /// The lock file.
        path: PathBuf,
    },
    /// Not a lock file of this format.
    #[error("{path} is not a ferry sync lock file")]
    Parse {
        /// The lock file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The new lock file could not be written.
    #[error("writing the lock file {path}")]
    Write {
        /// The lock file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl LockFile {
    /// The format version this ferry reads and writes.
    pub const VERSION: u32 = 1;

    /// Read a lock file; a missing one is `None`.
    pub fn load(path: &Path) -> Result<Option<LockFile>, LockError> {
        use std::io::Read;
        let read = |source| LockError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_LOCK_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_LOCK_BYTES {
            return Err(LockError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let lock: LockFile = serde_json::from_slice(&bytes).map_err(|source| LockError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Some(lock))
    }

    /// Write beside the target, then rename: a reader never sees half a lock file.
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let write = |source| LockError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
        serde_json::to_writer_pretty(&mut tmp, self)
            .map_err(|e| write(std::io::Error::other(e)))?;
        std::io::Write::write_all(&mut tmp, b"\n").map_err(write)?;
        tmp.persist(path).map_err(|e| write(e.error))?;
        Ok(())
    }

    /// The entry of an earlier run for `source` at `digest`, if the image has not changed since.
    pub fn unchanged(&self, source: &str, digest: &str) -> Option<&LockedImage> {
        self.images
            .iter()
            .find(|i| i.source == source && i.digest == digest)
    }

    /// Every digest of every image.
    pub fn all_digests(&self) -> BTreeSet<String> {
        self.images
            .iter()
            .flat_map(|i| i.digests.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.lock");
        assert!(LockFile::load(&path).unwrap().is_none());
        let lock = LockFile {
            version: LockFile::VERSION,
            images: vec![LockedImage {
                source: "r.io/a:1".into(),
                digest: "sha256:aa".into(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                destination: vec!["m.local/a:1".into()],
                digests: ["sha256:aa", "sha256:bb"].map(String::from).into(),
            }],
        };
        lock.save(&path).unwrap();
        assert_eq!(LockFile::load(&path).unwrap().unwrap(), lock);
        assert_eq!(lock.all_digests().len(), 2);
        std::fs::write(&path, br#"{"schemaVersion":2}"#).unwrap();
        assert!(matches!(
            LockFile::load(&path),
            Err(LockError::Parse { .. })
        ));
    }
}
