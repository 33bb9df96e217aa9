//! Properties of derivation hashes over the fixture tree (`tests/fixtures/full`):
//!
//! - the same recipes give the same hashes however the files are ordered, named or split;
//! - comments, whitespace, descriptions and other metadata change no hash (nor does `forge fmt`);
//! - changing one build argument changes exactly the hash of the nodes that use it and of their
//!   dependents, nothing else.
//!
//! Hash stability across runs is pinned by the snapshots of `derivations.rs`, and across
//! processes by the CLI tests.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use std::sync::OnceLock;

use forge_plan::{DrvHash, Planner};
use forge_recipe::{ArgDecl, CommandDecl, Condition, Facts, RecipeSet, Span, Spanned, Template};
use forge_resolve::{Graph, NodeKey, Origin, Request, Resolver};
use petgraph::Direction;
use petgraph::graph::NodeIndex;
use proptest::prelude::*;

#[path = "../../../tests/fixtures/support.rs"]
mod support;
use support::{File, fixture_root, host, texts};

fn fixture_files() -> &'static [File] {
    static FILES: OnceLock<Vec<File>> = OnceLock::new();
    FILES.get_or_init(|| texts(&fixture_root()))
}

fn load(files: Vec<File>) -> RecipeSet {
    let loaded = RecipeSet::load_texts(&fixture_root(), files.clone(), Default::default());
    if loaded.diags.has_errors() {
        let texts: Vec<String> = files
            .iter()
            .map(|(n, _, t)| format!("--- {n}\n{t}"))
            .collect();
        panic!(
            "edited tree does not load:\n{}\n{}",
            loaded.diags.render(false, 100),
            texts.join("\n")
        );
    }
    loaded.set
}

/// Every node hash of every target that resolves, by target and node key.
type Hashes = BTreeMap<String, BTreeMap<NodeKey, DrvHash>>;

fn plan_all(set: &RecipeSet) -> (Hashes, BTreeMap<String, Graph>) {
    let host = host();
    let planner = Planner::new(set);
    let mut hashes = Hashes::new();
    let mut graphs = BTreeMap::new();
    for t in &set.targets {
        let Ok(g) = Resolver::new(set, &host).resolve(&Request::for_target(set, t)) else {
            continue;
        };
        let plan = planner.plan(g).expect("resolved fixture graphs plan");
        let per: BTreeMap<NodeKey, DrvHash> = plan
            .graph
            .topo()
            .map(|i| (plan.graph.node(i).key.clone(), plan.drv(i).hash))
            .collect();
        hashes.insert(t.name.value.clone(), per);
        graphs.insert(t.name.value.clone(), plan.graph);
    }
    (hashes, graphs)
}

fn baseline() -> &'static (Hashes, BTreeMap<String, Graph>) {
    static BASE: OnceLock<(Hashes, BTreeMap<String, Graph>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let set = load(fixture_files().to_vec());
        let (h, g) = plan_all(&set);
        assert!(h.len() >= 10, "most fixture targets resolve");
        (h, g)
    })
}

#[test]
fn planning_twice_gives_the_same_hashes() {
    let set = load(fixture_files().to_vec());
    assert_eq!(plan_all(&set).0, baseline().0);
}

#[test]
fn forge_fmt_changes_no_hash() {
    let files: Vec<File> = fixture_files()
        .iter()
        .map(|(n, p, t)| {
            let formatted = forge_recipe::fmt::format_kdl(t).expect("fixture is valid KDL");
            assert_eq!(
                forge_recipe::fmt::format_kdl(&formatted).expect("formatted is valid"),
                formatted,
                "`forge fmt` is idempotent on {n}"
            );
            (n.clone(), p.clone(), formatted)
        })
        .collect();
    assert_eq!(plan_all(&load(files)).0, baseline().0);
}

// ---------------------------------------------------------------------------------------------
// File order, names and splits.

/// Whether a file can move to another name or directory: it declares no package (those must be
/// named after the package) or its package has nothing relative to the recipe's directory.
fn is_movable(text: &str) -> bool {
    !text.lines().any(|l| l.trim_start().starts_with("package "))
}

