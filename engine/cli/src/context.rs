//! Settings resolved once per run: where the recipes and the store are, how to print.

use std::path::{Path, PathBuf};

use forge_plan::{Plan, Planner};
use forge_recipe::RecipeSet;
use forge_resolve::{HostProbe, Request, Resolver};

use crate::args::GlobalArgs;
use crate::error::CliError;
use crate::printer::Printer;

/// Everything a command needs besides its own arguments.
#[derive(Debug)]
pub struct Ctx {
    pub printer: Printer,
    recipes: Option<PathBuf>,
    example: bool,
    pub store: PathBuf,
    padded_length: Option<usize>,
    pub mirrors: Vec<String>,
    pub source_cache: PathBuf,
    pub keys: PathBuf,
    fetch: forge_fetch::FetchOptions,
    pub sandbox: crate::args::SandboxMode,
    /// The errors of the recipe tree loaded last, if it had any: plans that use nothing of the
    /// files they are in go ahead (with a warning, said once); the others are refused.
    broken: std::sync::Mutex<Option<BrokenTree>>,
}

/// A recipe tree that loaded with errors.
#[derive(Debug, Clone)]
struct BrokenTree {
    diags: forge_recipe::Diagnostics,
    /// The files the errors are in, as shown (`recipes/munge.kdl`).
    files: Vec<String>,
    /// Whether the warning was printed.
    warned: bool,
}

impl BrokenTree {
    /// Why every plan may depend on the broken files, if it may: they hold toolchains, the
    /// target table, defaults, or providers of virtual packages, which any resolution can use.
    fn touches_every_plan(&self, set: &RecipeSet) -> Option<String> {
        for f in &self.files {
            if f.starts_with("toolchains/") {
                return Some(format!(
                    "`{f}` is part of the toolchains and target table every plan uses"
                ));
            }
            let Some(text) = set
                .sources
                .iter()
                .find(|(_, s)| s.name == *f)
                .map(|(_, s)| s.text.clone())
            else {
                return Some(format!(
                    "`{f}` could not be read, so what it defines is unknown"
                ));
            };
            // A node of that name anywhere in the file (KDL nodes start their line).
            let has_node = |node: &str| {
                text.lines().any(|l| {
                    l.trim_start().strip_prefix(node).is_some_and(|rest| {
                        rest.is_empty() || rest.starts_with([' ', '\t', '{', '"'])
                    })
                })
            };
            if has_node("toolchain") || has_node("arch") {
                return Some(format!(
                    "`{f}` may define a toolchain or architecture every plan can use"
                ));
            }
            if has_node("provides") {
                return Some(format!(
                    "`{f}` may provide a virtual package the resolver would choose"
                ));
            }
            if has_node("defaults") {
                return Some(format!("`{f}` may hold the defaults every target uses"));
            }
        }
        None
    }

    /// Why planning without the broken files' packages would break a toolchain: one of them
    /// is a toolchain's compiler or runtime (the resolver takes those as given).
    fn defines_a_toolchain_package(&self, set: &RecipeSet) -> Option<String> {
        set.toolchains.values().find_map(|t| {
            [Some(&t.compiler), t.runtime.as_ref()]
                .into_iter()
                .flatten()
                .find_map(|p| {
                    let r = set.packages.get(&p.value)?;
                    let f = &set.sources.get(r.file).name;
                    self.files.iter().any(|b| b == f).then(|| {
                        format!(
                            "`{f}` defines `{}`, of the toolchain `{}`",
                            p.value, t.name.value
                        )
                    })
                })
        })
    }

    /// `set` without what the broken files define: their packages and targets. A request that
    /// needs one of them then does not resolve; nothing half-checked reaches the planner.
    fn without_broken(&self, set: &RecipeSet) -> RecipeSet {
        let mut clean = set.clone();
        let broken = |f: &str| self.files.iter().any(|b| b == f);
        clean
            .packages
            .retain(|_, r| !broken(&set.sources.get(r.file).name));
        clean
            .targets
            .retain(|t| !broken(&set.sources.get(t.name.span.file).name));
        clean
    }

