//! The recipe loader on arbitrary text: parse, decode, validate, then resolve and plan every
//! target of a set that loads cleanly, and render every diagnostic. Nothing may panic, hang or
//! touch the filesystem beyond checking that (nonexistent) local files exist.
//!
//! Input: one or more files. Without a header the whole input is `recipes/fuzz.kdl`; otherwise
//! each file starts with a line `=== recipes/NAME.kdl` (or `toolchains/…`), so seeds can be
//! whole recipe trees and the fuzzer can reach resolution.

#![no_main]

use std::path::{Path, PathBuf};

use forge_plan::Planner;
use forge_recipe::{Diagnostics, RecipeSet};
use forge_resolve::{FixedHost, Request, Resolver};
use libfuzzer_sys::fuzz_target;

/// A root that does not exist: local sources and patches are never found, so planning never
/// reads the machine's files.
const ROOT: &str = "/nonexistent/forge-fuzz";

const MAX_FILES: usize = 24;
const MAX_TARGETS: usize = 8;

fn valid_name(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("recipes/")
        .or_else(|| name.strip_prefix("toolchains/"))
    else {
        return false;
    };
    rest.strip_suffix(".kdl").is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    })
}

fn files(text: &str) -> Vec<(String, PathBuf, String)> {
    let mut out = Vec::new();
    if !text.starts_with("=== ") {
        out.push(("recipes/fuzz.kdl".to_owned(), text.to_owned()));
    } else {
        for (i, chunk) in text.split("\n=== ").enumerate() {
            let chunk = if i == 0 { &chunk[4..] } else { chunk };
            let (name, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
            let name = if valid_name(name) {
                name.to_owned()
            } else {
                format!("recipes/f{i}.kdl")
            };
            out.push((name, body.to_owned()));
            if out.len() == MAX_FILES {
                break;
            }
        }
    }
    out.into_iter()
        .map(|(name, body)| {
            let path = Path::new(ROOT).join(&name);
            (name, path, body)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files = files(text);
    for (_, _, body) in &files {
        // `forge fmt` parses the same untrusted text; like the loader, it must only hand the
        // parser text that passes the lexical check (see `forge_recipe::lex`).
        if forge_recipe::lex::check(body).is_none() {
            let _ = forge_recipe::fmt::format_kdl(body);
        }
    }
    let loaded = RecipeSet::load_texts(Path::new(ROOT), files, Diagnostics::default());
    let _ = loaded.diags.render(false, 80);
    if loaded.diags.has_errors() {
        return;
    }
    let set = &loaded.set;
    let host = FixedHost::new([
        ("gcc", "12.2.0"),
        ("cmake", "3.25.1"),
        ("perl", "5.36.0"),
        ("m4", "1.4.19"),
    ]);
    let planner = Planner::new(set);
    for t in set.targets.iter().take(MAX_TARGETS) {
        let req = Request::for_target(set, t);
        let result = Resolver::new(set, &host)
            .resolve(&req)
            .and_then(|g| planner.plan(g));
        if let Err(d) = result {
            let mut ds = Diagnostics::default();
            ds.push(*d);
            let _ = ds.render(false, 80);
        }
    }
});
