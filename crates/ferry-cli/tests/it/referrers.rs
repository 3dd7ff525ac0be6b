//! `--referrers`: signatures, SBOMs and attestations travel with their image — through the tag-schema
//! fallback on the real registry (2.8 has no referrers API), the referrers API (faked in front of it, with
//! pagination), and cosign tags.

use ferry_test::faults::{Fault, FaultProxy, Rule};
use ferry_test::{Artifact, Blob, Mode, Registry, fixtures};

use crate::support::{Env, assert_has_all, entries, json};

pub(crate) const SBOM: &str = "application/spdx+json";
const SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

pub(crate) struct Family {
    pub image: Artifact,
    pub sbom: Artifact,
    pub sbom_sig: Artifact,
    pub cosign: Artifact,
}

pub(crate) fn family(seed: u64) -> Family {
    let image = fixtures::oci_image(seed, 1, "amd64");
    let sbom = fixtures::artifact_with_subject(&image.manifest, SBOM, seed + 1);
    let sbom_sig = fixtures::artifact_with_subject(&sbom.manifest, SIG, seed + 2);
    let cosign = fixtures::cosign_signature(&image.digest(), seed + 3);
    Family {
        image,
        sbom,
        sbom_sig,
        cosign,
    }
}

/// An OCI index listing `referrers`, all of `artifact_type`, as a referrers response lists them.
fn referrers_index(referrers: &[&Artifact], artifact_type: &str) -> Blob {
    let typed: Vec<_> = referrers.iter().map(|a| (*a, artifact_type)).collect();
    fixtures::referrers_index(&typed)
}

/// The family in a registry without the referrers API: artifacts by digest, the fallback indexes
/// `sha256-<hex>` (as a conforming client leaves them) and the cosign tag.
pub(crate) async fn seed_with_fallback(reg: &Registry, f: &Family) {
    reg.seed("app", Some("1"), &f.image).await;
    reg.seed("app", None, &f.sbom).await;
    reg.seed("app", None, &f.sbom_sig).await;
    reg.seed(
        "app",
        Some(&fixtures::cosign_tag(&f.image.digest())),
        &f.cosign,
    )
    .await;
    for (subject, referrer, t) in [(&f.image, &f.sbom, SBOM), (&f.sbom, &f.sbom_sig, SIG)] {
        let tag = subject.digest().replace(':', "-");
        let (status, body) = reg
            .put_manifest("app", &tag, &referrers_index(&[referrer], t))
            .await;
        assert!((200..300).contains(&status), "{body}");
    }
}

fn fallback_lists(bytes: &[u8], digest: &str) -> bool {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["digest"] == digest)
}

#[tokio::test]
async fn pull_and_push_carry_the_whole_family_through_the_tag_fallback() {
    let src = Registry::start(Mode::Plain);
    let dst = Registry::start(Mode::Plain);
    let f = family(700);
    seed_with_fallback(&src, &f).await;
    let env = Env::new();
    let out = env.path("images");
    let reference = format!("{}/app:1", src.host());
    let pulled = json(
        &env.ok(&[
            "pull",
            &reference,
            "-o",
            out.to_str().unwrap(),
            "--referrers",
            "--json",
        ])
        .await,
    );
    assert_eq!(
        pulled[0]["referrers"].as_array().unwrap().len(),
        3,
        "{pulled}"
    );
    for a in [&f.image, &f.sbom, &f.sbom_sig, &f.cosign] {
        assert_has_all(&out, a);
    }
    let e = entries(&out);
    let cosign_name = format!(
        "{}/app:{}",
        src.host(),
        fixtures::cosign_tag(&f.image.digest())
    );
    assert!(e.contains(&(f.cosign.digest(), Some(cosign_name))), "{e:?}");
    assert!(
        e.contains(&(f.sbom.digest(), None)) && e.contains(&(f.sbom_sig.digest(), None)),
        "{e:?}"
    );

    // Push them on: ferry writes the fallback indexes itself on a registry without the API.
    env.ok(&[
        "push",
        out.to_str().unwrap(),
        "--registry",
        &dst.host(),
        "--no-checksum",
        "--referrers",
        "-q",
    ])
    .await;
    assert!(dst.get_manifest("app", "1").await.is_some());
    for a in [&f.sbom, &f.sbom_sig] {
        assert_eq!(
            dst.get_manifest("app", &a.digest()).await.unwrap().1,
            a.manifest.bytes.as_ref()
        );
    }
    let (_, index) = dst
        .get_manifest("app", &f.image.digest().replace(':', "-"))
        .await
        .expect("fallback index for the image");
    assert!(fallback_lists(&index, &f.sbom.digest()));
    let (_, index) = dst
        .get_manifest("app", &f.sbom.digest().replace(':', "-"))
        .await
        .expect("fallback index for the SBOM");
    assert!(fallback_lists(&index, &f.sbom_sig.digest()));
    assert!(
        dst.get_manifest("app", &fixtures::cosign_tag(&f.image.digest()))
            .await
            .is_some()
    );

    // Without --referrers nothing but the image moves.
    let plain = env.path("plain");
    let only = json(
        &env.ok(&["pull", &reference, "-o", plain.to_str().unwrap(), "--json"])
            .await,
    );
    assert!(only[0].get("referrers").is_none());
    assert_eq!(entries(&plain).len(), 1);
}