    /// The error refusing to plan `request` because of these errors, and `why`.
    fn refusal(&self, request: &str, why: &str) -> CliError {
        let files = self
            .files
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!(
            "{} in {files}: `{request}` is not planned ({why}); forge plans nothing that may use a recipe file with errors",
            crate::printer::counted(self.diags.error_count(), "error"),
        );
        CliError::diagnostics(self.diags.clone())
            .with_message(message)
            .with_hint("fix them (`forge lint` lists every one), or move the broken file out of `recipes/` for now")
    }
}

/// `$XDG_CONFIG_HOME/forge`, else `~/.config/forge`.
pub fn config_dir() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("forge")
}

/// `$XDG_CACHE_HOME/forge`, else `~/.cache/forge`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("forge")
}

/// The default store: `$XDG_DATA_HOME/forge/store`, else `~/.local/share/forge/store`.
pub fn default_store() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    data.join("forge/store")
}

/// The nearest directory at or above `start` that holds `recipes/` or `toolchains/`.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("recipes").is_dir() || d.join("toolchains").is_dir())
        .map(Path::to_path_buf)
}

/// A mirror as given: a URL stays as it is; a path (`/srv/mirror`, `./mirror`) becomes the
/// `file://` URL of its absolute form, as a user who typed a directory means.
fn mirror_url(m: &str) -> String {
    if m.contains("://") {
        return m.to_owned();
    }
    let abs = std::path::absolute(m).unwrap_or_else(|_| PathBuf::from(m));
    format!("file://{}", abs.display())
}

impl Ctx {
    pub fn new(global: &GlobalArgs) -> Self {
        let printer = Printer::new(global.color, global.quiet);
        let store = global.store.clone().unwrap_or_else(default_store);
        let store = std::path::absolute(&store).unwrap_or(store);
        Self {
            printer,
            sandbox: global.sandbox,
            recipes: global.recipes.clone(),
            example: global.example,
            store,
            padded_length: global.padded_length,
            mirrors: global
                .mirrors
                .iter()
                .filter(|m| !m.is_empty())
                .map(|m| mirror_url(m))
                .collect(),
            source_cache: global
                .source_cache
                .clone()
                .unwrap_or_else(|| cache_dir().join("sources")),
            keys: global
                .keys
                .clone()
                .unwrap_or_else(|| config_dir().join("keys")),
            fetch: {
                let d = forge_fetch::FetchOptions::default();
                forge_fetch::FetchOptions {
                    max_bytes: global.max_download.unwrap_or(d.max_bytes),
                    deadline: global
                        .download_deadline
                        .map_or(d.deadline, std::time::Duration::from_secs),
                    low_speed_limit: global.download_low_speed.unwrap_or(d.low_speed_limit),
                    ..d
                }
            },
            broken: std::sync::Mutex::new(None),
        }
    }

    /// How downloads behave: the mirrors and the bounds given on the command line.
    pub fn fetch_options(&self) -> forge_fetch::FetchOptions {
        forge_fetch::FetchOptions {
            mirrors: self.mirrors.clone(),
            ..self.fetch.clone()
        }
    }

    /// The source cache, with this run's download settings.
    pub fn source_cache(&self) -> forge_fetch::SourceCache {
        forge_fetch::SourceCache::new(self.source_cache.clone(), self.fetch_options())
    }

    /// The host probe: `PATH` lookups, with detected versions remembered across runs in the
    /// cache directory.
    pub fn host(&self) -> forge_resolve::SystemHost {
        forge_resolve::SystemHost::new().with_version_cache(cache_dir().join("host-versions.json"))
    }

    /// Whether `--example` selected the built-in example set.
    pub fn example(&self) -> bool {
        self.example
    }

    /// Opens (creating if needed) the store.
    /// Where store paths are shown by commands that do not open the store (`plan`, `graph`,
    /// `show-derivation`): the store's padded output directory.
    pub fn paths_dir(&self) -> PathBuf {
        forge_store::paths_dir_for(&self.store, self.padded_length)
    }

    /// The padding asked for with `--padded-length` (or `FORGE_PADDED_LENGTH`).
    pub fn padded_length(&self) -> Option<usize> {
        self.padded_length
    }

    pub fn open_store(&self) -> Result<forge_store::Store, CliError> {
        Ok(forge_store::Store::open(&self.store, self.padded_length)?)
    }

