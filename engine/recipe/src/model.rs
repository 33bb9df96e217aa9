//! The parsed recipe model: what a maintainer wrote, typed and validated, with spans kept.
//!
//! This is forge's first stage (rattler-build calls its equivalent `stage0`): conditions,
//! placeholders and version choices are *not* evaluated here. The resolver turns a [`Recipe`]
//! into a concrete node (one version, one value per variant) and the planner turns that into a
//! derivation. Nothing here touches the network, the store or the host.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::diag::{FileId, Span};
use crate::spec::Spec;
use crate::template::Template;
use crate::version::{Version, VersionReq};

/// A value with the span it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps a value.
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

impl<T: fmt::Display> fmt::Display for Spanned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// The span of a string literal, able to point at byte ranges of its content.
///
/// When the literal is a plain quoted string without escapes, offsets inside the content map to
/// exact file positions; otherwise (escapes, raw or multi-line strings, strings built from a
/// matrix template) every sub-range maps to the whole literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LitSpan {
    /// The whole literal.
    pub span: Span,
    /// Offset of the content's first byte inside the literal, when offsets map one to one.
    pub content_offset: Option<usize>,
}

impl LitSpan {
    /// The file span of `range`, a byte range of the string's content.
    pub fn at(&self, range: std::ops::Range<usize>) -> Span {
        match self.content_offset {
            Some(off) => {
                let sub = self
                    .span
                    .slice(off + range.start..off + range.end.max(range.start));
                if sub.len == 0 {
                    Span {
                        len: 1.min(self.span.len),
                        ..sub
                    }
                } else {
                    sub
                }
            }
            None => self.span,
        }
    }
}

/// A sha256 digest, as written in recipes (64 hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(Self(out))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// A dependency type, as in Spack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DepType {
    /// Needed while building (tools, headers).
    Build,
    /// Linked into the output: its libraries are found through RPATH at run time.
    Link,
    /// Needed at run time (executables called, data read).
    Run,
    /// Needed only to run the package's tests.
    Test,
}

impl DepType {
    /// All types, in Spack's order.
    pub const ALL: [DepType; 4] = [Self::Build, Self::Link, Self::Run, Self::Test];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Build => "build",
            Self::Link => "link",
            Self::Run => "run",
            Self::Test => "test",
        }
    }
}

/// A set of dependency types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct DepTypes(u8);

impl DepTypes {
    /// The empty set.
    pub const NONE: DepTypes = DepTypes(0);
    /// `build,link`: Spack's default for `depends_on`.
    pub const BUILD_LINK: DepTypes = DepTypes(0b11);

    fn bit(t: DepType) -> u8 {
        1 << (t as u8)
    }
    /// Adds a type.
    pub fn with(self, t: DepType) -> Self {
        Self(self.0 | Self::bit(t))
    }
    /// Whether `t` is in the set.
    pub fn contains(self, t: DepType) -> bool {
        self.0 & Self::bit(t) != 0
    }
    /// Union.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    /// The members, in Spack's order.
    pub fn iter(self) -> impl Iterator<Item = DepType> {
        DepType::ALL.into_iter().filter(move |t| self.contains(*t))
    }
    /// Names, in Spack's order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(DepType::as_str).collect()
    }
}

impl fmt::Display for DepTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl Serialize for DepTypes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for DepTypes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names.iter().try_fold(Self::NONE, |set, n| {
            DepType::ALL
                .into_iter()
                .find(|t| t.as_str() == n)
                .map(|t| set.with(t))
                .ok_or_else(|| serde::de::Error::custom(format!("`{n}` is not a dependency type")))
        })
    }
}

/// A language a package is compiled in; decides which compilers its build sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// C (`cc`).
    C,
    /// C++ (`c++`).
    Cxx,
    /// Fortran (`gfortran`).
    Fortran,
}

impl Language {
    /// Parses `c`, `cxx`/`c++`, `fortran`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "c" => Some(Self::C),
            "cxx" | "c++" => Some(Self::Cxx),
            "fortran" => Some(Self::Fortran),
            _ => None,
        }
    }
    /// The canonical name (Spack's virtual name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::C => "c",
            Self::Cxx => "cxx",
            Self::Fortran => "fortran",
        }
    }
}

