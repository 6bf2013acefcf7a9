//! The cargo workspace: where it is, and building the function binaries.
//!
//! `cargo metadata` is the authority on both: it knows the workspace root, the target directory
//! (honouring `CARGO_TARGET_DIR`) and which package owns each binary target, so the template's
//! `Metadata.BuildProperties.Binary` is all a function needs to declare.
//!
//! The local stack runs binaries of the [`PROFILE`] profile (`local`: optimised, built fast); the
//! `release` profile is what `sam build` deploys (small: fat LTO, one codegen unit, `opt-level =
//! "s"`), built here only when the benchmark measures it ([`Workspace::build_deployed`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::progress::Step;

/// The cargo profile the local stack, the tests and CI build and run.
pub const PROFILE: &str = "local";
/// The profile `sam build` deploys (`cargo lambda build --release`).
pub const DEPLOY_PROFILE: &str = "release";

pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// Binary target name → package name.
    bin_packages: BTreeMap<String, String>,
}

/// A command for the `cargo` that runs us (cargo sets `$CARGO` for `cargo run`), else the one
/// on PATH, without the package variables `cargo run` gave us (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, …). They describe this crate, not the build we ask for, and a build script
/// that watches one of them (ring's watches `CARGO_MANIFEST_DIR`) would see it change between
/// a build from the shell and one from here, and have cargo rebuild ring and the whole AWS SDK
/// above it each time: minutes on two cores, twice per `cargo local test`.
pub fn cargo_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_") || name == "CARGO_MANIFEST_DIR" || name == "CARGO_MANIFEST_PATH" {
            cmd.env_remove(&*name);
        }
    }
    cmd
}

impl Workspace {
    pub async fn locate() -> Result<Self> {
        // Run from the workspace this crate belongs to, whatever the caller's directory.
        let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let output = cargo_command()
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(&manifest_dir)
            .stderr(Stdio::inherit())
            .output()
            .await
            .context("running cargo metadata")?;
        if !output.status.success() {
            bail!("cargo metadata failed ({})", output.status);
        }
        let meta: Value = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
        let path = |key: &str| meta.get(key).and_then(Value::as_str).map(PathBuf::from).context("cargo metadata field");
        let mut bin_packages = BTreeMap::new();
        for package in meta.get("packages").and_then(Value::as_array).into_iter().flatten() {
            let name = package.get("name").and_then(Value::as_str).unwrap_or_default();
            for target in package.get("targets").and_then(Value::as_array).into_iter().flatten() {
                let is_bin = target.get("kind").and_then(Value::as_array).is_some_and(|k| k.iter().any(|k| k == "bin"));
                if is_bin && let Some(bin) = target.get("name").and_then(Value::as_str) {
                    bin_packages.insert(bin.to_owned(), name.to_owned());
                }
            }
        }
        Ok(Self { root: path("workspace_root")?, target_dir: path("target_directory")?, bin_packages })
    }

    /// A binary of `profile` (cargo's `target/<profile>/`).
    pub fn binary_of(&self, profile: &str, binary: &str) -> PathBuf {
        self.target_dir.join(profile).join(binary)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.target_dir.join("local-logs")
    }

    /// Builds the given function binaries, with a spinner that shows what cargo is doing; on
    /// failure cargo's full output is printed.
    ///
    /// It builds every target of the workspace (`--workspace --all-targets`) rather than
    /// `-p <pkg>` each: cargo unifies dependency features over what it is asked to build, so a
    /// narrower selection compiles the AWS SDK once more with a slightly different feature set
    /// than the test run (`cargo nextest run --workspace`) does — minutes on two cores, for
    /// nothing. With the same selection, the test run finds everything already built.
    pub async fn build(&self, binaries: &[&str]) -> Result<()> {
        self.build_profile(PROFILE, binaries, &["--workspace", "--all-targets"]).await
    }

    /// Builds `binaries` as they are deployed: the [`DEPLOY_PROFILE`], only their packages (so
    /// cargo unifies features over the functions, not over the local stack and the tests as a
    /// workspace build would), for the host (`arm64: false`) or, with `cargo lambda build
    /// --release --arm64` (what `sam build` runs), for arm64 into `target/lambda/<binary>/bootstrap`.
    pub async fn build_deployed(&self, binaries: &[&str], arm64: bool) -> Result<()> {
        let mut cmd = cargo_command();
        let shown = match arm64 {
            false => {
                cmd.args(["build", "--profile", DEPLOY_PROFILE, "--bins"]);
                format!("cargo build --profile {DEPLOY_PROFILE} --bins -p …")
            }
            true => {
                cmd.args(["lambda", "build", "--release", "--arm64", "--bins"]);
                "cargo lambda build --release --arm64 -p …".to_owned()
            }
        };
        cmd.args(self.package_args(binaries)?);
        self.run_build(cmd, binaries, &shown).await
    }

    fn package(&self, bin: &str) -> Result<&str> {
        self.bin_packages
            .get(bin)
            .map(String::as_str)
            .with_context(|| format!("no package in the workspace has a binary target named `{bin}`"))
    }

    /// `-p <package>` for each binary's package, each package once.
    fn package_args(&self, binaries: &[&str]) -> Result<Vec<String>> {
        let mut packages: Vec<&str> = binaries.iter().map(|b| self.package(b)).collect::<Result<_>>()?;
        packages.sort_unstable();
        packages.dedup();
        Ok(packages.into_iter().flat_map(|p| ["-p".to_owned(), p.to_owned()]).collect())
    }

    /// Builds `binaries` with `profile`, with `selection` as cargo's package/target arguments.
    pub async fn build_profile(&self, profile: &str, binaries: &[&str], selection: &[&str]) -> Result<()> {
        for bin in binaries {
            self.package(bin)?;
        }
        let mut cmd = cargo_command();
        cmd.args(["build", "--profile", profile]).args(selection);
        self.run_build(cmd, binaries, &format!("cargo build --profile {profile} {}", selection.join(" "))).await
    }

    /// Runs a cargo build, with a spinner that shows what cargo is doing; on failure cargo's full
    /// output is printed.
    async fn run_build(&self, mut cmd: tokio::process::Command, binaries: &[&str], shown: &str) -> Result<()> {
        cmd.current_dir(&self.root);
        let step = Step::start(format!("building {} ({shown})", binaries.join(", ")));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {shown}"))?;
        let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let mut transcript = Vec::new();
        while let Some(line) = lines.next_line().await? {
            let trimmed = line.trim();
            if trimmed.starts_with("Compiling") || trimmed.starts_with("Blocking") {
                step.detail(trimmed);
            }
            transcript.push(line);
        }
        let status = child.wait().await?;
        if !status.success() {
            step.fail();
            eprintln!("{}", transcript.join("\n"));
            bail!("{shown} failed ({status})");
        }
        step.done();
        Ok(())
    }
}
