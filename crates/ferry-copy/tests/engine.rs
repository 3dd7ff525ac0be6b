//! The copy engine on in-memory stores: no registry, no disk (but for the cache cases).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_copy::{
    Budget, CopyHooks, CopyOptions, Event, PlatformChoice, Referrers, copy, manifest_successors,
};
use ferry_oci::media_type::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use ferry_oci::{Descriptor, PlatformSpec};
use ferry_store::testing::{Fault, MemoryStore};
use ferry_store::{
    BlobCache, BoxFuture, CachedSource, ReadStore, ReadTarget, Referrer, StoreError, WriteTarget,
};
use serde_json::json;

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

struct Image {
    manifest: Descriptor,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// An image of `layers` (each given as its bytes) in `store`.
fn image(store: &MemoryStore, tag: &str, layers: &[&[u8]]) -> Image {
    let config = store.add(OCI_CONFIG, format!(r#"{{"tag":"{tag}"}}"#));
    let layers: Vec<Descriptor> = layers
        .iter()
        .map(|l| store.add(LAYER, l.to_vec()))
        .collect();
    let manifest = manifest_of(store, &config, &layers, None);
    store.set_tag(tag, &manifest);
    Image {
        manifest,
        config,
        layers,
    }
}

fn manifest_of(
    store: &MemoryStore,
    config: &Descriptor,
    layers: &[Descriptor],
    subject: Option<&Descriptor>,
) -> Descriptor {
    let mut m = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config, "layers": layers,
    });
    if let Some(s) = subject {
        m["subject"] = json!(s);
        m["artifactType"] = json!("application/spdx+json");
    }
    store.add(OCI_MANIFEST, serde_json::to_vec(&m).unwrap())
}

fn index_of(store: &MemoryStore, children: &[(Descriptor, &str)]) -> Descriptor {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .map(|(d, arch)| {
            let mut v = json!(d);
            v["platform"] = json!({"os": "linux", "architecture": arch});
            v
        })
        .collect();
    let i = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    store.add(OCI_INDEX, serde_json::to_vec(&i).unwrap())
}

fn targets(
    src: &Arc<MemoryStore>,
    dst: &Arc<MemoryStore>,
) -> (Arc<dyn ReadTarget>, Arc<dyn WriteTarget>) {
    (src.clone(), dst.clone())
}

fn layers(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("layer {i} ").repeat(100 + i).into_bytes())
        .collect()
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

#[tokio::test]
async fn copies_every_node_once_children_before_parents() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let l = layers(5);
    let img = image(&src, "v1", &refs(&l));
    let (s, d) = targets(&src, &dst);
    let copied = copy(&s, "v1", &d, &["v1".into()], &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(copied.root.digest, img.manifest.digest);
    assert_eq!(copied.stats.fetched, 7);
    let arrivals = dst.arrivals();
    assert_eq!(arrivals.len(), 7);
    assert_eq!(
        arrivals.last(),
        Some(&img.manifest.digest),
        "the manifest comes last"
    );
    for d in img.layers.iter().chain([&img.config]) {
        assert_eq!(src.fetches(&d.digest), 1, "{} fetched once", d.digest);
    }
    assert_eq!(dst.tagged("v1").unwrap().digest, img.manifest.digest);
}

#[tokio::test]
async fn a_layer_shared_or_listed_twice_is_fetched_once() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let shared = b"shared layer".as_slice();
    let a = image(&src, "a", &[shared, b"only a"]);
    let b = image(&src, "b", &[shared, shared, b"only b"]);
    let index = index_of(
        &src,
        &[(a.manifest.clone(), "amd64"), (b.manifest.clone(), "arm64")],
    );
    src.set_tag("multi", &index);
    let (s, d) = targets(&src, &dst);
    copy(&s, "multi", &d, &["multi".into()], &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(src.fetches(&a.layers[0].digest), 1);
    assert!(dst.has(&b.layers[2].digest) && dst.has(&index.digest));
}

#[tokio::test]
async fn never_more_in_flight_than_the_budget() {
    let src = Arc::new(MemoryStore::new("src").with_delay(20));
    let dst = Arc::new(MemoryStore::new("dst"));
    let l = layers(24);
    image(&src, "v1", &refs(&l));
    let (s, d) = targets(&src, &dst);
    let opts = CopyOptions {
        budget: Budget::new(3),
        ..Default::default()
    };
    copy(&s, "v1", &d, &[], &opts).await.unwrap();
    assert!(
        src.max_in_flight() <= 3,
        "in flight: {}",
        src.max_in_flight()
    );
    assert!(
        src.max_in_flight() >= 2,
        "the budget is used: {}",
        src.max_in_flight()
    );
}

#[tokio::test]
async fn one_budget_bounds_copies_running_together() {
    let src = Arc::new(MemoryStore::new("src").with_delay(20));
    let dst = Arc::new(MemoryStore::new("dst"));
    let (l1, l2) = (layers(10), layers(20).split_off(10));
    image(&src, "a", &refs(&l1));
    image(&src, "b", &refs(&l2));
    let (s, d) = targets(&src, &dst);
    let opts = CopyOptions {
        budget: Budget::new(4),
        ..Default::default()
    };
    let (ra, rb) = tokio::join!(copy(&s, "a", &d, &[], &opts), copy(&s, "b", &d, &[], &opts));
    ra.unwrap();
    rb.unwrap();
    assert!(
        src.max_in_flight() <= 4,
        "in flight: {}",
        src.max_in_flight()
    );
}

#[tokio::test]
async fn what_the_destination_has_is_not_fetched_and_the_walk_goes_below_it() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let img = image(&src, "v1", &[b"one", b"two"]);
    // An interrupted earlier run left the manifest and one layer, not the other.
    dst.add(LAYER, b"one".to_vec());
    dst.add(OCI_MANIFEST, src_bytes(&src, &img.manifest).await);
    let (s, d) = targets(&src, &dst);
    let copied = copy(&s, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(src.fetches(&img.layers[0].digest), 0);
    assert!(
        dst.has(&img.layers[1].digest),
        "the missing layer is copied"
    );
    assert_eq!(copied.stats.existing, 2);
    assert_eq!(copied.stats.fetched, 2);
}

async fn src_bytes(src: &MemoryStore, d: &Descriptor) -> Vec<u8> {
    src.fetch_manifest(d).await.unwrap().to_vec()
}

#[tokio::test]
async fn a_transient_failure_retries_the_image_with_one_copy_at_a_time() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let img = image(&src, "v1", &[b"a", b"b", b"c"]);
    src.inject(&img.layers[1].digest, Fault::Transient(1));
    let retries = Arc::new(Mutex::new(Vec::new()));
    let seen = retries.clone();
    let opts = CopyOptions {
        events: Arc::new(move |e: &Event| {
            if let Event::Retrying { attempt, .. } = e {
                seen.lock().unwrap().push(*attempt);
            }
        }),
        ..Default::default()
    };
    let (s, d) = targets(&src, &dst);
    copy(&s, "v1", &d, &["v1".into()], &opts).await.unwrap();
    assert_eq!(*retries.lock().unwrap(), vec![1]);
    assert_eq!(src.fetches(&img.layers[1].digest), 2);
    assert_eq!(
        src.fetches(&img.layers[0].digest),
        1,
        "done nodes are not fetched again"
    );
}

