//! `ferry pull -f zarf.yaml`: the images `zarf package create` would put in the package, as pull sources.

use std::path::Path;

use crate::definition::{Definition, MAX_ZARF_YAML, Origin};
use crate::error::{PackageError, Result};

/// The images `zarf package create` would take from the `zarf.yaml` at `path` for `architecture` (`None`:
/// `metadata.architecture`, else this machine's) and `flavor`, as `ferry pull` sources in order, each once:
/// a registry reference, `docker-daemon:NAME` (v1beta1 `source: daemon`), or `oci-archive:FILE:NAME` for
/// the images of `imageArchives` (the path taken relative to the `zarf.yaml`).
pub fn pull_list(path: &Path, architecture: Option<&str>, flavor: &str) -> Result<Vec<String>> {
    let label = path.display().to_string();
    let bytes = read_capped(path, MAX_ZARF_YAML)?;
    let def = Definition::parse(&label, &bytes)?;
    let arch = def.create_architecture(architecture);
    if !flavor.is_empty() && !def.components.iter().any(|c| c.only_flavor == flavor) {
        tracing::warn!("{label}: no component has the flavor {flavor:?}");
    }
    let base = path.parent().unwrap_or(Path::new(""));
    def.images_for(&arch, flavor)
        .into_iter()
        .map(|s| match s.origin {
            Origin::Registry => Ok(s.name),
            Origin::Daemon => Ok(format!("docker-daemon:{}", s.name)),
            Origin::Archive(file) => {
                if Path::new(&file).is_absolute() || file.split('/').any(|p| p == "..") {
                    // Zarf resolves these against the package directory; one outside it is not read.
                    return Err(PackageError::invalid(
                        &label,
                        format!("imageArchives path {file:?} leaves the package directory"),
                    ));
                }
                Ok(format!(
                    "oci-archive:{}:{}",
                    base.join(file).display(),
                    s.name
                ))
            }
        })
        .collect()
}

/// A file's bytes, refusing more than `cap`.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| PackageError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PackageError::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(PackageError::invalid(
            path.display().to_string(),
            format!("more than the {cap}-byte limit for a zarf.yaml"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `ferry pull -f` takes, without the transport prefixes: the image names.
    fn names(list: &[String]) -> Vec<String> {
        list.iter()
            .map(|s| match s.strip_prefix("oci-archive:") {
                Some(rest) => rest.rsplit_once(".tar:").unwrap().1.to_string(),
                None => s.strip_prefix("docker-daemon:").unwrap_or(s).to_string(),
            })
            .collect()
    }

    #[test]
    fn pull_and_package_code_select_the_same_images() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zarf.yaml");
        let yaml = "kind: ZarfPackageConfig
metadata:
  name: demo
  architecture: amd64
components:
- name: web
  required: true
  images: [nginx:1.25, ghcr.io/x/y:1]
  imageArchives:
  - path: archives/app.tar
    images: [app:local, nginx:1.25]
- name: tools
  images: [busybox]
";
        std::fs::write(&path, yaml).unwrap();
        let list = pull_list(&path, None, "").unwrap();
        assert_eq!(list[0], "nginx:1.25");
        assert_eq!(
            list[2],
            format!(
                "oci-archive:{}:app:local",
                dir.path().join("archives/app.tar").display()
            )
        );
        let def = Definition::parse("demo", yaml.as_bytes()).unwrap();
        let package_code: Vec<String> =
            def.components
                .iter()
                .flat_map(|c| c.images.clone())
                .fold(Vec::new(), |mut acc, i| {
                    if !acc.contains(&i) {
                        acc.push(i);
                    }
                    acc
                });
        assert_eq!(names(&list), package_code);
        assert_eq!(
            package_code,
            vec!["nginx:1.25", "ghcr.io/x/y:1", "app:local", "busybox"]
        );

        std::fs::write(
            &path,
            "components:\n- name: a\n  imageArchives:\n  - path: ../outside.tar\n    images: [x]\n",
        )
        .unwrap();
        let e = pull_list(&path, None, "").unwrap_err().to_string();
        assert!(e.contains("../outside.tar"), "{e}");
    }
}
