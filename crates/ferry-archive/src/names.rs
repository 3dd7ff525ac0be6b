//! The images of an archive and the names they go by (zarf-compat §4).

use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{Descriptor, Reference};

use crate::error::{ArchiveError, Result};

/// One image of an archive. An image with several names (tags) is listed once per name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveImage {
    /// The name, normalized (`hello-world:linux` → `docker.io/library/hello-world:linux`) when it is a
    /// reference; a bare tag (`ref.name` of `linux`) is kept as written. `None` for an image saved by ID.
    pub name: Option<String>,
    /// The manifest or index to copy: media type, digest, size (and platform, if the archive gave one).
    /// The archive's own annotations are left out, as a registry resolve has none.
    pub desc: Descriptor,
}

impl ArchiveImage {
    /// The image's name for messages and lists: its name, or `<unnamed sha256:…>`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("<unnamed {}>", self.desc.digest),
        }
    }
}

/// `name` normalized if it parses as a reference and is more than a bare tag.
pub(crate) fn normalize_name(name: &str) -> String {
    if name.contains(['/', ':', '@'])
        && let Ok(r) = Reference::parse(name)
    {
        return r.to_string();
    }
    name.to_string()
}

/// The names of an index entry: [`Descriptor::image_name`]'s priority (zarf-compat §4), with the `RepoTags`
/// Docker's `manifest.json` gives it slotted in before `ref.name` and `base.name` (Docker puts only the
/// tag in `ref.name`).
pub(crate) fn entry_names(entry: &Descriptor, repo_tags: &[String]) -> Vec<Option<String>> {
    let mut full_names_only = entry.clone();
    full_names_only
        .annotations
        .retain(|k, _| k != ANNOTATION_REF_NAME && k != ANNOTATION_BASE_NAME);
    if let Some(n) = full_names_only.image_name() {
        return vec![Some(normalize_name(&n))];
    }
    if !repo_tags.is_empty() {
        return repo_tags.iter().map(|t| Some(normalize_name(t))).collect();
    }
    vec![entry.image_name().map(|n| normalize_name(&n))]
}

/// The descriptor a copy starts from: without the archive's annotations.
pub(crate) fn plain(entry: &Descriptor) -> Descriptor {
    let mut d = Descriptor::new(entry.media_type.clone(), entry.digest.clone(), entry.size);
    d.platform = entry.platform.clone();
    d.artifact_type = entry.artifact_type.clone();
    d
}

/// The image `wanted` names: by name as written, by normalized reference, by `repo@digest`, or by the
/// manifest digest alone.
pub(crate) fn resolve<'a>(
    images: &'a [ArchiveImage],
    wanted: &str,
    archive: &str,
) -> Result<&'a ArchiveImage> {
    let wanted_ref = Reference::parse(wanted).ok();
    let matches = |img: &ArchiveImage| {
        if wanted == img.desc.digest.to_string() {
            return true;
        }
        let Some(name) = &img.name else { return false };
        if name == wanted {
            return true;
        }
        let (Some(w), Ok(n)) = (&wanted_ref, Reference::parse(name)) else {
            return false;
        };
        if w.digest.is_some() {
            // `repo@digest`: the repository must match and the digest must be this image's.
            w.name() == n.name()
                && (w.digest.as_ref() == Some(&img.desc.digest) || w.digest == n.digest)
        } else {
            *w == n
        }
    };
    images
        .iter()
        .find(|i| matches(i))
        .ok_or_else(|| ArchiveError::NoSuchImage {
            archive: archive.to_string(),
            wanted: wanted.to_string(),
            found: list(images),
        })
}

/// The archive's only image (several names of one digest count as one).
pub(crate) fn single<'a>(images: Vec<&'a ArchiveImage>, archive: &str) -> Result<&'a ArchiveImage> {
    match images.first() {
        None => Err(ArchiveError::NoSuchImage {
            archive: archive.to_string(),
            wanted: "any image".into(),
            found: "no images".into(),
        }),
        Some(first) if images.iter().all(|i| i.desc.digest == first.desc.digest) => Ok(*first),
        Some(_) => Err(ArchiveError::Ambiguous {
            archive: archive.to_string(),
            count: images.len(),
            found: images
                .iter()
                .map(|i| i.label())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn list(images: &[ArchiveImage]) -> String {
    if images.is_empty() {
        return "no images".into();
    }
    images
        .iter()
        .map(ArchiveImage::label)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_oci::{Digest, media_type};

    fn entry(annotations: &[(&str, &str)]) -> Descriptor {
        let mut d = Descriptor::new(media_type::OCI_INDEX, Digest::of(b"i"), 1);
        for (k, v) in annotations {
            d.annotations.insert(k.to_string(), v.to_string());
        }
        d
    }

    #[test]
    fn priority_follows_zarf_compat() {
        let tags = vec!["hello-world:linux".to_string()];
        let d = entry(&[(ANNOTATION_REF_NAME, "linux")]);
        assert_eq!(entry_names(&d, &[]), vec![Some("linux".to_string())]);
        assert_eq!(
            entry_names(&d, &tags),
            vec![Some("docker.io/library/hello-world:linux".to_string())]
        );
        let d = entry(&[
            (ANNOTATION_REF_NAME, "linux"),
            (
                "containerd.io/distribution.source.docker.io",
                "library/hello-world",
            ),
        ]);
        assert_eq!(
            entry_names(&d, &tags),
            vec![Some(format!("docker.io/library/hello-world@{}", d.digest))]
        );
        let d = entry(&[
            (
                ferry_oci::descriptor::ANNOTATION_CONTAINERD_NAME,
                "docker.io/library/hello-world:linux",
            ),
            (
                "containerd.io/distribution.source.docker.io",
                "library/hello-world",
            ),
        ]);
        assert_eq!(
            entry_names(&d, &[]),
            vec![Some("docker.io/library/hello-world:linux".to_string())]
        );
        assert_eq!(entry_names(&entry(&[]), &[]), vec![None]);
    }

    #[test]
    fn resolves_by_name_reference_and_digest() {
        let a = ArchiveImage {
            name: Some("docker.io/library/a:1".into()),
            desc: Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"a"), 1),
        };
        let b = ArchiveImage {
            name: None,
            desc: Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"b"), 1),
        };
        let images = vec![a.clone(), b.clone()];
        assert_eq!(resolve(&images, "a:1", "x").unwrap(), &a);
        assert_eq!(
            resolve(&images, &format!("a@{}", a.desc.digest), "x").unwrap(),
            &a
        );
        assert_eq!(
            resolve(&images, &b.desc.digest.to_string(), "x").unwrap(),
            &b
        );
        let err = resolve(&images, "nginx", "docker-archive x.tar")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"nginx\"")
                && err.contains("docker.io/library/a:1")
                && err.contains("<unnamed sha256:"),
            "{err}"
        );
        assert!(single(images.iter().collect(), "x").is_err());
        assert_eq!(single(vec![&a, &a], "x").unwrap(), &a);
    }
}
