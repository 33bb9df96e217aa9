//! `forge fmt`: canonical layout for KDL files.

use std::path::PathBuf;

use crate::ExitStatus;
use crate::args::FmtArgs;
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &FmtArgs) -> Result<ExitStatus, CliError> {
    let files: Vec<PathBuf> = if a.files.is_empty() {
        let root = ctx.recipes_root()?;
        forge_recipe::set::kdl_files(&root).map_err(|e| {
            CliError::error(format!(
                "cannot list KDL files under `{}`: {e}",
                root.display()
            ))
        })?
    } else {
        a.files.clone()
    };
    let mut unformatted = 0;
    let mut broken = 0;
    for f in &files {
        let text = match fs_err::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                ctx.printer.error(&e.to_string());
                broken += 1;
                continue;
            }
        };
        let formatted = match forge_recipe::fmt::format_kdl(&text) {
            Ok(t) => t,
            Err(_) => {
                ctx.printer.error(&format!(
                    "`{}` is not valid KDL; `forge lint` shows where",
                    f.display()
                ));
                broken += 1;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        unformatted += 1;
        if a.check {
            ctx.printer.info(&format!("would reformat {}", f.display()));
            // What would change, as a unified diff on stdout (`patch -p0` applies it).
            let name = f.display().to_string();
            let diff = similar::TextDiff::from_lines(&text, &formatted)
                .unified_diff()
                .context_radius(2)
                .header(&name, &name)
                .to_string();
            ctx.printer.data(diff.trim_end());
        } else if let Err(e) = write_atomic(f, &formatted) {
            ctx.printer.error(&e.to_string());
            broken += 1;
        } else {
            ctx.printer.info(&format!("reformatted {}", f.display()));
        }
    }
    if broken > 0 {
        // Each file that could not be formatted was reported on its own.
        return Ok(ExitStatus::Error);
    }
    if a.check && unformatted > 0 {
        return Err(CliError::failure(format!(
            "{unformatted} file{} not formatted; run `forge fmt`",
            if unformatted == 1 { " is" } else { "s are" }
        )));
    }
    Ok(ExitStatus::Success)
}

/// Writes through a temporary file in the same directory and renames it over the original, so
/// an interrupted run never leaves a half-written recipe.
fn write_atomic(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.forge-fmt.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    fs_err::write(&tmp, text)?;
    fs_err::rename(&tmp, path)
}
