//! Relocation: finding the store paths a prefix embeds (before export) and rewriting them the
//! way Spack does (after extraction).
//!
//! **Scan side.** While a prefix is streamed into its tarball, every file is searched for the
//! store root (and for the store's own directory when the root is a padded directory inside
//! it). Each hit is attributed to a known prefix (a node of the graph), the store root itself,
//! the `sbang` path, or an unknown store path (anything else below either); each file is
//! classified as ELF, text or other binary the way Spack classifies it. The export then lists
//! every file that embeds a path in `binary_distribution` and refuses (with a [`Violation`])
//! what Spack could not fix on the consumer's side.
//!
//! **Apply side.** [`relocate_prefix`] performs Spack's install-time relocation on an extracted
//! prefix: ELF run paths and interpreter rewritten in place, symbolic links, text files, then
//! fixed-length binary string replacement with `/` padding and the C-string tail rule. forge
//! uses it to test its exports end to end (and a substituter can use it to install Spack-format
//! tarballs).

mod apply;
mod scan;

pub use apply::{RelocateError, relocate_prefix, relocation_map};
pub(crate) use scan::{FileClass, FileScanner, Ref, RefMatcher};

/// The longest consumer install-tree root (`config:install_tree:root`, after padding) an export
/// is checked to support by default.
///
/// Spack installs a package at `<root>/<platform>-<target>/<name>-<version>-<hash>`; every
/// binary that embeds a build prefix must find room for that consumer prefix, plus the 8 bytes
/// Spack's C-string tail rule needs when the two prefixes end differently. Roots longer than
/// 117 characters fail in Spack anyway (`sbang` path limit of 127).
pub const DEFAULT_MAX_CONSUMER_ROOT: usize = 96;

/// What Spack's binary-string replacement needs beyond the new prefix when a C string ends
/// within 7 bytes after the prefix and the prefixes' tails differ (`bytes_shorter > 7`).
pub const CSTRING_TAIL_MARGIN: usize = 8;

/// Characters that continue a path component (so a store root followed by one of them is not the
/// store root).
fn is_component_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+')
}
