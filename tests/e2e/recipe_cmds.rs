//! `forge recipe add-version` and `forge fmt` on a real recipe tree.

mod common;

use common::*;

#[test]
fn add_version_computes_the_checksum_and_keeps_the_layout() {
    let w = World::new();
    let tree = w.recipes();
    write_tree(&tree, &[], &[]);
    let dist = w.path().join("dist");
    fs_err::create_dir_all(&dist).unwrap();
    fs_err::write(dist.join("tool-1.0.tar.gz"), b"old release").unwrap();
    fs_err::write(dist.join("tool-2.0.tar.gz"), b"new release").unwrap();
    fs_err::write(
        dist.join("elsewhere.tar.gz"),
        b"a tarball from another place",
    )
    .unwrap();
    let recipe = format!(
        "// A tool.\npackage \"tool\" {{\n    description \"a tool\"\n    url \"file://{d}/tool-{{version}}.tar.gz\"\n\n    version \"1.0\" sha256=\"{old}\"\n    languages\n    build \"custom\" {{\n        phase \"install\" {{ sh \"mkdir -p $out\" }}\n    }}\n}}\n",
        d = dist.display(),
        old = sha256_hex(b"old release"),
    );
    let path = tree.join("recipes/tool.kdl");
    fs_err::write(&path, &recipe).unwrap();
    let url = format!("file://{}/tool-2.0.tar.gz", dist.display());
    let o = w.run(&["recipe", "add-version", "tool", "2.0", "--url", &url]);
    let line = ok(&o);
    // The template gives that URL, so only the checksum is written; newest version first.
    let expected = format!(
        "    version \"2.0\" sha256=\"{}\"",
        sha256_hex(b"new release")
    );
    assert_eq!(line.trim_end(), expected);
    let after = fs_err::read_to_string(&path).unwrap();
    assert_eq!(
        after,
        recipe.replace(
            "\n    version \"1.0\"",
            &format!("\n{expected}\n    version \"1.0\"")
        )
    );
    // A file that names neither the package nor the version is most likely another
    // package's: refused, the recipe untouched …
    let other = format!("file://{}/elsewhere.tar.gz", dist.display());
    let before = fs_err::read_to_string(&path).unwrap();
    let o = w.run(&["recipe", "add-version", "tool", "0.5", "--url", &other]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`elsewhere.tar.gz` names neither `tool` nor version `0.5`")
            && err.contains("--any-name"),
        "{err}"
    );
    assert_eq!(fs_err::read_to_string(&path).unwrap(), before);
    // … unless asked. A URL the template does not give is written out; an older version goes
    // below.
    ok(&w.run(&[
        "recipe",
        "add-version",
        "tool",
        "0.5",
        "--url",
        &other,
        "--note",
        "a re-release",
        "--any-name",
    ]));
    let after = fs_err::read_to_string(&path).unwrap();
    let v05 = after
        .lines()
        .position(|l| l.contains("version \"0.5\""))
        .unwrap();
    let v10 = after
        .lines()
        .position(|l| l.contains("version \"1.0\""))
        .unwrap();
    assert_eq!(v05, v10 + 1, "{after}");
    assert!(after.contains(&format!("url=\"{other}\"")), "{after}");
    assert!(after.contains("note=\"a re-release\""), "{after}");
    // The tree is valid and the new version plans and builds.
    ok(&w.run(&["lint"]));
    // Adding an existing version is refused and changes nothing.
    let o = w.run(&["recipe", "add-version", "tool", "2.0", "--url", &url]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("already has version `2.0`"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(fs_err::read_to_string(&path).unwrap(), after);
    // A source that does not exist is an error naming it.
    let o = w.run(&[
        "recipe",
        "add-version",
        "tool",
        "3.0",
        "--url",
        &format!("file://{}/missing.tar.gz", dist.display()),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("missing.tar.gz"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn fmt_check_reports_and_fmt_fixes_layout() {
    let w = World::new();
    let tree = w.recipes();
    write_tree(
        &tree,
        &[Pkg {
            name: "a",
            deps: &[],
            script: "mkdir -p \"$out\"".into(),
        }],
        &[("a", "a")],
    );
    let messy = tree.join("recipes/messy.kdl");
    fs_err::write(&messy, "package   messy{\n  // keep me\n version \"1.0\" path=\"../src/a\"\n\n\n  languages\n build custom { phase install { sh \"mkdir -p $out\" } }\n}\n").unwrap();
    let o = w.run(&["fmt", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("would reformat") && text(&o.stderr).contains("messy.kdl"),
        "{}",
        text(&o.stderr)
    );
    ok(&w.run(&["fmt"]));
    let after = fs_err::read_to_string(&messy).unwrap();
    assert!(after.starts_with("package \"messy\" {\n    // keep me\n    version \"1.0\" path=\"../src/a\"\n\n    languages\n"), "{after}");
    ok(&w.run(&["fmt", "--check"]));
    ok(&w.run(&["lint"]));
}