/// A `when` condition: a name-less spec over the package's own version, variants, toolchain and
/// target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The parsed condition.
    pub spec: Spec,
    /// The string it was written as.
    pub lit: LitSpan,
}

/// A dependency spec as written (`pmix@4.2: ~munge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecLit {
    /// The parsed spec; it always has a name.
    pub spec: Spec,
    /// The string it was written as.
    pub lit: LitSpan,
}

impl SpecLit {
    /// The package or virtual name.
    pub fn name(&self) -> &str {
        self.spec.name().unwrap_or_default()
    }
}

/// Where a version's source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDecl {
    /// Downloaded from a URL (the version's own, or the package's `url` template).
    Remote {
        /// The version's own URL template, overriding the package's.
        url: Option<Spanned<Template>>,
        /// The digest of the downloaded file.
        sha256: Spanned<Sha256>,
        /// Whether the file is an archive to unpack (`expand=#false` for single files such as a
        /// `.run` installer or a `.pem`).
        expand: bool,
    },
    /// A file that no public URL serves under this name (a distribution's repack of an
    /// upstream release, say): fetched only from the configured mirrors, by its sha256.
    Mirrored {
        /// The file's name (its format is recognised from it).
        file: Spanned<String>,
        /// The digest of the file.
        sha256: Spanned<Sha256>,
        /// Whether the file is an archive to unpack.
        expand: bool,
    },
    /// A file or directory beside the recipe, hashed by content.
    Local {
        /// Path relative to the recipe's directory.
        path: Spanned<String>,
    },
}

/// `inner="gcc-13.4.0*.tar.*" inner-sha256="…"`: the source is a wrapper (a distribution's
/// tarball holding the real source tarball, as Debian ships GCC); the one file in it whose name
/// matches `pattern` is the archive to unpack, checked by its own sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerDecl {
    /// A file name with `*` (any run of characters) and `?` (one character).
    pub pattern: Spanned<String>,
    /// The digest of the inner archive.
    pub sha256: Spanned<Sha256>,
}

/// `version "25.11.2" sha256="…"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDecl {
    /// The version.
    pub version: Spanned<Version>,
    /// Its source.
    pub source: SourceDecl,
    /// For a wrapper archive, the archive inside it to unpack.
    pub inner: Option<InnerDecl>,
    /// Deprecated versions are chosen only when asked for explicitly.
    pub deprecated: bool,
    /// Chosen over newer versions unless a constraint rules it out (`preferred=#true`, as in
    /// Spack): keeps a package's default where a newer version is declared for some targets.
    pub preferred: bool,
    /// A note for maintainers, e.g. which upstream artifact this is.
    pub note: Option<String>,
    /// Unpack entry names holding control characters instead of refusing the archive
    /// (`allow-control-chars=#true`).
    pub allow_control_chars: bool,
    /// The whole `version` node.
    pub span: Span,
}

/// What values a variant takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariantKind {
    /// `+name` / `~name`.
    Bool {
        /// Default value.
        default: bool,
    },
    /// One value out of `values`, or any string when `values` is empty.
    Single {
        /// Allowed values; empty means free-form.
        values: Vec<String>,
        /// Default value.
        default: String,
    },
    /// Any subset of `values`.
    Multi {
        /// Allowed values.
        values: Vec<String>,
        /// Default values.
        default: Vec<String>,
    },
}

/// `variant "pmix" default=#true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantDecl {
    /// Name.
    pub name: Spanned<String>,
    /// Kind, allowed values and default.
    pub kind: VariantKind,
    /// Where the default was written (for diagnostics).
    pub default_span: Span,
    /// What the variant does, for `forge info`.
    pub description: Option<String>,
}

/// `depends "pmix@4:" type="build,link" when="+pmix"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependDecl {
    /// What is depended on.
    pub spec: SpecLit,
    /// How.
    pub types: DepTypes,
    /// Only when this holds for the dependent.
    pub when: Option<Condition>,
    /// The whole node.
    pub span: Span,
}

/// `provides "mpi@3.1" when="@4:"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvideDecl {
    /// The virtual package, optionally with the virtual's version.
    pub spec: SpecLit,
    /// Only when this holds.
    pub when: Option<Condition>,
    /// The whole node.
    pub span: Span,
}