#[tokio::test]
async fn a_permanent_failure_is_not_retried_and_nothing_is_named() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let img = image(&src, "v1", &[b"a", b"b"]);
    src.inject(&img.layers[0].digest, Fault::Fatal);
    let (s, d) = targets(&src, &dst);
    let err = copy(&s, "v1", &d, &["v1".into()], &CopyOptions::default())
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(src.fetches(&img.layers[0].digest), 1);
    assert!(
        !dst.has(&img.manifest.digest),
        "no manifest over missing content"
    );
    assert!(dst.tag_names().is_empty());
}

#[tokio::test]
async fn corrupt_bytes_are_refused_and_never_stored() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let img = image(&src, "v1", &[b"good layer", b"bad layer"]);
    src.inject(&img.layers[1].digest, Fault::Corrupt);
    let (s, d) = targets(&src, &dst);
    let err = copy(&s, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap_err();
    let chain = format!("{:?}", anyhow_chain(&err));
    assert!(chain.contains("digest mismatch"), "{chain}");
    assert!(!dst.has(&img.layers[1].digest));
    assert_eq!(
        src.fetches(&img.layers[1].digest),
        1,
        "wrong content is not fetched again"
    );
}

fn anyhow_chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        out.push(s.to_string());
        next = s.source();
    }
    out
}

