//! How Zarf names an image in the target registry: `<target>/<path>:<tag>-zarf-<crc32(name)>` and the plain
//! `<target>/<path>:<tag>`; digest references keep their digest and get no CRC.

use ferry_oci::Reference;

/// CRC-32/IEEE (zlib's crc32), bitwise: the inputs are image names, a few dozen bytes.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The names Zarf pushes `image` under for `target` (`host[:port][/namespace]`): the with-checksum name
/// (unless `no_checksum`) and the plain one. An image whose host is a prefix of `target` is already
/// transformed and keeps its own name.
pub fn push_names(image: &Reference, target: &str, no_checksum: bool) -> Vec<String> {
    if target.starts_with(&image.registry) {
        return vec![image.to_string()];
    }
    let base = format!("{}/{}", target.trim_end_matches('/'), image.repository);
    let plain = match (&image.digest, &image.tag) {
        (Some(d), _) => format!("{base}@{d}"),
        (None, Some(t)) => format!("{base}:{t}"),
        (None, None) => format!("{base}:latest"),
    };
    if no_checksum {
        return vec![plain];
    }
    let checksummed = match (&image.digest, &image.tag) {
        (Some(d), _) => format!("{base}@{d}"),
        (None, t) => format!(
            "{base}:{}-zarf-{}",
            t.as_deref().unwrap_or("latest"),
            crc32(image.name().as_bytes())
        ),
    };
    if checksummed == plain {
        vec![plain]
    } else {
        vec![checksummed, plain]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(src: &str) -> String {
        push_names(&src.parse().unwrap(), "gitlab.com/project", false)[0].clone()
    }

    #[test]
    fn zarf_table() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            first("nginx"),
            "gitlab.com/project/library/nginx:latest-zarf-3793515731"
        );
        assert_eq!(
            first("nginx:1.23.3"),
            "gitlab.com/project/library/nginx:1.23.3-zarf-3793515731"
        );
        assert_eq!(
            first("zarf-dev/zarf-agent:v0.22.1"),
            "gitlab.com/project/zarf-dev/zarf-agent:v0.22.1-zarf-2183797434"
        );
        assert_eq!(
            first("ghcr.io/stefanprodan/podinfo:6.3.3"),
            "gitlab.com/project/stefanprodan/podinfo:6.3.3-zarf-2985051089"
        );
        assert_eq!(
            first("registry1.dso.mil/ironbank/opensource/zarf-dev/zarf/zarf-agent:v0.25.0"),
            "gitlab.com/project/ironbank/opensource/zarf-dev/zarf/zarf-agent:v0.25.0-zarf-1211467612"
        );
        assert_eq!(
            first("oci://10.43.130.183:5000/stefanprodan/manifests/podinfo"),
            "gitlab.com/project/stefanprodan/manifests/podinfo:latest-zarf-531355090"
        );
        let d = "sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";
        assert_eq!(
            push_names(
                &format!("busybox:latest@{d}").parse().unwrap(),
                "gitlab.com/project",
                false
            ),
            vec![format!("gitlab.com/project/library/busybox@{d}")]
        );
        let done = "gitlab.com/project/gitea/gitea:1.19.3-rootless-zarf-3431384023";
        assert_eq!(first(done), done);
        assert_eq!(
            push_names(&"nginx:1.25".parse().unwrap(), "reg.example:5000", true),
            vec!["reg.example:5000/library/nginx:1.25".to_string()]
        );
    }
}
