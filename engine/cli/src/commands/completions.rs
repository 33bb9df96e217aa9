//! `forge completions`: a shell completion script on stdout.

use clap::CommandFactory;

use crate::ExitStatus;
use crate::args::{Cli, CompletionsArgs};
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &CompletionsArgs) -> Result<ExitStatus, CliError> {
    let mut cmd = Cli::command();
    // Generated into memory first: clap_complete panics when its writer fails, and a reader
    // that stops early (`forge completions bash | head`) is not an error.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "forge", &mut script);
    let names = match a.shell {
        clap_complete::Shell::Bash => BASH_NAMES,
        clap_complete::Shell::Zsh => ZSH_NAMES,
        clap_complete::Shell::Fish => FISH_NAMES,
        _ => "",
    };
    script.extend_from_slice(names.as_bytes());
    ctx.printer
        .raw_data(&script)
        .map_err(|e| CliError::error(format!("writing the completions: {e}")))?;
    Ok(ExitStatus::Success)
}

/// Bash: after clap's completion, the commands that take a target or spec also complete the
/// target and package names of the recipe tree forge would use (`forge __complete-names`).
const BASH_NAMES: &str = r#"
_forge_names() {
    _forge "$@"
    local cur="${COMP_WORDS[COMP_CWORD]}"
    [[ "$cur" == -* ]] && return 0
    case "${COMP_WORDS[1]}" in
        plan|realize|fetch|check|export|graph|show-derivation|diff|info|path-info|log)
            local names
            names=$("${COMP_WORDS[0]}" __complete-names 2>/dev/null) || return 0
            COMPREPLY+=( $(compgen -W "${names}" -- "${cur}") )
            ;;
    esac
}
complete -F _forge_names -o bashdefault -o default forge
"#;

/// Zsh: the same, after clap's `_forge`; zsh matches the names against the word.
const ZSH_NAMES: &str = r#"
_forge_names() {
    _forge "$@"
    [[ "${words[CURRENT]}" == -* ]] && return 0
    case "${words[2]}" in
        plan|realize|fetch|check|export|graph|show-derivation|diff|info|path-info|log)
            local -a names
            names=(${(f)"$(${words[1]} __complete-names 2>/dev/null)"})
            compadd -- $names
            ;;
    esac
}
compdef _forge_names forge
"#;

/// Fish: the names as arguments of the same commands.
const FISH_NAMES: &str = r#"
complete -c forge -n "__fish_seen_subcommand_from plan realize fetch check export graph show-derivation diff info path-info log" -f -a "(set -l cmd (commandline -opc); \$cmd[1] __complete-names 2>/dev/null)"
"#;

/// `forge __complete-names`: every target and package name, one per line; nothing (and no
/// error) outside a recipe tree.
pub(super) fn names(ctx: &Ctx) -> Result<ExitStatus, CliError> {
    let Ok(root) = ctx.recipes_root() else {
        return Ok(ExitStatus::Success);
    };
    let set = forge_recipe::RecipeSet::load(&root).set;
    let mut out = String::new();
    for t in &set.targets {
        out.push_str(&t.name.value);
        out.push('\n');
    }
    for p in set.packages.keys() {
        out.push_str(p);
        out.push('\n');
    }
    ctx.printer.data(out.trim_end());
    Ok(ExitStatus::Success)
}