#[tokio::test]
async fn a_cut_body_resumes_from_the_byte_it_stopped_at() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let big = vec![7u8; 10_000];
    let img = image(&src, "v1", &[&big]);
    src.inject(&img.layers[0].digest, Fault::CutAfter(4096));
    let (s, d) = targets(&src, &dst);
    copy(&s, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(src.ranges(&img.layers[0].digest), vec![0, 4096]);
    assert!(dst.has(&img.layers[0].digest));
}

#[tokio::test]
async fn a_source_that_ignores_ranges_gets_the_blob_started_over() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let big = vec![9u8; 10_000];
    let img = image(&src, "v1", &[&big]);
    src.inject(&img.layers[0].digest, Fault::CutAfter(3000));
    let (s, d) = targets(&src, &dst);
    // The resume is answered from byte 0: that attempt fails (transiently), the next starts over.
    let ignoring = Arc::new(IgnoreRangesOnce::new(s.clone(), img.layers[0].clone()));
    let s: Arc<dyn ReadTarget> = ignoring.clone();
    copy(&s, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(*ignoring.asked.lock().unwrap(), vec![0, 3000, 0]);
    assert!(dst.has(&img.layers[0].digest));
}

/// A source whose first resumed request for `blob` answers from byte 0.
struct IgnoreRangesOnce {
    inner: Arc<dyn ReadTarget>,
    blob: Descriptor,
    done: Mutex<bool>,
    asked: Mutex<Vec<u64>>,
}

impl IgnoreRangesOnce {
    fn new(inner: Arc<dyn ReadTarget>, blob: Descriptor) -> Self {
        IgnoreRangesOnce {
            inner,
            blob,
            done: Mutex::new(false),
            asked: Mutex::default(),
        }
    }
}

impl ferry_store::Store for IgnoreRangesOnce {
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

impl ferry_store::Resolver for IgnoreRangesOnce {
    fn resolve<'a>(
        &'a self,
        r: &'a str,
    ) -> BoxFuture<'a, ferry_store::Result<(Descriptor, Bytes)>> {
        self.inner.resolve(r)
    }
}

impl ReadStore for IgnoreRangesOnce {
    fn fetch_manifest<'a>(
        &'a self,
        d: &'a Descriptor,
    ) -> BoxFuture<'a, ferry_store::Result<Bytes>> {
        self.inner.fetch_manifest(d)
    }
    fn fetch_blob<'a>(
        &'a self,
        d: &'a Descriptor,
        offset: u64,
    ) -> BoxFuture<'a, ferry_store::Result<(Box<dyn ferry_store::ByteSource>, u64)>> {
        Box::pin(async move {
            if d.digest == self.blob.digest {
                self.asked.lock().unwrap().push(offset);
            }
            let ignore = d.digest == self.blob.digest && offset > 0 && {
                let mut done = self.done.lock().unwrap();
                !std::mem::replace(&mut *done, true)
            };
            self.inner
                .fetch_blob(d, if ignore { 0 } else { offset })
                .await
        })
    }
}

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Recorder {
    fn push(&self, what: &str, d: &Descriptor) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{what} {}", &d.digest.hex()[..8]));
    }
}

