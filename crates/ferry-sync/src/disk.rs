//! Free space on a filesystem (`statvfs`), for `--plan`'s room check.

use std::path::Path;

/// Bytes an unprivileged writer may still use on the filesystem holding `path` (or its nearest existing
/// ancestor: a layout may not exist yet).
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("."));
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `stat` is writable memory of the right type; statvfs fills
    // it on success, which is checked before it is read.
    let rc = unsafe { libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: initialized by the successful call above.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_temp_dir_has_some_room() {
        let dir = tempfile::tempdir().unwrap();
        assert!(super::available_bytes(&dir.path().join("not/yet")).unwrap() > 0);
    }
}
