//! Command-line definitions. Parsing only: no logic lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `forge --version`: the crate's version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("FORGE_GIT_COMMIT"),
    ")"
);

/// forge: declarative, content-addressed builds of HPC software stacks, published as Spack
/// buildcaches.
#[derive(Debug, Parser)]
#[command(name = "forge", version = VERSION, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding `recipes/` and `toolchains/` [default: the nearest such directory
    /// above the current one]
    #[arg(long, global = true, env = "FORGE_RECIPES", value_name = "DIR")]
    pub recipes: Option<PathBuf>,

    /// The store [default: `$XDG_DATA_HOME/forge/store`]
    #[arg(long, global = true, env = "FORGE_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// When to use colour on the terminal (`NO_COLOR` is respected)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Print only errors
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Use the example recipe set built into forge (a tiny C library and a program that links
    /// it) instead of a recipe tree on disk
    #[arg(long, global = true, conflicts_with = "recipes")]
    pub example: bool,

    /// Pad the store's output directory to this many bytes when creating the store, so that
    /// exported binaries can be relocated into any shorter prefix [default: 160; 0 for none]
    #[arg(
        long,
        global = true,
        env = "FORGE_PADDED_LENGTH",
        value_name = "BYTES",
        value_parser = padded_length
    )]
    pub padded_length: Option<usize>,

    /// Source mirror tried before the recipes' URLs (a directory, `file:///dir` or
    /// `https://…`; holds `sha256/<hex>` or files by name, as `forge fetch --to` fills it);
    /// repeatable
    #[arg(
        long = "mirror",
        global = true,
        env = "FORGE_MIRRORS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub mirrors: Vec<String>,

    /// Build isolation: `auto` builds with what the machine allows and warns when that is
    /// less than sealed (no network, writes only to the build's own directories); `require`
    /// refuses to build unless sealed (what CI should use)
    #[arg(
        long,
        global = true,
        env = "FORGE_SANDBOX",
        value_enum,
        default_value_t = SandboxMode::Auto
    )]
    pub sandbox: SandboxMode,

    /// The OpenPGP keyring [default: `$XDG_CONFIG_HOME/forge/keys`]
    #[arg(long, global = true, env = "FORGE_KEYS", value_name = "DIR")]
    pub keys: Option<PathBuf>,

    /// Source cache [default: `$XDG_CACHE_HOME/forge/sources`]
    #[arg(long, global = true, env = "FORGE_SOURCE_CACHE", value_name = "DIR")]
    pub source_cache: Option<PathBuf>,

    /// The largest source file a download may bring, in bytes or with a K, M, G or T suffix
    /// (powers of 1024) [default: 16G]
    #[arg(long, global = true, env = "FORGE_MAX_DOWNLOAD", value_name = "SIZE", value_parser = byte_size)]
    pub max_download: Option<u64>,

    /// Seconds one download location may take over all its attempts [default: 7200]
    #[arg(
        long,
        global = true,
        env = "FORGE_DOWNLOAD_DEADLINE",
        value_name = "SECONDS"
    )]
    pub download_deadline: Option<u64>,

    /// A download attempt slower than this many bytes a second over a minute is given up
    /// [default: 1024]
    #[arg(
        long,
        global = true,
        env = "FORGE_DOWNLOAD_LOW_SPEED",
        value_name = "BYTES"
    )]
    pub download_low_speed: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve a target or spec and print its DAG: versions, variants, hashes and store paths
    ///
    /// TARGET is a name from `recipes/targets.kdl` (`slurm-25.11-gcc13`); a SPEC is written as in
    /// Spack (`slurm@25.11 +pmix ~nvml %gcc@13.4.0 target=x86-64-v3`).
    Plan(PlanArgs),
    /// Print the DAG of a target or spec as Graphviz dot or JSON
    Graph(GraphArgs),
    /// Print the canonical derivation of a node: exactly what its hash covers
    ShowDerivation(ShowArgs),
    /// Explain why two targets, specs or nodes have different hashes ("why would this rebuild?")
    ///
    /// Exit 0: the two are the same derivation; 1: they differ (the differences are printed);
    /// 2: a side could not be planned.
    Diff(DiffArgs),
    /// Check every recipe, toolchain and target; exit non-zero on any error
    Lint(LintArgs),
    /// Rewrite KDL files in canonical layout, keeping comments
    Fmt(FmtArgs),
    /// List the packages of the recipe set: name, versions, description
    List(ListArgs),
    /// Show one package: description, versions (with their sources), variants, dependencies,
    /// and the targets whose graphs hold it
    Info(InfoArgs),
    /// Download the sources targets need into the source cache, and into a mirror with `--to`
    ///
    /// For air-gapped sites: run it where the recipes' URLs (or mirrors) are reachable, copy the
    /// directory, and build with `--mirror DIR`. Fetches every source it can and lists the
    /// ones it could not; a rerun skips what is already there.
    Fetch(FetchArgs),
    /// Build every missing node of a target or spec into the store
    ///
    /// Nodes already valid are not rebuilt; several forge processes may realize overlapping
    /// graphs at once (each path is built once). Ctrl-C stops the builds and cleans up.
    Realize(RealizeArgs),
    /// Rebuild realized nodes and compare them bit for bit with the store
    ///
    /// Each node of the target (or each `--node`) is built again from its store dependencies,
    /// in a fresh scratch directory, into a temporary output whose path is as long as the stored
    /// one and is rewritten back before comparing. Differences are listed and explained
    /// (timestamps, build paths, file order, sizes, modes …). Exit 0: every node reproducible;
    /// 1: some node differs; 2: a rebuild or the check itself failed.
    Check(CheckArgs),
    /// Show store paths: hash, size, references (`-S`: closure size)
    PathInfo(PathInfoArgs),
    /// Show why one store path depends on another, and where the reference is
    WhyDepends(WhyDependsArgs),
    /// Check the store database and that every valid store path is present (and, with
    /// `--check-contents`, unmodified); `--repair` rebuilds a damaged or lost database
    Verify(VerifyArgs),
    /// List the GC roots (`forge realize` adds one per target), or remove some
    Roots(RootsArgs),
    /// Delete store paths not reachable from a GC root or in use
    Gc(GcArgs),
    /// Print the build log of a store path
    Log(LogArgs),
    /// Export a target's closure as a signed Spack v1.0 buildcache (layout v3)
    ///
    /// Writes tarballs, spec metadata with Spack's DAG hashes, clearsigned manifests, the public
    /// key, the index, and a small Spack package repository for the `forge` namespace. Nodes must
    /// be realized first. Re-exporting merges into an existing cache.
    Export(ExportArgs),
    /// Manage the OpenPGP keys that sign exports (`generate`, `import`, `export`, `list`)
    #[command(subcommand)]
    Key(KeyCommand),
    /// Inspect buildcaches: `forge cache verify DIR`
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Maintain recipes: `forge recipe add-version PKG VERSION --url URL`
    #[command(subcommand)]
    Recipe(RecipeCommand),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// The target and package names of the recipe tree here, one per line (for completions)
    #[command(hide = true, name = "__complete-names")]
    CompleteNames,
    /// Build one node of a target whose dependencies are valid (what a Slurm job of `realize
    /// --executor slurm` runs)
    #[command(hide = true, name = "build-node")]
    BuildNode(BuildNodeArgs),
}

