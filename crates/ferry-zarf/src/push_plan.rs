//! What `ferry push` sends where: every named image of a layout (or some) under Zarf's names for a target
//! registry (zarf-compat §2), or one image under a name the user gives.

use ferry_oci::{Descriptor, Reference, ReferenceError};

/// One image to push: where it goes and under which tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushItem {
    /// The name it has in the layout (normalized).
    pub source: String,
    /// The manifest's own descriptor (the layout's naming annotations are not part of the image).
    pub desc: Descriptor,
    /// The registry host it goes to.
    pub registry: String,
    /// The repository there.
    pub repository: String,
    /// Tags to write after the content is in place; empty for digest references.
    pub tags: Vec<String>,
    /// Every name it ends up under, for the summary.
    pub names: Vec<String>,
}

/// Why no plan could be made. `layout` names the layout or package in messages.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A `--registry` that is empty or a URL; holds it.
    #[error("invalid --registry {0:?}: expected HOST[:PORT][/NAMESPACE]")]
    Target(String),
    /// An image name that is not a reference.
    #[error("invalid image reference {text:?}{}", layout.as_ref().map(|l| format!(" in {l}")).unwrap_or_default())]
    Reference {
        /// The name as given.
        text: String,
        /// The layout it came from, if it came from one.
        layout: Option<String>,
        /// Why it is not a reference.
        #[source]
        source: Box<ReferenceError>,
    },
    /// Images asked for that the layout does not hold.
    #[error("not in {layout}: {missing}; it has: {present}")]
    Missing {
        /// The layout or package.
        layout: String,
        /// The images not found, comma-separated.
        missing: String,
        /// The images it holds, comma-separated.
        present: String,
    },
    /// A destination pinned by digest names another digest than the image's.
    #[error("{dest} names digest {named}, but {image} is {actual}")]
    DigestMismatch {
        /// The destination reference.
        dest: String,
        /// The digest it names.
        named: String,
        /// The image pushed.
        image: String,
        /// The image's digest.
        actual: String,
    },
}

fn parse(text: &str, layout: Option<&str>) -> Result<Reference, PlanError> {
    text.parse().map_err(|source| PlanError::Reference {
        text: text.to_string(),
        layout: layout.map(str::to_string),
        source: Box::new(source),
    })
}

