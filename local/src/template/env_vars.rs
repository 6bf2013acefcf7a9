//! `env.local.json`: local values for a function's environment, in SAM's `--env-vars` format.
//!
//! ```json
//! { "Parameters": { "JWT_SECRET": "..." }, "LoginFunction": { "RUST_LOG": "debug" } }
//! ```
//!
//! `Parameters` applies to every function, a logical id to that function only (and wins). Like
//! `sam local`, only variables the function *declares* in the template are overridden: the
//! template stays the list of what a function can read, so a variable that exists only locally
//! cannot hide a missing declaration that would break the deployed function.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::template::Function;

#[derive(Debug, Clone, Default)]
pub struct EnvOverrides {
    all: BTreeMap<String, String>,
    per_function: BTreeMap<String, BTreeMap<String, String>>,
}

impl EnvOverrides {
    /// A missing file means "no overrides"; a malformed one is an error.
    pub fn load(path: &Path) -> Result<Self> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(Self::default());
        };
        let doc: BTreeMap<String, BTreeMap<String, Value>> =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let mut out = Self::default();
        for (section, vars) in doc {
            let vars = vars
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                .collect();
            if section == "Parameters" {
                out.all = vars;
            } else {
                out.per_function.insert(section, vars);
            }
        }
        Ok(out)
    }

    /// The function's declared environment with local overrides applied.
    pub fn apply(&self, function: &Function) -> BTreeMap<String, String> {
        let mut env = function.environment.clone();
        let own = self.per_function.get(&function.logical_id);
        for overrides in [Some(&self.all), own].into_iter().flatten() {
            for (k, v) in overrides {
                if let Some(slot) = env.get_mut(k) {
                    *slot = v.clone();
                }
            }
        }
        env
    }
}

/// The placeholder in `env.local.json` for the local API's base URL (e.g. `http://127.0.0.1:3000`),
/// known only once the stack picks its port: `"GATEWAY_URL": "${LocalApiUrl}"`.
pub const LOCAL_API_URL: &str = "${LocalApiUrl}";

/// Replaces [`LOCAL_API_URL`] in every value; left as is when the stack serves no API.
pub fn with_local_api_url(mut env: BTreeMap<String, String>, api_url: Option<&str>) -> BTreeMap<String, String> {
    if let Some(url) = api_url {
        for v in env.values_mut() {
            if v.contains(LOCAL_API_URL) {
                *v = v.replace(LOCAL_API_URL, url);
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_declared_variables_are_overridden() {
        let f = Function {
            logical_id: "Fn".into(),
            binary: "fn".into(),
            memory_mb: 128,
            timeout_secs: 3,
            environment: [("A".to_owned(), "template".to_owned()), ("B".to_owned(), "template".to_owned())].into(),
            routes: vec![],
            events: Default::default(),
        };
        let dir = std::env::temp_dir().join(format!("env-vars-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("env.json");
        std::fs::write(&path, r#"{"Parameters":{"A":"all","C":"x"},"Fn":{"B":"own"},"Other":{"A":"no"}}"#).unwrap();
        let env = EnvOverrides::load(&path).unwrap().apply(&f);
        assert_eq!(env["A"], "all");
        assert_eq!(env["B"], "own");
        assert!(!env.contains_key("C"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_local_api_url_placeholder_is_filled_in() {
        let env: BTreeMap<String, String> =
            [("W".to_owned(), "${LocalApiUrl}/webhooks/payment".to_owned()), ("X".to_owned(), "x".to_owned())].into();
        let out = with_local_api_url(env.clone(), Some("http://127.0.0.1:9"));
        assert_eq!(out["W"], "http://127.0.0.1:9/webhooks/payment");
        assert_eq!(out["X"], "x");
        assert_eq!(with_local_api_url(env.clone(), None), env);
    }

    #[test]
    fn the_notifier_links_to_the_local_storefront() {
        // The password-reset e-mail's link is `<STOREFRONT_URL>/#reset=<token>`; locally the
        // storefront is served at the API's root.
        let notifier = Function {
            logical_id: "NotifierFunction".into(),
            binary: "notifier".into(),
            memory_mb: 128,
            timeout_secs: 60,
            environment: [("STOREFRONT_URL".to_owned(), "https://shop.example.com".to_owned())].into(),
            routes: vec![],
            events: Default::default(),
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../env.local.json");
        let env = EnvOverrides::load(&path).unwrap().apply(&notifier);
        let env = with_local_api_url(env, Some("http://127.0.0.1:9"));
        assert_eq!(env["STOREFRONT_URL"], "http://127.0.0.1:9");
    }
}