impl CopyHooks for Recorder {
    fn pre_copy<'a>(&'a self, d: &'a Descriptor) -> BoxFuture<'a, Result<(), StoreError>> {
        self.push("pre", d);
        Box::pin(async { Ok(()) })
    }
    fn post_copy<'a>(&'a self, d: &'a Descriptor) -> BoxFuture<'a, Result<(), StoreError>> {
        self.push("post", d);
        Box::pin(async { Ok(()) })
    }
    fn on_skipped<'a>(&'a self, d: &'a Descriptor) -> BoxFuture<'a, Result<(), StoreError>> {
        self.push("skip", d);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn hooks_are_called_in_order() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let img = image(&src, "v1", &[b"a"]);
    dst.add(OCI_CONFIG, src_bytes(&src, &img.config).await);
    let hooks = Arc::new(Recorder::default());
    let opts = CopyOptions {
        hooks: hooks.clone(),
        budget: Budget::new(1),
        ..Default::default()
    };
    let (s, d) = targets(&src, &dst);
    copy(&s, "v1", &d, &[], &opts).await.unwrap();
    let short = |what: &str, d: &Descriptor| format!("{what} {}", &d.digest.hex()[..8]);
    let calls = hooks.calls.lock().unwrap().clone();
    let pos = |c: String| {
        calls
            .iter()
            .position(|x| *x == c)
            .unwrap_or_else(|| panic!("{c} in {calls:?}"))
    };
    assert!(pos(short("pre", &img.layers[0])) < pos(short("post", &img.layers[0])));
    assert!(pos(short("post", &img.layers[0])) < pos(short("pre", &img.manifest)));
    assert!(pos(short("pre", &img.manifest)) < pos(short("post", &img.manifest)));
    pos(short("skip", &img.config));
    assert_eq!(calls.len(), 5, "{calls:?}");
}

/// Successors without layers: a caller that wants only the metadata.
struct NoLayers;

impl CopyHooks for NoLayers {
    fn successors<'a>(
        &'a self,
        source: &'a dyn ReadStore,
        desc: &'a Descriptor,
        bytes: &'a Bytes,
    ) -> BoxFuture<'a, Result<Vec<Descriptor>, StoreError>> {
        Box::pin(async move {
            Ok(manifest_successors(source, desc, bytes)?
                .into_iter()
                .filter(|d| d.media_type != LAYER)
                .collect())
        })
    }
}

#[tokio::test]
async fn a_successor_hook_decides_what_is_copied() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let img = image(&src, "v1", &[b"a", b"b"]);
    let opts = CopyOptions {
        hooks: Arc::new(NoLayers),
        ..Default::default()
    };
    let (s, d) = targets(&src, &dst);
    copy(&s, "v1", &d, &[], &opts).await.unwrap();
    assert!(dst.has(&img.config.digest) && dst.has(&img.manifest.digest));
    assert!(!dst.has(&img.layers[0].digest));
}

#[tokio::test]
async fn a_tag_selects_a_platform_and_a_digest_keeps_the_whole_index() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let amd = image(&src, "amd", &[b"amd64 layer"]);
    let arm = image(&src, "arm", &[b"arm64 layer"]);
    let index = index_of(
        &src,
        &[
            (amd.manifest.clone(), "amd64"),
            (arm.manifest.clone(), "arm64"),
        ],
    );
    src.set_tag("multi", &index);
    let (s, d) = targets(&src, &dst);
    let opts = CopyOptions {
        platform: PlatformChoice::Auto(PlatformSpec::linux("arm64")),
        ..Default::default()
    };
    let copied = copy(&s, "multi", &d, &["x".into()], &opts).await.unwrap();
    assert_eq!(copied.root.digest, arm.manifest.digest);
    assert!(
        copied.root.platform.is_some(),
        "described as the index describes it"
    );
    assert!(!dst.has(&amd.layers[0].digest) && !dst.has(&index.digest));

    let copied = copy(&s, &index.digest.to_string(), &d, &[], &opts)
        .await
        .unwrap();
    assert_eq!(copied.root.digest, index.digest);
    assert!(dst.has(&amd.layers[0].digest));

    let none = CopyOptions {
        platform: PlatformChoice::Exactly(PlatformSpec::linux("s390x")),
        ..Default::default()
    };
    let err = copy(&s, "multi", &d, &[], &none).await.unwrap_err();
    assert!(
        anyhow_chain(&err)
            .join(": ")
            .contains("linux/amd64, linux/arm64")
    );
}

