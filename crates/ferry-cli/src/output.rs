//! Small output helpers shared by the everyday commands.

use serde::Serialize;

/// Pretty JSON on stdout, one document per command.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A command's result: as JSON with `--json`, else (unless `--quiet`) as `text` prints it.
pub fn report<T: Serialize>(
    json: bool,
    quiet: bool,
    value: &T,
    text: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json {
        print_json(value)?;
    } else if !quiet {
        text(value);
    }
    Ok(())
}

/// `1.5 KiB`, `12.0 MiB`; bytes below 1 KiB as `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The four manifest types by short names for tables; anything else as it is.
pub fn short_media_type(mt: &str) -> &str {
    use ferry_oci::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
    match mt {
        OCI_INDEX => "oci-index",
        OCI_MANIFEST => "oci-manifest",
        DOCKER_MANIFEST_LIST => "docker-list",
        DOCKER_MANIFEST => "docker-manifest",
        other => other,
    }
}

/// `-` for an empty value in a table or a summary.
pub fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// `sha256:0123456789ab` — enough to tell digests apart in a table.
pub fn short_digest(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::human(512), "512 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(
            super::short_media_type("application/vnd.oci.image.index.v1+json"),
            "oci-index"
        );
        assert_eq!(
            super::short_digest("sha256:0123456789abcdef"),
            "sha256:0123456789ab"
        );
    }
}
