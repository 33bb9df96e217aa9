//! Toolchains: the compiler exists (with a `host` line when taken from the host, with versions
//! when built), the runtime is declared as the compiler's, the bootstrap toolchain exists.

use super::Check;
use crate::model::*;

impl Check<'_> {
    pub(super) fn toolchains(&mut self) {
        for t in self.set.toolchains.values() {
            self.toolchain_compiler(t);
            if let Some(rt) = &t.runtime {
                self.toolchain_runtime(t, rt);
            }
            if let Some(b) = &t.bootstrap {
                self.toolchain_bootstrap(t, b);
            }
        }
    }

    fn toolchain_compiler(&mut self, t: &ToolchainDecl) {
        let set = self.set;
        match set.packages.get(&t.compiler.value) {
            None if self.missing_is_explained(&t.compiler.value) => {}
            None => {
                let help = Self::suggest(
                    &t.compiler.value,
                    set.packages.keys().map(String::as_str),
                    || "add the compiler's recipe to `toolchains/`".into(),
                );
                self.err(
                    "recipe::unknown-package",
                    format!(
                        "toolchain `{}` uses compiler `{}`, which does not exist",
                        t.name.value, t.compiler.value
                    ),
                    t.compiler.span,
                    "no such package",
                    help,
                );
            }
            Some(c) if t.host && c.host.is_none() && !c.incomplete.contains("host") => self.err(
                "recipe::not-on-host",
                format!(
                    "toolchain `{}` takes `{}` from the host, but its recipe has no `host` line",
                    t.name.value, t.compiler.value
                ),
                t.compiler.span,
                "no `host` line",
                format!(
                    "add `host \"{}\"` to `{}`'s recipe",
                    t.compiler.value, t.compiler.value
                ),
            ),
            Some(c) if !t.host && c.versions.is_empty() && !c.incomplete.contains("version") => {
                self.err(
                    "recipe::no-versions",
                    format!(
                        "toolchain `{}` builds `{}`, which has no versions",
                        t.name.value, t.compiler.value
                    ),
                    t.compiler.span,
                    "nothing to build",
                    "add versions to the compiler's recipe, or set `host=#true`",
                )
            }
            Some(_) => {}
        }
    }

    /// The runtime exists and is declared (`runtime-for`) as the runtime of this compiler.
    fn toolchain_runtime(&mut self, t: &ToolchainDecl, rt: &Spanned<String>) {
        let set = self.set;
        match set.packages.get(&rt.value) {
            None if self.missing_is_explained(&rt.value) => {}
            None => {
                let help =
                    Self::suggest(&rt.value, set.packages.keys().map(String::as_str), || {
                        "add the runtime's recipe to `toolchains/`".into()
                    });
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

    /// The bootstrap toolchain exists and is not bootstrapped by this one.
    fn toolchain_bootstrap(&mut self, t: &ToolchainDecl, b: &Spanned<String>) {
        let set = self.set;
        match set.toolchains.get(&b.value) {
            None if set.unloaded.toolchain(&b.value) => {}
            None => {
                let help =
                    Self::suggest(&b.value, set.toolchains.keys().map(String::as_str), || {
                        "name a toolchain defined in `toolchains/`".into()
                    });
                self.err(
                    "recipe::unknown-toolchain",
                    format!("unknown toolchain `{}`", b.value),
                    b.span,
                    "unknown toolchain",
                    help,
                );
            }
            Some(bt)
                if !bt.host && bt.bootstrap.as_ref().map(|x| &x.value) == Some(&t.name.value) =>
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