/// Every named entry of a layout (or those in `only`), under Zarf's names for `target`
/// (`HOST[:PORT][/NAMESPACE]`), each image once. Names come from `ref.name`, or `base.name` in Crane-era
/// layouts; both spellings of Docker Hub names match. An index's unnamed children go with their index.
pub fn zarf_plan(
    entries: &[Descriptor],
    layout: &str,
    target: &str,
    only: &[String],
    no_checksum: bool,
) -> Result<Vec<PushItem>, PlanError> {
    let target = target.trim_end_matches('/');
    if target.is_empty() || target.contains("://") {
        return Err(PlanError::Target(target.to_string()));
    }
    let wanted: Vec<Reference> = only
        .iter()
        .map(|s| parse(s, None))
        .collect::<Result<_, _>>()?;
    let mut seen: Vec<Reference> = Vec::new();
    let mut plan = Vec::new();
    for entry in entries {
        let Some(name) = entry.image_name() else {
            continue;
        };
        let reference = parse(&name, Some(layout))?;
        if seen.contains(&reference) {
            continue;
        }
        seen.push(reference.clone());
        if !wanted.is_empty() && !wanted.contains(&reference) {
            continue;
        }
        let names = crate::push_names(&reference, target, no_checksum);
        // Every name is in one repository: the names differ only in tag.
        let first = parse(&names[0], None)?;
        let tags = names
            .iter()
            .map(|n| parse(n, None))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|r| r.digest.is_none())
            .filter_map(|r| r.tag)
            .collect();
        plan.push(PushItem {
            source: reference.to_string(),
            desc: strip_names(entry),
            registry: first.registry,
            repository: first.repository,
            tags,
            names,
        });
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| !seen.contains(w))
        .map(|w| w.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(PlanError::Missing {
            layout: layout.to_string(),
            missing: missing.join(", "),
            present: seen
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(plan)
}

/// The image named `name` in the layout, to go to `dest` (a full reference; a digest in it must match).
pub fn explicit_plan(
    entries: &[Descriptor],
    layout: &str,
    name: &str,
    dest: &str,
) -> Result<PushItem, PlanError> {
    let wanted = parse(name, None)?;
    let entry = entries
        .iter()
        .find(|e| {
            e.image_name()
                .and_then(|n| n.parse::<Reference>().ok())
                .is_some_and(|r| r == wanted)
        })
        .ok_or_else(|| PlanError::Missing {
            layout: layout.to_string(),
            missing: wanted.to_string(),
            present: entries
                .iter()
                .filter_map(|e| e.image_name())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let dest_ref = parse(dest, None)?;
    if let Some(d) = &dest_ref.digest
        && *d != entry.digest
    {
        return Err(PlanError::DigestMismatch {
            dest: dest.to_string(),
            named: d.to_string(),
            image: wanted.to_string(),
            actual: entry.digest.to_string(),
        });
    }
    Ok(PushItem {
        source: wanted.to_string(),
        desc: strip_names(entry),
        tags: match &dest_ref.digest {
            Some(_) => Vec::new(),
            None => dest_ref.tag.iter().cloned().collect(),
        },
        names: vec![dest_ref.to_string()],
        registry: dest_ref.registry,
        repository: dest_ref.repository,
    })
}

/// The manifest's own descriptor: the layout's naming annotations are not part of the image.
fn strip_names(entry: &Descriptor) -> Descriptor {
    Descriptor::new(entry.media_type.clone(), entry.digest.clone(), entry.size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_oci::descriptor::{ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME};
    use ferry_oci::media_type;

    fn entry(content: &[u8], key: &str, name: &str) -> Descriptor {
        let mut d = Descriptor::of(media_type::OCI_MANIFEST, content);
        d.annotations.insert(key.into(), name.into());
        d
    }

    fn layout() -> Vec<Descriptor> {
        let child = Descriptor::of(media_type::OCI_MANIFEST, b"unnamed child");
        vec![
            entry(
                b"nginx",
                ANNOTATION_REF_NAME,
                "docker.io/library/nginx:1.25",
            ),
            // Crane era: base.name only, Docker Hub without docker.io/.
            entry(b"busybox", ANNOTATION_BASE_NAME, "library/busybox:1"),
            child,
            entry(
                b"pinned",
                ANNOTATION_REF_NAME,
                "ghcr.io/x/y@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79",
            ),
            entry(b"nginx", ANNOTATION_BASE_NAME, "nginx:1.25"),
        ]
    }

    #[test]
    fn every_named_image_once_under_zarf_names() {
        let plan = zarf_plan(&layout(), "pkg", "reg.example:5000/ns/", &[], false).unwrap();
        assert_eq!(plan.len(), 3, "{plan:#?}");
        let nginx = &plan[0];
        assert_eq!(nginx.source, "docker.io/library/nginx:1.25");
        assert_eq!(
            (nginx.registry.as_str(), nginx.repository.as_str()),
            ("reg.example:5000", "ns/library/nginx")
        );
        assert_eq!(
            nginx.tags,
            vec![
                format!("1.25-zarf-{}", crate::crc32(b"docker.io/library/nginx")),
                "1.25".to_string()
            ]
        );
        assert!(nginx.desc.annotations.is_empty(), "names are not pushed");
        assert_eq!(plan[1].source, "docker.io/library/busybox:1");
        assert!(plan[2].tags.is_empty(), "a digest reference gets no tag");
        assert_eq!(plan[2].names.len(), 1);

        let only = zarf_plan(&layout(), "pkg", "reg", &["busybox:1".into()], true).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].names, vec!["reg/library/busybox:1".to_string()]);

        let e = zarf_plan(&layout(), "pkg", "reg", &["alpine".into()], false).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("not in pkg") && msg.contains("alpine") && msg.contains("busybox"),
            "{msg}"
        );
        assert!(matches!(
            zarf_plan(&layout(), "pkg", "https://reg", &[], false),
            Err(PlanError::Target(_))
        ));
    }

    #[test]
    fn already_in_the_target_registry_keeps_its_name() {
        let layout = vec![entry(b"a", ANNOTATION_REF_NAME, "127.0.0.1:5099/app/web:1")];
        // Another port on the same address is another registry (Zarf's raw prefix test would keep the name).
        let plan = zarf_plan(&layout, "pkg", "127.0.0.1:50991", &[], true).unwrap();
        assert_eq!(plan[0].registry, "127.0.0.1:50991");
        assert_eq!(plan[0].names, vec!["127.0.0.1:50991/app/web:1".to_string()]);
        let plan = zarf_plan(&layout, "pkg", "127.0.0.1:5099", &[], false).unwrap();
        assert_eq!(plan[0].registry, "127.0.0.1:5099");
        assert_eq!(plan[0].names, vec!["127.0.0.1:5099/app/web:1".to_string()]);
    }

    #[test]
    fn explicit_destination() {
        let item = explicit_plan(&layout(), "pkg", "nginx:1.25", "reg:5000/a/b:v1").unwrap();
        assert_eq!(
            (item.registry.as_str(), item.repository.as_str()),
            ("reg:5000", "a/b")
        );
        assert_eq!(item.tags, vec!["v1".to_string()]);
        let digest = Descriptor::of(media_type::OCI_MANIFEST, b"nginx").digest;
        let by_digest =
            explicit_plan(&layout(), "pkg", "nginx:1.25", &format!("reg/a@{digest}")).unwrap();
        assert!(by_digest.tags.is_empty());
        let wrong = "reg/a@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";
        assert!(matches!(
            explicit_plan(&layout(), "pkg", "nginx:1.25", wrong),
            Err(PlanError::DigestMismatch { .. })
        ));
        assert!(matches!(
            explicit_plan(&layout(), "pkg", "alpine", "reg/a:1"),
            Err(PlanError::Missing { .. })
        ));
    }
}
