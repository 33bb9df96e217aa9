//! `forge recipe add-version`: a new version line, checksum computed, layout kept.

use forge_recipe::{RecipeSet, Template, Var, Version};

use crate::ExitStatus;
use crate::args::AddVersionArgs;
use crate::context::Ctx;
use crate::error::CliError;

/// The URL a recipe's template gives for `version`, if it has a template.
fn template_url(template: &Template, name: &str, version: &Version) -> Option<String> {
    template
        .render(|v| match v {
            Var::Version(None) => Ok(Some(version.to_string())),
            Var::Version(Some(form)) => version.derived(form).map(Some).ok_or(()),
            Var::Name => Ok(Some(name.to_owned())),
            _ => Err(()),
        })
        .ok()
}

/// Where to insert the new line: before the first version line older than the new version,
/// else after the last version line, else after the package's metadata lines.
fn insertion_point(lines: &[&str], new: &Version) -> (usize, String) {
    let mut last_version = None;
    let mut after_meta = None;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let indent = l[..l.len() - t.len()].to_owned();
        if let Some(rest) = t.strip_prefix("version ") {
            let v = rest
                .trim_start()
                .trim_start_matches('"')
                .split(['"', ' '])
                .next()
                .unwrap_or_default();
            if let Ok(v) = Version::parse(v) {
                if &v < new {
                    return (i, indent);
                }
                last_version = Some((i + 1, indent));
                continue;
            }
        }
        if ["description ", "homepage ", "license ", "url ", "mirror "]
            .iter()
            .any(|k| t.starts_with(k))
        {
            after_meta = Some((i + 1, indent));
        }
    }
    last_version
        .or(after_meta)
        .unwrap_or((1, "    ".to_owned()))
}

/// Whether a source's URL or path names the package or the version (as written, or with the
/// dots as `-` or `_`, as tags like `slurm-22-05-8-1` and `curl-8_14_1` do). The file name
/// alone often lacks the package (`v1.9.4.tar.gz`), so the whole path counts.
fn names_the_release(url: &str, package: &str, version: &str) -> bool {
    let hay = url.to_ascii_lowercase();
    let v = version.to_ascii_lowercase();
    hay.contains(&package.to_ascii_lowercase())
        || [v.clone(), v.replace('.', "-"), v.replace('.', "_")]
            .iter()
            .any(|v| hay.contains(v.as_str()))
}

pub(super) fn add_version(ctx: &Ctx, a: &AddVersionArgs) -> Result<ExitStatus, CliError> {
    let root = ctx.recipes_root()?;
    let loaded = RecipeSet::load(&root);
    let Some(recipe) = loaded.set.packages.get(&a.package) else {
        return Err(CliError::error(format!(
            "no recipe for `{}` under `{}`",
            a.package,
            root.display()
        ))
        .with_hint(
            "create `recipes/<name>.kdl` first; `recipes/README.md` shows a complete recipe",
        ));
    };
    let version = Version::parse(&a.version)
        .map_err(|e| CliError::error(format!("`{}` is not a version: {e}", a.version)))?;
    if let Some(existing) = recipe.version(&version) {
        let file = loaded.set.sources.get(recipe.file);
        let (line, _) = file.line_col(existing.span.offset);
        return Err(CliError::failure(format!(
            "`{}` already has version `{}` ({}:{line})",
            a.package, existing.version.value, file.name
        )));
    }
    let path = loaded.set.sources.get(recipe.file).path.clone();
    if !a.any_name && !names_the_release(&a.url, &a.package, &a.version) {
        let file = a.url.rsplit('/').next().unwrap_or(&a.url);
        return Err(CliError::error(format!(
            "`{file}` names neither `{}` nor version `{}`: it looks like another package's file",
            a.package, a.version
        ))
        .with_hint("check the URL; `--any-name` takes it anyway"));
    }
    let cache = ctx.source_cache();
    ctx.printer.info(&format!("fetching {} …", a.url));
    let (_, sha) = cache.import(&a.url).map_err(CliError::failure)?;
    // A URL is written only when the recipe's template does not already give it.
    let is_url = a.url.contains("://");
    let from_template = recipe
        .url
        .as_ref()
        .and_then(|t| template_url(&t.value, &a.package, &version));
    let mut line = format!(
        "version {} sha256=\"{sha}\"",
        forge_recipe::fmt::quote(&a.version)
    );
    if is_url && from_template.as_deref() != Some(a.url.as_str()) {
        line.push_str(&format!(" url={}", forge_recipe::fmt::quote(&a.url)));
    }
    if !is_url && from_template.is_none() {
        ctx.printer.warn(&format!(
            "`{}` has no URL template and a local file gives no URL; add `url=` to the new line",
            a.package
        ));
    }
    if let Some(n) = &a.note {
        line.push_str(&format!(" note={}", forge_recipe::fmt::quote(n)));
    }
    let original = fs_err::read_to_string(&path).map_err(CliError::error)?;
    let lines: Vec<&str> = original.lines().collect();
    let (at, indent) = insertion_point(&lines, &version);
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    out.insert(at.min(out.len()), format!("{indent}{line}"));
    let mut text = out.join("\n");
    if original.ends_with('\n') {
        text.push('\n');
    }
    let tmp = path.with_extension("kdl.forge-add.tmp");
    fs_err::write(&tmp, &text)
        .and_then(|()| fs_err::rename(&tmp, &path))
        .map_err(CliError::error)?;
    // The recipe must still be valid; if not, put the file back as it was.
    let after = RecipeSet::load(&root);
    if after.diags.has_errors() && !loaded.diags.has_errors() {
        let _ = fs_err::write(&path, &original);
        return Err(CliError::diagnostics(after.diags)
            .with_message("the new line made the recipes invalid; the file was left unchanged"));
    }
    ctx.printer
        .info(&format!("added to {} (line {}):", path.display(), at + 1));
    ctx.printer.data(&format!("{indent}{line}"));
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_in_version_order() {
        let lines = vec![
            "package \"x\" {",
            "    url \"u\"",
            "    version \"2.0\" sha256=\"a\"",
            "    version \"1.0\" sha256=\"b\"",
            "}",
        ];
        assert_eq!(
            insertion_point(&lines, &Version::parse("3.0").unwrap()).0,
            2
        );
        assert_eq!(
            insertion_point(&lines, &Version::parse("1.5").unwrap()).0,
            3
        );
        assert_eq!(
            insertion_point(&lines, &Version::parse("0.9").unwrap()).0,
            4
        );
        let none = vec![
            "package \"x\" {",
            "    description \"d\"",
            "    build \"make\"",
            "}",
        ];
        assert_eq!(
            insertion_point(&none, &Version::parse("1").unwrap()),
            (2, "    ".to_owned())
        );
    }
}
