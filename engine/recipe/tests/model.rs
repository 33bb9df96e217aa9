//! The parsed model of the fixture tree (`tests/fixtures/full`), snapshotted in a readable form.
//!
//! The fixture uses every construct of the recipe language; the snapshot shows what each one
//! decodes to, with the position it was written at, so a change in decoding shows in review.
//! Besides the snapshot, a few assertions pin down facts the snapshot could hide in its bulk.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use forge_recipe::{
    ArgSlot, BuildDecl, CommandDecl, Condition, PhasePosition, Recipe, RecipeSet, SourceDecl, Span,
    TargetSettings, VariantKind,
};

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/full")
}

fn load_fixture() -> RecipeSet {
    let loaded = RecipeSet::load(&fixture_root());
    assert!(
        loaded.diags.is_empty(),
        "the fixture tree must load without any diagnostic:\n{}",
        loaded.diags.render(false, 100)
    );
    loaded.set
}

/// A plain-text printer for the model: one item per line, positions as `file:line:col`.
struct Printer<'a> {
    set: &'a RecipeSet,
    out: String,
}

impl Printer<'_> {
    fn at(&self, span: Span) -> String {
        let f = self.set.sources.get(span.file);
        let (line, col) = f.line_col(span.offset);
        format!("{}:{line}:{col}", f.name)
    }

    fn line(&mut self, indent: usize, text: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}{}", "  ".repeat(indent), text.as_ref());
    }

    fn when(c: &Option<Condition>) -> String {
        c.as_ref()
            .map(|c| format!(" when `{}`", c.spec))
            .unwrap_or_default()
    }

    fn recipe(&mut self, r: &Recipe) {
        let dir = r
            .dir
            .strip_prefix(&self.set.root)
            .unwrap_or(&r.dir)
            .display()
            .to_string();
        self.line(
            0,
            format!(
                "package {} ({}), dir `{dir}`",
                r.name.value,
                self.at(r.name.span)
            ),
        );
        let m = &r.meta;
        for (k, v) in [
            ("description", &m.description),
            ("homepage", &m.homepage),
            ("license", &m.license),
        ] {
            if let Some(v) = v {
                self.line(1, format!("{k}: {v}"));
            }
        }
        if let Some(u) = &r.url {
            self.line(1, format!("url: {} ({})", u.value, self.at(u.span)));
        }
        for mirror in &r.mirrors {
            self.line(1, format!("mirror: {}", mirror.value));
        }
        for v in &r.versions {
            let source = match &v.source {
                SourceDecl::Remote {
                    url,
                    sha256,
                    expand,
                } => format!(
                    "remote sha256={}{}{}",
                    &sha256.value.to_hex()[..12],
                    url.as_ref()
                        .map(|u| format!(" url={}", u.value))
                        .unwrap_or_default(),
                    if *expand { "" } else { " packed" }
                ),
                SourceDecl::Mirrored {
                    file,
                    sha256,
                    expand,
                } => format!(
                    "mirrored {} sha256={}{}",
                    file.value,
                    &sha256.value.to_hex()[..12],
                    if *expand { "" } else { " packed" }
                ),
                SourceDecl::Local { path } => format!("local {}", path.value),
            };
            let mut s = format!("version {}: {source}", v.version.value);
            if v.deprecated {
                s.push_str(" deprecated");
            }
            if let Some(n) = &v.note {
                s.push_str(&format!(" note={n:?}"));
            }
            let at = self.at(v.version.span);
            self.line(1, format!("{s} ({at})"));
        }
        for v in &r.variants {
            let kind = match &v.kind {
                VariantKind::Bool { default } => format!("bool default={default}"),
                VariantKind::Single { values, default } if values.is_empty() => {
                    format!("free-form default={default:?}")
                }
                VariantKind::Single { values, default } => {
                    format!("one of [{}] default={default}", values.join(" "))
                }
                VariantKind::Multi { values, default } => {
                    format!(
                        "any of [{}] default={}",
                        values.join(" "),
                        default.join(",")
                    )
                }
            };
            let desc = v
                .description
                .as_ref()
                .map(|d| format!(" description={d:?}"))
                .unwrap_or_default();
            let at = self.at(v.name.span);
            self.line(1, format!("variant {}: {kind}{desc} ({at})", v.name.value));
        }
        let langs: Vec<&str> = r.languages.iter().map(|l| l.as_str()).collect();
        self.line(
            1,
            format!(
                "languages: [{}] compiled={}",
                langs.join(" "),
                r.is_compiled()
            ),
        );
        for d in &r.depends {
            let at = self.at(d.spec.lit.span);
            self.line(
                1,
                format!(
                    "depends `{}` type={}{} ({at})",
                    d.spec.spec,
                    d.types,
                    Self::when(&d.when)
                ),
            );
        }
        for p in &r.provides {
            self.line(
                1,
                format!("provides `{}`{}", p.spec.spec, Self::when(&p.when)),
            );
        }
        for c in &r.conflicts {
            let msg = c
                .message
                .as_ref()
                .map(|m| format!(" message={m:?}"))
                .unwrap_or_default();
            self.line(
                1,
                format!("conflicts `{}`{}{msg}", c.cond.spec, Self::when(&c.when)),
            );
        }
        for p in &r.patches {
            self.line(
                1,
                format!(
                    "patch {} sha256={} level={}{}",
                    p.file.value,
                    &p.sha256.value.to_hex()[..12],
                    p.level,
                    Self::when(&p.when)
                ),
            );
        }
        if let Some(b) = &r.build {
            self.build(b);
        }
        let sp = &r.spack;
        if sp.name.is_some()
            || sp.namespace.is_some()
            || !sp.variants.is_empty()
            || sp.version.is_some()
        {
            let mut s = format!(
                "spack name={} namespace={}",
                r.spack_name(),
                r.spack_namespace()
            );
            for (f, x) in &sp.variants {
                s.push_str(&format!(" variant:{f}->{}", x.value));
            }
            if let Some(v) = &sp.version {
                s.push_str(&format!(" version={}", v.value));
            }
            self.line(1, s);
        }
        if let Some(h) = &r.host {
            let exes: Vec<&str> = h.executables.iter().map(|e| e.value.as_str()).collect();
            self.line(
                1,
                format!(
                    "host [{}] version-arg={:?} version-regex={:?}",
                    exes.join(" "),
                    h.version_arg,
                    h.version_regex.value
                ),
            );
        }
        if let Some(rt) = &r.runtime_for {
            self.line(1, format!("runtime-for {}", rt.value));
        }
    }

    fn build(&mut self, b: &BuildDecl) {
        self.line(
            1,
            format!(
                "build {} parallel={} destdir={} ({})",
                b.system.value.as_str(),
                b.parallel,
                b.destdir,
                self.at(b.system.span)
            ),
        );
        for (k, v) in [
            ("build-dir", &b.build_dir),
            ("source-dir", &b.source_dir),
            ("configure-script", &b.configure_script),
            ("build-type", &b.build_type),
            ("generator", &b.generator),
        ] {
            if let Some(v) = v {
                self.line(2, format!("{k}: {}", v.value));
            }
        }
        match &b.autoreconf {
            Some(None) => self.line(2, "autoreconf: always"),
            Some(Some(c)) => self.line(2, format!("autoreconf: when `{}`", c.spec)),
            None => {}
        }
        for a in &b.args {
            let slot = match &a.slot {
                ArgSlot::Configure => "configure".to_owned(),
                ArgSlot::Build => "build-args".to_owned(),
                ArgSlot::Install => "install-args".to_owned(),
                ArgSlot::Define(n) => format!("define {n}"),
                ArgSlot::Option(n) => format!("option {n}"),
            };
            let values: Vec<String> = a
                .values
                .iter()
                .map(|v| format!("{:?}", v.value.as_str()))
                .collect();
            self.line(
                2,
                format!("{slot}: {}{}", values.join(" "), Self::when(&a.when)),
            );
        }
        for e in &b.env {
            self.line(
                2,
                format!(
                    "env {}={:?}{}",
                    e.name.value,
                    e.value.value.as_str(),
                    Self::when(&e.when)
                ),
            );
        }
        for p in &b.phases {
            let pos = match &p.position {
                PhasePosition::InOrder => "in order".to_owned(),
                PhasePosition::Before(x) => format!("before {}", x.value),
                PhasePosition::After(x) => format!("after {}", x.value),
            };
            self.line(
                2,
                format!("phase {} ({pos}){}", p.name.value, Self::when(&p.when)),
            );
            for c in &p.commands {
                match c {
                    CommandDecl::Run(argv) => {
                        let v: Vec<String> = argv
                            .iter()
                            .map(|a| format!("{:?}", a.value.as_str()))
                            .collect();
                        self.line(3, format!("run {}", v.join(" ")));
                    }
                    CommandDecl::Sh(s) => self.line(3, format!("sh {:?}", s.value)),
                }
            }
        }
    }

    fn settings(&mut self, indent: usize, s: &TargetSettings) {
        if let Some(a) = &s.arch {
            self.line(indent, format!("arch {}", a.value));
        }
        if let Some(t) = &s.toolchain {
            self.line(indent, format!("toolchain {}", t.value));
        }
        for (v, p) in &s.providers {
            self.line(indent, format!("provider {v} -> {}", p.value));
        }
        for p in &s.from_source {
            self.line(indent, format!("from-source {}", p.value));
        }
    }

    fn all(mut self) -> String {
        let set = self.set;
        self.line(0, "files:");
        for (_, f) in set.sources.iter() {
            self.line(1, &f.name);
        }
        for r in set.packages.values() {
            self.recipe(r);
        }
        for t in set.toolchains.values() {
            let mut s = format!("toolchain {}: compiler {}", t.name.value, t.compiler.value);
            if t.host {
                s.push_str(" (host)");
            }
            if let Some(r) = &t.runtime {
                s.push_str(&format!(" runtime {}", r.value));
            }
            if let Some(b) = &t.bootstrap {
                s.push_str(&format!(" bootstrap {}", b.value));
            }
            let at = self.at(t.name.span);
            self.line(0, format!("{s} ({at})"));
        }
        for a in set.arches.values() {
            let at = self.at(a.name.span);
            self.line(
                0,
                format!("arch {} spack={} ({at})", a.name.value, a.spack_name),
            );
            for f in &a.flags {
                self.line(
                    1,
                    format!("{}@{}: {}", f.compiler, f.versions, f.flags.join(" ")),
                );
            }
        }
        for (v, ps) in &set.providers {
            self.line(0, format!("virtual {v}: provided by {}", ps.join(", ")));
        }
        self.line(0, "defaults:");
        self.settings(1, &set.defaults);
        for t in &set.targets {
            let mut s = format!("target {}: `{}`", t.name.value, t.spec.spec);
            if let Some(m) = &t.matrix {
                s.push_str(&format!(" (matrix {m})"));
            }
            self.line(0, s);
            if let Some(d) = &t.description {
                self.line(1, format!("description: {d}"));
            }
            self.settings(1, &t.settings);
        }
        self.out
    }
}