#[tokio::test]
async fn referrers_travel_with_their_image_and_cosign_tags_go_beside_it() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let img = image(&src, "v1", &[b"a"]);
    let sbom_layer = src.add("application/spdx+json", b"{}".to_vec());
    let sbom = manifest_of(
        &src,
        &img.config,
        std::slice::from_ref(&sbom_layer),
        Some(&img.manifest),
    );
    let mut sbom_desc = sbom.clone();
    sbom_desc.artifact_type = Some("application/spdx+json".into());
    src.add_referrer(
        &img.manifest.digest,
        Referrer {
            desc: sbom_desc,
            tag: None,
        },
    );
    let sig = manifest_of(&src, &img.config, &[src.add("sig", b"sig".to_vec())], None);
    let sig_tag = format!("{}.sig", img.manifest.digest.tag_form());
    src.add_referrer(
        &img.manifest.digest,
        Referrer {
            desc: sig.clone(),
            tag: Some(sig_tag.clone()),
        },
    );
    let (s, d) = targets(&src, &dst);

    let only_sboms = CopyOptions {
        referrers: Referrers::Types(vec!["application/spdx+json".into()]),
        ..Default::default()
    };
    let copied = copy(&s, "v1", &d, &["v1".into()], &only_sboms)
        .await
        .unwrap();
    assert_eq!(copied.referrers.len(), 1);
    assert!(dst.has(&sbom.digest) && dst.has(&sbom_layer.digest) && !dst.has(&sig.digest));

    let all = CopyOptions {
        referrers: Referrers::All,
        ..Default::default()
    };
    let copied = copy(&s, "v1", &d, &["v1".into()], &all).await.unwrap();
    assert_eq!(copied.referrers.len(), 2);
    assert_eq!(dst.tagged(&sig_tag).unwrap().digest, sig.digest);
}

#[tokio::test]
async fn nesting_beyond_the_limit_is_refused() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let img = image(&src, "leaf", &[b"a"]);
    let mut top = img.manifest.clone();
    for _ in 0..(ferry_copy::MAX_DEPTH + 2) {
        top = index_of(&src, &[(top, "amd64")]);
    }
    src.set_tag("deep", &top);
    let (s, d) = targets(&src, &dst);
    let err = copy(&s, "deep", &d, &[], &CopyOptions::default())
        .await
        .unwrap_err();
    assert!(
        anyhow_chain(&err).join(": ").contains("levels deep"),
        "{err:?}"
    );
    assert!(!dst.has(&top.digest));
}

#[tokio::test]
async fn an_unknown_name_fails_to_resolve_naming_it() {
    let (src, dst) = (
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    );
    let (s, d) = targets(&src, &dst);
    let err = copy(&s, "nope", &d, &[], &CopyOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("resolving nope in memory store src"),
        "{err}"
    );
    assert!(dst.is_empty());
}

#[tokio::test]
async fn the_cache_proxy_serves_a_second_copy_and_replaces_a_rotten_blob() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(dir.path()).unwrap();
    let src = Arc::new(MemoryStore::new("src"));
    let img = image(&src, "v1", &[b"cached layer one", b"cached layer two"]);
    let inner: Arc<dyn ReadTarget> = src.clone();
    let cached: Arc<dyn ReadTarget> = Arc::new(CachedSource::new(inner, cache.clone()));

    let first = Arc::new(MemoryStore::new("first"));
    let d: Arc<dyn WriteTarget> = first.clone();
    let copied = copy(&cached, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(copied.stats.fetched, 4);

    // Same size, other bytes: the cache's stamp no longer matches, so it is re-hashed, evicted, fetched.
    let path = cache.blob_path(&img.layers[1].digest);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"rotten layer two").unwrap();

    let second = Arc::new(MemoryStore::new("second"));
    let d: Arc<dyn WriteTarget> = second.clone();
    let copied = copy(&cached, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        src.fetches(&img.layers[0].digest),
        1,
        "served from the cache"
    );
    assert_eq!(
        src.fetches(&img.layers[1].digest),
        2,
        "the rotten copy was fetched again"
    );
    assert_eq!(
        copied.stats.cached, 2,
        "config and first layer: {:?}",
        copied.stats
    );
    assert!(second.has(&img.layers[1].digest));
}

