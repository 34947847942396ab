//! The `chatmail-expire` binary against synthetic Maildir trees, each with its own config.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::*;

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

fn run(tree: &Tree, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_chatmail-expire"))
        .arg("--config")
        .arg(&tree.config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    Run {
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// The numbers of the summary line, which must be the only line on stdout:
/// [removed mailboxes, all mailboxes, removed files, all files].
fn nums(r: &Run) -> [u64; 4] {
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {:?}", r.stdout);
    let w: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(w.len(), 18, "{}", lines[0]);
    let fixed: Vec<&str> = [0, 2, 3, 5, 6, 8, 9, 11, 12, 13, 14, 15, 17]
        .iter()
        .map(|i| w[*i])
        .collect();
    assert_eq!(
        fixed.join(" "),
        "Removed out of mailboxes and out of files in existing mailboxes in seconds"
    );
    assert!(
        w[16]
            .split_once('.')
            .is_some_and(|(s, frac)| frac.len() == 2
                && s.parse::<u64>().is_ok()
                && frac.parse::<u64>().is_ok()),
        "{}",
        w[16]
    );
    [w[1], w[4], w[7], w[10]].map(|n| n.parse().unwrap_or_else(|_| panic!("{}", lines[0])))
}

#[test]
fn summary_line_format() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user1", Some(n));
    t.msg(&mb, "cur", n - 30 * DAY, 100, 10);
    t.msg(&mb, "cur", n - DAY, 100, 10);
    let r = run(&t, &[]);
    assert!(
        r.stdout.starts_with(
            "Removed 0 out of 1 mailboxes and 1 out of 2 files in existing mailboxes in 0."
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with(" seconds\n"));
    assert_eq!(nums(&r), [0, 1, 1, 2]);
}

#[test]
fn inactive_accounts_go_whole() {
    let t = Tree::new();
    let n = now();
    let gone = t.mailbox("inactive", Some(n - 91 * DAY));
    t.msg(&gone, "cur", n - DAY, 100, 10);
    let kept = t.mailbox("active", Some(n - 89 * DAY));
    t.msg(&kept, "cur", n - DAY, 100, 10);
    assert_eq!(nums(&run(&t, &[])), [1, 2, 0, 1]);
    assert!(gone.exists());
    assert_eq!(nums(&run(&t, &["--remove"])), [1, 2, 0, 1]);
    assert!(!gone.exists());
    assert!(kept.join("password").exists());
    assert_eq!(nums(&run(&t, &["--remove"])), [0, 1, 0, 1]);
}

#[test]
fn passwordless_directories_go_only_if_empty() {
    let t = Tree::new();
    let empty = t.root.join(format!("empty@{DOMAIN}"));
    fs::create_dir(&empty).unwrap();
    let full = t.mailbox("nopassword", None);
    t.msg(&full, "cur", now() - 100 * DAY, 100, 10);
    let r = run(&t, &["-v"]);
    assert_eq!(nums(&r), [1, 2, 0, 0]);
    assert!(empty.exists(), "dry run removed it");
    assert!(
        r.stderr.contains("removing empty directory"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("isn't empty"), "{}", r.stderr);
    assert_eq!(nums(&run(&t, &["--remove"])), [1, 2, 0, 0]);
    assert!(!empty.exists());
    assert_eq!(
        files(&full).len(),
        1,
        "a password-less mailbox keeps its messages"
    );
}

#[test]
fn old_messages_go_from_every_folder_at_any_depth() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user1", Some(n));
    let folders = [
        "cur",
        "new",
        "tmp",
        ".DeltaChat/cur",
        ".DeltaChat/new",
        ".Sent/tmp",
        "nested/deeper/cur",
    ];
    let mut old = Vec::new();
    let mut fresh = Vec::new();
    for f in folders {
        old.push(t.msg(&mb, f, n - 21 * DAY, 100, 10));
        fresh.push(t.msg(&mb, f, n - 19 * DAY, 100, 10));
    }
    // files outside cur/new/tmp are not messages, however old
    let extra = t.raw(&mb, ".DeltaChat", "dovecot-uidlist", n - 100 * DAY, 10);
    assert_eq!(nums(&run(&t, &[])), [0, 1, 7, 14]);
    assert_eq!(nums(&run(&t, &["--remove"])), [0, 1, 7, 14]);
    assert!(old.iter().all(|p| !p.exists()));
    assert!(fresh.iter().all(|p| p.exists()));
    assert!(extra.exists());
    assert!(!mb.join("maildirsize").exists());
    assert!(mb.join("password").exists());
}

#[test]
fn maildirsize_stays_when_nothing_goes() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user1", Some(n));
    t.msg(&mb, "cur", n - DAY, 100, 10);
    // large but unseen: kept, and so is maildirsize
    t.msg(&mb, "new", n - 10 * DAY, 300_000, 300_000);
    assert_eq!(nums(&run(&t, &["--remove"])), [0, 1, 0, 2]);
    assert!(mb.join("maildirsize").exists());
}

#[test]
fn large_seen_messages_go_only_from_cur() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user1", Some(n));
    let big = 200_001;
    let gone = [
        t.msg(&mb, "cur", n - 8 * DAY, big as u64, big),
        t.msg(&mb, ".DeltaChat/cur", n - 8 * DAY, big as u64, big),
    ];
    let kept = [
        t.msg(&mb, "new", n - 8 * DAY, big as u64, big),
        t.msg(&mb, "tmp", n - 8 * DAY, big as u64, big),
        t.msg(&mb, "cur", n - 6 * DAY, big as u64, big),
        t.msg(&mb, "cur", n - 8 * DAY, 200_000, 200_000),
    ];
    assert_eq!(nums(&run(&t, &["--remove"])), [0, 1, 2, 6]);
    assert!(gone.iter().all(|p| !p.exists()));
    assert!(kept.iter().all(|p| p.exists()));
}

#[test]
fn daily_quota_trim_by_name_time_and_s_size() {
    // 1 MiB quota: trimmed to 70 % = 734003 bytes, by S= (the files are 10 bytes each)
    let t = Tree::with_params("max_mailbox_size = 1M\n");
    let n = now();
    let mb = t.mailbox("user1", Some(n));
    let oldest: Vec<_> = (2..=5)
        .rev()
        .map(|d| t.msg(&mb, "cur", n - d * DAY, 300_000, 10))
        .collect();
    let fresh = [
        t.msg(&mb, "new", n - 3600, 300_000, 10),
        t.msg(&mb, "cur", n - 60, 300_000, 10),
    ];
    // 1.8 MB: the 4 oldest must go to get to 600 kB
    let r = run(&t, &["-v"]);
    assert_eq!(nums(&r), [0, 1, 4, 6]);
    assert!(
        r.stderr
            .contains("quota-expire: removed 4 message(s) from user1@example.org"),
        "{}",
        r.stderr
    );
    assert!(oldest.iter().all(|p| p.exists()), "dry run trimmed");
    assert_eq!(nums(&run(&t, &["--remove"])), [0, 1, 4, 6]);
    assert!(oldest.iter().all(|p| !p.exists()));
    assert!(fresh.iter().all(|p| p.exists()));
    assert!(!mb.join("maildirsize").exists());
}

#[test]
fn daily_quota_trim_never_touches_the_last_24_hours() {
    let t = Tree::with_params("max_mailbox_size = 1M\n");
    let n = now();
    let mb = t.mailbox("user1", Some(n));
    let fresh: Vec<_> = (1..=5)
        .map(|h| t.msg(&mb, "new", n - h * 3600, 300_000, 10))
        .collect();
    assert_eq!(nums(&run(&t, &["--remove"])), [0, 1, 0, 5]);
    assert!(fresh.iter().all(|p| p.exists()));
    // the file-name time counts, not the mtime
    let named_fresh = t.raw(
        &mb,
        "cur",
        &format!("{}.M1P1.host,S=300000:2,S", n - 3600),
        n - 5 * DAY,
        10,
    );
    assert_eq!(nums(&run(&t, &["--remove"])), [0, 1, 0, 6]);
    assert!(named_fresh.exists());
}

#[test]
fn symlinks_are_never_followed() {
    let t = Tree::new();
    let n = now();
    let outside = t.outside();
    // things outside that the rules would remove if they were inside
    let victim_dir = outside.join("Maildir");
    for f in ["cur", "new", "tmp"] {
        t.msg(&victim_dir, f, n - 100 * DAY, 300_000, 10);
    }
    let victim_file = t.raw(&outside, "", "old-file", n - 100 * DAY, 10);
    fs::write(victim_dir.join("password"), "x").unwrap();
    common::set_mtime(&victim_dir.join("password"), n - 200 * DAY);
    let before = snapshot(&outside);

    let mb = t.mailbox("user1", Some(n));
    symlink(&victim_file, mb.join("cur/1000000000.M1P1.host,S=5:2,S")).unwrap();
    symlink(victim_dir.join("cur"), mb.join(".Linked")).unwrap();
    symlink(&victim_dir, mb.join(".Folder")).unwrap();
    fs::remove_dir(mb.join("new")).unwrap();
    symlink(victim_dir.join("new"), mb.join("new")).unwrap();
    // a symlinked mailbox, and an inactive mailbox that holds a symlink
    symlink(&victim_dir, t.root.join(format!("linked@{DOMAIN}"))).unwrap();
    let inactive = t.mailbox("inactive", Some(n - 100 * DAY));
    symlink(&victim_dir, inactive.join(".Escape")).unwrap();
    symlink(&victim_file, inactive.join("cur").join("x")).unwrap();
    // the quota trim over a tiny quota would take everything old
    let own = t.msg(&mb, "cur", n - 30 * DAY, 100, 10);

    let r = run(&t, &["--remove", "-v"]);
    assert_eq!(nums(&r), [1, 2, 1, 1], "{}", r.stderr);
    assert_eq!(snapshot(&outside), before);
    assert!(!own.exists());
    assert!(!inactive.exists());
    for link in [
        "cur/1000000000.M1P1.host,S=5:2,S",
        ".Linked",
        ".Folder",
        "new",
    ] {
        assert!(
            fs::symlink_metadata(mb.join(link))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{link}"
        );
    }
    assert!(t.root.join(format!("linked@{DOMAIN}")).exists());
    assert!(r.stderr.contains("a symlink, not followed"), "{}", r.stderr);
}

#[test]
fn dry_run_changes_nothing() {
    let t = Tree::with_params("max_mailbox_size = 1M\n");
    let n = now();
    let a = t.mailbox("active", Some(n - DAY));
    for d in [1, 3, 8, 21, 40] {
        t.msg(&a, "cur", n - d * DAY, 300_000, 300_000);
        t.msg(&a, ".DeltaChat/new", n - d * DAY, 300_000, 10);
        t.msg(&a, "tmp", n - d * DAY, 10, 10);
    }
    let i = t.mailbox("inactive", Some(n - 120 * DAY));
    t.msg(&i, "cur", n - DAY, 10, 10);
    fs::create_dir(t.root.join(format!("empty@{DOMAIN}"))).unwrap();
    symlink(t.outside(), a.join(".Link")).unwrap();
    let before = snapshot(t.tmp.path());
    let dry = run(&t, &["-v"]);
    let dry_counts = nums(&dry);
    assert_eq!(
        snapshot(t.tmp.path()),
        before,
        "the dry run changed the tree"
    );
    assert!(dry_counts[0] == 2 && dry_counts[2] > 0, "{dry_counts:?}");
    // the dry run predicts the real run
    assert_eq!(nums(&run(&t, &["--remove"])), dry_counts);
    assert_ne!(snapshot(t.tmp.path()), before);
}

#[test]
fn entries_that_are_not_mailboxes_are_left_alone() {
    let t = Tree::new();
    let n = now();
    let queue = t.root.join("pending_notifications");
    t.raw(&queue, "", "abc", n - 100 * DAY, 10);
    t.raw(&t.root, "", &format!("file@{DOMAIN}"), n - 100 * DAY, 10);
    let hidden = t.root.join(format!(".hidden@{DOMAIN}"));
    fs::create_dir(&hidden).unwrap();
    t.msg(&hidden, "cur", n - 100 * DAY, 10, 10);
    let before = snapshot(&t.root);
    assert_eq!(nums(&run(&t, &["--remove"])), [0, 0, 0, 0]);
    assert_eq!(snapshot(&t.root), before);
}

#[test]
fn days_shifts_now_and_maxnum_limits() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user1", Some(n));
    t.msg(&mb, "cur", n - 25 * DAY, 10, 10);
    assert_eq!(nums(&run(&t, &["--days", "10"])), [0, 1, 0, 1]);
    assert_eq!(nums(&run(&t, &[])), [0, 1, 1, 1]);
    for i in 0..5 {
        t.mailbox(&format!("more{i}"), Some(n));
    }
    assert_eq!(nums(&run(&t, &["--maxnum", "3"]))[1], 3);
    assert_eq!(nums(&run(&t, &["--maxnum", "100"]))[1], 6);
}