#[test]
fn parsed_model_of_the_fixture_tree() {
    let set = load_fixture();
    let text = Printer {
        set: &set,
        out: String::new(),
    }
    .all();
    insta::assert_snapshot!(text);
}

#[test]
fn matrix_rows_follow_the_axes_and_skip_excluded_rows() {
    let set = load_fixture();
    let rows: Vec<(&str, String)> = set
        .targets
        .iter()
        .filter(|t| t.matrix.is_some())
        .map(|t| (t.name.value.as_str(), t.spec.spec.to_string()))
        .collect();
    assert_eq!(
        rows,
        [
            ("sched-25.11-gcc13", "sched@25.11 %gcc@13.4.0".to_owned()),
            (
                "sched-25.11-gcc13-gpu",
                "sched@25.11 +nvml %gcc@13.4.0".to_owned()
            ),
            ("sched-25.11-gcc10", "sched@25.11 %gcc@10.5.0".to_owned()),
            (
                "sched-25.11-gcc10-gpu",
                "sched@25.11 +nvml %gcc@10.5.0".to_owned()
            ),
            ("sched-24.11-gcc10", "sched@24.11 %gcc@10.5.0".to_owned()),
            (
                "sched-24.11-gcc10-gpu",
                "sched@24.11 +nvml %gcc@10.5.0".to_owned()
            ),
        ]
    );
    let described = set.target("sched-24.11-gcc10").expect("row exists");
    assert_eq!(
        described.description.as_deref(),
        Some("sched 24.11 built with gcc 10.5.0")
    );
}