/// `conflicts "%gcc@:8" when="@25:" message="…"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictDecl {
    /// The configuration that does not work.
    pub cond: Condition,
    /// Only when this also holds.
    pub when: Option<Condition>,
    /// Why, for the user.
    pub message: Option<String>,
    /// The whole node.
    pub span: Span,
}

/// `patch "fix.patch" sha256="…" when="@22.05" level=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchDecl {
    /// Path relative to the recipe's directory.
    pub file: Spanned<String>,
    /// Digest of the patch file.
    pub sha256: Spanned<Sha256>,
    /// `-p` level.
    pub level: u32,
    /// Only when this holds.
    pub when: Option<Condition>,
    /// The whole node.
    pub span: Span,
}

/// The build systems forge knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildSystem {
    /// `./configure && make && make install`.
    Autotools,
    /// `cmake -S -B && cmake --build && cmake --install`.
    Cmake,
    /// `meson setup && meson compile && meson install`.
    Meson,
    /// `make && make install` with no configure step.
    Make,
    /// Only the phases the recipe lists.
    Custom,
}

impl BuildSystem {
    /// Every build system, by name.
    pub const ALL: [(&'static str, BuildSystem); 5] = [
        ("autotools", Self::Autotools),
        ("cmake", Self::Cmake),
        ("meson", Self::Meson),
        ("make", Self::Make),
        ("custom", Self::Custom),
    ];
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Autotools => "autotools",
            Self::Cmake => "cmake",
            Self::Meson => "meson",
            Self::Make => "make",
            Self::Custom => "custom",
        }
    }
    /// The standard phases, in order.
    pub fn phases(self) -> &'static [&'static str] {
        match self {
            Self::Autotools | Self::Cmake | Self::Meson => &["configure", "build", "install"],
            Self::Make => &["build", "install"],
            Self::Custom => &[],
        }
    }
}

/// Which argument list of a build system an `ArgDecl` adds to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArgSlot {
    /// Arguments of the configure step (`./configure`, `cmake`, `meson setup`).
    Configure,
    /// Arguments of the build step (`make`, `cmake --build`, `meson compile`).
    Build,
    /// Arguments of the install step (`make install`).
    Install,
    /// `define "NAME" "VALUE"` → `-DNAME=VALUE` (cmake).
    Define(String),
    /// `option "name" "value"` → `-Dname=value` (meson).
    Option(String),
}

/// A list of arguments, possibly conditional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// Which list.
    pub slot: ArgSlot,
    /// The arguments.
    pub values: Vec<Spanned<Template>>,
    /// Only when this holds.
    pub when: Option<Condition>,
}

/// `env "NAME" "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvDecl {
    /// Variable name.
    pub name: Spanned<String>,
    /// Its value.
    pub value: Spanned<Template>,
    /// Only when this holds.
    pub when: Option<Condition>,
}

/// One command of a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandDecl {
    /// `run "prog" "arg" …`: executed directly, no shell.
    Run(Vec<Spanned<Template>>),
    /// `sh "…"`: a script for `sh -c`. Not a template: shell braces are shell braces. The
    /// builder exports `out`, `src`, `FORGE_JOBS` and `FORGE_DEP_<NAME>` (upper case, `-` → `_`)
    /// for it to use.
    Sh(Spanned<String>),
}

/// Where a recipe's own phase goes among the build system's phases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhasePosition {
    /// In the order written (the only choice for `custom`).
    InOrder,
    /// Before the named standard phase.
    Before(Spanned<String>),
    /// After the named standard phase.
    After(Spanned<String>),
}

/// `phase "bootstrap" before="configure" { run "./bootstrap" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseDecl {
    /// Phase name.
    pub name: Spanned<String>,
    /// Its place.
    pub position: PhasePosition,
    /// Commands, in order.
    pub commands: Vec<CommandDecl>,
    /// Only when this holds.
    pub when: Option<Condition>,
}

