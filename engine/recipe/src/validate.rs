//! Checks that need the whole recipe set: references between packages, toolchains and targets,
//! version constraints against declared versions, placeholders against variants and
//! dependencies, files beside recipes, defaults against conflicts, and dependency cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::diag::{Diag, Diagnostics, Span, did_you_mean};
use crate::model::*;
use crate::set::RecipeSet;
use crate::spec::{Spec, VariantSetting};
use crate::template::{Template, Var};
use crate::version::Version;

struct V<'a> {
    set: &'a RecipeSet,
    diags: &'a mut Diagnostics,
}

impl V<'_> {
    fn err(
        &mut self,
        code: &'static str,
        msg: impl Into<String>,
        span: Span,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = Diag::error(code, msg)
            .label(&self.set.sources, span, label)
            .help(help);
        self.diags.push(d);
    }
    fn warn(
        &mut self,
        code: &'static str,
        msg: impl Into<String>,
        span: Span,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = Diag::warning(code, msg)
            .label(&self.set.sources, span, label)
            .help(help);
        self.diags.push(d);
    }

    /// Whether a reference to a package (or virtual) that does not exist repeats a mistake
    /// already reported: its recipe, or the `provides` line naming it, failed to load.
    fn missing_is_explained(&self, name: &str) -> bool {
        self.set.unloaded.package(name)
    }

    /// Whether `{dep:…}` placeholders of `r` cannot be checked: one of its `depends` lines
    /// failed to decode or names a package that does not exist, both reported already.
    fn deps_uncertain(&self, r: &Recipe) -> bool {
        r.incomplete.contains("depends")
            || r.depends.iter().any(|d| {
                !self.set.packages.contains_key(d.spec.name())
                    && !self.set.providers.contains_key(d.spec.name())
            })
    }

    /// The recipe's directory as shown to people: relative to the tree's root.
    fn shown_dir(&self, r: &Recipe) -> String {
        r.dir
            .strip_prefix(&self.set.root)
            .unwrap_or(&r.dir)
            .display()
            .to_string()
    }

    /// The full path of a file named by a recipe (a local source, a patch), or a diagnostic when
    /// it is absolute or leaves the recipe tree: recipes may only read files of their own tree.
    fn local_path(&mut self, r: &Recipe, p: &Spanned<String>, what: &str) -> Option<PathBuf> {
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
            None => Some(r.dir.join(written)),
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

    fn suggest<'b>(
        word: &str,
        candidates: impl IntoIterator<Item = &'b str>,
        otherwise: impl FnOnce() -> String,
    ) -> String {
        match did_you_mean(word, candidates) {
            Some(s) => format!("did you mean `{s}`?"),
            None => otherwise(),
        }
    }

    /// Checks the variant clauses of `spec` against `recipe`'s variants.
    fn check_variants(&mut self, spec: &Spec, lit: &LitSpan, recipe: &Recipe, context: &str) {
        for clause in &spec.variants {
            let name = &clause.name.value;
            let span = lit.at(clause.span.clone());
            let Some(decl) = recipe.variant(name) else {
                if recipe.incomplete.contains("variant") {
                    continue;
                }
                let help = Self::suggest(
                    name,
                    recipe.variants.iter().map(|v| v.name.value.as_str()),
                    || {
                        if recipe.variants.is_empty() {
                            format!("`{}` has no variants", recipe.name.value)
                        } else {
                            format!(
                                "variants of `{}`: {}",
                                recipe.name.value,
                                recipe
                                    .variants
                                    .iter()
                                    .map(|v| v.name.value.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    },
                );
                self.err(
                    "recipe::unknown-variant",
                    format!("{context}: `{}` has no variant `{name}`", recipe.name.value),
                    span,
                    "unknown variant",
                    help,
                );
                continue;
            };
            match (&decl.kind, &clause.setting) {
                (VariantKind::Bool { .. }, VariantSetting::Bool(_)) => {}
                (VariantKind::Bool { .. }, VariantSetting::Values(_)) => self.err(
                    "recipe::bad-variant-value",
                    format!(
                        "{context}: `{name}` is an on/off variant of `{}`",
                        recipe.name.value
                    ),
                    span,
                    "given a value",
                    format!("write `+{name}` or `~{name}`"),
                ),
                (_, VariantSetting::Bool(_)) => self.err(
                    "recipe::bad-variant-value",
                    format!(
                        "{context}: `{name}` of `{}` takes a value, not on/off",
                        recipe.name.value
                    ),
                    span,
                    "used as on/off",
                    format!("write `{name}=VALUE`"),
                ),
                (
                    VariantKind::Single { values, .. } | VariantKind::Multi { values, .. },
                    VariantSetting::Values(given),
                ) => {
                    if matches!(decl.kind, VariantKind::Single { .. }) && given.len() > 1 {
                        self.err(
                            "recipe::bad-variant-value",
                            format!(
                                "{context}: `{name}` of `{}` takes one value",
                                recipe.name.value
                            ),
                            span,
                            "several values",
                            "pick one value",
                        );
                        continue;
                    }
                    for g in given {
                        if !values.is_empty() && !values.contains(g) {
                            let help = Self::suggest(g, values.iter().map(String::as_str), || {
                                format!("allowed values: {}", values.join(", "))
                            });
                            self.err(
                                "recipe::bad-variant-value",
                                format!(
                                    "{context}: `{g}` is not a value of variant `{name}` of `{}`",
                                    recipe.name.value
                                ),
                                span,
                                "not allowed",
                                help,
                            );
                        }
                    }
                }
            }
        }
    }

    fn check_toolchain_and_target(&mut self, spec: &Spec, lit: &LitSpan) {
        if let Some(tc) = &spec.toolchain
            && !self.set.toolchains.contains_key(&tc.name.value)
            && !self.set.unloaded.toolchain(&tc.name.value)
        {
            let help = Self::suggest(
                &tc.name.value,
                self.set.toolchains.keys().map(String::as_str),
                || {
                    format!(
                        "toolchains: {}",
                        self.set
                            .toolchains
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            );
            self.err(
                "recipe::unknown-toolchain",
                format!("unknown toolchain `{}`", tc.name.value),
                lit.at(tc.name.span.clone()),
                "unknown toolchain",
                help,
            );
        }
        if let Some(t) = &spec.target {
            self.check_arch(&t.value, lit.at(t.span.clone()));
        }
    }

    fn check_arch(&mut self, name: &str, span: Span) {
        if !self.set.arches.contains_key(name) && !self.set.unloaded.arch() {
            let help = Self::suggest(name, self.set.arches.keys().map(String::as_str), || {
                format!(
                    "architectures in the target table: {}",
                    self.set
                        .arches
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
            self.err(
                "recipe::unknown-arch",
                format!("unknown target architecture `{name}`"),
                span,
                "not in the target table",
                help,
            );
        }
    }

    fn check_condition(&mut self, recipe: &Recipe, cond: &Condition, what: &str) {
        self.check_variants(&cond.spec, &cond.lit, recipe, what);
        self.check_toolchain_and_target(&cond.spec, &cond.lit);
        if let Some(v) = &cond.spec.version
            && !recipe.versions.is_empty()
            && recipe.runtime_for.is_none()
            && !recipe.incomplete.contains("version")
            && !recipe
                .versions
                .iter()
                .any(|d| v.value.matches(&d.version.value))
        {
            self.warn(
                "recipe::condition-matches-no-version",
                format!(
                    "{what}: `@{}` matches no version of `{}`",
                    v.value, recipe.name.value
                ),
                cond.lit.at(v.span.clone()),
                "never true",
                format!("versions: {}", versions_list(recipe)),
            );
        }
    }

    /// The file span of `range`, a byte range of a template's text: exact when the template was
    /// written as a plain quoted string, else the whole literal.
    fn template_span(&self, t: &Spanned<Template>, range: std::ops::Range<usize>) -> Span {
        let file = self.set.sources.get(t.span.file);
        let raw = file
            .text
            .get(t.span.offset..t.span.offset + t.span.len)
            .unwrap_or_default();
        let plain = raw.len() >= 2
            && raw.starts_with('"')
            && raw.ends_with('"')
            && raw.get(1..raw.len() - 1) == Some(t.value.as_str());
        if plain {
            t.span.slice(range.start + 1..range.end + 1)
        } else {
            t.span
        }
    }

    fn check_template(
        &mut self,
        recipe: &Recipe,
        t: &Spanned<Template>,
        deps: &BTreeSet<&str>,
        build: bool,
    ) {
        for (var, range) in t.value.vars() {
            let problem = match var {
                Var::Version(Some(form)) if !Version::DERIVED_FORMS.contains(&form.as_str()) => {
                    Some((
                        format!("unknown version form `{form}`"),
                        Self::suggest(form, Version::DERIVED_FORMS.iter().copied(), || {
                            format!("forms: {}", Version::DERIVED_FORMS.join(", "))
                        }),
                    ))
                }
                Var::Variant(n)
                    if recipe.variant(n).is_none() && !recipe.incomplete.contains("variant") =>
                {
                    Some((
                        format!(
                            "`{{variant:{n}}}` names no variant of `{}`",
                            recipe.name.value
                        ),
                        Self::suggest(
                            n,
                            recipe.variants.iter().map(|v| v.name.value.as_str()),
                            || "declare it with `variant`".to_owned(),
                        ),
                    ))
                }
                Var::Dep(n)
                    if build && !deps.contains(n.as_str()) && !self.deps_uncertain(recipe) =>
                {
                    Some((
                        format!(
                            "`{{dep:{n}}}` names no dependency of `{}`",
                            recipe.name.value
                        ),
                        Self::suggest(n, deps.iter().copied(), || format!("add `depends \"{n}\"`")),
                    ))
                }
                Var::Out | Var::Src | Var::Jobs | Var::Dep(_) | Var::Variant(_) if !build => {
                    Some((
                        format!("`{var}` cannot be used in a URL"),
                        "URLs may use `{version}`, `{version.FORM}` and `{name}`".to_owned(),
                    ))
                }
                _ => None,
            };
            if let Some((msg, help)) = problem {
                let span = self.template_span(t, range.clone());
                self.err(
                    "recipe::bad-placeholder",
                    msg,
                    span,
                    "this placeholder",
                    help,
                );
            }
        }
    }

    fn recipe(&mut self, r: &Recipe) {
        let set = self.set;
        // Versions.
        let mut seen: BTreeMap<&Version, Span> = BTreeMap::new();
        for v in &r.versions {
            if let Some(prev) = seen.get(&v.version.value) {
                let first = set.sources.get(prev.file);
                let first = first
                    .text
                    .get(prev.offset..prev.offset + prev.len)
                    .unwrap_or_default()
                    .trim_matches('"');
                let also = if first == v.version.value.as_str() {
                    String::new()
                } else {
                    format!(" (as `{first}`; separators do not count)")
                };
                let d = Diag::error("recipe::duplicate-version", format!("version `{}` of `{}` is declared twice{also}", v.version.value, r.name.value))
                    .label(&set.sources, v.version.span, "declared again here")
                    .label(&set.sources, *prev, "first declared here")
                    .help("remove one; if the two have different sources, give them different version names");
                self.diags.push(d);
            } else {
                seen.insert(&v.version.value, v.version.span);
            }
            match &v.source {
                SourceDecl::Remote { url, .. } => {
                    let Some(t) = url.as_ref().or(r.url.as_ref()) else {
                        if r.incomplete.contains("url") {
                            continue;
                        }
                        self.err(
                            "recipe::missing-url",
                            format!("version `{}` of `{}` has no URL", v.version.value, r.name.value),
                            v.span,
                            "where from?",
                            "add `url=\"…\"` to the version, or a package-level `url \"…/{name}-{version}.tar.gz\"`",
                        );
                        continue;
                    };
                    let _ = t;
                }
                SourceDecl::Mirrored { .. } => {}
                SourceDecl::Local { path } => {
                    let Some(p) = self.local_path(r, path, "local source") else {
                        continue;
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
            }
        }
        if r.versions.is_empty()
            && r.host.is_none()
            && r.runtime_for.is_none()
            && !["version", "host", "runtime-for"]
                .iter()
                .any(|k| r.incomplete.contains(k))
        {
            self.err(
                "recipe::no-versions",
                format!("package `{}` has no versions", r.name.value),
                r.name.span,
                "nothing to build",
                "add `version \"1.0\" sha256=\"…\"`, or a `host` line if it is taken from the machine",
            );
        }
        if !r.versions.is_empty() && r.build.is_none() && !r.incomplete.contains("build") {
            self.err(
                "recipe::missing-build",
                format!("package `{}` has versions but no `build`", r.name.value),
                r.name.span,
                "how is it built?",
                "add `build \"autotools\"` (or cmake, meson, make, custom)",
            );
        }
        if let Some(u) = &r.url {
            self.check_template(r, u, &BTreeSet::new(), false);
        }
        for m in &r.mirrors {
            self.check_template(r, m, &BTreeSet::new(), false);
        }
        for v in &r.versions {
            if let SourceDecl::Remote { url: Some(u), .. } = &v.source {
                self.check_template(r, u, &BTreeSet::new(), false);
            }
        }
        // Dependencies.
        let mut dep_names: BTreeSet<&str> = BTreeSet::new();
        for d in &r.depends {
            let name = d.spec.name();
            dep_names.insert(name);
            let name_span =
                d.spec
                    .lit
                    .at(d.spec.spec.name.as_ref().map_or(0..0, |n| n.span.clone()));
            if let Some(w) = &d.when {
                self.check_condition(r, w, "in `when`");
            }
            if name == r.name.value {
                self.err(
                    "recipe::self-dependency",
                    format!("`{name}` depends on itself"),
                    name_span,
                    "itself",
                    "remove this dependency",
                );
                continue;
            }
            if let Some(dep) = d.spec.spec.deps.first() {
                self.err(
                    "recipe::bad-spec",
                    "`depends` cannot constrain dependencies of dependencies",
                    d.spec.lit.at(dep.span.clone()),
                    "`^` clause",
                    "add the constraint to the recipe that depends on it, or to the target's spec",
                );
            }
            if d.spec.spec.target.is_some() {
                let t = d
                    .spec
                    .spec
                    .target
                    .as_ref()
                    .map(|t| t.span.clone())
                    .unwrap_or_default();
                self.err(
                    "recipe::bad-spec",
                    "a dependency cannot choose its own target",
                    d.spec.lit.at(t),
                    "here",
                    "the target is set once per realization",
                );
            }
            self.check_toolchain_and_target(&d.spec.spec, &d.spec.lit);
            match set.packages.get(name) {
                Some(dep) => {
                    self.check_variants(&d.spec.spec, &d.spec.lit, dep, "in `depends`");
                    if let Some(v) = &d.spec.spec.version
                        && dep.host.is_none()
                        && dep.runtime_for.is_none()
                        && !dep.incomplete.contains("version")
                        && !dep
                            .versions
                            .iter()
                            .any(|x| v.value.matches(&x.version.value))
                    {
                        self.err(
                            "recipe::no-matching-version",
                            format!("`{name}@{}` matches no version of `{name}`", v.value),
                            d.spec.lit.at(v.span.clone()),
                            "no such version",
                            format!("versions of `{name}`: {}", versions_list(dep)),
                        );
                    }
                }
                None if set.providers.contains_key(name) => {
                    if !d.spec.spec.variants.is_empty() {
                        let s = d.spec.lit.at(d.spec.spec.variants[0].span.clone());
                        self.err(
                            "recipe::bad-spec",
                            format!("`{name}` is virtual and has no variants"),
                            s,
                            "variant on a virtual",
                            "constrain the provider in the target's spec instead",
                        );
                    }
                }
                None if self.missing_is_explained(name) => {}
                None => {
                    let candidates: Vec<&str> = set
                        .packages
                        .keys()
                        .map(String::as_str)
                        .chain(set.providers.keys().map(String::as_str))
                        .collect();
                    let help = Self::suggest(name, candidates, || {
                        format!("add a recipe `recipes/{name}.kdl`, or fix the name")
                    });
                    self.err(
                        "recipe::unknown-package",
                        format!(
                            "`{}` depends on `{name}`, which does not exist",
                            r.name.value
                        ),
                        name_span,
                        "no such package",
                        help,
                    );
                }
            }
        }
        for p in &r.provides {
            dep_names.insert(p.spec.name());
            if let Some(w) = &p.when {
                self.check_condition(r, w, "in `when`");
            }
            if set.packages.contains_key(p.spec.name()) {
                self.err(
                    "recipe::virtual-is-package",
                    format!(
                        "`{}` is a package, so it cannot be provided as a virtual",
                        p.spec.name()
                    ),
                    p.spec.lit.span,
                    "a real package",
                    "give the virtual a name no package has, such as `zlib-api`",
                );
            }
        }
        // Dependencies by virtual name are reachable through `{dep:VIRTUAL}` too.
        for c in &r.conflicts {
            self.check_condition(r, &c.cond, "in `conflicts`");
            if let Some(w) = &c.when {
                self.check_condition(r, w, "in `when`");
            }
        }
        for p in &r.patches {
            if let Some(w) = &p.when {
                self.check_condition(r, w, "in `when`");
            }
            let Some(path) = self.local_path(r, &p.file, "patch") else {
                continue;
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
        if let Some(b) = &r.build {
            let mut ctx_deps = dep_names.clone();
            if let Some(rt) = &r.runtime_for {
                ctx_deps.insert(rt.value.as_str());
            }
            for a in &b.args {
                if let Some(w) = &a.when {
                    self.check_condition(r, w, "in `when`");
                }
                for v in &a.values {
                    self.check_template(r, v, &ctx_deps, true);
                }
            }
            for e in &b.env {
                if let Some(w) = &e.when {
                    self.check_condition(r, w, "in `when`");
                }
                self.check_template(r, &e.value, &ctx_deps, true);
            }
            for p in &b.phases {
                if let Some(w) = &p.when {
                    self.check_condition(r, w, "in `when`");
                }
                for c in &p.commands {
                    match c {
                        CommandDecl::Run(argv) => {
                            for a in argv {
                                self.check_template(r, a, &ctx_deps, true);
                            }
                        }
                        CommandDecl::Sh(_) => {}
                    }
                }
            }
            if let Some(Some(w)) = &b.autoreconf {
                self.check_condition(r, w, "in `when`");
            }
        }
        for (forge_name, spack_name) in &r.spack.variants {
            if r.variant(forge_name).is_none() && !r.incomplete.contains("variant") {
                self.err(
                    "recipe::unknown-variant",
                    format!(
                        "the Spack mapping names variant `{forge_name}`, which `{}` does not have",
                        r.name.value
                    ),
                    spack_name.span,
                    "unknown forge variant",
                    "the first argument of `variant` inside `spack` is the forge variant's name",
                );
            }
        }
        if let Some(t) = &r.spack.version {
            self.check_template(r, t, &BTreeSet::new(), false);
        }
        if let Some(rt) = &r.runtime_for
            && !set.packages.contains_key(&rt.value)
            && !self.missing_is_explained(&rt.value)
        {
            let help = Self::suggest(&rt.value, set.packages.keys().map(String::as_str), || {
                "name the compiler package, such as `gcc`".into()
            });
            self.err(
                "recipe::unknown-package",
                format!("`runtime-for` names `{}`, which does not exist", rt.value),
                rt.span,
                "no such package",
                help,
            );
        }
        self.conflicting_defaults(r);
    }

    /// A conflict that holds for the package's defaults makes the package unusable as written.
    fn conflicting_defaults(&mut self, r: &Recipe) {
        let Some(newest) = r
            .versions
            .iter()
            .filter(|v| !v.deprecated)
            .map(|v| &v.version.value)
            .max()
        else {
            return;
        };
        let defaults: BTreeMap<String, VariantValue> = r
            .variants
            .iter()
            .map(|v| (v.name.value.clone(), v.default_value()))
            .collect();
        let facts = Facts {
            version: newest,
            variants: &defaults,
            toolchain: None,
            arch: None,
        };
        for c in &r.conflicts {
            let env_free = |s: &Spec| s.toolchain.is_none() && s.target.is_none();
            if !env_free(&c.cond.spec) || c.when.as_ref().is_some_and(|w| !env_free(&w.spec)) {
                continue;
            }
            if c.cond.spec.variants.is_empty()
                && c.when.as_ref().is_none_or(|w| w.spec.variants.is_empty())
            {
                continue;
            }
            let holds =
                c.cond.holds_for(&facts) && c.when.as_ref().is_none_or(|w| w.holds_for(&facts));
            if holds {
                let first_default = c
                    .cond
                    .spec
                    .variants
                    .first()
                    .and_then(|cl| r.variant(&cl.name.value))
                    .map_or(r.name.span, |v| v.default_span);
                let why = c
                    .message
                    .clone()
                    .unwrap_or_else(|| "the recipe declares this combination as a conflict".into());
                let d = Diag::error(
                    "recipe::conflicting-defaults",
                    format!("the defaults of `{}` conflict with its own `conflicts \"{}\"`", r.name.value, c.cond.spec),
                )
                .label(&self.set.sources, c.span, format!("holds for the defaults of {}@{newest}: {why}", r.name.value))
                .label(&self.set.sources, first_default, "default set here")
                .help("change a default so that the defaults build, or narrow the conflict with `when=`");
                self.diags.push(d);
            }
        }
    }

    fn cycles(&mut self) {
        // Unconditional edges between real packages: a cycle among them always bites.
        let set = self.set;
        let edges: BTreeMap<&str, Vec<(&str, Span)>> = set
            .packages
            .iter()
            .map(|(n, r)| {
                let deps = r
                    .depends
                    .iter()
                    .filter(|d| {
                        d.when.is_none()
                            && set.packages.contains_key(d.spec.name())
                            && d.spec.name() != n
                    })
                    .map(|d| (d.spec.name(), d.span))
                    .collect();
                (n.as_str(), deps)
            })
            .collect();
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark: BTreeMap<&str, Mark> = edges.keys().map(|k| (*k, Mark::New)).collect();
        let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
        for start in edges.keys() {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative DFS keeping the path, so deep graphs cannot overflow the stack.
            let mut path: Vec<(&str, usize)> = vec![(start, 0)];
            mark.insert(start, Mark::Active);
            while let Some((node, idx)) = path.last().copied() {
                let out = &edges[node];
                if idx < out.len() {
                    path.last_mut().expect("non-empty").1 += 1;
                    let (next, span) = out[idx];
                    match mark[next] {
                        Mark::New => {
                            mark.insert(next, Mark::Active);
                            path.push((next, 0));
                        }
                        Mark::Active => {
                            let pos = path
                                .iter()
                                .position(|(n, _)| *n == next)
                                .expect("active nodes are on the path");
                            let mut cycle: Vec<&str> =
                                path[pos..].iter().map(|(n, _)| *n).collect();
                            let mut key = cycle.clone();
                            key.sort();
                            if reported.insert(key) {
                                cycle.push(next);
                                let d = Diag::error("recipe::dependency-cycle", format!("dependency cycle: {}", cycle.join(" → ")))
                                    .label(&set.sources, span, format!("`{node}` depends on `{next}` here"))
                                    .help("a package cannot depend on itself through others; make one edge conditional (`when=`) or remove it");
                                self.diags.push(d);
                            }
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark.insert(node, Mark::Done);
                    path.pop();
                }
            }
        }
    }

    fn toolchains(&mut self) {
        let set = self.set;
        for t in set.toolchains.values() {
            match set.packages.get(&t.compiler.value) {
                None if self.missing_is_explained(&t.compiler.value) => {}
                None => {
                    let help = Self::suggest(&t.compiler.value, set.packages.keys().map(String::as_str), || "add the compiler's recipe to `toolchains/`".into());
                    self.err("recipe::unknown-package", format!("toolchain `{}` uses compiler `{}`, which does not exist", t.name.value, t.compiler.value), t.compiler.span, "no such package", help);
                }
                Some(c) if t.host && c.host.is_none() && !c.incomplete.contains("host") => self.err(
                    "recipe::not-on-host",
                    format!("toolchain `{}` takes `{}` from the host, but its recipe has no `host` line", t.name.value, t.compiler.value),
                    t.compiler.span,
                    "no `host` line",
                    format!("add `host \"{}\"` to `{}`'s recipe", t.compiler.value, t.compiler.value),
                ),
                Some(c) if !t.host && c.versions.is_empty() && !c.incomplete.contains("version") => self.err(
                    "recipe::no-versions",
                    format!("toolchain `{}` builds `{}`, which has no versions", t.name.value, t.compiler.value),
                    t.compiler.span,
                    "nothing to build",
                    "add versions to the compiler's recipe, or set `host=#true`",
                ),
                Some(_) => {}
            }
            if let Some(rt) = &t.runtime {
                match set.packages.get(&rt.value) {
                    None if self.missing_is_explained(&rt.value) => {}
                    None => {
                        let help = Self::suggest(
                            &rt.value,
                            set.packages.keys().map(String::as_str),
                            || "add the runtime's recipe to `toolchains/`".into(),
                        );
                        self.err(
                            "recipe::unknown-package",
                            format!(
                                "toolchain `{}` uses runtime `{}`, which does not exist",
                                t.name.value, rt.value
                            ),
                            rt.span,
                            "no such package",
                            help,
                        );
                    }
                    Some(r)
                        if r.runtime_for.as_ref().map(|x| &x.value) != Some(&t.compiler.value)
                            && !r.incomplete.contains("runtime-for") =>
                    {
                        self.err(
                            "recipe::bad-runtime",
                            format!(
                                "`{}` is not declared as the runtime of `{}`",
                                rt.value, t.compiler.value
                            ),
                            rt.span,
                            "not a runtime of this compiler",
                            format!(
                                "add `runtime-for \"{}\"` to `{}`'s recipe",
                                t.compiler.value, rt.value
                            ),
                        )
                    }
                    Some(_) => {}
                }
            }
            if let Some(b) = &t.bootstrap {
                match set.toolchains.get(&b.value) {
                    None if set.unloaded.toolchain(&b.value) => {}
                    None => {
                        let help = Self::suggest(
                            &b.value,
                            set.toolchains.keys().map(String::as_str),
                            || "name a toolchain defined in `toolchains/`".into(),
                        );
                        self.err(
                            "recipe::unknown-toolchain",
                            format!("unknown toolchain `{}`", b.value),
                            b.span,
                            "unknown toolchain",
                            help,
                        );
                    }
                    Some(bt)
                        if !bt.host
                            && bt.bootstrap.as_ref().map(|x| &x.value) == Some(&t.name.value) =>
                    {
                        self.err(
                            "recipe::dependency-cycle",
                            format!(
                                "toolchains `{}` and `{}` bootstrap each other",
                                t.name.value, bt.name.value
                            ),
                            b.span,
                            "cycle",
                            "one of them must use the host compiler",
                        )
                    }
                    Some(_) => {}
                }
            }
        }
    }

    fn settings(&mut self, s: &TargetSettings) {
        if let Some(a) = &s.arch {
            self.check_arch(&a.value, a.span);
        }
        if let Some(t) = &s.toolchain
            && !self.set.toolchains.contains_key(&t.value)
            && !self.set.unloaded.toolchain(&t.value)
        {
            let help = Self::suggest(
                &t.value,
                self.set.toolchains.keys().map(String::as_str),
                || "name a toolchain defined in `toolchains/`".into(),
            );
            self.err(
                "recipe::unknown-toolchain",
                format!("unknown toolchain `{}`", t.value),
                t.span,
                "unknown toolchain",
                help,
            );
        }
        for (virt, p) in &s.providers {
            match self.set.providers.get(virt) {
                None if self.missing_is_explained(virt) => {}
                None => self.err(
                    "recipe::unknown-virtual",
                    format!("no package provides `{virt}`"),
                    p.span,
                    format!("chosen to provide `{virt}`, which nothing provides"),
                    "a virtual exists once some recipe says `provides \"…\"`",
                ),
                Some(list) if !list.contains(&p.value) && !self.missing_is_explained(&p.value) => {
                    let help = Self::suggest(&p.value, list.iter().map(String::as_str), || {
                        format!("providers of `{virt}`: {}", list.join(", "))
                    });
                    self.err(
                        "recipe::bad-provider",
                        format!("`{}` does not provide `{virt}`", p.value),
                        p.span,
                        "not a provider",
                        help,
                    );
                }
                Some(_) => {}
            }
        }
        for p in &s.from_source {
            if !self.set.packages.contains_key(&p.value) && !self.missing_is_explained(&p.value) {
                let help = Self::suggest(
                    &p.value,
                    self.set.packages.keys().map(String::as_str),
                    || "name a package with a recipe".into(),
                );
                self.err(
                    "recipe::unknown-package",
                    format!("`from-source` names `{}`, which does not exist", p.value),
                    p.span,
                    "no such package",
                    help,
                );
            }
        }
    }

    fn targets(&mut self) {
        let set = self.set;
        self.settings(&set.defaults);
        for t in &set.targets {
            // Matrix rows share the matrix's settings: check them once, on the first row.
            if t.matrix.is_none()
                || set
                    .targets
                    .iter()
                    .find(|x| x.matrix == t.matrix)
                    .is_some_and(|x| std::ptr::eq(x, t))
            {
                self.settings(&t.settings);
            }
            self.check_target_spec(&t.name.value, &t.spec);
            for extra in &t.extra_roots {
                self.check_target_spec(&t.name.value, extra);
            }
        }
    }

    /// A target's root spec (or a further root): its package, variants, version, toolchain and
    /// the packages it constrains exist.
    fn check_target_spec(&mut self, target: &str, lit: &SpecLit) {
        let set = self.set;
        let spec = &lit.spec;
        let name = spec.name().unwrap_or_default();
        let name_span = lit
            .lit
            .at(spec.name.as_ref().map_or(0..0, |n| n.span.clone()));
        match set.packages.get(name) {
            None if self.missing_is_explained(name) => {}
            None => {
                let help = Self::suggest(name, set.packages.keys().map(String::as_str), || {
                    "add its recipe under `recipes/`".into()
                });
                self.err(
                    "recipe::unknown-package",
                    format!(
                        "target `{}` names package `{name}`, which does not exist",
                        target
                    ),
                    name_span,
                    "no such package",
                    help,
                );
            }
            Some(r) => {
                self.check_variants(spec, &lit.lit, r, &format!("in target `{}`", target));
                if let Some(v) = &spec.version
                    && r.host.is_none()
                    && !r.incomplete.contains("version")
                    && !r.versions.iter().any(|x| v.value.matches(&x.version.value))
                {
                    self.err(
                        "recipe::no-matching-version",
                        format!(
                            "target `{}`: `{name}@{}` matches no version",
                            target, v.value
                        ),
                        lit.lit.at(v.span.clone()),
                        "no such version",
                        format!("versions of `{name}`: {}", versions_list(r)),
                    );
                }
            }
        }
        self.check_toolchain_and_target(spec, &lit.lit);
        for dep in &spec.deps {
            let dn = dep.name().unwrap_or_default();
            match set.packages.get(dn) {
                Some(r) => {
                    self.check_variants(dep, &lit.lit, r, &format!("in target `{}`", target))
                }
                None if self.missing_is_explained(dn) => {}
                None => {
                    let help = Self::suggest(dn, set.packages.keys().map(String::as_str), || {
                        "add its recipe under `recipes/`".into()
                    });
                    self.err(
                        "recipe::unknown-package",
                        format!(
                            "target `{}` constrains `{dn}`, which does not exist",
                            target
                        ),
                        lit.lit.at(dep.span.clone()),
                        "no such package",
                        help,
                    );
                }
            }
        }
    }
}

fn versions_list(r: &Recipe) -> String {
    if r.versions.is_empty() {
        return "none (taken from the host)".to_owned();
    }
    let mut vs: Vec<&Version> = r.versions.iter().map(|v| &v.version.value).collect();
    vs.sort();
    vs.iter()
        .rev()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// sha256 of a byte string (for patch checksums).
pub fn sha256_of(bytes: &[u8]) -> Sha256 {
    use sha2::Digest as _;
    Sha256(sha2::Sha256::digest(bytes).into())
}

/// Runs every cross-file check.
pub(crate) fn validate(set: &RecipeSet, diags: &mut Diagnostics) {
    let mut v = V { set, diags };
    for r in set.packages.values() {
        v.recipe(r);
    }
    v.cycles();
    v.toolchains();
    v.targets();
}
