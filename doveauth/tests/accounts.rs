//! Account lookups and creation over the real dict socket.

mod common;

use chatmail_common::unix_time;
use common::{DOMAIN, Daemon, record};

#[test]
fn first_login_creates_and_lookups_agree() {
    let d = Daemon::start("");
    let mut c = d.connect();
    let user = format!("abcdefghi@{DOMAIN}");
    assert_eq!(c.userdb(&user), "N\n");
    let created = record(&c.passdb(&user, "correct horse"));
    assert_eq!(created["addr"], user.as_str());
    assert_eq!(
        created["home"],
        d.mailboxes.join(&user).display().to_string()
    );
    assert_eq!(created["uid"], "vmail");
    assert_eq!(created["gid"], "vmail");
    let hash = created["password"].as_str().unwrap().to_string();
    assert!(hash.starts_with("{SHA512-CRYPT}$6$"));
    assert!(chatmail_doveauth::password::verify("correct horse", &hash));
    assert_eq!(record(&c.userdb(&user)), created);
    assert!(d.mailboxes.join(&user).join("enforceE2EEincoming").exists());
    // a wrong password later never replaces the stored one
    assert_eq!(record(&c.passdb(&user, "wrong password")), created);
    assert_eq!(
        std::fs::read_to_string(d.password_file(&user)).unwrap(),
        hash
    );
    assert!(d.log().contains(&format!("Created address: {user}")));
}

#[test]
fn passwords_with_quotes_and_backslashes() {
    let d = Daemon::start("");
    let mut c = d.connect();
    let user = format!("quotetest@{DOMAIN}");
    let pw = r#"laksjd\sjd"12j'3l/k2"#;
    let rec = record(&c.passdb(&user, pw));
    assert!(chatmail_doveauth::password::verify(
        pw,
        rec["password"].as_str().unwrap()
    ));
    // tabs and newlines arrive dict-escaped
    let user2 = format!("tabtest12@{DOMAIN}");
    let rec = record(&c.request(&format!(
        "Lshared/passdb/a\x01tb\x01nc123456\"{user2}\t{user2}\n"
    )));
    assert!(chatmail_doveauth::password::verify(
        "a\tb\nc123456",
        rec["password"].as_str().unwrap()
    ));
}

#[test]
fn creation_rules_refuse_with_a_logged_reason() {
    let d = Daemon::start("");
    let mut c = d.connect();
    assert_eq!(c.passdb(&format!("shortpass@{DOMAIN}"), "12345678"), "N\n");
    assert_eq!(c.passdb(&format!("short@{DOMAIN}"), "123456789"), "N\n");
    assert_eq!(
        c.passdb(&format!("waytoolong@{DOMAIN}"), "123456789"),
        "N\n"
    );
    assert_eq!(c.passdb(&format!("Uppercase@{DOMAIN}"), "123456789"), "N\n");
    assert_eq!(c.passdb(&format!("plus+tags@{DOMAIN}"), "123456789"), "N\n");
    assert_eq!(c.passdb("abcdefghi@other.example.org", "123456789"), "N\n");
    std::fs::write(&d.nocreate, "").unwrap();
    assert_eq!(c.passdb(&format!("nocreate1@{DOMAIN}"), "123456789"), "N\n");
    std::fs::remove_file(&d.nocreate).unwrap();
    assert!(
        c.passdb(&format!("nocreate1@{DOMAIN}"), "123456789")
            .starts_with('O')
    );
    let log = d.log();
    assert!(
        log.contains("password needs to be at least 9 characters long"),
        "{log}"
    );
    assert!(
        log.contains("has to be between 9 and 9 chars long"),
        "{log}"
    );
    assert!(log.contains("contains invalid characters"), "{log}");
    assert!(log.contains("blocked account creation"), "{log}");
    assert!(!log.contains("12345678"), "a password was logged: {log}");
    let created: Vec<_> = std::fs::read_dir(&d.mailboxes).unwrap().collect();
    assert_eq!(created.len(), 1);
}