/// `build "autotools" { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildDecl {
    /// Build system.
    pub system: Spanned<BuildSystem>,
    /// Argument lists.
    pub args: Vec<ArgDecl>,
    /// Environment settings.
    pub env: Vec<EnvDecl>,
    /// Extra or custom phases.
    pub phases: Vec<PhaseDecl>,
    /// `autoreconf`: regenerate the build system before configure (tag archives have no
    /// `configure`). `Some(None)` means always.
    pub autoreconf: Option<Option<Condition>>,
    /// Directory (relative to the source) to configure and build in; out of tree when set.
    pub build_dir: Option<Spanned<String>>,
    /// Directory (relative to the unpacked source) holding the build files.
    pub source_dir: Option<Spanned<String>>,
    /// The configure script, relative to the source dir (autotools).
    pub configure_script: Option<Spanned<String>>,
    /// `CMAKE_BUILD_TYPE` / meson `--buildtype`.
    pub build_type: Option<Spanned<String>>,
    /// CMake generator.
    pub generator: Option<Spanned<String>>,
    /// Whether the build step may run in parallel.
    pub parallel: bool,
    /// Whether `make install` gets `DESTDIR` (autotools, make).
    pub destdir: bool,
    /// The whole node.
    pub span: Span,
}

/// How the package is named and namespaced in Spack, for export.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpackDecl {
    /// Spack package name (default: the forge name).
    pub name: Option<Spanned<String>>,
    /// Spack namespace (default: `forge`); `builtin` means Spack's own recipe is used.
    pub namespace: Option<Spanned<String>>,
    /// forge variant name → Spack variant name.
    pub variants: BTreeMap<String, Spanned<String>>,
    /// How the version is written for Spack (default: as in forge), e.g. `{version.dashed}-1`.
    pub version: Option<Spanned<Template>>,
    /// `set NAME VALUE… [when=…]`: Spack variants forge does not model, with the value that
    /// describes every build of this recipe (e.g. `gtk` = false), or every build the condition
    /// holds for: the exported specs carry them, so a site's request that names them
    /// (`slurm~gtk`) matches. In the recipe's order; a later line that holds wins.
    pub fixed: Vec<SpackFixed>,
    /// `omit NAME…`: forge variants that have no Spack counterpart and are left out of the
    /// exported specs (the package's Spack recipe does not declare them).
    pub omit: BTreeMap<String, Span>,
}

/// One `set` line of a `spack` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpackFixed {
    /// The Spack variant.
    pub name: String,
    /// Its value.
    pub value: Spanned<VariantValue>,
    /// The builds it describes (all without).
    pub when: Option<Condition>,
}

/// `host { … }`: the package may be taken from the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDecl {
    /// Executables to find on `PATH`; the first is used to detect the version.
    pub executables: Vec<Spanned<String>>,
    /// Argument that makes the first executable print its version.
    pub version_arg: String,
    /// Regular expression with one group capturing the version in that output.
    pub version_regex: Spanned<String>,
    /// Argument that makes the first executable print its installation prefix, for tools
    /// found through a wrapper or shim (`python3 -c…`); else the prefix is the directory
    /// above the executable's real `bin/`. Only exports read it.
    pub prefix_arg: Option<String>,
    /// The whole node.
    pub span: Span,
}

/// Package metadata that never takes part in a hash.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Metadata {
    /// One line about the package.
    pub description: Option<String>,
    /// Project page.
    pub homepage: Option<String>,
    /// SPDX license expression.
    pub license: Option<String>,
}

/// One package recipe (`recipes/<name>.kdl` or `toolchains/<name>.kdl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// Package name.
    pub name: Spanned<String>,
    /// The file it came from.
    pub file: FileId,
    /// The directory of that file: local sources and patches are relative to it.
    pub dir: PathBuf,
    /// Description, homepage, license.
    pub meta: Metadata,
    /// Default source URL template for versions without their own.
    pub url: Option<Spanned<Template>>,
    /// More URL templates for the same bytes, tried in order after the primary one.
    pub mirrors: Vec<Spanned<Template>>,
    /// Versions, in the order written.
    pub versions: Vec<VersionDecl>,
    /// Variants, in the order written.
    pub variants: Vec<VariantDecl>,
    /// Languages compiled (default `c`); an empty list means nothing is compiled.
    pub languages: Vec<Language>,
    /// Dependencies.
    pub depends: Vec<DependDecl>,
    /// Virtual packages provided.
    pub provides: Vec<ProvideDecl>,
    /// Known-bad configurations.
    pub conflicts: Vec<ConflictDecl>,
    /// Patches.
    pub patches: Vec<PatchDecl>,
    /// How to build (absent for host-only packages).
    pub build: Option<BuildDecl>,
    /// Spack identity.
    pub spack: SpackDecl,
    /// How to find the package on the host.
    pub host: Option<HostDecl>,
    /// `runtime-for "gcc"`: this package is the runtime of that compiler; its version is the
    /// compiler's and it is linked by everything the compiler builds.
    pub runtime_for: Option<Spanned<String>>,
    /// `local-only`: with `realize --executor slurm`, built by the client rather than in a job
    /// (a build that needs the login node's network or licenses, or is too small to queue).
    /// Not an input of the build: no hash depends on it.
    pub local_only: bool,
    /// The `package` node.
    pub span: Span,
    /// Kinds of child nodes (`version`, `depends`, `variant`, …) that were written but could not
    /// be decoded, each already reported. Checks that would only repeat such a mistake in other
    /// words (a `{dep:…}` naming a dependency whose `depends` line was malformed) skip them, so
    /// one mistake gives one diagnostic. Empty for a recipe that decoded cleanly.
    pub incomplete: BTreeSet<&'static str>,
}

