//! Loading a recipe tree: `recipes/*.kdl`, `recipes/targets.kdl` and `toolchains/*.kdl`.
//!
//! [`RecipeSet::load`] reads every file, decodes it, and runs the cross-file checks of
//! [`crate::validate`]. It always returns what it could load together with every diagnostic,
//! so `forge lint` can report all problems at once; callers that need a valid set check
//! [`Diagnostics::has_errors`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::decode::{Cx, Item, decode_document};
use crate::diag::{Diag, Diagnostics, FileId, Sources, Span};
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
    /// What was written but could not be loaded (and was reported).
    pub unloaded: Unloaded,
}

/// Names that were written but could not be loaded, each failure already reported. References
/// to them are not reported again, so that one mistake gives one diagnostic rather than one per
/// place that names the broken item.
#[derive(Debug, Clone, Default)]
pub struct Unloaded {
    /// Files that could not be read or parsed (as shown, `recipes/munge.kdl`).
    pub files: Vec<String>,
    /// Packages whose recipe failed to decode, by name or, when the name itself was the
    /// problem, by the file's stem; and virtuals whose `provides` line failed.
    pub packages: BTreeSet<String>,
    /// Toolchains that failed to decode.
    pub toolchains: BTreeSet<String>,
}

impl Unloaded {
    /// Whether a missing package or virtual `name` is explained by an earlier error: its
    /// recipe failed, or the file named after it could not be parsed.
    pub fn package(&self, name: &str) -> bool {
        self.packages.contains(name)
            || self
                .files
                .iter()
                .any(|f| Path::new(f).file_stem().is_some_and(|s| s == name))
    }

    /// Whether a missing toolchain `name` is explained by an earlier error: it failed to
    /// decode, or a file of `toolchains/`, where toolchains are defined, could not be parsed.
    pub fn toolchain(&self, name: &str) -> bool {
        self.toolchains.contains(name) || self.toolchains_file()
    }

    /// Whether a missing architecture is explained by an earlier error: a file of
    /// `toolchains/`, where the target table is, could not be parsed.
    pub fn arch(&self) -> bool {
        self.toolchains_file()
    }

    fn toolchains_file(&self) -> bool {
        self.files.iter().any(|f| f.starts_with("toolchains/"))
    }
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

/// Parses KDL texts, on all cores when there are many: parsing is most of the time spent
/// loading a large tree, and files are independent. Results are in input order.
fn parse_all(texts: &[&str]) -> Vec<Result<kdl::KdlDocument, kdl::KdlError>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(texts.len() / 8);
    if workers <= 1 {
        return texts.iter().map(|t| t.parse()).collect();
    }
    let chunk = texts.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|t| t.parse()).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The label and help line for a syntax error: plain words for a mistake maintainers make
/// often (KDL v1 keywords), else the parser's own, in forge's style.
fn syntax_advice(
    text: &str,
    span: Span,
    label: Option<String>,
    help: Option<String>,
) -> (String, String) {
    let at = text.get(span.offset..span.offset + span.len).unwrap_or("");
    if matches!(at, "true" | "false" | "null") {
        return (
            "a KDL v1 keyword".to_owned(),
            format!("KDL v2 writes `#{at}`: booleans are `#true` and `#false`, null is `#null`"),
        );
    }
    let help = help
        .map(|h| {
            let h = h.trim().trim_end_matches('.');
            let mut chars = h.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_lowercase().chain(chars).collect::<String>()
            })
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "see the KDL v2 syntax in `recipes/README.md`".to_owned());
    (label.unwrap_or_else(|| "here".to_owned()), help)
}

