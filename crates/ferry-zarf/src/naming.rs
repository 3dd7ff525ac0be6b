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
/// (unless `no_checksum`) and the plain one. An image already in `target`'s registry keeps its own name.
pub fn push_names(image: &Reference, target: &str, no_checksum: bool) -> Vec<String> {
    if is_transformed(&image.registry, target) {
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

/// Whether an image on `host` is already in `target` (`host[:port][/namespace]`): `target` is that host, or
/// that host followed by `/`. Zarf's `ImageTransformHost` tests a raw string prefix, so `127.0.0.1:5099`
/// would count as inside `127.0.0.1:50991` and `localhost` inside `localhost:5000`, and such images
/// would be pushed to the wrong registry; ferry compares whole hosts (zarf-compat §2).
pub fn is_transformed(host: &str, target: &str) -> bool {
    target
        .strip_prefix(host)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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
        let same_host = "127.0.0.1:50991/library/nginx:1.25";
        assert_eq!(
            push_names(&same_host.parse().unwrap(), "127.0.0.1:50991", false),
            vec![same_host.to_string()]
        );
        assert_eq!(
            push_names(&"nginx:1.25".parse().unwrap(), "reg.example:5000", true),
            vec!["reg.example:5000/library/nginx:1.25".to_string()]
        );
    }

    #[test]
    fn hosts_compare_at_boundaries() {
        // A host that is a string prefix of the target's host is another registry.
        let names = push_names(
            &"127.0.0.1:5099/app/web:1".parse().unwrap(),
            "127.0.0.1:50991",
            true,
        );
        assert_eq!(names, vec!["127.0.0.1:50991/app/web:1".to_string()]);
        let names = push_names(
            &"localhost/myapp:dev".parse().unwrap(),
            "localhost:50991",
            false,
        );
        assert_eq!(
            names,
            vec![
                format!(
                    "localhost:50991/myapp:dev-zarf-{}",
                    crc32(b"localhost/myapp")
                ),
                "localhost:50991/myapp:dev".to_string()
            ]
        );
        assert!(is_transformed("reg.example:5000", "reg.example:5000"));
        assert!(is_transformed("reg.example:5000", "reg.example:5000/ns"));
        assert!(!is_transformed("reg.example", "reg.example:5000"));
        assert!(!is_transformed("reg.example:50", "reg.example:5000/ns"));
        assert!(!is_transformed("reg.ex", "reg.example"));
    }
}
