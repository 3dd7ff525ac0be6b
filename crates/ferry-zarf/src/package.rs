//! Reading `zarf.yaml`: just what ferry needs from it (the images of every component).

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct ZarfYamlError {
    pub path: String,
    pub why: String,
}

#[derive(Deserialize)]
struct ZarfYaml {
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct Component {
    #[serde(default)]
    images: Vec<String>,
}

/// Every `components[].images` entry, in order, without duplicates.
pub fn images_in_zarf_yaml(path: &str, text: &str) -> Result<Vec<String>, ZarfYamlError> {
    let doc: ZarfYaml = serde_yaml::from_str(text).map_err(|e| ZarfYamlError {
        path: path.to_string(),
        why: format!("not a valid zarf.yaml: {e}"),
    })?;
    let mut out: Vec<String> = Vec::new();
    for c in doc.components {
        for i in c.images {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_images_of_all_components() {
        let yaml = "kind: ZarfPackageConfig\nmetadata:\n  name: x\ncomponents:\n  - name: a\n    images:\n      - nginx:1.25\n      - ghcr.io/x/y:1\n  - name: b\n    images: [nginx:1.25, busybox]\n  - name: c\n";
        assert_eq!(
            super::images_in_zarf_yaml("zarf.yaml", yaml).unwrap(),
            vec!["nginx:1.25", "ghcr.io/x/y:1", "busybox"]
        );
        assert!(super::images_in_zarf_yaml("zarf.yaml", "components: 3").is_err());
    }
}
