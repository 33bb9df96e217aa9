//! The request: a root spec (a target's or the command line's), its settings, and the checks
//! of its variant clauses made before resolving.

use forge_recipe::spec::{VariantClause, VariantSetting};
use forge_recipe::{Diag, LitSpan, RecipeSet, Spec, TargetDecl, TargetSettings, VariantKind};

use super::Resolver;

/// What to resolve: a root spec and the settings that apply to it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Target name, or the spec as given.
    pub name: String,
    /// The root spec.
    pub spec: Spec,
    /// Where the spec was written, for diagnostics.
    pub origin: SpecOrigin,
    /// Target settings merged over the defaults.
    pub settings: TargetSettings,
    /// Further roots of a target (`extra-root`), resolved with the same settings and joined to
    /// the root's graph.
    pub extra_roots: Vec<(Spec, SpecOrigin)>,
}

/// Where a root spec comes from.
#[derive(Debug, Clone)]
pub enum SpecOrigin {
    /// A target in a recipe file.
    Target(LitSpan),
    /// Typed on the command line.
    CommandLine(String),
}

impl Request {
    /// The request for a named target.
    pub fn for_target(set: &RecipeSet, t: &TargetDecl) -> Request {
        let mut settings = set.defaults.clone();
        if t.settings.arch.is_some() {
            settings.arch.clone_from(&t.settings.arch);
        }
        if t.settings.toolchain.is_some() {
            settings.toolchain.clone_from(&t.settings.toolchain);
        }
        for (k, v) in &t.settings.providers {
            settings.providers.insert(k.clone(), v.clone());
        }
        settings
            .from_source
            .extend(t.settings.from_source.iter().cloned());
        settings.require.extend(t.settings.require.iter().cloned());
        Request {
            name: t.name.value.clone(),
            spec: t.spec.spec.clone(),
            origin: SpecOrigin::Target(t.spec.lit),
            settings,
            extra_roots: t
                .extra_roots
                .iter()
                .map(|e| (e.spec.clone(), SpecOrigin::Target(e.lit)))
                .collect(),
        }
    }

    /// The request for a target name or a spec typed by the user.
    pub fn parse(set: &RecipeSet, text: &str) -> Result<Request, Box<Diag>> {
        if let Some(t) = set.target(text) {
            return Ok(Self::for_target(set, t));
        }
        let spec = Spec::parse(text, true).map_err(|e| {
            let no_spec_syntax = !text.contains(['@', '+', '~', '%', '=', ' ', '^']);
            let names: Vec<&str> = set.targets.iter().map(|t| t.name.value.as_str()).collect();
            let meant = forge_recipe::diag::did_you_mean(text, names);
            // A target name with a typo (`slurm-25.11-gcc31`) is not a spec either; say what
            // it most likely is. (Text with control characters is no typo: it stays a bad
            // spec, shown escaped.)
            if no_spec_syntax
                && text.chars().all(|c| c.is_ascii_graphic())
                && let Some(s) = meant
            {
                return Box::new(
                    Diag::error("resolve::unknown", format!("no target is called `{text}`"))
                        .label_text("command line", text, 0..text.len(), "unknown target")
                        .help(format!(
                            "did you mean `{s}`? (`forge plan --all` lists the targets)"
                        )),
                );
            }
            let help = match (no_spec_syntax, meant) {
                (true, Some(s)) => format!("no target is called `{text}`; did you mean `{s}`?"),
                (true, None) => e.help.clone().unwrap_or_else(|| {
                    "give a target name (`forge plan --all` lists them) or a spec".into()
                }),
                (false, _) => e
                    .help
                    .clone()
                    .unwrap_or_else(|| "a spec looks like `slurm@25.11 +pmix %gcc@13.4.0`".into()),
            };
            Box::new(
                Diag::error("resolve::bad-spec", format!("invalid spec: {}", e.message))
                    .label_text("command line", text, e.span.clone(), "here")
                    .help(help),
            )
        })?;
        let name = spec.name().unwrap_or_default().to_owned();
        if !set.packages.contains_key(&name) {
            let targets: Vec<&str> = set.targets.iter().map(|t| t.name.value.as_str()).collect();
            let all: Vec<&str> = set
                .packages
                .keys()
                .map(String::as_str)
                .chain(targets.iter().copied())
                .collect();
            let help = match forge_recipe::diag::did_you_mean(&name, all) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "`forge list` lists the packages; `forge plan --all` the targets".into(),
            };
            return Err(Box::new(
                Diag::error(
                    "resolve::unknown",
                    format!("`{name}` is neither a target nor a package"),
                )
                .label_text(
                    "command line",
                    text,
                    spec.name.as_ref().map_or(0..0, |n| n.span.clone()),
                    "unknown",
                )
                .help(help),
            ));
        }
        Ok(Request {
            name: text.to_owned(),
            spec,
            origin: SpecOrigin::CommandLine(text.to_owned()),
            settings: set.defaults.clone(),
            extra_roots: Vec::new(),
        })
    }
}

