//! The HTML pages: the invite page, limits and retention, privacy.
//!
//! Plain HTML5 with inline CSS and no JavaScript (the Content-Security-Policy allows nothing
//! else). Every value from `chatmail.ini` or a link goes through [`escape`].

use std::fmt::Write;

use chatmail_common::config::Config;

/// What the invite page offers.
#[derive(Debug)]
pub enum Invite {
    /// `nocreate_file` exists: no new accounts.
    Closed,
    /// The invite link and its QR code (an `<svg>` element).
    Open { link: String, svg: String },
}

/// `s` with the characters that mean something in HTML text and attribute values replaced.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
:root{color-scheme:light dark}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;\
background:#f3f4f6;color:#1f2328}\
main{max-width:34rem;margin:0 auto;padding:1.5rem 1rem 1rem}\
h1{font-size:1.6rem;margin:.25rem 0 1rem;overflow-wrap:anywhere}\
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}\
.card{background:#fff;border-radius:14px;padding:1.25rem;box-shadow:0 1px 4px rgba(0,0,0,.1)}\
.lead{margin-top:0}\
.qr{display:block;margin:0 auto 1rem;max-width:300px}\
.qr svg{display:block;width:100%;height:auto;border-radius:6px}\
.button{display:block;text-align:center;background:#2563eb;color:#fff;text-decoration:none;\
padding:.8rem 1rem;border-radius:10px;font-weight:600}\
.link{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere;\
background:#f3f4f6;color:#4b5563;padding:.6rem;border-radius:8px}\
ul{padding-left:1.2rem}li{margin:.3rem 0}\
a{color:#2563eb}\
footer{max-width:34rem;margin:0 auto;padding:0 1rem 2rem;font-size:.9rem;color:#6b7280}\
footer a{color:inherit;margin-right:1rem}\
@media (prefers-color-scheme:dark){body{background:#111827;color:#e5e7eb}\
.card{background:#1f2937;box-shadow:none}.link{background:#111827;color:#9ca3af}\
a{color:#93c5fd}footer{color:#9ca3af}}";

/// A whole page around `body` (HTML), titled `title` (text).
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n\
         <footer><a href=\"./\">Invite</a><a href=\"info.html\">Limits and retention</a>\
         <a href=\"privacy.html\">Privacy</a></footer>\n</body>\n</html>\n",
        escape(title)
    )
}

/// The invite page.
pub fn index(config: &Config, invite: &Invite) -> String {
    let domain = escape(&config.mail_domain);
    let mut body = format!("<h1>{domain}</h1>\n<div class=\"card\">\n");
    match invite {
        Invite::Closed => {
            body.push_str(
                "<p class=\"lead\">This relay does not accept new accounts at the moment. \
                 Existing accounts keep working.</p>\n",
            );
        }
        Invite::Open { link, svg } => {
            let link = escape(link);
            let _ = write!(
                body,
                "<p class=\"lead\">A chatmail relay for <a href=\"https://delta.chat\">Delta \
                 Chat</a>: get an address here in one step, no phone number, no e-mail \
                 address, no personal data.</p>\n\
                 <a class=\"qr\" href=\"{link}\">{svg}</a>\n\
                 <a class=\"button\" href=\"{link}\">Get an account on {domain}</a>\n\
                 <p>How it works: scan the code with Delta Chat on your phone (when creating \
                 a profile, or with \u{201c}Scan QR code\u{201d}), or tap the button on the \
                 device where Delta Chat is installed. Delta Chat then sets up a new profile \
                 with a random address on {domain}; the address comes into existence at its \
                 first login.</p>\n\
                 <p class=\"link\">{link}</p>\n"
            );
        }
    }
    body.push_str("</div>\n");
    page(&config.mail_domain, &body)
}

/// `bytes` in MB (2^20 bytes), without a fraction when whole.
fn megabytes(bytes: u64) -> String {
    const MB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else {
        format!("{:.1} MB", bytes as f64 / MB as f64)
    }
}

/// `n day(s)`.
fn days(n: u32) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

/// Limits and retention.
pub fn info(config: &Config) -> String {
    let domain = escape(&config.mail_domain);
    let body = format!(
        "<h1>{domain}: limits and retention</h1>\n<div class=\"card\">\n\
         <p class=\"lead\">This relay stores and forwards messages between Delta Chat \
         devices. It is not a mail archive: messages are meant to be fetched by your devices \
         and are removed from the relay soon after.</p>\n\
         <h2>End-to-end encryption only</h2>\n\
         <p>The relay carries only end-to-end encrypted messages, to and from other relays \
         alike. Unencrypted mail is refused, apart from the few set-up messages Delta Chat \
         exchanges when two people first connect.</p>\n\
         <h2>Limits</h2>\n<ul>\n\
         <li>A single message may be up to {size}.</li>\n\
         <li>Each address may keep up to {mailbox} of messages on the relay; beyond that, \
         the oldest are removed first.</li>\n\
         <li>Each address may send up to {rate} messages per minute.</li>\n</ul>\n\
         <h2>Retention</h2>\n<ul>\n\
         <li>Every message is removed {mails} after it arrived, at the latest, whether or \
         not a device has fetched it.</li>\n\
         <li>Messages larger than 200 kB that a device has already fetched are removed after \
         {large}.</li>\n\
         <li>An address that has not logged in for {inactive} is deleted, with everything \
         stored for it. Removing the profile from all your devices therefore deletes the \
         account in time.</li>\n</ul>\n</div>\n",
        size = megabytes(config.max_message_size),
        mailbox = escape(&format!("{} MB", config.max_mailbox_size_mb)),
        rate = config.max_user_send_per_minute,
        mails = days(config.delete_mails_after),
        large = days(config.delete_large_after),
        inactive = days(config.delete_inactive_users_after),
    );
    page(
        &format!("{}: limits and retention", config.mail_domain),
        &body,
    )
}

/// The privacy statement.
pub fn privacy(config: &Config) -> String {
    let domain = escape(&config.mail_domain);
    let d = &config.deployment;
    let contacts: Vec<(&str, &Option<String>)> = vec![
        ("Operator (postal address)", &d.privacy_postal),
        ("Contact by e-mail", &d.privacy_mail),
        ("Data protection officer", &d.privacy_pdo),
        ("Supervisory authority", &d.privacy_supervisor),
    ];
    let mut contact = String::new();
    for (label, value) in contacts {
        if let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            // Multi-line values (a postal address) keep their lines.
            let lines: Vec<String> = value.lines().map(|l| escape(l.trim())).collect();
            let _ = writeln!(
                contact,
                "<li><strong>{label}:</strong><br>{}</li>",
                lines.join("<br>")
            );
        }
    }
    let contact = if contact.is_empty() {
        String::from("<p>The operator of this relay has not published contact details here.</p>\n")
    } else {
        format!("<ul>\n{contact}</ul>\n")
    };
    let body = format!(
        "<h1>{domain}: privacy</h1>\n<div class=\"card\">\n\
         <p class=\"lead\">This relay asks for no personal data: no name, no phone number, \
         no other e-mail address. It exists to pass end-to-end encrypted messages between \
         devices, and it cannot read them.</p>\n\
         <h2>What is stored</h2>\n<ul>\n\
         <li>Your address, which the relay drew at random, and a hash of your password \
         (never the password itself).</li>\n\
         <li>The date of your last login, to delete addresses nobody uses any more.</li>\n\
         <li>Push notification tokens of your devices, if Delta Chat registers them, so \
         that your phone learns of new messages; the notification itself carries no \
         content.</li>\n\
         <li>Your messages, encrypted end to end, until your devices have fetched them, and \
         at most {mails}.</li>\n</ul>\n\
         <h2>What is not stored</h2>\n\
         <p>Message content is never logged. The service logs kept for operating the relay \
         are short-lived and do not record what you write.</p>\n\
         <h2>Deletion</h2>\n\
         <p>An address that has not logged in for {inactive} is deleted with all data \
         stored for it.</p>\n\
         <h2>Who runs this relay</h2>\n{contact}</div>\n",
        mails = days(config.delete_mails_after),
        inactive = days(config.delete_inactive_users_after),
    );
    page(&format!("{}: privacy", config.mail_domain), &body)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!("[params]\nmail_domain = chat.example.org\n{extra}");
        Config::from_str(&text, Path::new("chatmail.ini"))
            .unwrap()
            .0
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain ü"), "plain ü");
    }

    #[test]
    fn invite_page_shows_link_and_code() {
        let link = "dclogin:a@b?p=x&y=<z>";
        let html = index(
            &config(""),
            &Invite::Open {
                link: link.into(),
                svg: "<svg></svg>".into(),
            },
        );
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg></svg>"));
        assert!(html.contains(r#"href="dclogin:a@b?p=x&amp;y=&lt;z&gt;""#));
        assert!(!html.contains("<z>"));
        assert!(html.contains("chat.example.org"));
        assert!(html.contains(r#"href="info.html""#) && html.contains(r#"href="privacy.html""#));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn closed_invite_page_has_no_link() {
        let html = index(&config(""), &Invite::Closed);
        assert!(html.contains("does not accept new accounts"));
        assert!(!html.contains("<svg") && !html.contains("dclogin:"));
    }

    #[test]
    fn info_shows_the_limits() {
        let html = info(&config(
            "max_message_size = 31457280\ndelete_mails_after = 20\n\
             max_user_send_per_minute = 60\ndelete_inactive_users_after = 90\n",
        ));
        for s in [
            "30 MB",
            "20 days",
            "60 messages per minute",
            "90 days",
            "encrypted",
        ] {
            assert!(html.contains(s), "{s}");
        }
        assert_eq!(megabytes(1_000_000), "1.0 MB");
        assert_eq!(days(1), "1 day");
    }

    #[test]
    fn privacy_shows_contacts_escaped() {
        let html = privacy(&config(
            "privacy_mail = <ops@example.org>\nprivacy_supervisor = Authority & Co\n",
        ));
        assert!(html.contains("&lt;ops@example.org&gt;"));
        assert!(html.contains("Authority &amp; Co"));
        assert!(!html.contains("Data protection officer"));
        let none = privacy(&config(""));
        assert!(none.contains("not published contact details"));
        assert!(none.contains("password"));
    }
}