#[test]
fn verbose_lists_what_goes_on_stderr_only() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user1", Some(n));
    let old = t.msg(&mb, ".DeltaChat/cur", n - 30 * DAY, 10, 10);
    let big = t.msg(&mb, "cur", n - 8 * DAY, 300_000, 300_000);
    t.mailbox("gone", Some(n - 100 * DAY));
    let quiet = run(&t, &[]);
    assert_eq!(quiet.stderr, "");
    let r = run(&t, &["-v"]);
    assert_eq!(r.stdout.lines().count(), 1);
    assert!(r.stderr.contains("removing old "), "{}", r.stderr);
    assert!(
        r.stderr.contains(&old.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("removing large ") && r.stderr.contains(&big.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("removing mailbox"), "{}", r.stderr);
}

#[test]
fn missing_mailboxes_dir_is_not_an_error() {
    let t = Tree::new();
    fs::remove_dir(&t.root).unwrap();
    let r = run(&t, &["--remove"]);
    assert_eq!(nums(&r), [0, 0, 0, 0]);
    assert!(r.stderr.contains("no mailboxes found at: "), "{}", r.stderr);
}

#[test]
fn bad_config_is_one_line_and_non_zero() {
    let t = Tree::with_params("delete_mails_after = soon\n");
    for args in [&[][..], &["report"][..]] {
        let r = run(&t, args);
        assert_ne!(r.code, 0);
        assert_eq!(r.stdout, "");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains("delete_mails_after"), "{}", r.stderr);
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_chatmail-expire"))
        .args(["--config", "/nonexistent/chatmail.ini"])
        .output()
        .unwrap();
    assert_ne!(missing.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&missing.stderr).lines().count(), 1);
}