#[derive(Debug, Args)]
pub struct BuildNodeArgs {
    /// The target or spec the node belongs to
    #[arg(value_name = "TARGET|SPEC")]
    pub request: String,
    /// The node's store name (`<hash>-<name>-<version>`)
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// Write how the node became valid here (JSON)
    #[arg(long, value_name = "FILE")]
    pub result: Option<PathBuf>,
    /// Parallel jobs the build may use [default: number of CPUs]
    #[arg(long)]
    pub cores: Option<usize>,
}

/// Where `forge realize` runs builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    /// On this machine
    Local,
    /// One Slurm batch job per node, chained by `afterok`, into the shared store
    Slurm,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Targets, specs or store paths whose closures to export
    #[arg(required = true, value_name = "TARGET|SPEC|PATH")]
    pub requests: Vec<String>,
    /// The cache: a directory (created if missing; merged into if it exists) or
    /// `s3://bucket/prefix` (endpoint and credentials from the AWS environment and profiles)
    #[arg(long, value_name = "DIR|S3 URL", required_unless_present = "dry_run")]
    pub to: Option<PathBuf>,
    /// Write nothing: print the specs the export would publish (with `--json`, Spack's spec
    /// documents), whether or not their nodes are built
    #[arg(long)]
    pub dry_run: bool,
    /// Sign with this key (a fingerprint from `forge key list`); `--sign` alone uses the only
    /// secret key of the keyring
    #[arg(long, value_name = "FINGERPRINT", num_args = 0..=1, default_missing_value = "")]
    pub sign: Option<String>,
    /// Also export what the roots need only to build (a forge-built gcc …)
    #[arg(long)]
    pub with_build_deps: bool,
    /// Export even files that embed a store path but that Spack cannot relocate (warnings)
    #[arg(long)]
    pub allow_unrelocatable: bool,
    /// The longest consumer install root the export must relocate into
    #[arg(long, default_value_t = forge_spack::relocate::DEFAULT_MAX_CONSUMER_ROOT)]
    pub max_consumer_root: usize,
    /// Print a JSON report on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an Ed25519 signing key (OpenPGP v4, no expiry)
    Generate {
        /// User ID, as `Name <email>`
        user_id: String,
    },
    /// Import keys (public or secret, ASCII-armored or binary) from a file
    Import {
        /// The key file
        file: PathBuf,
    },
    /// Trust the public keys of a file (a cache's published key, `forge key export` output):
    /// substitution and `cache verify` accept their signatures. Secret parts are ignored
    Trust {
        /// The key file
        file: PathBuf,
    },
    /// Print a public key, ASCII-armored, for consumers (`spack gpg trust FILE`)
    Export {
        /// Its fingerprint
        fingerprint: String,
    },
    /// List the keys of the keyring
    List {
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Check a buildcache: blobs present with the right sha256, signatures by trusted keys, the
    /// index consistent with the manifests
    Verify {
        /// The cache directory, or `s3://bucket/prefix`
        dir: PathBuf,
        /// Do not require signatures
        #[arg(long)]
        unsigned: bool,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// List what a buildcache holds (any Spack v1.0 cache): name, version, hash, target and
    /// whether its manifest is signed, by which key
    List {
        /// A directory, `file://…`, `http(s)://…` or `s3://bucket/prefix`
        url: String,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecipeCommand {
    /// Add a version to a recipe: download (or read) the source, compute its sha256, and insert
    /// the `version` line in order, keeping the file's layout
    AddVersion(AddVersionArgs),
}

#[derive(Debug, Args)]
pub struct AddVersionArgs {
    /// The package
    pub package: String,
    /// The new version
    pub version: String,
    /// Where the source is: an `https://`/`http://`/`file://` URL, or a local file (its checksum
    /// is taken; the recipe's URL template then says where it comes from)
    #[arg(long, value_name = "URL|FILE")]
    pub url: String,
    /// A note for maintainers on the version line (e.g. which upstream artifact it is)
    #[arg(long)]
    pub note: Option<String>,
    /// Accept a URL or file whose name names neither the package nor the version (by default
    /// refused: it is most likely another package's file)
    #[arg(long)]
    pub any_name: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Target name or spec whose realized nodes to check [default with `--example`: `hello`]
    #[arg(value_name = "TARGET|SPEC")]
    pub request: Option<String>,
    /// Check only this node of the graph (`name` or `name@version`); repeatable
    #[arg(long = "node", value_name = "PKG[@VERSION]")]
    pub nodes: Vec<String>,
    /// Rebuild each node this many times (stops at the first round that differs)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Print the report as JSON (`forge-check-report/1`) on stdout
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Keep each rebuilt output next to the stored one, as `<path>.check`
    #[arg(long)]
    pub keep: bool,
    /// Run `diffoscope` on differing files when it is installed
    #[arg(long)]
    pub diffoscope: bool,
    /// Copy each rebuild's log to DIR as `<name>.check.log`
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Instead of rebuilding, export the closure twice (unsigned) and require byte-identical
    /// buildcaches: tarballs, spec files, manifests and index
    #[arg(long)]
    pub export: bool,
    /// Parallel jobs each rebuild may use (`make -j`) [default: number of CPUs]
    #[arg(long)]
    pub cores: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only packages whose name contains this
    pub filter: Option<String>,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The package
    pub package: String,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// How strictly builds are isolated (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxMode {
    /// As isolated as the machine allows, with a warning when not sealed.
    Auto,
    /// Sealed or nothing is built.
    Require,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Targets or specs whose sources to fetch (their whole graphs)
    #[arg(value_name = "TARGET|SPEC", required = true)]
    pub requests: Vec<String>,
    /// Also file every source in DIR as `sha256/<hex>`, the layout `--mirror DIR` reads
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Print one JSON object per source on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RealizeArgs {
    /// Target name or spec [default with `--example`: `hello`]
    #[arg(value_name = "TARGET|SPEC")]
    pub request: Option<String>,
    /// Builds running at the same time
    #[arg(long, short = 'j', default_value_t = 1)]
    pub jobs: usize,
    /// Parallel jobs each build may use (`make -j`) [default: number of CPUs]
    #[arg(long)]
    pub cores: Option<usize>,
    /// Keep building unrelated nodes after a failure
    #[arg(long, short = 'k')]
    pub keep_going: bool,
    /// Keep the scratch directories of failed builds for inspection
    #[arg(long)]
    pub keep_failed: bool,
    /// Make PATH a symlink to the root's output and a GC root (instead of the store's root
    /// named after the target)
    #[arg(long, short = 'o', value_name = "PATH", conflicts_with = "no_root")]
    pub out_link: Option<PathBuf>,
    /// Only say what would be built and which sources downloaded (those not in the source
    /// cache); build nothing
    #[arg(long, conflicts_with_all = ["out_link", "lock"])]
    pub dry_run: bool,
    /// Keep no GC root: the next `forge gc` may delete what this built. By default the output
    /// is kept by the root `.forge/roots/<target>` (see `forge roots`)
    #[arg(long)]
    pub no_root: bool,
    /// Print a JSON event stream on stdout (planned, started, phase, finished, failed …)
    #[arg(long)]
    pub json: bool,
    /// Record the target's plan in `forge.lock` beside the recipes
    #[arg(long, conflicts_with = "locked")]
    pub lock: bool,
    /// Refuse to build unless the target resolves to exactly what `forge.lock` holds
    #[arg(long)]
    pub locked: bool,
    /// Install nodes from this binary cache (a directory, `file://`, `http(s)://`) before
    /// building them; repeatable, tried in order. Also `FORGE_SUBSTITUTERS` (space-separated)
    /// and the lines of `<config dir>/substituters`
    #[arg(long = "substituter", value_name = "URL")]
    pub substituters: Vec<String>,
    /// Accept substitutes whose manifests are unsigned or signed by untrusted keys
    #[arg(long)]
    pub no_check_signature: bool,
    /// Where builds run: `local`, or `slurm` (one batch job per node, chained with `afterok`
    /// dependencies, building into the store shared by the cluster's file system)
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    /// Slurm partition for the jobs
    #[arg(long, value_name = "NAME", help_heading = "Slurm executor")]
    pub partition: Option<String>,
    /// Slurm account the jobs are charged to
    #[arg(long, value_name = "NAME", help_heading = "Slurm executor")]
    pub account: Option<String>,
    /// Time limit of each job (sbatch `--time`, e.g. `2:00:00`)
    #[arg(long, value_name = "TIME", help_heading = "Slurm executor")]
    pub time_limit: Option<String>,
    /// One more sbatch argument, passed as given; repeatable (`--sbatch-arg=--qos=build`)
    #[arg(
        long = "sbatch-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        help_heading = "Slurm executor"
    )]
    pub sbatch_args: Vec<String>,
    /// Build nodes whose earlier builds took under this many seconds on this machine instead
    /// of submitting them (host tools always are)
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0.0,
        help_heading = "Slurm executor"
    )]
    pub local_below: f64,
}

