//! `--lock` and `--locked` of `forge plan` and `forge realize`: recording a target's plan in
//! `forge.lock` beside the recipes, and refusing a plan that drifted from it.

use forge_plan::{Drift, LOCK_FILE, Lock, Plan};
use forge_recipe::RecipeSet;

use crate::context::Ctx;
use crate::error::CliError;

/// What to do with the lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Leave it alone.
    Ignore,
    /// Record the target's plan (`--lock`).
    Write,
    /// Refuse a plan that differs from the recorded one (`--locked`).
    Check,
}

impl Mode {
    pub(super) fn from_flags(lock: bool, locked: bool) -> Self {
        match (lock, locked) {
            (_, true) => Self::Check,
            (true, false) => Self::Write,
            (false, false) => Self::Ignore,
        }
    }
}

/// The lock file of one command: read once, checked or updated per target, written once.
pub(super) struct Session {
    mode: Mode,
    path: std::path::PathBuf,
    lock: Option<Lock>,
    recorded: Vec<String>,
}

impl Session {
    /// Reads the lock file beside the recipes, unless `mode` ignores it.
    pub(super) fn open(ctx: &Ctx, mode: Mode) -> Result<Self, CliError> {
        let mut s = Self {
            mode,
            path: std::path::PathBuf::new(),
            lock: None,
            recorded: Vec::new(),
        };
        if mode == Mode::Ignore {
            return Ok(s);
        }
        s.path = ctx.recipes_root()?.join(LOCK_FILE);
        s.lock = Lock::read(&s.path).map_err(|e| {
            CliError::error(e).with_hint(format!(
                "remove `{}` and write it again with `forge plan --lock TARGET`",
                s.path.display()
            ))
        })?;
        Ok(s)
    }

    /// Records `plan` as `request`'s, or checks it against the recorded one.
    pub(super) fn apply(
        &mut self,
        set: &RecipeSet,
        request: &str,
        plan: &Plan,
    ) -> Result<(), CliError> {
        if self.mode == Mode::Ignore {
            return Ok(());
        }
        if set.target(request).is_none() {
            return Err(CliError::error(format!(
                "`{request}` is not a target: only targets are locked"
            ))
            .with_hint("name a target of `recipes/targets.kdl` (`forge plan --all` lists them)"));
        }
        match self.mode {
            Mode::Write => {
                let lock = self.lock.get_or_insert_with(Lock::default);
                if lock.check(request, plan).is_err() {
                    lock.record(request, plan);
                    self.recorded.push(request.to_owned());
                }
                Ok(())
            }
            Mode::Check => {
                let Some(lock) = &self.lock else {
                    return Err(CliError::failure(format!(
                        "`--locked`, but there is no {}",
                        self.path.display()
                    ))
                    .with_hint(format!("write it with `forge plan --lock {request}`")));
                };
                lock.check(request, plan)
                    .map_err(|d| drifted(&self.path, request, d))
            }
            Mode::Ignore => Ok(()),
        }
    }

    /// Writes the lock file if a target was recorded, and says so.
    pub(super) fn finish(self, ctx: &Ctx) -> Result<(), CliError> {
        if let (Some(lock), false) = (&self.lock, self.recorded.is_empty()) {
            lock.write(&self.path).map_err(CliError::error)?;
            let what = match self.recorded.as_slice() {
                [one] => format!("`{one}`"),
                many => format!("{} targets", many.len()),
            };
            ctx.printer
                .info(&format!("locked {what} in {}", self.path.display()));
        }
        Ok(())
    }
}

/// Applies `mode` to `plan`, the plan of `request`.
pub(super) fn apply(
    ctx: &Ctx,
    set: &RecipeSet,
    request: &str,
    plan: &Plan,
    mode: Mode,
) -> Result<(), CliError> {
    let mut s = Session::open(ctx, mode)?;
    s.apply(set, request, plan)?;
    s.finish(ctx)
}

/// The error for a plan that is not the locked one, naming what drifted.
fn drifted(path: &std::path::Path, request: &str, d: Drift) -> CliError {
    let hint =
        format!("if the change is intended, update the lock with `forge plan --lock {request}`");
    match d {
        Drift::NotLocked => {
            CliError::failure(format!("`{request}` is not locked in {}", path.display()))
                .with_hint(format!("lock it with `forge plan --lock {request}`"))
        }
        Drift::Changed {
            removed,
            added,
            differences,
        } => {
            let mut e = CliError::failure(format!(
                "`{request}` no longer resolves to what {} holds: {} node{} changed",
                path.display(),
                removed.len().max(added.len()),
                if removed.len().max(added.len()) == 1 {
                    ""
                } else {
                    "s"
                }
            ));
            for d in differences.iter().take(20) {
                e = e.with_detail(describe(d));
            }
            if differences.len() > 20 {
                e = e.with_detail(format!(
                    "  … and {} more (`forge diff {LOCK_FILE} {request}` lists them)",
                    differences.len() - 20
                ));
            }
            e.with_hint(hint)
        }
    }
}

/// One differing input, as `forge diff` shows it.
fn describe(d: &forge_plan::Difference) -> String {
    if !d.added.is_empty() || !d.removed.is_empty() {
        let mut parts: Vec<String> = d.removed.iter().map(|r| format!("-{r}")).collect();
        parts.extend(d.added.iter().map(|a| format!("+{a}")));
        format!("  {}: {}: {}", d.node, d.input, parts.join(" "))
    } else {
        format!(
            "  {}: {}: {} → {}",
            d.node,
            d.input,
            d.old.as_deref().unwrap_or("(absent)"),
            d.new.as_deref().unwrap_or("(absent)")
        )
    }
}