/// A file that is not UTF-8, pointing at its first invalid byte.
fn not_utf8(name: &str, e: std::string::FromUtf8Error) -> Diag {
    let valid = e.utf8_error().valid_up_to();
    let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
    // The lossy text keeps the valid prefix byte for byte; the bad byte became U+FFFD.
    let bad = valid..valid + '\u{fffd}'.len_utf8();
    let line = text[..valid].matches('\n').count() + 1;
    Diag::error(
        "recipe::not-utf8",
        format!("`{name}` is not UTF-8 (invalid byte on line {line})"),
    )
    .label_text(name, &text, bad, "not UTF-8")
    .help("recipes are UTF-8 text; convert the file, e.g. with `iconv -f latin1 -t utf-8`")
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
        let mut unreadable = Vec::new();
        for path in files {
            let name = display_name(root, &path);
            match fs_err::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(t) => texts.push((name, path, t)),
                    Err(e) => {
                        diags.push(not_utf8(&name, e));
                        unreadable.push(name);
                    }
                },
                Err(e) => {
                    diags.push(
                        Diag::error("recipe::unreadable", e.to_string())
                            .in_file(name.clone())
                            .help("check the file's permissions"),
                    );
                    unreadable.push(name);
                }
            }
        }
        Self::load_files(root, texts, unreadable, diags)
    }

    /// Loads from in-memory files `(display name, path, text)`; paths decide the recipe
    /// directory for local sources and patches.
    pub fn load_texts(
        root: &Path,
        files: Vec<(String, PathBuf, String)>,
        diags: Diagnostics,
    ) -> Loaded {
        Self::load_files(root, files, Vec::new(), diags)
    }

    fn load_files(
        root: &Path,
        files: Vec<(String, PathBuf, String)>,
        unreadable: Vec<String>,
        diags: Diagnostics,
    ) -> Loaded {
        let mut l = Loader {
            set: RecipeSet {
                root: root.to_path_buf(),
                ..Default::default()
            },
            diags,
            package_files: BTreeMap::new(),
            defaults_span: None,
            target_spans: BTreeMap::new(),
        };
        l.set.unloaded.files = unreadable;
        // Parse every file first (cheap, and independent), then decode in order.
        let ids: Vec<(FileId, PathBuf)> = files
            .into_iter()
            .map(|(name, path, text)| (l.set.sources.add(name, path.clone(), text), path))
            .collect();
        let clean = l.lex(ids);
        let parsed = l.parse(clean);
        for (file, path, doc) in &parsed {
            let (items, stem) = l.decode(*file, path, doc);
            l.add(items, &stem);
        }
        l.index_providers();
        crate::validate::validate(&l.set, &mut l.diags);
        l.diags.sort();
        Loaded {
            set: l.set,
            diags: l.diags,
        }
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

/// One load in progress: the set being filled, the diagnostics, and where names were first
/// defined (for the defined-twice reports).
struct Loader {
    set: RecipeSet,
    diags: Diagnostics,
    package_files: BTreeMap<String, Span>,
    defaults_span: Option<Span>,
    target_spans: BTreeMap<String, Span>,
}

impl Loader {
    /// The files without lexical mistakes; the others are reported and marked unloaded. Lexical
    /// mistakes come first: the parser must not see them (see `crate::lex`).
    fn lex(&mut self, ids: Vec<(FileId, PathBuf)>) -> Vec<(FileId, PathBuf)> {
        let set = &mut self.set;
        let mut clean = Vec::with_capacity(ids.len());
        for (file, path) in ids {
            match crate::lex::check(&set.sources.get(file).text) {
                None => clean.push((file, path)),
                Some(e) => {
                    set.unloaded.files.push(set.sources.get(file).name.clone());
                    let span = Span {
                        file,
                        offset: e.range.start,
                        len: e.range.len(),
                    };
                    self.diags.push(
                        Diag::error("recipe::syntax", format!("syntax error: {}", e.message))
                            .label(&set.sources, span, e.label)
                            .help(e.help),
                    );
                }
            }
        }
        clean
    }

    /// The parsed documents; files that do not parse are reported and marked unloaded.
    fn parse(&mut self, clean: Vec<(FileId, PathBuf)>) -> Vec<(FileId, PathBuf, kdl::KdlDocument)> {
        let texts: Vec<&str> = clean
            .iter()
            .map(|(f, _)| &*self.set.sources.get(*f).text)
            .collect();
        let docs = parse_all(&texts);
        let mut parsed = Vec::with_capacity(clean.len());
        for ((file, path), doc) in clean.into_iter().zip(docs) {
            match doc {
                Ok(doc) => parsed.push((file, path, doc)),
                Err(err) => {
                    let set = &mut self.set;
                    set.unloaded.files.push(set.sources.get(file).name.clone());
                    if let Some(d) = syntax_error(&set.sources, file, err) {
                        self.diags.push(d);
                    }
                }
            }
        }
        parsed
    }

    /// The file's items, matrices expanded, and the file's stem; records what could not be
    /// loaded.
    fn decode(&mut self, file: FileId, path: &Path, doc: &kdl::KdlDocument) -> (Vec<Item>, String) {
        let set = &mut self.set;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let errors_before = self.diags.error_count();
        let mut cx = Cx {
            sources: &set.sources,
            file,
            diags: &mut self.diags,
            dropped: Vec::new(),
        };
        let items = decode_document(&mut cx, doc, &dir);
        // Matrices become targets before the file's items and errors are looked at.
        let items = crate::eval::expand_matrices(items, cx.sources, cx.diags);
        for (kind, name) in std::mem::take(&mut cx.dropped) {
            match kind {
                "toolchain" => set.unloaded.toolchains.insert(name),
                _ => set.unloaded.packages.insert(name),
            };
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A file with errors that yields no package probably held the package named like it.
        if self.diags.error_count() > errors_before
            && !items.iter().any(|i| matches!(i, Item::Package(_)))
        {
            set.unloaded.packages.insert(stem.clone());
        }
        (items, stem)
    }

    /// Adds one file's items to the set, reporting names defined twice.
    fn add(&mut self, items: Vec<Item>, stem: &str) {
        let mut packages_here = 0;
        for item in items {
            match item {
                Item::Package(r) => {
                    packages_here += 1;
                    self.add_package(*r, stem, packages_here > 1);
                }
                Item::Toolchain(t) => self.add_toolchain(t),
                Item::Arch(a) => self.add_arch(a),
                Item::Target(t) => self.add_target(*t),
                Item::Matrix(_) => unreachable!("expand_matrices replaced every matrix"),
                Item::Defaults(s, span) => self.add_defaults(s, span),
            }
        }
    }

    /// A package: one per file, in the file named after it, defined once.
    fn add_package(&mut self, r: Recipe, stem: &str, second_in_file: bool) {
        let set = &mut self.set;
        let name = r.name.value.clone();
        if second_in_file {
            self.diags.push(
                Diag::error(
                    "recipe::one-package-per-file",
                    format!("a second package `{name}` in one file"),
                )
                .label(&set.sources, r.name.span, "second package")
                .help(format!("move it to its own file, `{name}.kdl`")),
            );
        } else if name != stem {
            self.diags.push(
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
        if let Some(prev) = self.package_files.get(&name) {
            self.diags.push(
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
            return;
        }
        self.package_files.insert(name.clone(), r.name.span);
        set.packages.insert(name, r);
    }

    fn add_toolchain(&mut self, t: ToolchainDecl) {
        let set = &mut self.set;
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
            self.diags.push(d);
            return;
        }
        set.toolchains.insert(t.name.value.clone(), t);
    }

    fn add_arch(&mut self, a: ArchDecl) {
        let set = &mut self.set;
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
            self.diags.push(d);
            return;
        }
        set.arches.insert(a.name.value.clone(), a);
    }

    fn add_target(&mut self, t: TargetDecl) {
        let set = &mut self.set;
        if let Some(prev) = self.target_spans.get(&t.name.value) {
            let mut d = Diag::error(
                "recipe::duplicate-target",
                format!("target `{}` is defined twice", t.name.value),
            )
            .label(&set.sources, t.name.span, "defined again here");
            if prev.file == t.name.span.file && *prev != t.name.span {
                d = d.label(&set.sources, *prev, "first defined here");
            }
            self.diags
                .push(d.help("target names must be unique; rename one of them"));
            return;
        }
        self.target_spans.insert(t.name.value.clone(), t.name.span);
        set.targets.push(t);
    }

    fn add_defaults(&mut self, s: TargetSettings, span: Span) {
        if let Some(prev) = self.defaults_span {
            let d = Diag::error("recipe::duplicate-node", "`defaults` is given twice")
                .label(&self.set.sources, span, "given again here")
                .label(&self.set.sources, prev, "first given here")
                .help("merge them into one `defaults` block");
            self.diags.push(d);
            return;
        }
        self.defaults_span = Some(span);
        self.set.defaults = s;
    }

    /// Virtual → the packages providing it, sorted and without repetitions.
    fn index_providers(&mut self) {
        let set = &mut self.set;
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
    }
}

/// The first of a file's syntax errors, in forge's words. The parser reports a cascade after the
/// first error; the first is the one to fix, the rest usually go away with it.
fn syntax_error(sources: &Sources, file: FileId, err: kdl::KdlError) -> Option<Diag> {
    let more = err.diagnostics.len().saturating_sub(1);
    let d = err
        .diagnostics
        .into_iter()
        .min_by_key(|d| d.span.offset())?;
    let span = Span::new(file, d.span);
    let message = d.message.unwrap_or_else(|| "invalid KDL".to_owned());
    let (label, mut help) = syntax_advice(&sources.get(file).text, span, d.label, d.help);
    if more > 0 {
        help.push_str(&format!(
            " ({more} more syntax error{} in this file may follow from this one)",
            if more == 1 { "" } else { "s" }
        ));
    }
    Some(
        Diag::error(
            "recipe::syntax",
            format!(
                "syntax error: {}",
                message.trim_end_matches('.').to_lowercase()
            ),
        )
        .label(sources, span, label)
        .help(help),
    )
}
