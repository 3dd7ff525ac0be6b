//! Writing a package directory as one `.tar` or `.tar.zst` file, entries in the order Zarf's archiver walks
//! the directory (names sorted, each directory before its contents), deterministically (mtime 0, owner 0).

use std::fs::File;
use std::path::Path;

use ferry_archive::{Compression, FILE_MODE, TarWriter};

use crate::error::{PackageError, Result};

/// What to write, by the output's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TarKind {
    /// A plain `.tar`.
    Tar,
    /// A zstd `.tar.zst`.
    TarZstd,
}

impl TarKind {
    /// `.tar.zst` / `.tzst` → zstd, `.tar` → plain; anything else is not a package file name.
    pub fn for_path(path: &Path) -> Option<TarKind> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Some(TarKind::TarZstd)
        } else if name.ends_with(".tar") {
            Some(TarKind::Tar)
        } else {
            None
        }
    }
}

/// Write `dir` to `out` (a temp file beside it, renamed when complete) with the one deterministic tar
/// writer; files that would not shrink (image layers) are stored, not compressed again. Blocking.
pub fn write(dir: &Path, out: &Path, kind: TarKind) -> Result<u64> {
    let compression = match kind {
        TarKind::Tar => Compression::None,
        TarKind::TarZstd => Compression::Zstd,
    };
    let mut tar = TarWriter::create(out, compression)?;
    crate::local::walk(dir, dir, &mut |rel, path, size| {
        match size {
            None => tar.append_dir(&format!("{rel}/"))?,
            Some(size) => {
                let mut f = File::open(path).map_err(|err| PackageError::io(path, err))?;
                tar.append_file(&rel, FILE_MODE, size, &mut f, path)?;
            }
        }
        Ok(())
    })?;
    Ok(tar.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::{Extract, LocalPackage, OpenOptions};

    #[test]
    fn round_trips_in_zarf_order() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg");
        for (rel, data) in [
            ("zarf.yaml", &b"kind: ZarfPackageConfig\n"[..]),
            ("checksums.txt", b"x"),
            ("images/blobs/sha256/ab", b"blob"),
            ("images/index.json", b"{}"),
            ("components/web.tar", b"tar"),
        ] {
            let p = pkg.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        for (name, kind) in [("p.tar", TarKind::Tar), ("p.tar.zst", TarKind::TarZstd)] {
            assert_eq!(TarKind::for_path(Path::new(name)), Some(kind));
            let out = dir.path().join(name);
            write(&pkg, &out, kind).unwrap();
            let opened = LocalPackage::open(
                &out,
                &OpenOptions {
                    extract: Extract::Nothing,
                    hash: true,
                    temp_dir: None,
                    stop_if_layout: false,
                },
            )
            .unwrap();
            assert_eq!(opened.files.len(), 5, "{name}");
            assert_eq!(
                opened.files["images/blobs/sha256/ab"].digest,
                Some(ferry_oci::Digest::of(b"blob"))
            );
        }
        let names: Vec<String> = tar::Archive::new(File::open(dir.path().join("p.tar")).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "checksums.txt",
                "components/",
                "components/web.tar",
                "images/",
                "images/blobs/",
                "images/blobs/sha256/",
                "images/blobs/sha256/ab",
                "images/index.json",
                "zarf.yaml"
            ]
        );
        assert_eq!(TarKind::for_path(Path::new("dir")), None);
    }
}
