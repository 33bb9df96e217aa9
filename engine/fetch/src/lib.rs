//! Sources: the content-addressed source cache, downloads with retries, resume and mirrors, and
//! safe unpacking of hostile archives.
//!
//! Wrapper archives (a tarball holding the source tarball) are unpacked twice under the same
//! rules, the inner archive checked by its own digest ([`unpack_inner`]).
//!
//! Part of forge's realize stage. Nothing here knows about recipes or the store: it takes digests,
//! URLs and paths, and returns verified files and unpacked trees.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod cache;
pub mod inner;
pub mod unpack;

pub use cache::{FetchError, FetchOptions, SourceCache, read_url, sha256_file};
pub use inner::{InnerError, unpack_inner};
pub use unpack::{Format, Limits, Report, UnpackError, source_root, unpack};