impl Resolver<'_> {
    /// The variant clauses of the request's spec and of its `^` clauses naming packages.
    pub(super) fn check_request(&self, req: &Request, root_name: &str) -> Result<(), Box<Diag>> {
        self.check_request_variants(req, root_name, &req.spec.variants)?;
        for dep in &req.spec.deps {
            let dn = dep.name().unwrap_or_default();
            if let Some(r) = self.set.packages.get(dn) {
                self.check_request_variants(req, &r.name.value, &dep.variants)?;
            } else if !dn.is_empty() && !self.set.is_virtual(dn) {
                let names = self
                    .set
                    .packages
                    .keys()
                    .map(String::as_str)
                    .chain(self.set.providers.keys().map(String::as_str));
                let help = match forge_recipe::diag::did_you_mean(dn, names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "`forge list` lists the packages".into(),
                };
                let d = Diag::error(
                    "resolve::unknown",
                    format!("`^{dn}`: no package or virtual is called `{dn}`"),
                )
                .help(help);
                let span = dep.name.as_ref().map(|n| n.span.clone());
                return Err(Box::new(self.diag_for(req, d, span.as_ref(), "unknown")));
            }
        }
        Ok(())
    }

    fn check_request_variants(
        &self,
        req: &Request,
        package: &str,
        clauses: &[VariantClause],
    ) -> Result<(), Box<Diag>> {
        let r = self.recipe(package);
        for c in clauses {
            let Some(decl) = r.variant(&c.name.value) else {
                let names: Vec<&str> = r.variants.iter().map(|v| v.name.value.as_str()).collect();
                let help =
                    match forge_recipe::diag::did_you_mean(&c.name.value, names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if names.is_empty() => format!("`{package}` has no variants"),
                        None => format!("variants of `{package}`: {}", names.join(", ")),
                    };
                let d = Diag::error(
                    "resolve::unknown-variant",
                    format!("`{package}` has no variant `{}`", c.name.value),
                )
                .help(help);
                return Err(Box::new(self.diag_for(
                    req,
                    d,
                    Some(&c.span),
                    "unknown variant",
                )));
            };
            let ok = match (&decl.kind, &c.setting) {
                (VariantKind::Bool { .. }, VariantSetting::Bool(_)) => true,
                (VariantKind::Single { values, .. }, VariantSetting::Values(v)) => {
                    v.len() == 1 && (values.is_empty() || values.contains(&v[0]))
                }
                (VariantKind::Multi { values, .. }, VariantSetting::Values(v)) => {
                    v.iter().all(|x| values.contains(x))
                }
                _ => false,
            };
            if !ok {
                let allowed = match &decl.kind {
                    VariantKind::Bool { .. } => format!("`+{0}` or `~{0}`", c.name.value),
                    VariantKind::Single { values, .. } if values.is_empty() => {
                        "any one value".to_owned()
                    }
                    VariantKind::Single { values, .. } => format!("one of {}", values.join(", ")),
                    VariantKind::Multi { values, .. } => format!("any of {}", values.join(", ")),
                };
                let d = Diag::error(
                    "resolve::bad-variant-value",
                    format!("`{c}` is not a valid setting of `{package}`"),
                )
                .help(format!("`{}` takes {allowed}", c.name.value));
                return Err(Box::new(self.diag_for(req, d, Some(&c.span), "invalid")));
            }
        }
        Ok(())
    }
}
