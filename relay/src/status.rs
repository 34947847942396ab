//! `chatmail-relay status`: the relay on one screen; non-zero exit when something is down.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};

use chatmail_common::config::Config;

use crate::Error;
use crate::plan::on_disk;
use crate::systemd::{COTURN, DOVECOT, IROH_RELAY, NGINX, POSTFIX, SERVICES, SOCKETS, TIMERS};
use crate::tls;

/// A certificate closer to its end than this is a problem (renewal starts at 30 days).
pub const CERT_WARN_DAYS: i64 = 14;

const EXPIRE_SERVICE: &str = "chatmail-expire.service";

/// One line of the report, and whether it is a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub label: String,
    pub text: String,
    pub problem: bool,
}

impl Line {
    fn new(label: impl Into<String>, text: impl Into<String>, problem: bool) -> Line {
        Line {
            label: label.into(),
            text: text.into(),
            problem,
        }
    }
}

pub fn run(root: &Path, path: &Path) -> Result<ExitCode, Error> {
    let (mut config, _) = Config::read(&on_disk(root, path))?;
    config.path = path.to_path_buf();
    let now = chatmail_common::unix_time::now();
    let mut lines = Vec::new();
    let turn = config.turn_secret_file.is_some();
    lines.extend(units(turn, config.deployment.enable_iroh_relay));
    lines.push(ports(root, turn));
    lines.push(certificate(root, &config, now));
    if config.deployment.tls_cert_mode == chatmail_common::config::TlsCertMode::Acme {
        lines.push(renewal(root, &config));
    }
    lines.push(queue(root));
    lines.push(accounts(root, &config));
    lines.push(last_expiry());
    print!("{}", report(&config, &lines));
    Ok(if lines.iter().any(|l| l.problem) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The report as text: a heading, one aligned line per item, problems marked.
pub fn report(config: &Config, lines: &[Line]) -> String {
    let mut out = format!(
        "chatmail relay {} ({})\n",
        config.mail_domain,
        config.path.display()
    );
    let width = lines.iter().map(|l| l.label.len()).max().unwrap_or(0);
    for l in lines {
        let mark = if l.problem { "!!" } else { "  " };
        let _ = writeln!(out, "{mark} {:width$}  {}", l.label, l.text);
    }
    let problems = lines.iter().filter(|l| l.problem).count();
    if problems > 0 {
        let _ = writeln!(out, "{problems} problem(s), marked !!");
    }
    out
}

/// `systemctl show` of the relay's units: each unit's state (coturn's too, with `turn`, and
/// the iroh relay's with `iroh`).
fn units(turn: bool, iroh: bool) -> Vec<Line> {
    let mut names: Vec<&str> = SERVICES.to_vec();
    names.extend(SOCKETS);
    names.extend(TIMERS);
    names.extend([POSTFIX, DOVECOT, NGINX]);
    if turn {
        names.push(COTURN);
    }
    if iroh {
        names.push(IROH_RELAY);
    }
    let mut args = vec!["show", "-p", "Id,ActiveState,SubState"];
    args.extend(&names);
    match Command::new("systemctl").args(&args).output() {
        Ok(out) if out.status.success() => {
            parse_units(&String::from_utf8_lossy(&out.stdout), &names)
        }
        Ok(out) => vec![Line::new(
            "units",
            format!("systemctl: {}", String::from_utf8_lossy(&out.stderr).trim()),
            true,
        )],
        Err(e) => vec![Line::new("units", format!("systemctl: {e}"), true)],
    }
}

/// Units from `systemctl show -p Id,ActiveState,SubState` (blocks separated by blank lines):
/// active is fine, and so is a oneshot service that is inactive (timers start them).
pub fn parse_units(text: &str, expected: &[&str]) -> Vec<Line> {
    let mut lines = Vec::new();
    for block in text.split("\n\n") {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or("")
        };
        let id = field("Id");
        if id.is_empty() {
            continue;
        }
        let (active, sub) = (field("ActiveState"), field("SubState"));
        lines.push(Line::new(
            id,
            format!("{active} ({sub})"),
            active != "active",
        ));
    }
    for name in expected {
        if !lines.iter().any(|l| l.label == *name) {
            lines.push(Line::new(*name, "unknown to systemd", true));
        }
    }
    lines
}

/// The relay's TCP ports (and coturn's 3478, with `turn`): something listens on each.
fn ports(root: &Path, turn: bool) -> Line {
    let proc = root.join("proc");
    let mut ports = crate::ports::RELAY_PORTS.to_vec();
    if turn {
        ports.push(crate::turn::PORT);
    }
    let closed: Vec<String> = ports
        .iter()
        .filter(|p| !crate::ports::is_listening(&proc, **p))
        .map(|p| p.to_string())
        .collect();
    let all: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    if closed.is_empty() {
        Line::new("ports", format!("listening: {}", all.join(", ")), false)
    } else {
        Line::new(
            "ports",
            format!("nothing listens on {}", closed.join(", ")),
            true,
        )
    }
}

/// The certificate Postfix and Dovecot use: its end, a problem within [`CERT_WARN_DAYS`].
pub fn certificate(root: &Path, config: &Config, now: i64) -> Line {
    let (cert, _) = tls::paths(config);
    let text = match std::fs::read(on_disk(root, &cert)) {
        Ok(pem) => tls::read_cert(&pem),
        Err(e) => Err(e.to_string()),
    };
    match text {
        Ok(info) => {
            let days = (info.not_after - now).div_euclid(86_400);
            let problem = days < CERT_WARN_DAYS;
            let when = if days < 0 {
                format!("expired {} days ago", -days)
            } else {
                format!("expires in {days} days")
            };
            Line::new(
                "certificate",
                format!("{}: {when}", cert.display()),
                problem,
            )
        }
        Err(e) => Line::new("certificate", format!("{}: {e}", cert.display()), true),
    }
}

/// The ACME certificate's last renewal: a failure is a problem (the daily timer tries again;
/// the certificate line turns into one only 14 days before the end).
fn renewal(root: &Path, config: &Config) -> Line {
    match crate::acme::status(root, config).last_error {
        Some(e) => Line::new(
            "renewal",
            format!("failed at {}: {}", crate::cert::utc(e.at), e.message),
            true,
        ),
        None => Line::new(
            "renewal",
            "no failure (chatmail-relay-certs.timer, daily)",
            false,
        ),
    }
}

/// Messages in Postfix's queue directories (deferred ones counted apart).
fn queue(root: &Path) -> Line {
    let spool = on_disk(root, Path::new("/var/spool/postfix"));
    let count = |dir: &str| count_files(&spool.join(dir));
    let deferred = count("deferred");
    let waiting = ["maildrop", "incoming", "active", "hold"]
        .iter()
        .map(|d| count(d))
        .sum::<usize>();
    Line::new(
        "queue",
        format!("{} messages ({deferred} deferred)", waiting + deferred),
        false,
    )
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// Accounts: mailbox directories with a password.
fn accounts(root: &Path, config: &Config) -> Line {
    let dir = on_disk(root, &config.mailboxes_dir);
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let n = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains('@'))
                .filter(|e| e.path().join("password").exists())
                .count();
            Line::new(
                "accounts",
                format!("{n} (in {})", config.mailboxes_dir.display()),
                false,
            )
        }
        Err(e) => Line::new(
            "accounts",
            format!("{}: {e}", config.mailboxes_dir.display()),
            true,
        ),
    }
}