fn quota(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_chatmail-expire"))
        .arg("quota")
        .args(args)
        .output()
        .unwrap();
    Run {
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        code: out.status.code().unwrap_or(-1),
    }
}

#[test]
fn quota_command_trims_one_mailbox_and_acts() {
    const MIB: u64 = 1024 * 1024;
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user", Some(n));
    let a = t.msg(&mb, "cur", n - 10 * DAY, MIB, 10);
    let b = t.msg(&mb, "new", n - 5 * DAY, MIB, 10);
    let c = t.msg(&mb, "new", n, MIB, 10);
    let r = quota(&["1", mb.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "quota-expire: removed 2 message(s) from user@example.org\n"
    );
    assert!(!a.exists() && !b.exists() && c.exists());
    assert!(!mb.join("maildirsize").exists());
    // nothing to do: silent
    fs::write(mb.join("maildirsize"), "x").unwrap();
    let r = quota(&["1", mb.to_str().unwrap()]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(mb.join("maildirsize").exists());
}

#[test]
fn quota_command_refuses_odd_targets() {
    let t = Tree::new();
    let n = now();
    let plain = t.tmp.path().join("not-a-mailbox");
    t.msg(&plain, "cur", n - 10 * DAY, 1 << 30, 10);
    let r = quota(&["0", plain.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not a mailbox address"), "{}", r.stderr);
    assert_eq!(files(&plain).len(), 1);

    let real = t.mailbox("real", Some(n));
    t.msg(&real, "cur", n - 10 * DAY, 1 << 30, 10);
    let link = t.tmp.path().join(format!("link@{DOMAIN}"));
    symlink(&real, &link).unwrap();
    let r = quota(&["0", link.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("symlink"), "{}", r.stderr);
    let r = quota(&[
        "0",
        t.root.join(format!("nobody@{DOMAIN}")).to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no such mailbox"), "{}", r.stderr);
    assert_eq!(
        files(&real)
            .iter()
            .filter(|f| f.starts_with("cur/"))
            .count(),
        1
    );
    assert_ne!(quota(&["many", real.to_str().unwrap()]).code, 0);
}

#[test]
fn report_text_and_textfile() {
    let t = Tree::new();
    let n = now();
    let a = t.mailbox("user1", Some(n));
    t.msg(&a, "cur", n, 10, 2_000_000);
    t.msg(&a, "new", n, 10, 1000);
    let ci = t.mailbox("ci-test", Some(n - 20 * DAY));
    t.msg(&ci, "cur", n, 10, 10);
    t.mailbox("old", Some(n - 50 * DAY));
    fs::create_dir(t.root.join(format!("nopw@{DOMAIN}"))).unwrap();
    let before = snapshot(&t.root);
    let r = run(&t, &["report"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("mailboxes:      4"), "{}", r.stdout);
    assert!(
        r.stdout.contains("accounts:       3 (2 users, 1 ci)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("in 3 files"), "{}", r.stdout);

    let dir = t.tmp.path().join("textfiles");
    fs::create_dir(&dir).unwrap();
    let r = run(&t, &["report", "--textfile", dir.to_str().unwrap()]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let prom = fs::read_to_string(dir.join("fsreport.prom")).unwrap();
    for line in [
        "chatmail_mailboxes 4",
        "chatmail_storage_bytes{kind=\"messages\"} 2001010",
        "chatmail_messages_count{min_size=\"0\"} 3",
        "chatmail_messages_count{min_size=\"1048576\"} 1",
        "chatmail_messages_bytes{min_size=\"2097152\"} 0",
        "chatmail_accounts{kind=\"all\"} 3",
        "chatmail_accounts{kind=\"ci\"} 1",
        "chatmail_accounts_active{days=\"1\"} 1",
        "chatmail_accounts_active{days=\"80\"} 2",
    ] {
        assert!(prom.lines().any(|l| l == line), "missing {line} in\n{prom}");
    }
    let extra: u64 = prom
        .lines()
        .find_map(|l| l.strip_prefix("chatmail_storage_bytes{kind=\"extra\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(extra > 0);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(snapshot(&t.root), before, "the report changed the tree");
}

#[test]
fn progress_goes_to_stderr_when_asked() {
    let t = Tree::new();
    t.mailbox("user1", Some(now()));
    let r = run(&t, &["--progress"]);
    assert_eq!(nums(&r), [0, 1, 0, 0]);
    // a quick run may finish before the first progress line; it never reaches stdout
    assert!(!r.stdout.contains("progress"));
}

#[test]
fn help_and_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatmail-expire"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in [
        "--remove", "--config", "--days", "--maxnum", "quota", "report",
    ] {
        assert!(text.contains(word), "{word} missing in help");
    }
}

#[test]
fn unreadable_folders_are_skipped_with_a_warning() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
    // Root reads everything: run the binary as nobody on a tree owned by nobody, with one
    // folder owned by root and closed.
    if fs::metadata("/proc/self").unwrap().uid() != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user", Some(n));
    let old = t.msg(&mb, "cur", n - 30 * DAY, 10, 10);
    let hidden = t.msg(&mb, ".Locked/cur", n - 30 * DAY, 10, 10);
    fn chown_all(p: &Path) {
        chown(p, Some(65534), Some(65534)).unwrap();
        if fs::symlink_metadata(p).unwrap().is_dir() {
            for e in fs::read_dir(p).unwrap() {
                chown_all(&e.unwrap().path());
            }
        }
    }
    chown_all(t.tmp.path());
    fs::set_permissions(t.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let locked = mb.join(".Locked");
    chown(&locked, Some(0), Some(0)).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    let out = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_chatmail-expire"))
        .arg("--config")
        .arg(&t.config)
        .arg("--remove")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let r = Run {
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        code: out.status.code().unwrap_or(-1),
    };
    if r.code != 0 && r.stderr.contains("ermission denied") && !r.stderr.contains(".Locked") {
        eprintln!(
            "skipped: nobody cannot run the test binary here: {}",
            r.stderr
        );
        return;
    }
    assert_eq!(nums(&r), [0, 1, 1, 1], "{}", r.stderr);
    assert!(r.stderr.contains(".Locked"), "{}", r.stderr);
    assert!(!old.exists());
    assert!(hidden.exists());
}

#[test]
fn called_as_chatmail_quota_expire_it_is_the_quota_command() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user", Some(n));
    let old = t.msg(&mb, "cur", n - 5 * DAY, 2 * 1024 * 1024, 10);
    let alias = t.tmp.path().join("chatmail-quota-expire");
    symlink(env!("CARGO_BIN_EXE_chatmail-expire"), &alias).unwrap();
    let out = Command::new(&alias).arg("1").arg(&mb).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "quota-expire: removed 1 message(s) from user@example.org\n"
    );
    assert!(!old.exists());
}
