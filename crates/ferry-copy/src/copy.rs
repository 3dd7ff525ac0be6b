//! One copy between targets: resolve a name, choose the platform, copy the graph (retrying the whole image
//! on transient failures), bring the artifacts that refer to it, and name the result at the destination.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_oci::{Descriptor, Digest};
use ferry_store::{ReadStore, ReadTarget, Referrer, StoreError, WriteTarget};
use tokio::sync::Semaphore;

use crate::engine::{CopyError, CopyStats, Gate, GraphCopy, SharedNodes, Slots};
use crate::events::{Event, EventSink};
use crate::hooks::{CopyHooks, DefaultHooks};
use crate::select::{PlatformChoice, SelectError, Selection, select_root};

/// A run's bound on node copies in flight (`--oci-concurrency`). Cloning shares it: copies given the same
/// budget never have more than its size in flight together, and a node that two of them need at the same
/// time (a layer shared by two images) moves once.
#[derive(Clone)]
pub struct Budget {
    slots: Arc<Semaphore>,
    size: usize,
    nodes: SharedNodes,
}

impl Budget {
    /// A budget of `size` node copies in flight (at least one).
    pub fn new(size: usize) -> Budget {
        let size = size.max(1);
        Budget {
            slots: Arc::new(Semaphore::new(size)),
            size,
            nodes: SharedNodes::default(),
        }
    }

    /// How many node copies it lets be in flight.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// Which referrers travel with an image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Referrers {
    /// None (the default).
    #[default]
    None,
    /// Every referrer, recursively (a signature of an SBOM of an image).
    All,
    /// Only those whose `artifactType` is one of these (cosign tags carry none, so they are left out).
    Types(Vec<String>),
}

/// How a copy runs.
#[derive(Clone)]
pub struct CopyOptions {
    /// Which platform of an index to copy.
    pub platform: PlatformChoice,
    /// Node copies in flight, shared with every copy given a clone of it.
    pub budget: Budget,
    /// Attempts in all for one image; a transient failure starts the image again with one node copy at a
    /// time (Zarf's rule: a flaky link does better with less in flight). Nodes already at the destination
    /// cost one existence check.
    pub attempts: u32,
    /// Which referrers travel with each image.
    pub referrers: Referrers,
    /// Where progress goes.
    pub events: EventSink,
    /// What the caller does around each node (successors, pre/post copy, skips).
    pub hooks: Arc<dyn CopyHooks>,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions {
            platform: PlatformChoice::All,
            budget: Budget::new(6),
            attempts: 3,
            referrers: Referrers::None,
            events: Arc::new(|_: &Event| {}),
            hooks: Arc::new(DefaultHooks),
        }
    }
}

/// What a copy did.
#[derive(Clone, Debug)]
pub struct Copied {
    /// The node copied and named: the resolved manifest or index, or the platform's manifest chosen from
    /// an index (as that index describes it).
    pub root: Descriptor,
    /// What moved, and how.
    pub stats: CopyStats,
    /// The referrers copied with it.
    pub referrers: Vec<Referrer>,
}