/// The last run of the daily expiry: when, and whether it succeeded.
fn last_expiry() -> Line {
    let out = Command::new("systemctl")
        .args([
            "show",
            "-p",
            "Result,ExecMainExitTimestamp,ExecMainStatus",
            EXPIRE_SERVICE,
        ])
        .output();
    match out {
        Ok(out) if out.status.success() => parse_last_expiry(&String::from_utf8_lossy(&out.stdout)),
        _ => Line::new("last expiry", "systemctl failed", true),
    }
}

pub fn parse_last_expiry(text: &str) -> Line {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
    };
    let when = field("ExecMainExitTimestamp");
    if when.is_empty() || when == "n/a" {
        return Line::new("last expiry", "not run yet (daily timer)", false);
    }
    let result = field("Result");
    Line::new(
        "last expiry",
        format!("{when}: {result}"),
        result != "success",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_read_from_systemctl_show() {
        let text = "Id=a.service\nActiveState=active\nSubState=running\n\n\
                    Id=b.socket\nActiveState=failed\nSubState=failed\n";
        let lines = parse_units(text, &["a.service", "b.socket", "c.timer"]);
        assert_eq!(lines[0], Line::new("a.service", "active (running)", false));
        assert_eq!(lines[1], Line::new("b.socket", "failed (failed)", true));
        assert_eq!(lines[2], Line::new("c.timer", "unknown to systemd", true));
    }

    #[test]
    fn expiry_runs() {
        assert!(!parse_last_expiry("Result=success\nExecMainExitTimestamp=\n").problem);
        let ok = parse_last_expiry(
            "Result=success\nExecMainExitTimestamp=Sun 2026-12-06 00:02:03 UTC\n",
        );
        assert!(!ok.problem && ok.text.contains("2026-12-06"));
        assert!(
            parse_last_expiry(
                "Result=exit-code\nExecMainExitTimestamp=Sun 2026-12-06 00:02:03 UTC\n"
            )
            .problem
        );
    }

    #[test]
    fn certificates_close_to_their_end_are_problems() {
        let root = tempfile::tempdir().unwrap();
        let text = "[params]\nmail_domain = _chat.test\n";
        let (config, _) = Config::from_str(text, Path::new("chatmail.ini")).unwrap();
        let line = certificate(root.path(), &config, 0);
        assert!(line.problem, "missing");
        let (cert, _) = tls::paths(&config);
        let path = on_disk(root.path(), &cert);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let (pem, _) = tls::self_signed(&["_chat.test".to_string()]).unwrap();
        std::fs::write(&path, pem.as_bytes()).unwrap();
        let end = tls::read_cert(pem.as_bytes()).unwrap().not_after;
        assert!(!certificate(root.path(), &config, end - 30 * 86_400).problem);
        let soon = certificate(root.path(), &config, end - 3 * 86_400);
        assert!(
            soon.problem && soon.text.contains("expires in 3 days"),
            "{soon:?}"
        );
        assert!(
            certificate(root.path(), &config, end + 86_400)
                .text
                .contains("expired")
        );
    }
}
