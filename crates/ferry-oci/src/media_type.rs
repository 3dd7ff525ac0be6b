//! Media types ferry needs to tell apart. Everything else is an opaque leaf.

/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image (or artifact) manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image config blob.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker's image config (schema 2).
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// An image config (OCI or Docker), as opposed to an artifact's config.
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// The OCI empty descriptor's type (`{}`), the config of artifacts that have none.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The file name of an OCI layout's marker file (`{"imageLayoutVersion":"1.0.0"}`), not a media type.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// A Docker schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker schema 2 manifest list (Docker's index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker schema 1 manifest: deprecated, refused.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// A signed Docker schema 1 manifest: deprecated, refused.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What ferry accepts when fetching a manifest; schema1 is deliberately absent so registries that can
/// convert will answer with v2, and those that cannot are refused clearly.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.artifact.manifest.v1+json";

/// Whether `media_type` is an index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// Whether `media_type` is an image manifest (OCI, Docker schema 2, or the withdrawn OCI artifact manifest).
pub fn is_image_manifest(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_MANIFEST | DOCKER_MANIFEST | "application/vnd.oci.artifact.manifest.v1+json"
    )
}

/// Indexes and manifests: the nodes of a graph that have successors.
pub fn is_manifest_like(media_type: &str) -> bool {
    is_index(media_type) || is_image_manifest(media_type)
}

/// Whether `media_type` is Docker schema 1 (signed or not), which ferry refuses.
pub fn is_schema1(media_type: &str) -> bool {
    matches!(media_type, DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)
}

/// Foreign (Windows base) and non-distributable layers: referenced by manifests but never fetched,
/// stored or pushed.
pub fn is_non_distributable(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.docker.image.rootfs.foreign.")
        || media_type.starts_with("application/vnd.oci.image.layer.nondistributable.")
}

/// The media type without parameters (`; charset=utf-8`), as servers may add them to Content-Type.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert!(is_index(DOCKER_MANIFEST_LIST));
        assert!(is_image_manifest(DOCKER_MANIFEST));
        assert!(!is_manifest_like(
            "application/vnd.cncf.helm.config.v1+json"
        ));
        assert!(is_non_distributable(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        ));
        assert!(is_non_distributable(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        ));
        assert_eq!(
            essence("application/json; charset=utf-8"),
            "application/json"
        );
    }
}
