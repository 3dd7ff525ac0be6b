//! Platforms and platform selection (`linux/amd64`, `linux/arm/v7`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A descriptor's platform, field order as in the image spec's Go type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's spelling (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system in Go's spelling (`linux`, `windows`).
    pub os: String,
    /// The OS version a Windows image needs (`os.version`).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required OS features (`os.features`).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// The architecture's variant (`v7` of `arm`, `v8` of `arm64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// The platform an image config (OCI or Docker) declares; None when it is not JSON or lacks `os` or
    /// `architecture` (an artifact's config).
    pub fn from_config(config: &[u8]) -> Option<Platform> {
        let p: Platform = serde_json::from_slice(config).ok()?;
        (!p.os.is_empty() && !p.architecture.is_empty()).then_some(p)
    }
}

/// A platform a user asked for. The variant is compared only when given (Zarf's rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformSpec {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture, already normalised (`amd64`, not `x86_64`).
    pub architecture: String,
    /// Variant to require; `None` accepts any.
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// `linux/<arch>` for an architecture name, normalising the kernel's spelling (`x86_64`, `aarch64`).
    pub fn linux(arch: &str) -> Self {
        PlatformSpec {
            os: "linux".into(),
            architecture: normalize_arch(arch).into(),
            variant: None,
        }
    }

    /// `linux/<this machine's architecture>`.
    pub fn host() -> Self {
        Self::linux(std::env::consts::ARCH)
    }

    /// Whether `p` is this platform: same OS and (normalised) architecture, and the same variant when one
    /// was asked for.
    pub fn matches(&self, p: &Platform) -> bool {
        p.os == self.os
            && normalize_arch(&p.architecture) == self.architecture
            && match &self.variant {
                Some(v) => p.variant.as_deref() == Some(v.as_str()),
                None => true,
            }
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for PlatformSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: normalize_arch(arch).into(),
                variant: None,
            }),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: normalize_arch(arch).into(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch or os/arch/variant, e.g. linux/arm64"
            )),
        }
    }
}

/// Go's GOARCH names for the architectures the kernel spells differently.
pub fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" | "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let spec: PlatformSpec = "linux/arm/v7".parse().unwrap();
        let mut p = Platform {
            architecture: "arm".into(),
            os: "linux".into(),
            variant: Some("v6".into()),
            ..Default::default()
        };
        assert!(!spec.matches(&p));
        p.variant = Some("v7".into());
        assert!(spec.matches(&p));
        // No variant asked: any variant matches.
        assert!(PlatformSpec::linux("arm").matches(&p));
        assert_eq!(PlatformSpec::linux("x86_64").architecture, "amd64");
        assert!("linux".parse::<PlatformSpec>().is_err());
        assert!("linux/amd64/v2/x".parse::<PlatformSpec>().is_err());
    }
}