    /// Opens the store for a command that only reads it: nothing is written, so it works on a
    /// full or read-only file system.
    pub fn open_store_read_only(&self) -> Result<forge_store::Store, CliError> {
        Ok(forge_store::Store::open_read_only(
            &self.store,
            self.padded_length,
        )?)
    }

    /// A store name from what the user typed: a store path, a store name, a hash prefix, or a
    /// target/spec (its root's output).
    pub fn resolve_path(&self, store: &forge_store::Store, arg: &str) -> Result<String, CliError> {
        let p = Path::new(arg);
        if arg.contains('/') {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            // Follow an out-link.
            let target = fs_err::canonicalize(&abs).unwrap_or(abs);
            if let Some(n) = store.name_of(&target) {
                return Ok(n);
            }
        }
        if forge_store::parse_name(arg).is_some() {
            return Ok(arg.to_owned());
        }
        if arg.len() >= 6 && forge_core::nixbase32::is_valid(arg) {
            let all = store.all_valid()?;
            let hits: Vec<&String> = all.iter().filter(|n| n.starts_with(arg)).collect();
            match hits.as_slice() {
                [one] => return Ok((*one).clone()),
                [] => {
                    // Not valid: perhaps a failed build whose log or derivation is kept.
                    let mut known: Vec<String> = fs_err::read_dir(store.paths_dir())
                        .into_iter()
                        .flatten()
                        .chain(
                            fs_err::read_dir(store.meta_dir().join("logs"))
                                .into_iter()
                                .flatten(),
                        )
                        .flatten()
                        .filter_map(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            let base = n
                                .split(".drv")
                                .next()
                                .unwrap_or(&n)
                                .split(".log")
                                .next()
                                .unwrap_or(&n)
                                .split(".wrapper")
                                .next()
                                .unwrap_or(&n)
                                .to_owned();
                            (base.starts_with(arg) && forge_store::parse_name(&base).is_some())
                                .then_some(base)
                        })
                        .collect();
                    known.sort();
                    known.dedup();
                    if let [one] = known.as_slice() {
                        return Ok(one.clone());
                    }
                }
                many => {
                    return Err(CliError::error(format!(
                        "`{arg}` matches {} store paths; give more of the hash",
                        many.len()
                    )));
                }
            }
        }
        let set = self.load()?;
        // A few characters of base-32 that name no package: a hash prefix too short to use.
        if arg.len() < 6
            && forge_core::nixbase32::is_valid(arg)
            && !set.packages.contains_key(arg)
            && set.target(arg).is_none()
        {
            return Err(CliError::error(format!(
                "`{arg}` is too short to be a hash prefix, and no package or target has that name"
            ))
            .with_hint(
                "give at least 6 characters of the hash, a store path, a target or a spec",
            ));
        }
        let host = self.host();
        let plan = self.plan(&set, &host, arg)?;
        Ok(plan.root().store_name().into())
    }

    /// The recipe root for this run.
    pub fn recipes_root(&self) -> Result<PathBuf, CliError> {
        if self.example {
            return crate::examples::materialize()
                .map_err(|e| CliError::error(format!("cannot write the example recipes: {e}")));
        }
        if let Some(r) = &self.recipes {
            let root = std::path::absolute(r).unwrap_or_else(|_| r.clone());
            if !root.join("recipes").is_dir() && !root.join("toolchains").is_dir() {
                return Err(CliError::error(format!(
                    "`{}` is not a recipe tree: it holds neither `recipes/` nor `toolchains/`",
                    root.display()
                ))
                .with_hint(
                    "`--recipes` (or `FORGE_RECIPES`) names the directory above `recipes/`, such as a clone of this repository",
                ));
            }
            return Ok(root);
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        find_root(&cwd).ok_or_else(|| {
            CliError::error(
                "no recipe tree here: no `recipes/` or `toolchains/` in this directory or above",
            )
            .with_hint(
                "run forge inside a recipe tree, or pass `--recipes DIR` (or set `FORGE_RECIPES`)",
            )
        })
    }

    /// Loads and checks the recipe tree for planning: its warnings are printed; with errors,
    /// [`Self::plan`] goes ahead only for what uses nothing of the files they are in.
    pub fn load(&self) -> Result<RecipeSet, CliError> {
        let root = self.recipes_root()?;
        self.load_at(&root).map(|(set, _)| set)
    }

    /// Loads and checks the recipe tree at `root` for planning (see [`Self::load`]); also says
    /// whether it loaded without a single diagnostic.
    pub fn load_at(&self, root: &Path) -> Result<(RecipeSet, bool), CliError> {
        let loaded = RecipeSet::load(root);
        if loaded.diags.has_errors() {
            let mut files: Vec<String> = loaded
                .diags
                .iter()
                .filter(|d| d.is_error())
                .filter_map(|d| d.location().map(|l| l.file.clone()))
                .chain(loaded.set.unloaded.files.iter().cloned())
                .collect();
            files.sort_unstable();
            files.dedup();
            if !files.is_empty() {
                *self.broken.lock().expect("not poisoned") = Some(BrokenTree {
                    diags: loaded.diags,
                    files,
                    warned: false,
                });
                return Ok((loaded.set, false));
            }
        }
        self.finish_load(loaded)
    }

    /// Loads and checks the whole recipe tree (for commands that show all of it): any error
    /// fails with its diagnostics.
    pub fn load_strict(&self) -> Result<RecipeSet, CliError> {
        let root = self.recipes_root()?;
        self.finish_load(RecipeSet::load(&root)).map(|(set, _)| set)
    }

    fn finish_load(&self, loaded: forge_recipe::Loaded) -> Result<(RecipeSet, bool), CliError> {
        if loaded.diags.has_errors() {
            let n = loaded.diags.error_count();
            let mut files: Vec<&str> = loaded
                .diags
                .iter()
                .filter(|d| d.is_error())
                .filter_map(|d| d.location().map(|l| l.file.as_str()))
                .collect();
            files.sort_unstable();
            files.dedup();
            let message = format!(
                "{} in {}: forge plans nothing while the recipe tree has errors, whatever the target",
                crate::printer::counted(n, "error"),
                if files.is_empty() {
                    "the recipes".to_owned()
                } else {
                    files
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            );
            return Err(CliError::diagnostics(loaded.diags)
                .with_message(message)
                .with_hint("fix them (`forge lint` lists every one), or move the broken file out of `recipes/` for now"));
        }
        self.printer.diagnostics(&loaded.diags);
        let clean = loaded.diags.is_empty();
        Ok((loaded.set, clean))
    }

    /// Resolves and plans a target name or spec without printing anything; `None` when it does
    /// not resolve.
    pub fn plan_quietly(set: &RecipeSet, host: &dyn HostProbe, text: &str) -> Option<Plan> {
        let req = Request::parse(set, text).ok()?;
        let graph = Resolver::new(set, host).resolve(&req).ok()?;
        Planner::new(set).plan(graph).ok()
    }

    /// Resolves and plans a target name or spec.
    pub fn plan(
        &self,
        set: &RecipeSet,
        host: &dyn HostProbe,
        text: &str,
    ) -> Result<Plan, CliError> {
        let plan_in = |set: &RecipeSet| -> Result<Plan, CliError> {
            let req = Request::parse(set, text)?;
            let graph = Resolver::new(set, host).resolve(&req)?;
            Ok(Planner::new(set).plan(graph)?)
        };
        let mut broken = self.broken.lock().expect("not poisoned");
        let Some(b) = broken.as_mut() else {
            return plan_in(set);
        };
        if let Some(why) = b
            .touches_every_plan(set)
            .or_else(|| b.defines_a_toolchain_package(set))
        {
            return Err(b.refusal(text, &why));
        }
        let plan = plan_in(&b.without_broken(set)).map_err(|e| {
            let them = if b.files.len() == 1 { "it" } else { "them" };
            b.refusal(text, &format!("without {them}: {e}"))
        })?;
        if !b.warned {
            b.warned = true;
            self.printer.diagnostics(&b.diags);
            self.printer.warn(&format!(
                "planned `{text}` without {}, which {} errors: it uses nothing from {} (`forge lint` lists the errors)",
                b.files.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "),
                if b.files.len() == 1 { "has" } else { "have" },
                if b.files.len() == 1 { "it" } else { "them" },
            ));
        }
        Ok(plan)
    }
}