#[tokio::test]
async fn images_copied_together_under_one_budget_move_a_shared_layer_once() {
    let src = Arc::new(MemoryStore::new("src").with_delay(10));
    let dst = Arc::new(MemoryStore::new("dst"));
    let shared = vec![5u8; 5000];
    let a = image(&src, "a", &[&shared, b"only in a"]);
    image(&src, "b", &[&shared, b"only in b"]);
    let (s, d) = targets(&src, &dst);
    let opts = CopyOptions {
        budget: Budget::new(2),
        ..Default::default()
    };
    let (ra, rb) = tokio::join!(copy(&s, "a", &d, &[], &opts), copy(&s, "b", &d, &[], &opts));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        src.fetches(&a.layers[0].digest),
        1,
        "the shared layer moved once"
    );
    assert!(src.max_in_flight() <= 2);
    // Each image accounts for every node it needs: one moved the shared layer, the other found it there.
    let nodes = |s: &ferry_copy::CopyStats| s.fetched + s.existing;
    assert_eq!((nodes(&ra.stats), nodes(&rb.stats)), (4, 4));
    assert_eq!(ra.stats.existing + rb.stats.existing, 1);
}

#[tokio::test]
async fn a_retrying_image_stays_inside_the_shared_budget() {
    let src = Arc::new(MemoryStore::new("src").with_delay(10));
    let dst = Arc::new(MemoryStore::new("dst"));
    let l = layers(12);
    let a = image(&src, "a", &refs(&l[..6]));
    image(&src, "b", &refs(&l[6..]));
    src.inject(&a.layers[0].digest, Fault::Transient(1));
    let (s, d) = targets(&src, &dst);
    let opts = CopyOptions {
        budget: Budget::new(3),
        ..Default::default()
    };
    let (ra, rb) = tokio::join!(copy(&s, "a", &d, &[], &opts), copy(&s, "b", &d, &[], &opts));
    ra.unwrap();
    rb.unwrap();
    assert!(
        src.max_in_flight() <= 3,
        "in flight: {}",
        src.max_in_flight()
    );
    assert_eq!(src.fetches(&a.layers[0].digest), 2);
}

fn ranged_cache(dir: &std::path::Path, src: &Arc<MemoryStore>) -> (Arc<dyn ReadTarget>, BlobCache) {
    let cache = BlobCache::open(dir).unwrap();
    let inner: Arc<dyn ReadTarget> = src.clone();
    let policy = ferry_store::ranged::RangePolicy {
        min_size: 64 << 10,
        part_size: 16 << 10,
        max_streams: 4,
    };
    let proxy = CachedSource::new(inner, cache.clone()).with_ranges(policy);
    (Arc::new(proxy), cache)
}

fn big_blob(seed: u8) -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[tokio::test]
async fn a_large_blob_arrives_in_parallel_ranges_hashed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let src = Arc::new(MemoryStore::new("src").with_delay(20));
    let big = big_blob(1);
    let img = image(&src, "v1", &[&big]);
    let (cached, cache) = ranged_cache(dir.path(), &src);
    let dst = Arc::new(MemoryStore::new("dst"));
    let d: Arc<dyn WriteTarget> = dst.clone();
    let opts = CopyOptions {
        budget: Budget::new(4),
        ..Default::default()
    };
    copy(&cached, "v1", &d, &[], &opts).await.unwrap();
    let mut offsets = src.ranges(&img.layers[0].digest);
    offsets.sort();
    assert_eq!(offsets, (0..13).map(|i| i * 16_384).collect::<Vec<u64>>());
    assert!(
        src.max_in_flight() >= 2,
        "ranges overlapped: {}",
        src.max_in_flight()
    );
    assert!(
        src.max_in_flight() <= 4,
        "inside the budget: {}",
        src.max_in_flight()
    );
    assert!(dst.has(&img.layers[0].digest));
    assert_eq!(
        std::fs::read(cache.blob_path(&img.layers[0].digest)).unwrap(),
        big
    );
}