#[derive(Debug, Args)]
pub struct RootsArgs {
    /// Remove the store's root of this name (as `forge roots` lists it: the target's name);
    /// repeatable. An out-link's root goes when the out-link is deleted
    #[arg(long, value_name = "NAME")]
    pub remove: Vec<String>,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PathInfoArgs {
    /// Store paths, store names, hash prefixes, or targets/specs (their root)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Also print the closure size
    #[arg(short = 'S', long)]
    pub closure_size: bool,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WhyDependsArgs {
    /// The depending path
    pub from: String,
    /// The path depended on
    pub to: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Re-hash every path's contents and compare with the recorded hash
    #[arg(long)]
    pub check_contents: bool,
    /// Repair what can be: rebuild a damaged or lost database from the store paths
    #[arg(long)]
    pub repair: bool,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only report what would be deleted
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Store path, store name, hash prefix, or target/spec (its root)
    pub path: String,
    /// The compiler wrapper's record of every compiler call instead of the build log
    #[arg(long)]
    pub wrapper: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Target name or spec
    #[arg(required_unless_present = "all", value_name = "TARGET|SPEC")]
    pub request: Option<String>,
    /// Plan every target of `recipes/targets.kdl`
    #[arg(long, conflicts_with = "request")]
    pub all: bool,
    /// Print JSON on stdout instead of a tree
    #[arg(long)]
    pub json: bool,
    /// Show each node's store path under it
    #[arg(long)]
    pub paths: bool,
    /// Record the target's plan in `forge.lock` beside the recipes (with `--all`: every target)
    #[arg(long, conflicts_with = "locked")]
    pub lock: bool,
    /// Fail if the target no longer resolves to what `forge.lock` holds, naming what drifted
    #[arg(long)]
    pub locked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Json,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Target name or spec
    #[arg(value_name = "TARGET|SPEC")]
    pub request: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// Same as `--format json`
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Target name or spec whose graph holds the node
    #[arg(value_name = "TARGET|SPEC")]
    pub request: String,
    /// The package to show within that graph, as `name` or `name@version` [default: the root]
    #[arg(long, value_name = "PACKAGE")]
    pub node: Option<String>,
    /// Print the canonical form exactly as hashed (one line) instead of indented JSON
    #[arg(long)]
    pub canonical: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First target or spec, or a lock file (`forge.lock`, or `forge.lock:TARGET`) for the
    /// locked plan of a target
    #[arg(value_name = "A")]
    pub a: String,
    /// Second target or spec
    #[arg(value_name = "B")]
    pub b: String,
    /// Compare this package's nodes instead of the roots
    #[arg(long, value_name = "PACKAGE")]
    pub node: Option<String>,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Only report files that are not formatted; exit 1 if any
    #[arg(long)]
    pub check: bool,
    /// Files to format [default: every KDL file of the recipe tree]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The largest `--padded-length`: a store path (the padded directory, a 32-character hash, a
/// name) and the files below it must still fit in Linux's `PATH_MAX` of 4096 bytes.
pub const MAX_PADDED_LENGTH: usize = 1024;

/// Parses `--padded-length`, bounded by [`MAX_PADDED_LENGTH`] before anything is created.
/// `4096`, `500M`, `16G`, `2TiB`: a number of bytes, the suffixes in powers of 1024.
fn byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}`; write bytes, or a number with K, M, G or T"
            ));
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size: write bytes, or a number with K, M, G or T"))?;
    n.checked_mul(1u64 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("`{s}` is out of range: between 1 byte and 16 EiB"))
}

fn padded_length(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|e| format!("`{s}` is not a number of bytes: {e}"))?;
    if n > MAX_PADDED_LENGTH {
        return Err(format!(
            "{n} bytes is too long: at most {MAX_PADDED_LENGTH}, so that store paths and the files in them fit in PATH_MAX (4096); the default is 160"
        ));
    }
    Ok(n)
}
