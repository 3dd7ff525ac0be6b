//! Zarf compatibility: the CRC-suffixed push names (zarf-compat §2) and the image lists of `zarf.yaml`.

pub mod naming;
pub mod package;

pub use naming::{crc32, push_names};
pub use package::images_in_zarf_yaml;
