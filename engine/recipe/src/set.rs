//! Loading a recipe tree: `recipes/*.kdl`, `recipes/targets.kdl` and `toolchains/*.kdl`.
//!
//! [`RecipeSet::load`] reads every file, decodes it, and runs the cross-file checks of
//! [`crate::validate`]. It always returns what it could load together with every diagnostic,
//! so `forge lint` can report all problems at once; callers that need a valid set check
//! [`Diagnostics::has_errors`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::decode::{Cx, Item, decode_document};
use crate::diag::{Diag, Diagnostics, Sources, Span};
use crate::model::*;

/// Every recipe, toolchain, architecture and target of one tree.
#[derive(Debug, Clone, Default)]
pub struct RecipeSet {
    /// The directory holding `recipes/` and `toolchains/`.
    pub root: PathBuf,
    /// The files read.
    pub sources: Sources,
    /// Packages by name.
    pub packages: BTreeMap<String, Recipe>,
    /// Toolchains by name.
    pub toolchains: BTreeMap<String, ToolchainDecl>,
    /// Target architectures by name.
    pub arches: BTreeMap<String, ArchDecl>,
    /// Settings shared by all targets.
    pub defaults: TargetSettings,
    /// Named targets in file order (matrix rows expanded).
    pub targets: Vec<TargetDecl>,
    /// Virtual package → packages that can provide it, sorted.
    pub providers: BTreeMap<String, Vec<String>>,
}

/// The result of loading: the set (possibly partial) and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    /// What could be loaded.
    pub set: RecipeSet,
    /// Errors and warnings, sorted by file and position.
    pub diags: Diagnostics,
}

impl Loaded {
    /// The set, or the diagnostics when any of them is an error.
    pub fn into_result(self) -> Result<(RecipeSet, Diagnostics), Diagnostics> {
        if self.diags.has_errors() {
            Err(self.diags)
        } else {
            Ok((self.set, self.diags))
        }
    }
}

/// The KDL files of a tree, in a fixed order: `toolchains/` then `recipes/`, each sorted by name.
pub fn kdl_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for sub in ["toolchains", "recipes"] {
        let dir = root.join(sub);
        if !dir.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = fs_err::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "kdl") && p.is_file())
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

fn display_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

impl RecipeSet {
    /// Loads and checks the tree at `root`.
    pub fn load(root: &Path) -> Loaded {
        let mut diags = Diagnostics::default();
        let files = match kdl_files(root) {
            Ok(f) => f,
            Err(e) => {
                diags.push(
                    Diag::error("recipe::unreadable", format!("cannot list recipes under `{}`: {e}", root.display()))
                        .in_file(root.display().to_string())
                        .help("pass the directory that holds `recipes/` and `toolchains/` with `--recipes`"),
                );
                return Loaded {
                    set: RecipeSet::default(),
                    diags,
                };
            }
        };
        if files.is_empty() {
            diags.push(
                Diag::error(
                    "recipe::no-recipes",
                    format!(
                        "no `.kdl` files under `{}/recipes` or `{}/toolchains`",
                        root.display(),
                        root.display()
                    ),
                )
                .in_file(root.display().to_string())
                .help(
                    "pass the directory that holds `recipes/` and `toolchains/` with `--recipes`",
                ),
            );
        }
        let mut texts = Vec::with_capacity(files.len());
        for path in files {
            match fs_err::read_to_string(&path) {
                Ok(t) => texts.push((path, t)),
                Err(e) => diags.push(
                    Diag::error("recipe::unreadable", e.to_string())
                        .in_file(display_name(root, &path))
                        .help("check the file's permissions and encoding (UTF-8)"),
                ),
            }
        }
        let names: Vec<String> = texts.iter().map(|(p, _)| display_name(root, p)).collect();
        Self::load_texts(
            root,
            texts
                .into_iter()
                .zip(names)
                .map(|((p, t), n)| (n, p, t))
                .collect(),
            diags,
        )
    }