#[tokio::test]
async fn a_source_that_ignores_ranges_is_read_in_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let src = Arc::new(MemoryStore::new("src"));
    let big = big_blob(2);
    let img = image(&src, "v1", &[&big]);
    src.inject(&img.layers[0].digest, Fault::IgnoreRange);
    let (cached, _cache) = ranged_cache(dir.path(), &src);
    let dst = Arc::new(MemoryStore::new("dst"));
    let d: Arc<dyn WriteTarget> = dst.clone();
    copy(&cached, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap();
    // The probe (the last range) came back from byte 0; then one stream from the start.
    assert_eq!(src.ranges(&img.layers[0].digest), vec![196_608, 0]);
    assert!(dst.has(&img.layers[0].digest));
}

#[tokio::test]
async fn a_ranged_download_killed_midway_continues_where_its_prefix_ends() {
    let dir = tempfile::tempdir().unwrap();
    let src = Arc::new(MemoryStore::new("src"));
    let big = big_blob(3);
    let img = image(&src, "v1", &[&big]);
    let layer = img.layers[0].digest.clone();
    src.inject(&layer, Fault::FailAt(98_304));
    let (cached, cache) = ranged_cache(dir.path(), &src);
    let dst = Arc::new(MemoryStore::new("dst"));
    let d: Arc<dyn WriteTarget> = dst.clone();
    copy(&cached, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap_err();
    assert!(
        !dst.has(&layer) && !cache.blob_path(&layer).exists(),
        "nothing unverified visible"
    );

    // The next run (a new process would find the same partial) asks only for what the prefix lacks.
    src.clear_faults();
    let before = src.ranges(&layer).len();
    let copied = copy(&cached, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap();
    let again: Vec<u64> = src.ranges(&layer)[before..].to_vec();
    assert!(
        again.iter().all(|&o| o >= 98_304),
        "resumed from the prefix: {again:?}"
    );
    assert_eq!(copied.stats.resumed_bytes, 98_304);
    assert_eq!(std::fs::read(cache.blob_path(&layer)).unwrap(), big);
}

fn cached_source(dir: &std::path::Path, src: &Arc<MemoryStore>) -> Arc<dyn ReadTarget> {
    let inner: Arc<dyn ReadTarget> = src.clone();
    Arc::new(CachedSource::new(inner, BlobCache::open(dir).unwrap()))
}

/// Wait (bounded, so a broken engine fails instead of hanging) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let waiting = async {
        while !done() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
        .await
        .unwrap_or_else(|_| panic!("never happened: {what}"));
}

#[tokio::test]
async fn a_check_runs_beside_the_copy_which_fills_the_cache_and_writes_only_after_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let src = Arc::new(MemoryStore::new("src").with_delay(5));
    let img = image(&src, "v1", &refs(&layers(4)));
    let cached = cached_source(dir.path(), &src);
    let dst = Arc::new(MemoryStore::new("dst"));
    let d: Arc<dyn WriteTarget> = dst.clone();
    let selection = ferry_copy::resolve(cached.as_ref(), "v1", &PlatformChoice::All)
        .await
        .unwrap();
    let blobs: Vec<Descriptor> = img.layers.iter().chain([&img.config]).cloned().collect();
    // The check passes only once every blob was fetched: it can finish only if the copy fetches meanwhile.
    let check = async {
        until("every blob fetched while the check runs", || {
            blobs.iter().all(|b| src.fetches(&b.digest) == 1)
        })
        .await;
        assert!(
            dst.is_empty(),
            "something was written before the check passed"
        );
        Ok::<_, String>("signed")
    };
    let s: Arc<dyn ReadStore> = cached.clone();
    let (copied, verdict) = ferry_copy::copy_selected_when(
        &s,
        &selection,
        &d,
        &["v1".to_string()],
        &CopyOptions::default(),
        check,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(verdict, "signed");
    assert_eq!(dst.tagged("v1"), Some(img.manifest.clone()));
    for b in &blobs {
        assert!(dst.has(&b.digest));
        assert_eq!(
            src.fetches(&b.digest),
            1,
            "fetched once, linked or streamed from the cache"
        );
    }
    assert_eq!(
        copied.stats.fetched, 6,
        "blobs fetched ahead count as fetched: {:?}",
        copied.stats
    );
}

#[tokio::test]
async fn a_refused_check_leaves_the_destination_untouched_with_or_without_a_cache() {
    for with_cache in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let src = Arc::new(MemoryStore::new("src").with_delay(2));
        let img = image(&src, "v1", &refs(&layers(3)));
        let source: Arc<dyn ReadTarget> = if with_cache {
            cached_source(dir.path(), &src)
        } else {
            src.clone()
        };
        let dst = Arc::new(MemoryStore::new("dst"));
        let d: Arc<dyn WriteTarget> = dst.clone();
        let selection = ferry_copy::resolve(source.as_ref(), "v1", &PlatformChoice::All)
            .await
            .unwrap();
        let s: Arc<dyn ReadStore> = source.clone();
        let check = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Err::<(), _>("no signature by the trusted key")
        };
        let names = ["v1".to_string()];
        let opts = CopyOptions::default();
        let refused =
            ferry_copy::copy_selected_when(&s, &selection, &d, &names, &opts, check).await;
        assert_eq!(refused.err(), Some("no signature by the trusted key"));
        assert!(dst.is_empty(), "cache {with_cache}: something was written");
        assert!(dst.tag_names().is_empty());
        if !with_cache {
            assert_eq!(
                src.fetches(&img.layers[0].digest),
                0,
                "without a local copy to fill, nothing is fetched before the check passes"
            );
        }
    }
}

