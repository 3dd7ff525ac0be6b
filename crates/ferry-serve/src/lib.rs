#![warn(missing_docs)]
//! `ferry serve`: the OCI distribution API over what ferry carries — an OCI layout (a Zarf `images/`), a
//! Zarf package (directory or tarball, read in place), an `oci-archive:` file or the blob cache — so a
//! cluster's containerd, `docker pull` or another ferry can pull from it directly.
//!
//! Every byte served is verified: manifests are hashed on every read (they are small), and a blob is hashed
//! in full before it is first served and then remembered by the metadata of the file it lives in, so a
//! changed file is hashed again. A blob that fails is answered with an error for that request only.
//!
//! With `writable`, pushes go into the layout through its [`ferry_store::WriteStore`]: an upload is
//! spooled, hashed as it arrives, and committed only when its digest matches; manifests are recorded with
//! the layout's [`ferry_store::Tagger`].

mod api_error;
mod auth;
mod backing;
mod body;
mod catalog;
mod error;
mod names;
mod routes;
mod server;
mod tls;
mod upload;
mod verify;

pub use backing::SourceSpec;
pub use error::ServeError;
pub use server::{ServeOptions, Server};
