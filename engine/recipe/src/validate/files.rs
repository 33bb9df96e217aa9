//! Files named by recipes: local sources and patches stay inside the recipe tree (as written
//! and once symlinks are followed) and exist, and patches match their sha256.

use std::path::{Path, PathBuf};

use super::{Check, sha256_of};
use crate::model::*;

impl Check<'_> {
    /// The recipe's directory as shown to people: relative to the tree's root.
    pub(super) fn shown_dir(&self, r: &Recipe) -> String {
        r.dir
            .strip_prefix(&self.set.root)
            .unwrap_or(&r.dir)
            .display()
            .to_string()
    }

    /// The full path of a file named by a recipe (a local source, a patch), or a diagnostic when
    /// it is absolute or leaves the recipe tree: recipes may only read files of their own tree.
    pub(super) fn local_path(
        &mut self,
        r: &Recipe,
        p: &Spanned<String>,
        what: &str,
    ) -> Option<PathBuf> {
        use std::path::Component;
        let rel_dir = r.dir.strip_prefix(&self.set.root).unwrap_or(&r.dir);
        let written = Path::new(&p.value);
        let mut depth: Vec<&std::ffi::OsStr> = Vec::new();
        let mut problem = None;
        if written.is_absolute() || p.value.is_empty() {
            problem = Some("an absolute path");
        } else {
            for c in rel_dir.components().chain(written.components()) {
                match c {
                    Component::Normal(n) => depth.push(n),
                    Component::CurDir => {}
                    Component::ParentDir => {
                        if depth.pop().is_none() {
                            problem = Some("outside the recipe tree");
                            break;
                        }
                    }
                    Component::RootDir | Component::Prefix(_) => {
                        problem = Some("an absolute path");
                        break;
                    }
                }
            }
        }
        match problem {
            None => {
                let full = r.dir.join(written);
                self.inside_tree(r, p, what, &full).then_some(full)
            }
            Some(why) => {
                self.err(
                    "recipe::bad-path",
                    format!("{what} `{}` is {why}", p.value),
                    p.span,
                    "not inside the recipe tree",
                    format!(
                        "recipes read only files of their own tree: give a path relative to the recipe's directory, `{}`, such as `{}`",
                        self.shown_dir(r),
                        if what == "patch" {
                            format!("patches/{}", written.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
                        } else {
                            format!("../src/{}", r.name.value)
                        }
                    ),
                );
                None
            }
        }
    }

    /// Whether `full`, a path whose text stays in the tree, also leads to a file of the tree once
    /// symlinks are followed: a symlink in the tree (`patches/x.patch -> /etc/passwd`) would
    /// otherwise feed any file of the machine to the build. A path that does not exist is left
    /// to the checks that need it.
    fn inside_tree(&mut self, r: &Recipe, p: &Spanned<String>, what: &str, full: &Path) -> bool {
        let Ok(real) = fs_err::canonicalize(full) else {
            return true;
        };
        let root = fs_err::canonicalize(&self.set.root).unwrap_or_else(|_| self.set.root.clone());
        if real.starts_with(&root) {
            return true;
        }
        self.err(
            "recipe::bad-path",
            format!(
                "{what} `{}` leads outside the recipe tree, to `{}`",
                p.value,
                real.display()
            ),
            p.span,
            "a symlink out of the tree",
            format!(
                "recipes read only files of their own tree: replace the symlink with a copy of the file, in `{}`",
                self.shown_dir(r)
            ),
        );
        false
    }

    /// A local source exists, as a file or a directory.
    pub(super) fn local_source(&mut self, r: &Recipe, path: &Spanned<String>) {
        let Some(p) = self.local_path(r, path, "local source") else {
            return;
        };
        if !p.is_file() && !p.is_dir() {
            let what = if p.exists() {
                "is not a file or directory"
            } else {
                "does not exist"
            };
            self.err(
                "recipe::missing-file",
                format!("local source `{}` {what}", path.value),
                path.span,
                "not found",
                format!(
                    "the path is relative to the recipe's directory, `{}`",
                    self.shown_dir(r)
                ),
            );
        }
    }

    /// Each patch: its condition, and the file exists and matches its sha256.
    pub(super) fn patches(&mut self, r: &Recipe) {
        for p in &r.patches {
            if let Some(w) = &p.when {
                self.check_condition(r, w, "in `when`");
            }
            self.patch_file(r, p);
        }
    }

    fn patch_file(&mut self, r: &Recipe, p: &PatchDecl) {
        let Some(path) = self.local_path(r, &p.file, "patch") else {
            return;
        };
        // Only regular files: a device or a FIFO named as a patch would never end.
        let read = if path.is_file() {
            fs_err::read(&path)
        } else {
            Err(std::io::ErrorKind::NotFound.into())
        };
        match read {
            Ok(bytes) => {
                let actual = sha256_of(&bytes);
                if actual != p.sha256.value {
                    self.err(
                        "recipe::patch-checksum",
                        format!("patch `{}` does not match its sha256", p.file.value),
                        p.sha256.span,
                        format!("the file's sha256 is {actual}"),
                        "if the patch changed on purpose, put the new sha256 here",
                    );
                }
            }
            Err(_) => self.err(
                "recipe::missing-file",
                format!("patch `{}` does not exist", p.file.value),
                p.file.span,
                "not found",
                format!(
                    "the path is relative to the recipe's directory, `{}`",
                    self.shown_dir(r)
                ),
            ),
        }
    }
}