#[tokio::test]
async fn copy_with_type_filter_and_the_referrers_api_with_pages() {
    let reg = Registry::start(Mode::Plain);
    let f = family(710);
    reg.seed("app", Some("1"), &f.image).await;
    reg.seed("app", None, &f.sbom).await;
    reg.seed("app", None, &f.sbom_sig).await;
    let other = fixtures::artifact_with_subject(&f.image.manifest, SIG, 714);
    reg.seed("app", None, &other).await;
    // A registry with the referrers API: two pages for the image, one for the SBOM.
    let api = FaultProxy::start(&reg.host());
    let image_path = format!("/v2/app/referrers/{}", f.image.digest());
    let page2 = format!("{image_path}?last=1");
    let page = |arts: &[&Artifact], t: &str, next: Option<&str>| {
        let mut headers = vec![(
            "Content-Type".to_string(),
            "application/vnd.oci.image.index.v1+json".to_string(),
        )];
        if let Some(n) = next {
            headers.push(("Link".into(), format!("<{n}>; rel=\"next\"")));
        }
        Fault::Respond {
            code: 200,
            headers,
            body: referrers_index(arts, t).bytes.to_vec(),
        }
    };
    api.add(Rule::new(
        Some("GET"),
        &page2,
        page(&[&other], SIG, None),
        100,
    ));
    api.add(Rule::new(
        Some("GET"),
        &image_path,
        page(&[&f.sbom], SBOM, Some(&page2)),
        100,
    ));
    api.add(Rule::new(
        Some("GET"),
        &format!("/v2/app/referrers/{}", f.sbom.digest()),
        page(&[&f.sbom_sig], SIG, None),
        100,
    ));

    let dst = Registry::start(Mode::Plain);
    let env = Env::new();
    let all = json(
        &env.ok(&[
            "copy",
            &format!("{}/app:1", api.host()),
            &format!("{}/all/app:1", dst.host()),
            "--plain-http",
            "--referrers",
            "--json",
        ])
        .await,
    );
    assert_eq!(all[0]["digest"], f.image.digest(), "{all}");
    for a in [&f.sbom, &f.sbom_sig, &other] {
        assert!(
            dst.get_manifest("all/app", &a.digest()).await.is_some(),
            "{}",
            a.digest()
        );
    }
    let pages = api
        .requests()
        .iter()
        .filter(|s| s.path.contains("/referrers/"))
        .count();
    assert!(
        pages >= 3,
        "both pages and the SBOM's list were read: {:?}",
        api.requests()
    );

    // Only SBOMs: the signatures stay behind.
    env.ok(&[
        "copy",
        &format!("{}/app:1", api.host()),
        &format!("{}/sboms/app:1", dst.host()),
        "--plain-http",
        "--referrers",
        "--referrers-type",
        SBOM,
        "-q",
    ])
    .await;
    assert!(
        dst.get_manifest("sboms/app", &f.sbom.digest())
            .await
            .is_some()
    );
    assert!(
        dst.get_manifest("sboms/app", &other.digest())
            .await
            .is_none()
    );
    assert!(
        dst.get_manifest("sboms/app", &f.sbom_sig.digest())
            .await
            .is_none()
    );
}

#[tokio::test]
async fn concurrent_pushes_of_referrers_keep_every_fallback_entry() {
    let dst = Registry::start(Mode::Plain);
    let image = fixtures::oci_image(720, 1, "amd64");
    let attachments: Vec<Artifact> = (0..4)
        .map(|i| fixtures::artifact_with_subject(&image.manifest, SIG, 721 + i))
        .collect();
    let src = Registry::start(Mode::Plain);
    src.seed("app", Some("1"), &image).await;
    for (i, a) in attachments.iter().enumerate() {
        src.seed("app", Some(&format!("a{i}")), a).await;
    }
    let env = Env::new();
    // Four processes each copy one artifact (and so its subject) into the same repository at once; each
    // must add its entry to the same fallback index without losing the others'.
    let args: Vec<Vec<String>> = (0..4)
        .map(|i| {
            vec![
                "copy".into(),
                format!("{}/app:a{i}", src.host()),
                format!("{}/app:a{i}", dst.host()),
                "-q".into(),
                "--no-cache".into(),
            ]
        })
        .collect();
    // Spawned together, so they really run at the same time.
    let children: Vec<_> = args
        .iter()
        .map(|a| {
            env.command()
                .args(a)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (_, index) = dst
        .get_manifest("app", &image.digest().replace(':', "-"))
        .await
        .expect("fallback index");
    for a in &attachments {
        assert!(
            fallback_lists(&index, &a.digest()),
            "{} lost: {}",
            a.digest(),
            String::from_utf8_lossy(&index)
        );
    }
}
