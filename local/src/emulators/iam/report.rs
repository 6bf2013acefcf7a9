//! The least-privilege report: per function, what its role was used for, what it grants that
//! nothing used, and what it was denied.
//!
//! IAM Access Analyzer tells unused access only after a deploy and weeks of traffic; here the
//! whole test suite is the traffic. A grant no request used is listed as **unused**: either the
//! code no longer needs it (remove it), or the suite never takes the path that does (test it),
//! or it is needed where the stack cannot see (say why in the function's
//! `Metadata.UnexercisedGrants`, action pattern → reason, and it is listed with that reason).
//! Grants SAM adds by itself (logs, tracing, event source pollers) are listed apart: the template
//! does not write them, and Lambda, not the code, uses most of them.
//!
//! `cargo local test` prints the text form, writes both forms under `target/`, and fails on any
//! denial; `GET /_local/iam/report` on the Invoke API serves the JSON of a running stack.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::{Value, json};

use super::authorizer::{Access, Mode};
use super::{Grant, Roles};

/// Prefix of the policy label of everything SAM adds to a role by itself.
const ADDED_BY_SAM: &str = "added by SAM";

#[derive(Debug, Clone)]
pub struct UnusedGrant {
    pub grant: Grant,
    /// From `Metadata.UnexercisedGrants`.
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FunctionReport {
    pub function: String,
    pub role: String,
    pub used: Vec<(Access, u64)>,
    /// Unused grants the template writes.
    pub unused: Vec<UnusedGrant>,
    /// Unused grants SAM adds.
    pub unused_by_sam: Vec<Grant>,
    /// Access, times, AWS's message.
    pub denied: Vec<(Access, u64, String)>,
    /// The same, while a test's template was put: expected, never a failure.
    pub denied_under_test_template: Vec<(Access, u64, String)>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub mode: Mode,
    pub functions: Vec<FunctionReport>,
}

type Denials = BTreeMap<String, Vec<(Access, u64, String)>>;

impl Report {
    pub(super) fn build(
        mode: Mode,
        roles: &Roles,
        used: &BTreeMap<String, BTreeMap<Access, u64>>,
        grants_used: &BTreeMap<String, BTreeSet<Grant>>,
        denied: Denials,
        denied_under_test_template: Denials,
    ) -> Self {
        let none = BTreeSet::new();
        let functions = roles
            .iter()
            .map(|role| {
                let exercised = grants_used.get(&role.function).unwrap_or(&none);
                let (by_sam, written): (Vec<Grant>, Vec<Grant>) = role
                    .grants()
                    .into_iter()
                    .filter(|g| !exercised.contains(g))
                    .partition(|g| g.statement.policy.starts_with(ADDED_BY_SAM));
                FunctionReport {
                    function: role.function.clone(),
                    role: role.assumed_role_arn(),
                    used: used
                        .get(&role.function)
                        .map(|m| m.iter().map(|(a, n)| (a.clone(), *n)).collect())
                        .unwrap_or_default(),
                    unused: written
                        .into_iter()
                        .map(|grant| UnusedGrant {
                            reason: role.unexercised_reasons.get(&grant.action_pattern).cloned(),
                            grant,
                        })
                        .collect(),
                    unused_by_sam: by_sam,
                    denied: denied.get(&role.function).cloned().unwrap_or_default(),
                    denied_under_test_template: denied_under_test_template
                        .get(&role.function)
                        .cloned()
                        .unwrap_or_default(),
                }
            })
            .collect();
        Self { mode, functions }
    }

    /// Requests denied (or, with `--iam soft`, that would have been).
    pub fn denials(&self) -> u64 {
        self.functions.iter().flat_map(|f| &f.denied).map(|(_, n, _)| n).sum()
    }

    /// Template grants unused and without a written reason.
    pub fn unexplained_unused(&self) -> usize {
        self.functions.iter().flat_map(|f| &f.unused).filter(|u| u.reason.is_none()).count()
    }

    pub fn to_json(&self) -> Value {
        let grant = |g: &Grant| json!({ "policy": g.statement.policy, "statement": g.statement.index, "action": g.action_pattern, "resource": g.resource_pattern });
        let denial = |(a, n, m): &(Access, u64, String)| json!({ "action": a.action, "resource": a.resource, "requests": n, "message": m });
        json!({
            "mode": format!("{:?}", self.mode).to_lowercase(),
            "denials": self.denials(),
            "unexplained_unused_grants": self.unexplained_unused(),
            "functions": self.functions.iter().map(|f| json!({
                "function": f.function,
                "role": f.role,
                "used": f.used.iter().map(|(a, n)| json!({ "action": a.action, "resource": a.resource, "calls": n })).collect::<Vec<_>>(),
                "unused": f.unused.iter().map(|u| { let mut g = grant(&u.grant); g["reason"] = json!(u.reason); g }).collect::<Vec<_>>(),
                "unused_added_by_sam": f.unused_by_sam.iter().map(grant).collect::<Vec<_>>(),
                "denied": f.denied.iter().map(denial).collect::<Vec<_>>(),
                "denied_under_test_template": f.denied_under_test_template.iter().map(denial).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// For people: one block per function.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "IAM least-privilege report (--iam {}): {} denied, {} unused grant(s) without a reason",
            format!("{:?}", self.mode).to_lowercase(),
            self.denials(),
            self.unexplained_unused()
        );
        for f in &self.functions {
            let _ = writeln!(out, "\n{}  ({})", f.function, f.role);
            for (a, n, _) in &f.denied {
                let _ = writeln!(out, "  ✗ DENIED  {} on {} ({n}×)", a.action, a.resource);
            }
            for (a, n, _) in &f.denied_under_test_template {
                let _ = writeln!(
                    out,
                    "  ✗ denied under a test's template (expected)  {} on {} ({n}×)",
                    a.action, a.resource
                );
            }
            for (a, n) in &f.used {
                let _ = writeln!(out, "  ✓ used    {} on {} ({n}×)", a.action, a.resource);
            }
            for u in &f.unused {
                let g = &u.grant;
                match &u.reason {
                    Some(reason) => {
                        let _ = writeln!(
                            out,
                            "  · unused  {} on {} — kept: {reason}",
                            g.action_pattern, g.resource_pattern
                        );
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "  ! unused  {} on {} ({} statement {}): remove it, test it, or give a reason in Metadata.UnexercisedGrants",
                            g.action_pattern, g.resource_pattern, g.statement.policy, g.statement.index
                        );
                    }
                }
            }
            if !f.unused_by_sam.is_empty() {
                let policies: BTreeSet<&str> = f.unused_by_sam.iter().map(|g| g.statement.policy.as_str()).collect();
                let _ = writeln!(
                    out,
                    "  · {} grant(s) SAM adds were not used by the code ({})",
                    f.unused_by_sam.len(),
                    policies.into_iter().collect::<Vec<_>>().join("; ")
                );
            }
        }
        out
    }
}