/// Why a copy failed. Each variant names what it was doing; the cause is its source.
#[derive(Debug, thiserror::Error)]
pub enum CopyFailed {
    /// The source could not say what `reference` names.
    #[error("resolving {reference} in {store}")]
    Resolve {
        /// The name asked for.
        reference: String,
        /// The source, described.
        store: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// No node could be chosen (no manifest for the platform, an unparseable index).
    #[error("choosing what to copy")]
    Select(#[source] SelectError),
    /// A node of the graph could not be copied.
    #[error("copying {root} to {dest}{}", attempts_note(*attempts))]
    Graph {
        /// The graph's root.
        root: Digest,
        /// The destination, described.
        dest: String,
        /// Attempts made.
        attempts: u32,
        /// The node that failed, and why.
        #[source]
        source: CopyError,
    },
    /// The source could not list the artifacts about an image.
    #[error("listing the referrers of {subject}")]
    Referrers {
        /// The image whose referrers were asked for.
        subject: Digest,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The destination refused a name.
    #[error("naming {digest} {name:?} in {store}")]
    Tag {
        /// What was to be named.
        digest: Digest,
        /// The name (empty: keeping an unnamed referrer).
        name: String,
        /// The destination, described.
        store: String,
        /// Why.
        #[source]
        source: StoreError,
    },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl CopyFailed {
    /// Whether running the same copy again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            CopyFailed::Resolve { source, .. }
            | CopyFailed::Referrers { source, .. }
            | CopyFailed::Tag { source, .. } => source.is_transient(),
            CopyFailed::Graph { source, .. } => source.is_transient(),
            CopyFailed::Select(SelectError::Store(e)) => e.is_transient(),
            CopyFailed::Select(_) => false,
        }
    }
}

/// Copy what `src_ref` names in `src` to `dst`, named `dst_refs` there (none: by digest only).
pub async fn copy(
    src: &Arc<dyn ReadTarget>,
    src_ref: &str,
    dst: &Arc<dyn WriteTarget>,
    dst_refs: &[String],
    opts: &CopyOptions,
) -> Result<Copied, CopyFailed> {
    let selection = resolve(src.as_ref(), src_ref, &opts.platform).await?;
    let src: Arc<dyn ReadStore> = src.clone();
    copy_selected(&src, &selection, dst, dst_refs, opts).await
}

/// Resolve `reference` in `src` and choose the node to copy (see [`select_root`]); copying can then wait
/// until every name of a run has resolved.
pub async fn resolve(
    src: &dyn ReadTarget,
    reference: &str,
    platform: &PlatformChoice,
) -> Result<Selection, CopyFailed> {
    let (desc, bytes) = src
        .resolve(reference)
        .await
        .map_err(|source| CopyFailed::Resolve {
            reference: reference.to_string(),
            store: src.describe(),
            source,
        })?;
    let by_digest = reference.contains('@') || reference.parse::<Digest>().is_ok();
    select_root(src, desc, bytes, by_digest, platform)
        .await
        .map_err(CopyFailed::Select)
}

/// [`copy`] of a node already resolved and selected.
pub async fn copy_selected(
    src: &Arc<dyn ReadStore>,
    selection: &Selection,
    dst: &Arc<dyn WriteTarget>,
    dst_refs: &[String],
    opts: &CopyOptions,
) -> Result<Copied, CopyFailed> {
    copy_gated(src, selection, dst, dst_refs, opts, None).await
}

/// [`copy_selected`] that writes nothing to `dst` until `check` (a signature policy, say) has passed. The
/// two run side by side: meanwhile the source fetches what it can keep out of sight (a cache proxy fills
/// the cache), so a check costs wall time only where it takes longer than those downloads. With a source
/// that keeps no local copies, the copy simply waits for the check.
///
/// The check's verdict comes first: `Err` when it refused (whatever the copy did, nothing of the image was
/// written), else the copy's outcome with what the check returned.
pub async fn copy_selected_when<T, E>(
    src: &Arc<dyn ReadStore>,
    selection: &Selection,
    dst: &Arc<dyn WriteTarget>,
    dst_refs: &[String],
    opts: &CopyOptions,
    check: impl std::future::Future<Output = Result<T, E>>,
) -> Result<Result<(Copied, T), CopyFailed>, E> {
    let (keeper, gate) = Gate::new();
    let checking = async move {
        let verdict = check.await;
        keeper.settle(verdict.is_ok());
        verdict
    };
    let copying = copy_gated(src, selection, dst, dst_refs, opts, Some(gate));
    let (copied, checked) = tokio::join!(copying, checking);
    let checked = checked?;
    Ok(copied.map(|c| (c, checked)))
}

async fn copy_gated(
    src: &Arc<dyn ReadStore>,
    selection: &Selection,
    dst: &Arc<dyn WriteTarget>,
    dst_refs: &[String],
    opts: &CopyOptions,
    gate: Option<Gate>,
) -> Result<Copied, CopyFailed> {
    let root = &selection.root;
    let mut stats = graph(src, dst, root, &selection.known, opts, gate.clone()).await?;
    let failed = |source| CopyFailed::Referrers {
        subject: root.digest.clone(),
        source,
    };
    // The root may have been at the destination already (nothing waited on the gate): names wait here.
    if let Some(gate) = &gate {
        gate.wait().await.map_err(|source| CopyFailed::Tag {
            digest: root.digest.clone(),
            name: dst_refs.join(", "),
            store: dst.describe(),
            source,
        })?;
    }
    // Names last: a name only ever points at complete content.
    let root_bytes = manifest_bytes(src.as_ref(), &selection.known, root)
        .await
        .map_err(failed)?;
    for name in dst_refs {
        tag(dst.as_ref(), root, root_bytes.clone(), name).await?;
    }
    let referrers = discover_referrers(src.as_ref(), root, &opts.referrers).await?;
    for referrer in &referrers {
        stats.merge(&graph(src, dst, &referrer.desc, &HashMap::new(), opts, None).await?);
        let name = match &referrer.tag {
            Some(t) => sibling_name(dst_refs.first().map(String::as_str).unwrap_or(""), t),
            None => String::new(),
        };
        let named = match referrer.tag {
            Some(_) => {
                let bytes = manifest_bytes(src.as_ref(), &selection.known, &referrer.desc)
                    .await
                    .map_err(failed)?;
                dst.tag(&referrer.desc, bytes, &name).await
            }
            None => dst.keep(&referrer.desc).await,
        };
        named.map_err(|source| CopyFailed::Tag {
            digest: referrer.desc.digest.clone(),
            name,
            store: dst.describe(),
            source,
        })?;
    }
    Ok(Copied {
        root: root.clone(),
        stats,
        referrers,
    })
}

/// A manifest's bytes: known already, or from the source.
async fn manifest_bytes(
    src: &dyn ReadStore,
    known: &HashMap<Digest, bytes::Bytes>,
    desc: &Descriptor,
) -> Result<bytes::Bytes, StoreError> {
    match known.get(&desc.digest) {
        Some(b) => Ok(b.clone()),
        None => src.fetch_manifest(desc).await,
    }
}

async fn tag(
    dst: &dyn WriteTarget,
    desc: &Descriptor,
    bytes: bytes::Bytes,
    name: &str,
) -> Result<(), CopyFailed> {
    dst.tag(desc, bytes, name)
        .await
        .map_err(|source| CopyFailed::Tag {
            digest: desc.digest.clone(),
            name: name.to_string(),
            store: dst.describe(),
            source,
        })
}

/// Copy the graph under `root` (no names), retrying the whole graph on transient failures as
/// [`CopyOptions::attempts`] says.
pub async fn copy_graph(
    src: &Arc<dyn ReadStore>,
    dst: &Arc<dyn WriteTarget>,
    root: &Descriptor,
    known: &HashMap<Digest, bytes::Bytes>,
    opts: &CopyOptions,
) -> Result<CopyStats, CopyFailed> {
    graph(src, dst, root, known, opts, None).await
}

async fn graph(
    src: &Arc<dyn ReadStore>,
    dst: &Arc<dyn WriteTarget>,
    root: &Descriptor,
    known: &HashMap<Digest, bytes::Bytes>,
    opts: &CopyOptions,
    gate: Option<Gate>,
) -> Result<CopyStats, CopyFailed> {
    let attempts = opts.attempts.max(1);
    let mut attempt = 1;
    loop {
        let slots = Slots {
            budget: opts.budget.slots.clone(),
            narrow: (attempt > 1).then(|| Arc::new(Semaphore::new(1))),
            shared: opts.budget.nodes.clone(),
        };
        let run = GraphCopy::new(
            src.clone(),
            dst.clone(),
            slots,
            opts.hooks.clone(),
            opts.events.clone(),
            known.clone(),
            gate.clone(),
        );
        match run.node(root.clone(), 0).await {
            Ok(()) => return Ok(run.stats()),
            Err(e) if e.is_transient() && attempt < attempts => {
                tracing::warn!(
                    "{} to {}: attempt {attempt} of {attempts} failed ({}); retrying with one copy at a time",
                    root.digest,
                    dst.describe(),
                    ferry_oci::error_chain(&e)
                );
                (opts.events)(&Event::Retrying {
                    digest: root.digest.clone(),
                    attempt,
                    error: ferry_oci::error_chain(&e),
                });
                attempt += 1;
            }
            Err(source) => {
                return Err(CopyFailed::Graph {
                    root: root.digest.clone(),
                    dest: dst.describe(),
                    attempts: attempt,
                    source,
                });
            }
        }
    }
}

/// Every referrer of `root`, and of those in turn, each once, in the order found, filtered by type.
pub async fn discover_referrers(
    source: &dyn ReadStore,
    root: &Descriptor,
    wanted: &Referrers,
) -> Result<Vec<Referrer>, CopyFailed> {
    if *wanted == Referrers::None {
        return Ok(Vec::new());
    }
    let mut seen: HashSet<Digest> = HashSet::from([root.digest.clone()]);
    let mut queue = vec![root.clone()];
    let mut found = Vec::new();
    while let Some(subject) = queue.pop() {
        let listed = source
            .referrers(&subject)
            .await
            .map_err(|source| CopyFailed::Referrers {
                subject: subject.digest.clone(),
                source,
            })?;
        for r in listed {
            if !seen.insert(r.desc.digest.clone()) {
                continue;
            }
            queue.push(r.desc.clone());
            let keep = match wanted {
                Referrers::Types(types) => r
                    .desc
                    .artifact_type
                    .as_ref()
                    .is_some_and(|t| types.contains(t)),
                _ => true,
            };
            if keep {
                found.push(r);
            }
        }
    }
    Ok(found)
}

/// `base` (a name as the destination knows it: a full reference, or a bare tag) with its tag or digest
/// replaced by `tag`: where a cosign `sha256-<hex>.sig` tag goes beside its image.
pub fn sibling_name(base: &str, tag: &str) -> String {
    let without_digest = base.split('@').next().unwrap_or(base);
    let slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let repo = match without_digest[slash..].find(':') {
        Some(i) => &without_digest[..slash + i],
        // A bare tag: the destination names by tag alone.
        None if slash == 0 => "",
        None => without_digest,
    };
    if repo.is_empty() {
        tag.to_string()
    } else {
        format!("{repo}:{tag}")
    }
}

#[cfg(test)]
mod tests {
    use super::sibling_name;

    #[test]
    fn cosign_tags_go_beside_their_image() {
        let t = "sha256-ab.sig";
        assert_eq!(
            sibling_name("docker.io/library/nginx:1.25", t),
            "docker.io/library/nginx:sha256-ab.sig"
        );
        assert_eq!(
            sibling_name("127.0.0.1:5000/a/b@sha256:00", t),
            "127.0.0.1:5000/a/b:sha256-ab.sig"
        );
        assert_eq!(
            sibling_name("127.0.0.1:5000/a/b:1@sha256:00", t),
            "127.0.0.1:5000/a/b:sha256-ab.sig"
        );
        assert_eq!(sibling_name("1.25", t), t);
        assert_eq!(sibling_name("", t), t);
    }
}
