//! `cargo local mail`: the e-mail a running stack sent (the SES emulator's record, read through
//! the Invoke API's `/_local/mail`), printed for a terminal. A command over the stack: a client
//! of its HTTP API only.

use anyhow::{Context, Result};

/// `cargo local mail`: prints the mail a running stack sent, read through its Invoke API.
pub async fn run(url: String, last: Option<usize>) -> Result<std::process::ExitCode> {
    let url = format!("{}/_local/mail", url.trim_end_matches('/'));
    let mail: Vec<crate::emulators::ses::SentMail> = reqwest::get(&url)
        .await
        .with_context(|| format!("GET {url} (is `cargo local up` running?)"))?
        .error_for_status()?
        .json()
        .await?;
    let skip = last.map_or(0, |n| mail.len().saturating_sub(n));
    for m in &mail[skip..] {
        println!("━━ {} → {}\n   {}\n", m.from, m.to.join(", "), m.subject);
        println!("{}\n", strip_tags(&m.body));
    }
    eprintln!("{} e-mail(s) sent by the local stack", mail.len());
    Ok(std::process::ExitCode::SUCCESS)
}

/// A terminal-friendly view of an HTML body: tags dropped, blank lines squeezed.
fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let lines: Vec<&str> = out.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.iter().map(|l| format!("   {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn strip_tags_keeps_the_text() {
        assert_eq!(super::strip_tags("<h1>Hi</h1>\n\n<p>there &amp; you</p>"), "   Hi\n   there &amp; you");
    }
}