fn file_layout() -> impl Strategy<Value = Vec<File>> {
    let files = fixture_files().to_vec();
    let n = files.len();
    (
        Just(files).prop_shuffle(),
        proptest::collection::vec(("[a-z][a-z0-9-]{0,10}", any::<bool>()), n),
        any::<bool>(),
    )
        .prop_map(|(files, names, merge)| {
            let mut out: Vec<File> = Vec::new();
            let mut merged = String::new();
            for ((name, path, text), (new_name, in_recipes)) in files.into_iter().zip(names) {
                if !is_movable(&text) {
                    out.push((name, path, text));
                    continue;
                }
                if merge {
                    merged.push_str(&text);
                    merged.push('\n');
                    continue;
                }
                let dir = if in_recipes { "recipes" } else { "toolchains" };
                let shown = format!("{dir}/{new_name}.kdl");
                out.push((shown.clone(), fixture_root().join(&shown), text));
            }
            if merge {
                let shown = "recipes/all-settings.kdl".to_owned();
                out.push((shown.clone(), fixture_root().join(&shown), merged));
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn hashes_do_not_depend_on_file_order_names_or_splits(files in file_layout()) {
        let set = load(files);
        prop_assert_eq!(&plan_all(&set).0, &baseline().0);
    }
}

// ---------------------------------------------------------------------------------------------
// Cosmetic edits.

#[derive(Debug, Clone)]
enum Edit {
    /// `// text` on a line of its own before the line.
    LineComment(String),
    /// ` // text` after the line's content.
    TrailingComment(String),
    /// `/* text */` before the line's content.
    BlockComment(String),
    /// Different indentation (spaces and tabs).
    Indent(String),
    /// Blank lines before the line.
    BlankLines(usize),
    /// A node commented out with `/-` before the line.
    Slashdash(String),
    /// A new text for a `description`, `homepage`, `license` or `note` on the line, if any.
    Metadata(String),
    /// An extra mirror after a package's `url` line, if it is one.
    Mirror(String),
}

/// Text that is safe inside a comment and inside a quoted KDL string.
fn comment_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,;:!?()é→{}+~@%=-]{0,30}"
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        comment_text().prop_map(Edit::LineComment),
        comment_text().prop_map(Edit::TrailingComment),
        comment_text().prop_map(Edit::BlockComment),
        "[ \t]{0,12}".prop_map(Edit::Indent),
        (1usize..4).prop_map(Edit::BlankLines),
        "[a-z][a-z0-9-]{0,8}"
            .prop_map(|n| Edit::Slashdash(format!("{n} \"x\" key=#true {{ child 1 }}"))),
        comment_text().prop_map(Edit::Metadata),
        "[a-z0-9/.-]{1,20}"
            .prop_map(|p| Edit::Mirror(format!("https://mirror.example.net/{p}/{{version}}"))),
    ]
}

/// Lines that are not inside a multi-line string.
fn safe_lines(text: &str) -> Vec<bool> {
    let mut inside = false;
    text.lines()
        .map(|l| {
            let opens_or_closes = l.matches("\"\"\"").count() % 2 == 1;
            let safe = !inside && !opens_or_closes;
            if opens_or_closes {
                inside = !inside;
            }
            safe
        })
        .collect()
}

fn replace_quoted_after(line: &str, key: &str, new: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    let end = start + line[start..].find('"')?;
    Some(format!("{}{new}{}", &line[..start], &line[end..]))
}