#[test]
fn spans_point_at_what_was_written() {
    let set = load_fixture();
    let sched = &set.packages["sched"];
    let file = set.sources.get(sched.file);
    let text = &file.text;
    // Every version span covers exactly the version literal's content.
    for v in &sched.versions {
        let written = &text[v.version.span.offset..v.version.span.offset + v.version.span.len];
        assert_eq!(written.trim_matches('"'), v.version.value.as_str());
    }
    // A dependency's name inside its spec string maps to the file's bytes.
    let pmix = sched
        .depends
        .iter()
        .find(|d| d.spec.name() == "pmix")
        .expect("sched depends on pmix");
    let name_range = pmix.spec.spec.name.as_ref().expect("named").span.clone();
    let span = pmix.spec.lit.at(name_range);
    assert_eq!(&text[span.offset..span.offset + span.len], "pmix");
    let (line, col) = file.line_col(span.offset);
    let expected_line = text
        .lines()
        .position(|l| l.contains("depends \"pmix@4.2:"))
        .expect("line exists")
        + 1;
    assert_eq!(line, expected_line);
    assert_eq!(col, "    depends \"".len() + 1);
}

#[test]
fn metadata_and_mirrors_are_kept_but_local_sources_are_relative_to_the_recipe() {
    let set = load_fixture();
    let m4 = &set.packages["m4"];
    assert_eq!(m4.mirrors.len(), 2);
    let datatool = &set.packages["datatool"];
    let SourceDecl::Local { path } = &datatool.versions[0].source else {
        panic!("datatool has a local source");
    };
    assert!(datatool.dir.join(&path.value).join("Makefile").is_file());
    assert_eq!(set.providers["mpi"], ["mpich", "openmpi"]);
    assert_eq!(set.providers["zlib-api"], ["zlib", "zlib-ng"]);
    assert!(set.is_virtual("mpi") && !set.is_virtual("zlib"));
}
