//! Dependencies: each `depends` names an existing package or virtual with a matching version and
//! existing variants; `provides` names no package; `conflicts` conditions; `runtime-for`; and
//! no cycle of unconditional dependencies.

use std::collections::{BTreeMap, BTreeSet};

use super::{Check, versions_list};
use crate::diag::{Diag, Span};
use crate::model::*;

impl Check<'_> {
    pub(super) fn depends(&mut self, r: &Recipe) {
        for d in &r.depends {
            self.dependency(r, d);
        }
    }

    /// One `depends` line: its condition, the shape of its spec, and what it names.
    fn dependency(&mut self, r: &Recipe, d: &DependDecl) {
        let name = d.spec.name();
        let name_span = d
            .spec
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
            return;
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
        self.dependency_target(r, d, name_span);
    }

    /// What a dependency names: a package (its variants and version), a virtual (which has no
    /// variants), or nothing, reported unless an earlier error explains it.
    fn dependency_target(&mut self, r: &Recipe, d: &DependDecl, name_span: Span) {
        let set = self.set;
        let name = d.spec.name();
        match set.packages.get(name) {
            Some(dep) => {
                self.check_variants(&d.spec.spec, &d.spec.lit, dep, "in `depends`");
                self.dependency_version(d, dep);
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

    /// A dependency's version constraint matches some version of the package it names.
    fn dependency_version(&mut self, d: &DependDecl, dep: &Recipe) {
        let name = d.spec.name();
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

    pub(super) fn provides(&mut self, r: &Recipe) {
        for p in &r.provides {
            if let Some(w) = &p.when {
                self.check_condition(r, w, "in `when`");
            }
            if self.set.packages.contains_key(p.spec.name()) {
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
    }

    pub(super) fn conflicts(&mut self, r: &Recipe) {
        for c in &r.conflicts {
            self.check_condition(r, &c.cond, "in `conflicts`");
            if let Some(w) = &c.when {
                self.check_condition(r, w, "in `when`");
            }
        }
    }

    /// `runtime-for` names an existing (compiler) package.
    pub(super) fn runtime_for(&mut self, r: &Recipe) {
        let set = self.set;
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
    }

    pub(super) fn cycles(&mut self) {
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
}