    /// Loads from in-memory files `(display name, path, text)`; paths decide the recipe
    /// directory for local sources and patches.
    pub fn load_texts(
        root: &Path,
        files: Vec<(String, PathBuf, String)>,
        mut diags: Diagnostics,
    ) -> Loaded {
        let mut set = RecipeSet {
            root: root.to_path_buf(),
            ..Default::default()
        };
        // Parse every file first (cheap, and independent), then decode in order.
        let mut parsed = Vec::with_capacity(files.len());
        for (name, path, text) in files {
            let file = set.sources.add(name, path.clone(), text);
            let doc = set.sources.get(file).text.parse::<kdl::KdlDocument>();
            match doc {
                Ok(doc) => parsed.push((file, path, doc)),
                Err(err) => {
                    // The parser reports a cascade after the first error; the first is the one
                    // to fix, the rest usually go away with it.
                    let more = err.diagnostics.len().saturating_sub(1);
                    if let Some(d) = err.diagnostics.into_iter().min_by_key(|d| d.span.offset()) {
                        let span = Span::new(file, d.span);
                        let message = d.message.unwrap_or_else(|| "invalid KDL".to_owned());
                        let mut help = d.help.unwrap_or_else(|| {
                            "see the KDL v2 syntax in `recipes/README.md`".to_owned()
                        });
                        if more > 0 {
                            help.push_str(&format!(" ({more} more syntax error{} in this file may follow from this one)", if more == 1 { "" } else { "s" }));
                        }
                        diags.push(
                            Diag::error(
                                "recipe::syntax",
                                format!(
                                    "syntax error: {}",
                                    message.trim_end_matches('.').to_lowercase()
                                ),
                            )
                            .label(
                                &set.sources,
                                span,
                                d.label.unwrap_or_else(|| "here".to_owned()),
                            )
                            .help(help),
                        );
                    }
                }
            }
        }
        let mut package_files: BTreeMap<String, Span> = BTreeMap::new();
        let mut defaults_span: Option<Span> = None;
        let mut target_spans: BTreeMap<String, Span> = BTreeMap::new();
        for (file, path, doc) in &parsed {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            let mut cx = Cx {
                sources: &set.sources,
                file: *file,
                diags: &mut diags,
            };
            let items = decode_document(&mut cx, doc, &dir);
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut packages_here = 0;
            for item in items {
                match item {
                    Item::Package(r) => {
                        packages_here += 1;
                        let name = r.name.value.clone();
                        if packages_here > 1 {
                            diags.push(
                                Diag::error(
                                    "recipe::one-package-per-file",
                                    format!("a second package `{name}` in one file"),
                                )
                                .label(&set.sources, r.name.span, "second package")
                                .help(format!("move it to its own file, `{name}.kdl`")),
                            );
                        } else if name != stem {
                            diags.push(
                                Diag::error(
                                    "recipe::file-name",
                                    format!("package `{name}` is in `{stem}.kdl`"),
                                )
                                .label(&set.sources, r.name.span, "package name")
                                .help(format!(
                                    "rename the file to `{name}.kdl`, or the package to `{stem}`"
                                )),
                            );
                        }
                        if let Some(prev) = package_files.get(&name) {
                            diags.push(
                                Diag::error(
                                    "recipe::duplicate-package",
                                    format!("package `{name}` is defined twice"),
                                )
                                .label(&set.sources, r.name.span, "defined again here")
                                .help(format!(
                                    "it is already defined in `{}`",
                                    set.sources.get(prev.file).name
                                )),
                            );
                            continue;
                        }
                        package_files.insert(name.clone(), r.name.span);
                        set.packages.insert(name, *r);
                    }
                    Item::Toolchain(t) => {
                        if let Some(prev) = set.toolchains.get(&t.name.value) {
                            let d = Diag::error(
                                "recipe::duplicate-toolchain",
                                format!("toolchain `{}` is defined twice", t.name.value),
                            )
                            .label(&set.sources, t.name.span, "defined again here")
                            .help(format!(
                                "it is already defined in `{}`",
                                set.sources.get(prev.name.span.file).name
                            ));
                            diags.push(d);
                            continue;
                        }
                        set.toolchains.insert(t.name.value.clone(), t);
                    }
                    Item::Arch(a) => {
                        if let Some(prev) = set.arches.get(&a.name.value) {
                            let d = Diag::error(
                                "recipe::duplicate-arch",
                                format!("architecture `{}` is defined twice", a.name.value),
                            )
                            .label(&set.sources, a.name.span, "defined again here")
                            .help(format!(
                                "it is already defined in `{}`",
                                set.sources.get(prev.name.span.file).name
                            ));
                            diags.push(d);
                            continue;
                        }
                        set.arches.insert(a.name.value.clone(), a);
                    }
                    Item::Target(t) => {
                        if let Some(prev) = target_spans.get(&t.name.value) {
                            let mut d = Diag::error(
                                "recipe::duplicate-target",
                                format!("target `{}` is defined twice", t.name.value),
                            )
                            .label(
                                &set.sources,
                                t.name.span,
                                "defined again here",
                            );
                            if prev.file == t.name.span.file && *prev != t.name.span {
                                d = d.label(&set.sources, *prev, "first defined here");
                            }
                            diags.push(d.help("target names must be unique; rename one of them"));
                            continue;
                        }
                        target_spans.insert(t.name.value.clone(), t.name.span);
                        set.targets.push(*t);
                    }
                    Item::Defaults(s, span) => {
                        if let Some(prev) = defaults_span {
                            let d =
                                Diag::error("recipe::duplicate-node", "`defaults` is given twice")
                                    .label(&set.sources, span, "given again here")
                                    .label(&set.sources, prev, "first given here")
                                    .help("merge them into one `defaults` block");
                            diags.push(d);
                            continue;
                        }
                        defaults_span = Some(span);
                        set.defaults = s;
                    }
                }
            }
        }
        for (name, r) in &set.packages {
            for p in &r.provides {
                set.providers
                    .entry(p.spec.name().to_owned())
                    .or_default()
                    .push(name.clone());
            }
        }
        for list in set.providers.values_mut() {
            list.sort();
            list.dedup();
        }
        crate::validate::validate(&set, &mut diags);
        diags.sort();
        Loaded { set, diags }
    }

    /// A target by name.
    pub fn target(&self, name: &str) -> Option<&TargetDecl> {
        self.targets.iter().find(|t| t.name.value == name)
    }

    /// Whether `name` is a virtual package (provided by some package).
    pub fn is_virtual(&self, name: &str) -> bool {
        self.providers.contains_key(name) && !self.packages.contains_key(name)
    }
}