#[test]
fn system_limits_block_creation_but_not_existing_logins() {
    let d = Daemon::start("");
    let mut c = d.connect();
    let user = format!("existing1@{DOMAIN}");
    let rec = record(&c.passdb(&user, "123456789"));
    drop(d);
    // same mailboxes, but a free-disk requirement no machine meets
    let d2 = Daemon::start("min_free_disk_space = 999999999G\n");
    let mut c2 = d2.connect();
    let mb = d2.mailboxes.join(&user);
    std::fs::create_dir_all(&mb).unwrap();
    std::fs::write(mb.join("password"), rec["password"].as_str().unwrap()).unwrap();
    assert!(c2.passdb(&user, "123456789").starts_with('O'));
    assert_eq!(
        c2.passdb(&format!("newuser12@{DOMAIN}"), "123456789"),
        "N\n"
    );
    assert!(
        d2.log().contains("registration rejected: free disk"),
        "{}",
        d2.log()
    );
}

#[test]
fn hostile_addresses_create_nothing_outside_mailboxes() {
    let d = Daemon::start("username_min_length = 1\nusername_max_length = 20\n");
    let mut c = d.connect();
    for user in [
        format!("../x@{DOMAIN}"),
        format!("../../etc@{DOMAIN}"),
        format!("a@b@{DOMAIN}"),
        format!("A@{DOMAIN}"),
        String::new(),
        format!(".@{DOMAIN}"),
        format!("a/b@{DOMAIN}"),
        DOMAIN.to_string(),
    ] {
        let reply = c.passdb(&user, "123456789");
        assert!(
            reply == "N\n" || reply.starts_with('F'),
            "{user:?}: {reply:?}"
        );
    }
    // NUL, escaped tab and newline in the user name
    for raw in ["a\x010b", "a\x01tb", "a\x01nb"] {
        let reply = c.request(&format!("Lshared/passdb/123456789\"{raw}@{DOMAIN}\tx\n"));
        assert_eq!(reply, "N\n", "{raw:?}");
    }
    // invalid UTF-8 and a trailing backslash get failures
    c.send_bytes(b"Lshared/passdb/\xff\xfe\"x@chat.example.org\tx\n");
    assert!(c.line().starts_with('F'));
    assert!(c.request("Lshared/passdb/pw\\\n").starts_with('F'));
    assert!(c.request("Lpriv/passdb/x\"y\ty\n").starts_with('F'));
    assert!(c.request("Xgarbage\n").starts_with('F'));
    // nothing was created anywhere
    assert!(!d.mailboxes.exists() || std::fs::read_dir(&d.mailboxes).unwrap().count() == 0);
    assert_eq!(
        std::fs::read_dir(d.dir.path()).unwrap().count(),
        3,
        "socket, config, log only"
    );
    // and the daemon still serves
    assert!(
        d.connect()
            .passdb(&format!("fine@{DOMAIN}"), "123456789")
            .starts_with('O')
    );
}

#[test]
fn overlong_line_closes_only_that_connection() {
    let d = Daemon::start("");
    let mut bad = d.connect();
    bad.send(&format!("L{}\n", "x".repeat(100_000)));
    assert_eq!(bad.line_or_closed(), "");
    let mut good = d.connect();
    assert_eq!(good.userdb(&format!("nobody123@{DOMAIN}")), "N\n");
}