fn apply(text: &str, edits: &[(usize, Edit)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let safe = safe_lines(text);
    let mut edits: Vec<(usize, &Edit)> = edits
        .iter()
        .map(|(i, e)| (i % lines.len().max(1), e))
        .filter(|(i, _)| safe[*i])
        .collect();
    // From the bottom up, so that insertions do not shift the lines still to edit.
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (i, e) in edits {
        let line = lines[i].clone();
        let indent_len = line.len() - line.trim_start().len();
        let (indent, content) = line.split_at(indent_len);
        match e {
            Edit::LineComment(t) => lines.insert(i, format!("{indent}// {t}")),
            Edit::TrailingComment(t) => {
                if !content.is_empty() && !content.starts_with("//") {
                    lines[i] = format!("{line} // {t}");
                }
            }
            Edit::BlockComment(t) => {
                if !content.is_empty() && !content.starts_with("//") {
                    lines[i] = format!("{indent}/* {t} */ {content}");
                }
            }
            Edit::Indent(new) => lines[i] = format!("{new}{content}"),
            Edit::BlankLines(n) => {
                for _ in 0..*n {
                    lines.insert(i, String::new());
                }
            }
            Edit::Slashdash(node) => {
                if !content.starts_with("//") {
                    lines.insert(i, format!("{indent}/- {node}"));
                }
            }
            Edit::Metadata(t) => {
                for key in [
                    "description \"",
                    "description=\"",
                    "homepage \"",
                    "license \"",
                    "note=\"",
                ] {
                    if let Some(new) = replace_quoted_after(&lines[i], key, t) {
                        lines[i] = new;
                        break;
                    }
                }
            }
            Edit::Mirror(url) => {
                if content.starts_with("url \"") {
                    lines.insert(i + 1, format!("{indent}mirror \"{url}\""));
                }
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn cosmetic_edits() -> impl Strategy<Value = Vec<File>> {
    let n = fixture_files().len();
    proptest::collection::vec(
        proptest::collection::vec((any::<usize>(), edit()), 0..12),
        n,
    )
    .prop_map(|per_file| {
        fixture_files()
            .iter()
            .zip(per_file)
            .map(|((name, path, text), edits)| (name.clone(), path.clone(), apply(text, &edits)))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn comments_whitespace_and_metadata_change_no_hash(files in cosmetic_edits()) {
        let set = load(files);
        prop_assert_eq!(&plan_all(&set).0, &baseline().0);
    }
}

#[test]
fn the_cosmetic_edits_do_reach_the_files() {
    // Guards the property above against edits that silently do nothing.
    let (name, _, text) = fixture_files()
        .iter()
        .find(|(n, _, _)| n == "recipes/sched.kdl")
        .expect("sched recipe");
    let lines: Vec<&str> = text.lines().collect();
    let desc = lines
        .iter()
        .position(|l| l.trim_start().starts_with("description \""))
        .expect("has a description");
    let url = lines
        .iter()
        .position(|l| l.trim_start().starts_with("url \""))
        .expect("has a url");
    let edited = apply(
        text,
        &[
            (desc, Edit::Metadata("changed".into())),
            (url, Edit::Mirror("https://m.example.net/{version}".into())),
            (0, Edit::LineComment("hello".into())),
            (desc, Edit::TrailingComment("trailing".into())),
        ],
    );
    assert!(
        edited.contains("description \"changed\" // trailing"),
        "{name}:\n{edited}"
    );
    assert!(edited.contains("mirror \"https://m.example.net/{version}\""));
    assert!(edited.starts_with("// hello\n"));
    let set = load(
        fixture_files()
            .iter()
            .map(|(n, p, t)| {
                let t = if n == name { edited.clone() } else { t.clone() };
                (n.clone(), p.clone(), t)
            })
            .collect(),
    );
    assert_eq!(
        set.packages["sched"].meta.description.as_deref(),
        Some("changed")
    );
    assert_eq!(set.packages["sched"].mirrors.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// One argument changed.

/// A build argument written as a plain string literal, with what decides whether it is used.
#[derive(Debug, Clone)]
struct ArgSite {
    package: String,
    file: String,
    span: Span,
    /// Conditions that must all hold for the argument to be used (argument and phase).
    when: Vec<Condition>,
}

fn arg_sites() -> &'static [ArgSite] {
    static SITES: OnceLock<Vec<ArgSite>> = OnceLock::new();
    SITES.get_or_init(|| {
        let set = load(fixture_files().to_vec());
        let mut out = Vec::new();
        for r in set.packages.values() {
            let Some(b) = &r.build else { continue };
            let mut push = |t: &Spanned<Template>, when: Vec<Condition>| {
                let f = set.sources.get(t.span.file);
                let lit = &f.text[t.span.offset..t.span.offset + t.span.len];
                // Only plain quoted strings: a suffix goes before the closing quote.
                if lit.starts_with('"') && !lit.starts_with("\"\"\"") {
                    out.push(ArgSite {
                        package: r.name.value.clone(),
                        file: f.name.clone(),
                        span: t.span,
                        when,
                    });
                }
            };
            for ArgDecl { values, when, .. } in &b.args {
                for v in values {
                    push(v, when.iter().cloned().collect());
                }
            }
            for e in &b.env {
                push(&e.value, e.when.iter().cloned().collect());
            }
            for p in &b.phases {
                for c in &p.commands {
                    if let CommandDecl::Run(argv) = c {
                        for a in argv {
                            push(a, p.when.iter().cloned().collect());
                        }
                    }
                }
            }
        }
        assert!(out.len() > 40, "the fixture has many build arguments");
        out
    })
}

/// The nodes whose hash must change when `site` changes: the nodes of its package built from
/// the recipe where every condition of the argument holds, and everything that depends on them.
fn expected_changes(g: &Graph, site: &ArgSite) -> BTreeSet<NodeKey> {
    let mut seeds: Vec<NodeIndex> = Vec::new();
    for i in g.find(&site.package) {
        let n = g.node(i);
        if n.origin != Origin::Build {
            continue;
        }
        let facts = Facts {
            version: &n.version,
            variants: &n.variants,
            toolchain: n
                .toolchain
                .as_ref()
                .map(|t| (t.name.as_str(), &t.compiler_version)),
            arch: Some(&g.arch),
        };
        if site.when.iter().all(|c| c.holds_for(&facts)) {
            seeds.push(i);
        }
    }
    let mut seen: BTreeSet<NodeIndex> = seeds.iter().copied().collect();
    let mut queue: VecDeque<NodeIndex> = seeds.into();
    while let Some(i) = queue.pop_front() {
        for d in g.graph.neighbors_directed(i, Direction::Incoming) {
            if seen.insert(d) {
                queue.push_back(d);
            }
        }
    }
    seen.into_iter().map(|i| g.node(i).key.clone()).collect()
}

fn changed_tree(site: &ArgSite, suffix: &str) -> Vec<File> {
    fixture_files()
        .iter()
        .map(|(n, p, t)| {
            if *n != site.file {
                return (n.clone(), p.clone(), t.clone());
            }
            let close = site.span.offset + site.span.len - 1;
            let mut edited = t.clone();
            edited.insert_str(close, suffix);
            (n.clone(), p.clone(), edited)
        })
        .collect()
}

fn check_one_argument(site: &ArgSite, suffix: &str) -> Result<usize, TestCaseError> {
    let set = load(changed_tree(site, suffix));
    let (after, graphs_after) = plan_all(&set);
    let (before, graphs) = baseline();
    prop_assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the same targets resolve"
    );
    let mut changed_anywhere = 0;
    for (target, g) in graphs {
        let old = &before[target];
        let new = &after[target];
        prop_assert_eq!(
            old.keys().collect::<Vec<_>>(),
            new.keys().collect::<Vec<_>>(),
            "{}: an argument's text does not change the graph",
            target
        );
        prop_assert_eq!(graphs_after[target].len(), g.len());
        let changed: BTreeSet<NodeKey> = old
            .iter()
            .filter(|(k, h)| new[*k] != **h)
            .map(|(k, _)| k.clone())
            .collect();
        let expected = expected_changes(g, site);
        prop_assert_eq!(
            &changed,
            &expected,
            "{}: changing an argument of `{}` at {}:{}",
            target,
            site.package,
            site.file,
            site.span.offset
        );
        changed_anywhere += changed.len();
    }
    Ok(changed_anywhere)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn one_argument_changes_its_nodes_and_their_dependents_only(
        pick in any::<prop::sample::Index>(),
        suffix in "-[a-z0-9]{1,6}",
    ) {
        let site = pick.get(arg_sites()).clone();
        check_one_argument(&site, &suffix)?;
    }
}

#[test]
fn every_argument_site_changes_exactly_its_dependents() {
    // The exhaustive version of the property, once per site, with one fixed suffix.
    let mut effective = 0;
    for site in arg_sites() {
        let n = check_one_argument(site, "-changed").unwrap_or_else(|e| panic!("{e}"));
        effective += usize::from(n > 0);
    }
    // Most arguments are used by some target: the check is not vacuous.
    assert!(
        effective * 4 > arg_sites().len() * 3,
        "{effective} of {}",
        arg_sites().len()
    );
}
