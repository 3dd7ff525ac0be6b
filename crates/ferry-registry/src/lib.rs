#![warn(missing_docs)]
//! A thin OCI distribution client over reqwest + rustls: authentication (anonymous, Basic, Bearer tokens),
//! credentials from the usual files and helpers, HTTPS with a proven plain-HTTP fallback for local hosts,
//! and one retry policy for every request. [`Repository`] exposes a repository as a ferry store, to read
//! from and to push to (chunked, resumable uploads and cross-repository mounts).

pub mod auth;
mod body;
pub mod budget;
mod cert_info;
mod client;
pub mod credentials;
mod error;
mod listing;
pub mod login;
mod manifest_ops;
pub mod mirrors;
mod referrers;
mod repository;
pub mod retry;
mod tags;
pub mod tls;
mod upload;

pub use body::Limits;
pub use budget::HostLimits;
pub use cert_info::CertInfo;
pub use client::{ClientOptions, RegistryClient};
pub use credentials::{Credential, CredentialStore};
pub use error::RegistryError;
pub use login::{CredentialLocation, LoginError};
pub use mirrors::{RegistriesConf, open_read};
pub use repository::Repository;