#[tokio::test]
async fn a_refused_check_names_nothing_even_when_the_destination_already_holds_the_image() {
    let src = Arc::new(MemoryStore::new("src"));
    image(&src, "v1", &refs(&layers(2)));
    let dst = Arc::new(MemoryStore::new("dst"));
    let (s, d) = targets(&src, &dst);
    copy(&s, "v1", &d, &[], &CopyOptions::default())
        .await
        .unwrap();
    let held = dst.len();
    let selection = ferry_copy::resolve(s.as_ref(), "v1", &PlatformChoice::All)
        .await
        .unwrap();
    let s: Arc<dyn ReadStore> = s.clone();
    let names = ["v1".to_string()];
    let check = async { Err::<(), _>("refused") };
    let refused =
        ferry_copy::copy_selected_when(&s, &selection, &d, &names, &CopyOptions::default(), check)
            .await;
    assert!(refused.is_err());
    assert!(dst.tag_names().is_empty(), "named after a refusal");
    assert_eq!(dst.len(), held);
}

#[tokio::test]
async fn an_image_sharing_a_layer_with_a_refused_one_still_lands() {
    let src = Arc::new(MemoryStore::new("src").with_delay(5));
    let dst = Arc::new(MemoryStore::new("dst"));
    let shared = vec![7u8; 4000];
    image(&src, "bad", &[&shared, b"only in bad"]);
    let good = image(&src, "good", &[&shared, b"only in good"]);
    let (s, d) = targets(&src, &dst);
    let opts = CopyOptions {
        budget: Budget::new(2),
        ..Default::default()
    };
    let bad = ferry_copy::resolve(s.as_ref(), "bad", &PlatformChoice::All)
        .await
        .unwrap();
    let sr: Arc<dyn ReadStore> = s.clone();
    let names = ["bad".to_string()];
    // The refused image reaches the shared layer first and holds it until its check refuses.
    let check = async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        Err::<(), _>("refused")
    };
    let refusing = ferry_copy::copy_selected_when(&sr, &bad, &d, &names, &opts, check);
    let landing = async {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        copy(&s, "good", &d, &["good".to_string()], &opts).await
    };
    let (refused, landed) = tokio::join!(refusing, landing);
    assert!(refused.is_err());
    landed.unwrap();
    assert_eq!(dst.tagged("good"), Some(good.manifest));
    assert!(dst.has(&good.layers[0].digest));
    assert_eq!(dst.tag_names(), vec!["good".to_string()]);
}