impl Recipe {
    /// A variant by name.
    pub fn variant(&self, name: &str) -> Option<&VariantDecl> {
        self.variants.iter().find(|v| v.name.value == name)
    }

    /// A version by value.
    pub fn version(&self, v: &Version) -> Option<&VersionDecl> {
        self.versions.iter().find(|d| &d.version.value == v)
    }

    /// Whether anything is compiled (and so needs a toolchain and its runtime).
    pub fn is_compiled(&self) -> bool {
        !self.languages.is_empty() && self.build.is_some()
    }

    /// The name this package has in Spack.
    pub fn spack_name(&self) -> &str {
        self.spack
            .name
            .as_ref()
            .map_or(self.name.value.as_str(), |n| n.value.as_str())
    }

    /// The Spack namespace this package is exported under.
    pub fn spack_namespace(&self) -> &str {
        self.spack
            .namespace
            .as_ref()
            .map_or("forge", |n| n.value.as_str())
    }
}

/// `toolchain "gcc" { compiler "gcc"; runtime "gcc-runtime"; bootstrap "host-gcc" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolchainDecl {
    /// Toolchain name, used after `%` in specs.
    pub name: Spanned<String>,
    /// The compiler package.
    pub compiler: Spanned<String>,
    /// Whether the compiler is taken from the host (its recipe's `host` block).
    pub host: bool,
    /// The runtime package (libgcc_s, libstdc++, libgfortran).
    pub runtime: Option<Spanned<String>>,
    /// The toolchain that builds this toolchain's compiler and its dependencies.
    pub bootstrap: Option<Spanned<String>>,
    /// One line about it.
    pub description: Option<String>,
    /// The whole node.
    pub span: Span,
}

/// `flags compiler="gcc" versions="11:" "-march=x86-64-v3" "-mtune=generic"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchFlags {
    /// Compiler package name.
    pub compiler: String,
    /// Compiler versions these flags apply to.
    pub versions: VersionReq,
    /// The flags.
    pub flags: Vec<String>,
    /// The whole node.
    pub span: Span,
}

/// `arch "x86-64-v3" { spack "x86_64_v3"; flags … }`: a row of the target table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchDecl {
    /// forge's name (`x86-64-v3`).
    pub name: Spanned<String>,
    /// Spack's (archspec's) name (`x86_64_v3`).
    pub spack_name: String,
    /// Flags per compiler and version range.
    pub flags: Vec<ArchFlags>,
    /// The whole node.
    pub span: Span,
}

impl ArchDecl {
    /// The flags for `compiler` at `version`, if the table has a row for it.
    pub fn flags_for(&self, compiler: &str, version: &Version) -> Option<&ArchFlags> {
        self.flags
            .iter()
            .find(|f| f.compiler == compiler && f.versions.matches(version))
    }
}

/// Settings shared by all targets, overridable per target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetSettings {
    /// Target architecture (`x86-64-v3`).
    pub arch: Option<Spanned<String>>,
    /// Default toolchain for nodes whose spec names none.
    pub toolchain: Option<Spanned<String>>,
    /// Virtual → provider choices.
    pub providers: BTreeMap<String, Spanned<String>>,
    /// Packages to build from source even where the host has them.
    pub from_source: Vec<Spanned<String>>,
    /// Constraints on packages wherever they appear in the graph, in every toolchain context
    /// (`require "gmp@=6.2.1-dfsg1"` reaches the gmp a compiler is built with, which `^gmp` in
    /// the spec does not).
    pub require: Vec<SpecLit>,
}

