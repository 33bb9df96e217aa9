//! Wrapper archives: a distribution's tarball that holds the real source tarball (Debian ships
//! GCC as `gcc-13_13.4.0.orig.tar.gz` holding `gcc-13-13.4.0/gcc-13.4.0-dfsg.tar.xz`). The
//! wrapper is unpacked under the same rules as any archive, the one regular file whose name
//! matches the recipe's pattern is checked against its own sha256, and that archive is unpacked
//! under the same rules again.

use std::path::{Path, PathBuf};

use crate::unpack::{Limits, Report, UnpackError, unpack};

/// Why a wrapper's inner archive could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum InnerError {
    /// Unpacking the wrapper or the inner archive failed.
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// No file of the wrapper matches the pattern.
    #[error("{wrapper}: no file matches `{pattern}`; it holds {}", if files.is_empty() { "no files".to_owned() } else { files.join(", ") })]
    NotFound {
        /// The wrapper.
        wrapper: PathBuf,
        /// The pattern.
        pattern: String,
        /// The files it holds (the first twenty).
        files: Vec<String>,
    },
    /// Several files match.
    #[error("{wrapper}: several files match `{pattern}`: {}", matches.join(", "))]
    Ambiguous {
        /// The wrapper.
        wrapper: PathBuf,
        /// The pattern.
        pattern: String,
        /// What matched.
        matches: Vec<String>,
    },
    /// The inner archive is not the one the recipe names.
    #[error("{wrapper}: `{inner}` has sha256 {actual}, the recipe expects {expected}")]
    Checksum {
        /// The wrapper.
        wrapper: PathBuf,
        /// The inner archive, relative to the wrapper's root.
        inner: String,
        /// What the recipe says.
        expected: String,
        /// What it is.
        actual: String,
    },
    /// Reading the unpacked wrapper failed.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Unpacks the archive inside the wrapper archive `wrapper` (named `name`, which decides its
/// format): the wrapper goes into `work` (which must not exist), the one regular file whose name
/// matches `pattern` (`*` any run of characters, `?` one) must have sha256 `sha256` (hex), and
/// it is unpacked into `dest`. Both unpackings follow `limits`. Returns the inner archive's
/// report and its path in `work`.
pub fn unpack_inner(
    wrapper: &Path,
    name: &str,
    pattern: &str,
    sha256: &str,
    work: &Path,
    dest: &Path,
    limits: Limits,
) -> Result<(Report, PathBuf), InnerError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InnerError::Io { path, source }
    };
    fs_err::create_dir(work).map_err(io(work))?;
    unpack(wrapper, name, work, limits)?;
    let mut files = Vec::new();
    collect_files(work, work, &mut files).map_err(io(work))?;
    files.sort();
    let matches: Vec<&String> = files
        .iter()
        .filter(|f| {
            let base = f.rsplit('/').next().unwrap_or(f);
            glob_match(pattern, base)
        })
        .collect();
    let inner = match matches.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(InnerError::NotFound {
                wrapper: wrapper.to_path_buf(),
                pattern: pattern.to_owned(),
                files: files.into_iter().take(20).collect(),
            });
        }
        many => {
            return Err(InnerError::Ambiguous {
                wrapper: wrapper.to_path_buf(),
                pattern: pattern.to_owned(),
                matches: many.iter().map(|s| (*s).clone()).collect(),
            });
        }
    };
    let path = work.join(&inner);
    let actual = crate::sha256_file(&path).map_err(|e| InnerError::Io {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    if !actual.eq_ignore_ascii_case(sha256) {
        return Err(InnerError::Checksum {
            wrapper: wrapper.to_path_buf(),
            inner,
            expected: sha256.to_owned(),
            actual,
        });
    }
    let base = inner.rsplit('/').next().unwrap_or(&inner).to_owned();
    let report = unpack(&path, &base, dest, limits)?;
    Ok((report, path))
}

/// Regular files under `dir`, as paths relative to `root` with `/` separators. Symbolic links
/// are not followed: the unpacked wrapper may hold links, and none may stand in for the inner
/// archive.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in fs_err::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        let p = e.path();
        if ft.is_dir() {
            collect_files(root, &p, out)?;
        } else if ft.is_file() {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Whether `name` matches `pattern`: `*` any run of characters, `?` one, everything else itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point (the last `*`): linear in practice.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_the_shell() {
        for (p, n, want) in [
            ("gcc-13.4.0*.tar.*", "gcc-13.4.0-dfsg.tar.xz", true),
            ("gcc-13.4.0*.tar.*", "gcc-13.4.0.tar.gz", true),
            ("gcc-13.4.0*.tar.*", "newlib-4.3.0.tar.xz", false),
            ("gcc-13.4.0*.tar.*", "gcc-13.4.0-dfsg.tar", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("", "x", false),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} {n}");
        }
    }
}
