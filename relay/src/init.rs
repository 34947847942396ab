//! `chatmail-relay init DOMAIN`: a new `chatmail.ini`.

use std::path::Path;

use chatmail_common::config::Config;

use crate::Error;
use crate::cli::InitArgs;
use crate::plan::{FileSpec, on_disk};
use crate::render::{Values, render};
use crate::templates::CHATMAIL_INI;

pub fn run(root: &Path, path: &Path, args: &InitArgs) -> Result<(), Error> {
    if on_disk(root, path).exists() && !args.force {
        return Err(Error::Exists {
            path: path.to_path_buf(),
        });
    }
    let text = content(&args.domain, &args.set)?;
    // The file must read as every daemon will read it.
    Config::from_str(&text, path)?;
    let spec = FileSpec::new(path, text, 0o644);
    crate::apply::apply(root, &[&spec])?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The text of a new chatmail.ini: the template, `mail_domain` filled in, and each `KEY=VALUE`
/// of `set` replacing the key's line (a key commented out in the template is set in place).
pub fn content(domain: &str, set: &[String]) -> Result<String, Error> {
    let domain = crate::domain::check(domain)?;
    let mut values = Values::new();
    values.insert("MAIL_DOMAIN_BARE", domain);
    let mut text = render(CHATMAIL_INI, &values).map_err(|e| Error::Template {
        path: "chatmail.ini template".into(),
        reason: e.to_string(),
    })?;
    for arg in set {
        let bad = |reason: &str| Error::Set {
            arg: arg.clone(),
            reason: reason.to_string(),
        };
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad("not a key of chatmail.ini"));
        }
        if key == "mail_domain" {
            return Err(bad("the domain is init's argument"));
        }
        if value.contains('\n') {
            return Err(bad("the value is more than one line"));
        }
        let line = key_line(&text, key).ok_or_else(|| bad("not a key of chatmail.ini"))?;
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[line] = format!("{key} = {value}");
        text = lines.join("\n") + "\n";
    }
    Ok(text)
}

/// The index of the line that sets `key` (or has it commented out).
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines().position(|l| {
        let l = l.trim_start_matches(['#', ' ']);
        l.split_once('=').is_some_and(|(k, _)| k.trim() == key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Config {
        let (config, warnings) = Config::from_str(text, Path::new("chatmail.ini")).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        config
    }

    #[test]
    fn every_key_is_at_its_default() {
        for domain in ["chat.example.org", "203.0.113.5", "_chat.localhost"] {
            let text = content(domain, &[]).unwrap();
            let minimal = parsed(&format!("[params]\nmail_domain = {domain}\n"));
            assert_eq!(format!("{:?}", parsed(&text)), format!("{minimal:?}"));
        }
    }

    #[test]
    fn set_replaces_lines_and_refuses_unknown_keys() {
        let text = content(
            "chat.example.org",
            &[
                "max_load_1m = 1000".into(),
                "acme_email=ops@example.org".into(),
                "iroh_relay=https://iroh.example.org".into(),
            ],
        )
        .unwrap();
        let c = parsed(&text);
        assert_eq!(c.max_load_1m, 1000.0);
        assert_eq!(c.deployment.acme_email, "ops@example.org");
        assert_eq!(c.iroh_relay, "https://iroh.example.org");
        assert_eq!(text.matches("max_load_1m").count(), 1);
        for bad in [
            "max_load",
            "nokey=1",
            "mail_domain=x.org",
            "params=1",
            "=1",
            "# x=1",
        ] {
            assert!(content("chat.example.org", &[bad.into()]).is_err(), "{bad}");
        }
        assert!(content("not a domain", &[]).is_err());
    }
}
