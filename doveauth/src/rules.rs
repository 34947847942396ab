//! Who may create an account on first login: a pure decision over the request and config.

use chatmail_common::config::Config;
use chatmail_common::mailbox::Address;

/// Why a first login does not create an account. The text goes to the log (never the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("blocked account creation because {0} exists")]
    NoCreateFile(String),
    #[error("password needs to be at least {0} characters long")]
    PasswordTooShort(usize),
    #[error("localpart {local:?} has to be between {min} and {max} chars long")]
    LocalPartLength {
        local: String,
        min: usize,
        max: usize,
    },
    #[error("localpart {0:?} contains invalid characters")]
    LocalPartChars(String),
}

/// Checks the rules for a new account at `addr` (already known to be in our domain).
pub fn check_new_account(
    config: &Config,
    addr: &Address,
    password: &str,
    nocreate_exists: bool,
) -> Result<(), Refusal> {
    if nocreate_exists {
        return Err(Refusal::NoCreateFile(
            config.nocreate_file.display().to_string(),
        ));
    }
    if password.chars().count() < config.password_min_length {
        return Err(Refusal::PasswordTooShort(config.password_min_length));
    }
    let local = addr.local_part();
    let len = local.chars().count();
    if len < config.username_min_length || len > config.username_max_length {
        return Err(Refusal::LocalPartLength {
            local: local.to_string(),
            min: config.username_min_length,
            max: config.username_max_length,
        });
    }
    if !local
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(Refusal::LocalPartChars(local.to_string()));
    }
    Ok(())
}

/// True if `addr` belongs to this relay's domain.
pub fn in_domain(config: &Config, addr: &Address) -> bool {
    addr.domain().eq_ignore_ascii_case(&config.mail_domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra: &str) -> Config {
        let text = format!("[params]\nmail_domain = chat.example.org\n{extra}");
        Config::from_str(&text, Path::new("t.ini")).unwrap().0
    }

    fn check(c: &Config, addr: &str, pw: &str) -> Result<(), Refusal> {
        check_new_account(c, &Address::parse(addr).unwrap(), pw, false)
    }

    #[test]
    fn the_rules() {
        let c = config("");
        assert_eq!(check(&c, "abcdefghi@chat.example.org", "123456789"), Ok(()));
        assert_eq!(
            check(&c, "abcdefghi@chat.example.org", "12345678"),
            Err(Refusal::PasswordTooShort(9))
        );
        assert!(matches!(
            check(&c, "abcdefgh@chat.example.org", "123456789"),
            Err(Refusal::LocalPartLength { .. })
        ));
        for bad in ["Abcdefghi", "abcd+fghi", "abcd!fghi", "abcdéfgh"] {
            let addr = format!("{bad}@chat.example.org");
            assert!(check(&c, &addr, "123456789").is_err(), "{bad}");
        }
        assert_eq!(check(&c, "a.b_c-d99@chat.example.org", "123456789"), Ok(()));
        assert!(matches!(
            check_new_account(
                &c,
                &Address::parse("abcdefghi@chat.example.org").unwrap(),
                "123456789",
                true
            ),
            Err(Refusal::NoCreateFile(_))
        ));
    }

    #[test]
    fn length_bounds_are_inclusive() {
        let c = config("username_min_length = 6\nusername_max_length = 10\n");
        for (n, ok) in [(5, false), (6, true), (7, true), (10, true), (11, false)] {
            let addr = format!("{}@chat.example.org", "a".repeat(n));
            assert_eq!(check(&c, &addr, "123456789").is_ok(), ok, "{n}");
        }
    }

    #[test]
    fn domains() {
        let c = config("");
        assert!(in_domain(
            &c,
            &Address::parse("x@chat.example.org").unwrap()
        ));
        assert!(in_domain(
            &c,
            &Address::parse("x@Chat.Example.org").unwrap()
        ));
        assert!(!in_domain(&c, &Address::parse("x@example.org").unwrap()));
        let ip = Config::from_str("[params]\nmail_domain = 1.3.3.7\n", Path::new("t"))
            .unwrap()
            .0;
        assert!(in_domain(&ip, &Address::parse("x@[1.3.3.7]").unwrap()));
    }
}
