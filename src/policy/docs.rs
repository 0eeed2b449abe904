//! The codes reference (`docs/codes.md`), generated from `policies/codes.json` and the built-in
//! policies, so the page cannot drift from what cabgate reports. A test compares the committed
//! page with [`codes_markdown`].

use std::fmt::Write as _;

use crate::finding::catalogue;

use super::engine::BUILTIN_POLICIES;

/// The built-in policy files that produce `code` (a `"code": "…"` literal in their source).
pub fn producers(code: &str) -> Vec<&'static str> {
    let literal = format!("\"code\": \"{code}\"");
    BUILTIN_POLICIES
        .iter()
        .filter(|(_, text)| text.contains(&literal))
        .map(|(path, _)| *path)
        .collect()
}

/// Every code a built-in policy can produce, in source order, each once.
pub fn produced_codes() -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for (_, text) in BUILTIN_POLICIES {
        for piece in text.split("\"code\": \"").skip(1) {
            let code = piece.split('"').next().unwrap_or("").to_owned();
            if !code.is_empty() && !codes.contains(&code) {
                codes.push(code);
            }
        }
    }
    codes
}

/// `docs/codes.md`.
pub fn codes_markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "<!-- Generated from policies/codes.json and policies/*.rego: do not edit by hand.\n     \
         Regenerate with `CABGATE_BLESS=1 cargo test --test it policy::codes_reference`. -->\n\
         # Finding codes\n\n\
         Every finding `cabgate lint` and `cabgate check` report carries one of these codes. Codes \
         are API:\nthey are never renamed, so CI rules, waivers and dashboards may rely on them. \
         User policies\n(`--policy DIR`) may add codes of their own (docs/policies.md).\n\n\
         Severity is the default; `error` fails the run, `warning` fails it with \
         `--fail-on warning`.\nA finding can be waived in the spec (`waivers`: code, resource, \
         reason, expires).\n\n| code | severity | title |\n|---|---|---|\n",
    );
    for info in catalogue() {
        let anchor = info.code.replace('/', "");
        let _ = writeln!(
            out,
            "| [`{}`](#{anchor}) | {} | {} |",
            info.code,
            info.severity.as_str(),
            info.title
        );
    }
    for info in catalogue() {
        let _ = write!(
            out,
            "\n## {}\n\n**{}** — {}\n\n{}\n\n**Fix:** {}.\n",
            info.code,
            info.severity.as_str(),
            info.title,
            info.description,
            info.remediation
        );
        let from = producers(&info.code);
        if info.code == "spec/schema" {
            out.push_str("\nReported by the spec loader (`cabgate lint`, `cabgate check`).\n");
        } else if !from.is_empty() {
            let files: Vec<String> = from.iter().map(|f| format!("`{f}`")).collect();
            let _ = writeln!(out, "\nReported by {}.", files.join(", "));
        }
    }
    out
}