/// A named realization: `target "slurm-25.11-gcc13" { spec "…" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDecl {
    /// Name.
    pub name: Spanned<String>,
    /// Root spec.
    pub spec: SpecLit,
    /// Further roots realized with it (`extra-root "libevent@2.1.12"`): their graphs are
    /// resolved with the target's settings and joined to the root's, sharing equal nodes.
    pub extra_roots: Vec<SpecLit>,
    /// Settings (merged with the file's `defaults` by the resolver).
    pub settings: TargetSettings,
    /// One line about it.
    pub description: Option<String>,
    /// The matrix it was expanded from, if any.
    pub matrix: Option<String>,
    /// The whole node (the `matrix` node for expanded targets).
    pub span: Span,
}

/// Everything in a targets file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetsFile {
    /// `defaults { … }`.
    pub defaults: TargetSettings,
    /// Targets, matrix rows expanded, in file order.
    pub targets: Vec<TargetDecl>,
}

/// Serializable summary of a variant value for plans and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VariantValue {
    /// Boolean variant.
    Bool(bool),
    /// Single-valued variant.
    Single(String),
    /// Multi-valued variant (sorted).
    Multi(Vec<String>),
}

impl fmt::Display for VariantValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Single(s) => f.write_str(s),
            Self::Multi(v) => f.write_str(&v.join(",")),
        }
    }
}

impl VariantDecl {
    /// The default as a value.
    pub fn default_value(&self) -> VariantValue {
        match &self.kind {
            VariantKind::Bool { default } => VariantValue::Bool(*default),
            VariantKind::Single { default, .. } => VariantValue::Single(default.clone()),
            VariantKind::Multi { default, .. } => {
                let mut d = default.clone();
                d.sort();
                VariantValue::Multi(d)
            }
        }
    }
}

/// What a condition is evaluated against: one node's chosen version, variants, toolchain and
/// target.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Chosen version.
    pub version: &'a Version,
    /// Chosen variant values.
    pub variants: &'a BTreeMap<String, VariantValue>,
    /// Toolchain name and compiler version, for compiled nodes.
    pub toolchain: Option<(&'a str, &'a Version)>,
    /// Target architecture.
    pub arch: Option<&'a str>,
}

/// Whether a variant value satisfies a spec's variant clause (Spack semantics: `name=a` holds
/// for a multi-valued variant when `a` is among its values).
pub fn setting_matches(setting: &crate::spec::VariantSetting, value: &VariantValue) -> bool {
    use crate::spec::VariantSetting;
    match (setting, value) {
        (VariantSetting::Bool(b), VariantValue::Bool(v)) => b == v,
        (VariantSetting::Values(want), VariantValue::Single(s)) => want.len() == 1 && &want[0] == s,
        (VariantSetting::Values(want), VariantValue::Multi(have)) => {
            want.iter().all(|w| have.contains(w))
        }
        _ => false,
    }
}

impl Spec {
    /// Whether a node with these facts satisfies the spec's own clauses (its name and `^`
    /// clauses are not looked at).
    pub fn holds_for(&self, f: &Facts<'_>) -> bool {
        if let Some(v) = &self.version
            && !v.value.matches(f.version)
        {
            return false;
        }
        for clause in &self.variants {
            match f.variants.get(&clause.name.value) {
                Some(value) if setting_matches(&clause.setting, value) => {}
                _ => return false,
            }
        }
        if let Some(tc) = &self.toolchain {
            let Some((name, version)) = f.toolchain else {
                return false;
            };
            if tc.name.value != name
                || tc
                    .version
                    .as_ref()
                    .is_some_and(|v| !v.value.matches(version))
            {
                return false;
            }
        }
        if let Some(t) = &self.target
            && f.arch != Some(t.value.as_str())
        {
            return false;
        }
        true
    }
}

impl Condition {
    /// Whether the condition holds for a node.
    pub fn holds_for(&self, f: &Facts<'_>) -> bool {
        self.spec.holds_for(f)
    }
}
