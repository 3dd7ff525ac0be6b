//! cosign's simple-signing payload: what a signature says it signed.

use serde::Deserialize;

/// The `critical.type` of a cosign image signature.
pub const COSIGN_TYPE: &str = "cosign container image signature";

/// The claims of a simple-signing payload that a verifier looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `critical.image.docker-manifest-digest`: the digest signed.
    pub digest: String,
    /// `critical.identity.docker-reference`: the name it was signed under.
    pub reference: String,
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The claims of `payload`, or why it is not a cosign image signature payload.
pub fn parse(payload: &[u8]) -> Result<Claims, String> {
    let p: Payload = serde_json::from_slice(payload)
        .map_err(|e| format!("the payload is not simple-signing JSON ({e})"))?;
    if p.critical.kind != COSIGN_TYPE {
        return Err(format!(
            "the payload's type is {:?}, not {COSIGN_TYPE:?}",
            p.critical.kind
        ));
    }
    Ok(Claims {
        digest: p.critical.image.docker_manifest_digest,
        reference: p.critical.identity.docker_reference,
    })
}

/// The payload cosign signs for `digest` named `reference` (cosign's field order, no optional claims).
pub fn for_image(reference: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": { "docker-reference": reference },
            "image": { "docker-manifest-digest": digest },
            "type": COSIGN_TYPE,
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_refuses_other_types() {
        let p = for_image("example.com/app", "sha256:00");
        assert_eq!(
            parse(&p).unwrap(),
            Claims {
                digest: "sha256:00".into(),
                reference: "example.com/app".into()
            }
        );
        let other = String::from_utf8(p)
            .unwrap()
            .replace(COSIGN_TYPE, "atomic container signature");
        assert!(parse(other.as_bytes()).unwrap_err().contains("atomic"));
        assert!(parse(b"{}").is_err());
    }
}