#[test]
fn concurrent_first_logins_create_one_account() {
    let d = Daemon::start("");
    let user = format!("concurren@{DOMAIN}");
    let hashes: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let (d, user) = (&d, &user);
                s.spawn(move || {
                    record(&d.connect().passdb(user, "same-password"))["password"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(hashes.iter().all(|h| *h == hashes[0]));
    assert!(chatmail_doveauth::password::verify(
        "same-password",
        &hashes[0]
    ));
    assert_eq!(d.log().matches("Created address").count(), 1);

    let user = format!("different@{DOMAIN}");
    let results = first_logins_with_different_passwords(&d, &user, 50);
    assert_one_password_wins(&results);
}

/// `n` concurrent passdb lookups of `user`, the i-th with `password-<i>`: (i, hash returned).
fn first_logins_with_different_passwords(d: &Daemon, user: &str, n: usize) -> Vec<(usize, String)> {
    let start = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let start = &start;
                s.spawn(move || {
                    let mut c = d.connect();
                    start.wait();
                    let r = record(&c.passdb(user, &format!("password-{i}")));
                    (i, r["password"].as_str().unwrap().to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every login got the same hash, which verifies the password of exactly one of them.
fn assert_one_password_wins(results: &[(usize, String)]) {
    let winners = results
        .iter()
        .filter(|(i, h)| chatmail_doveauth::password::verify(&format!("password-{i}"), h))
        .count();
    assert_eq!(winners, 1, "exactly one password wins");
    assert!(results.iter().all(|(_, h)| *h == results[0].1));
}

#[test]
fn an_empty_password_file_lets_exactly_one_first_login_create_the_account() {
    let d = Daemon::start("");
    let user = format!("emptyfile@{DOMAIN}");
    std::fs::create_dir_all(d.mailboxes.join(&user)).unwrap();
    std::fs::write(d.password_file(&user), "").unwrap();
    let results = first_logins_with_different_passwords(&d, &user, 20);
    assert_one_password_wins(&results);
    assert_eq!(
        std::fs::read_to_string(d.password_file(&user)).unwrap(),
        results[0].1
    );
    assert_eq!(d.log().matches("Created address").count(), 1);
}

#[test]
fn a_partial_password_file_is_kept_and_reported() {
    let d = Daemon::start("");
    let user = format!("cutshort1@{DOMAIN}");
    let partial = "{SHA512-CRYPT}$6$n3QHkYWgTg7eBMKQ$MttDhv74";
    std::fs::create_dir_all(d.mailboxes.join(&user)).unwrap();
    std::fs::write(d.password_file(&user), partial).unwrap();
    for (_, hash) in first_logins_with_different_passwords(&d, &user, 10) {
        assert_eq!(hash, partial);
    }
    assert_eq!(
        std::fs::read_to_string(d.password_file(&user)).unwrap(),
        partial
    );
    assert!(!d.log().contains("Created address"));
    assert!(
        d.log().contains("password file holds no complete hash"),
        "{}",
        d.log()
    );
}

#[test]
fn iterate_lists_accounts() {
    let d = Daemon::start("");
    let mut c = d.connect();
    let mut users: Vec<String> = (0..10).map(|i| format!("iterate{i:02}@{DOMAIN}")).collect();
    for u in &users {
        assert!(c.passdb(u, "123456789").starts_with('O'));
    }
    std::fs::create_dir_all(d.mailboxes.join("pending_notifications")).unwrap();
    std::fs::create_dir_all(d.mailboxes.join(format!("nopasswd1@{DOMAIN}"))).unwrap();
    c.send("I0\t0\tshared/userdb/\t\n");
    let mut got = Vec::new();
    loop {
        let line = c.line();
        if line == "\n" {
            break;
        }
        let row = line
            .strip_prefix("Oshared/userdb/")
            .unwrap()
            .strip_suffix("\t\n")
            .unwrap();
        got.push(row.to_string());
    }
    got.sort();
    users.sort();
    assert_eq!(got, users);
    assert_eq!(c.request("I0\t0\tshared/other/\t\n"), "\n");
}

#[test]
fn last_login_sets_the_utc_day() {
    let d = Daemon::start("");
    let mut c = d.connect();
    let user = format!("lastlogin@{DOMAIN}");
    assert!(c.passdb(&user, "123456789").starts_with('O'));
    let mut ll = d.connect();
    ll.send("H3\t2\t0\t\tlastlogin\n");
    let ts = 1_700_000_123_i64;
    assert_eq!(
        ll.request(&format!(
            "B1\t{user}\nS1\tshared/last-login/{user}\t{ts}\nC1\n"
        )),
        "O1\n"
    );
    let mtime = std::fs::metadata(d.password_file(&user))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, unix_time::to_system(ts - ts % 86_400));
    // unknown users are fine, garbage is not
    assert_eq!(
        ll.request("B2\tx\nS2\tshared/last-login/nobody@chat.example.org\t5\nC2\n"),
        "O2\n"
    );
    assert!(
        ll.request(&format!(
            "B3\t{user}\nS3\tshared/last-login/{user}\tsoon\nC3\n"
        ))
        .starts_with("F3")
    );
    assert!(
        ll.request("B4\tx\nS4\tshared/other\t1\nC4\n")
            .starts_with("F4")
    );
    let now = unix_time::now();
    assert_eq!(
        ll.request(&format!(
            "B1\t{user}\nS1\tshared/last-login/{user}\t{now}\nC1\n"
        )),
        "O1\n"
    );
    let mtime = std::fs::metadata(d.password_file(&user))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, unix_time::to_system(now - now % 86_400));
}
