//! The library against real directory trees: what the scan sees, exact day boundaries on
//! disk, and files that vanish or appear between the scan and the deletions.

mod common;

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;

use chatmail_common::config::Config;
use chatmail_expire::execute::execute;
use chatmail_expire::plan::{Plan, Reason, Rules, plan_mailbox};
use chatmail_expire::scan::{Folder, Listing, MailboxDirs, ScanOptions, scan_mailbox};
use common::*;

const NOW: i64 = 1_775_000_000;

fn config(t: &Tree) -> Config {
    Config::read(&t.config).unwrap().0
}

fn scan(t: &Tree, name: &str, stat_extra: bool) -> Listing {
    let dirs = MailboxDirs::open(&t.root, None).unwrap().unwrap();
    scan_mailbox(dirs.root_fd(), &t.root, name, ScanOptions { stat_extra })
        .unwrap()
        .unwrap()
}

fn rel_paths(l: &Listing, plan: &Plan) -> Vec<(String, Reason)> {
    let Plan::Expire(fp) = plan else {
        panic!("{plan:?}")
    };
    let mut v: Vec<_> = fp
        .remove
        .iter()
        .map(|(i, r)| (l.message_path(&l.messages[*i]).display().to_string(), *r))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn scan_sees_messages_extras_and_last_login() {
    let t = Tree::new();
    let mb = t.mailbox("user", Some(NOW - 3 * DAY));
    t.raw(&mb, "cur", "1.a,S=5:2,S", NOW, 5);
    t.raw(&mb, ".DeltaChat/new", "2.b,S=6", NOW, 6);
    t.raw(&mb, "a/b/tmp", "3.c", NOW, 7);
    t.raw(&mb, ".DeltaChat", "dovecot-uidlist", NOW, 8);
    t.raw(&mb, ".DeltaChat/cur/sub", "4.d", NOW, 9); // a folder inside cur: not a message dir
    t.raw(&mb, ".Other", "password", NOW + 5, 1); // only the top-level password counts
    symlink("/etc/passwd", mb.join("cur/5.link,S=1:2,S")).unwrap();
    let l = scan(&t, &format!("user@{DOMAIN}"), true);
    assert_eq!(l.last_login, Some(NOW - 3 * DAY));
    let mut msgs: Vec<_> = l
        .messages
        .iter()
        .map(|m| {
            (
                l.message_path(m).display().to_string(),
                m.folder,
                m.size,
                m.mtime,
            )
        })
        .collect();
    msgs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        msgs,
        vec![
            (".DeltaChat/new/2.b,S=6".to_string(), Folder::New, 6, NOW),
            ("a/b/tmp/3.c".to_string(), Folder::Tmp, 7, NOW),
            ("cur/1.a,S=5:2,S".to_string(), Folder::Cur, 5, NOW),
        ]
    );
    // password, enforceE2EEincoming, dovecot.index.log, maildirsize, dovecot-uidlist,
    // cur/sub/4.d, .Other/password and the symlink
    assert_eq!(l.extra_files, 8);
    assert!(l.extra_bytes > 0);
    assert!(!l.incomplete);
    assert!(l.top_entries >= 7);
}

#[test]
fn exact_day_boundaries_on_disk() {
    let t = Tree::new();
    let cfg = config(&t);
    let rules = Rules::daily(&cfg, NOW, NOW);
    let mb = t.mailbox("user", Some(NOW));
    let old_cut = NOW - 20 * DAY;
    let large_cut = NOW - 7 * DAY;
    t.raw(&mb, "new", "old-at-cut", old_cut, 1);
    t.raw(&mb, "new", "old-before-cut", old_cut - 1, 1);
    t.raw(&mb, "cur", "large-at-cut", large_cut, 200_001);
    t.raw(&mb, "cur", "large-before-cut", large_cut - 1, 200_001);
    let l = scan(&t, &format!("user@{DOMAIN}"), false);
    assert_eq!(
        rel_paths(&l, &plan_mailbox(&l, &rules)),
        vec![
            ("cur/large-before-cut".to_string(), Reason::LargeSeen),
            ("new/old-before-cut".to_string(), Reason::Old),
        ]
    );

    let inactive_cut = NOW - 90 * DAY;
    t.mailbox("at", Some(inactive_cut));
    t.mailbox("before", Some(inactive_cut - 1));
    let at = scan(&t, &format!("at@{DOMAIN}"), false);
    assert!(matches!(plan_mailbox(&at, &rules), Plan::Expire(_)));
    let before = scan(&t, &format!("before@{DOMAIN}"), false);
    assert_eq!(
        plan_mailbox(&before, &rules),
        Plan::RemoveMailbox {
            last_login: inactive_cut - 1,
            inactive_before: inactive_cut,
        }
    );
}

#[test]
fn vanished_files_are_skipped_and_new_files_kept() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user", Some(n));
    let a = t.msg(&mb, "cur", n - 30 * DAY, 10, 10);
    let b = t.msg(&mb, "cur", n - 30 * DAY, 10, 10);
    let name = format!("user@{DOMAIN}");
    let l = scan(&t, &name, false);
    let plan = plan_mailbox(&l, &Rules::daily(&config(&t), n, n));
    // Dovecot expunges one, and delivers a new (old-dated) one, after the scan
    fs::remove_file(&a).unwrap();
    let late = t.msg(&mb, "cur", n - 30 * DAY, 10, 10);
    let dirs = MailboxDirs::open(&t.root, None).unwrap().unwrap();
    let out = execute(dirs.root_fd(), &t.root, &l, &plan, false);
    assert_eq!((out.files_removed, out.vanished, out.errors), (1, 1, 0));
    assert!(!b.exists());
    assert!(late.exists());
}

/// A mailbox whose last login was 100 days ago, scanned and planned for removal; with the
/// tree, the time and the mailbox's path.
fn inactive_mailbox() -> (Tree, i64, PathBuf, Listing, Plan) {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user", Some(n - 100 * DAY));
    let l = scan(&t, &format!("user@{DOMAIN}"), false);
    let plan = plan_mailbox(&l, &Rules::daily(&config(&t), n, n));
    assert!(matches!(plan, Plan::RemoveMailbox { .. }), "{plan:?}");
    (t, n, mb, l, plan)
}

#[test]
fn a_login_between_scan_and_removal_keeps_the_mailbox() {
    let (t, n, mb, l, plan) = inactive_mailbox();
    let msg = t.msg(&mb, "cur", n - DAY, 10, 10);
    // the owner logs in: doveauth moves the password file's mtime to today
    set_mtime(&mb.join("password"), n - n % DAY);
    let dirs = MailboxDirs::open(&t.root, None).unwrap().unwrap();
    let out = execute(dirs.root_fd(), &t.root, &l, &plan, false);
    assert!(!out.mailbox_removed);
    assert!(out.kept_after_login);
    assert_eq!(out.errors, 0);
    assert!(msg.exists());

    // without the login it goes
    set_mtime(&mb.join("password"), n - 100 * DAY);
    let out = execute(dirs.root_fd(), &t.root, &l, &plan, false);
    assert!(out.mailbox_removed && !out.kept_after_login);
    assert!(!mb.exists());
}

#[test]
fn a_password_file_gone_between_scan_and_removal_keeps_the_mailbox() {
    let (t, _, mb, l, plan) = inactive_mailbox();
    fs::remove_file(mb.join("password")).unwrap();
    let dirs = MailboxDirs::open(&t.root, None).unwrap().unwrap();
    let out = execute(dirs.root_fd(), &t.root, &l, &plan, false);
    assert_eq!((out.mailbox_removed, out.errors), (false, 0));
    assert!(mb.exists());
}

#[test]
fn a_folder_that_vanishes_before_deletion_is_no_error() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user", Some(n));
    t.msg(&mb, ".Trash/cur", n - 30 * DAY, 10, 10);
    let name = format!("user@{DOMAIN}");
    let l = scan(&t, &name, false);
    let plan = plan_mailbox(&l, &Rules::daily(&config(&t), n, n));
    fs::remove_dir_all(mb.join(".Trash")).unwrap();
    let dirs = MailboxDirs::open(&t.root, None).unwrap().unwrap();
    let out = execute(dirs.root_fd(), &t.root, &l, &plan, false);
    assert_eq!((out.files_removed, out.vanished, out.errors), (0, 1, 0));
}

#[test]
fn a_folder_replaced_by_a_symlink_after_the_scan_is_not_followed() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user", Some(n));
    let m = t.msg(&mb, ".Trash/cur", n - 30 * DAY, 10, 10);
    let l = scan(&t, &format!("user@{DOMAIN}"), false);
    let plan = plan_mailbox(&l, &Rules::daily(&config(&t), n, n));
    // an attacker swaps the folder for a symlink to a copy outside
    let outside = t.outside().join("Trash");
    fs::rename(mb.join(".Trash"), &outside).unwrap();
    symlink(&outside, mb.join(".Trash")).unwrap();
    let victim = outside.join("cur").join(m.file_name().unwrap());
    assert!(victim.exists());
    let dirs = MailboxDirs::open(&t.root, None).unwrap().unwrap();
    let out = execute(dirs.root_fd(), &t.root, &l, &plan, false);
    assert_eq!(out.files_removed, 0);
    assert!(victim.exists(), "deleted through a symlink");
}

#[test]
fn an_empty_directory_that_fills_up_is_kept() {
    let t = Tree::new();
    let dir = t.root.join(format!("late@{DOMAIN}"));
    fs::create_dir(&dir).unwrap();
    let l = scan(&t, &format!("late@{DOMAIN}"), false);
    let plan = plan_mailbox(&l, &Rules::daily(&config(&t), NOW, NOW));
    assert_eq!(plan, Plan::RemoveEmptyDir);
    fs::write(dir.join("password"), "x").unwrap();
    let dirs = MailboxDirs::open(&t.root, None).unwrap().unwrap();
    let out = execute(dirs.root_fd(), &t.root, &l, &plan, false);
    assert!(!out.mailbox_removed);
    assert!(dir.join("password").exists());
}

#[test]
fn unreadable_entries_are_skipped_with_a_warning() {
    let t = Tree::new();
    let n = now();
    let mb = t.mailbox("user", Some(n));
    let old = t.msg(&mb, "cur", n - 30 * DAY, 10, 10);
    let locked = mb.join(".Locked");
    t.msg(&mb, ".Locked/cur", n - 30 * DAY, 10, 10);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read_dir(&locked).is_ok() {
        // running as root: permissions do not stop us, nothing to test
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
        return;
    }
    let l = scan(&t, &format!("user@{DOMAIN}"), false);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(l.incomplete);
    assert_eq!(l.messages.len(), 1);
    let plan = plan_mailbox(&l, &Rules::daily(&config(&t), n, n));
    let dirs = MailboxDirs::open(&t.root, None).unwrap().unwrap();
    execute(dirs.root_fd(), &t.root, &l, &plan, false);
    assert!(!old.exists());
}

#[test]
fn mailbox_dirs_lists_only_address_directories() {
    let t = Tree::new();
    t.mailbox("a", Some(NOW));
    t.mailbox("b", None);
    fs::create_dir(t.root.join("pending_notifications")).unwrap();
    fs::create_dir(t.root.join(format!(".x@{DOMAIN}"))).unwrap();
    fs::write(t.root.join(format!("file@{DOMAIN}")), "").unwrap();
    symlink(t.outside(), t.root.join(format!("link@{DOMAIN}"))).unwrap();
    let dirs = MailboxDirs::open(&t.root, None).unwrap().unwrap();
    let mut names = Vec::new();
    while let Some(n) = dirs.next_mailbox() {
        names.push(n.0);
    }
    names.sort();
    assert_eq!(names, vec![format!("a@{DOMAIN}"), format!("b@{DOMAIN}")]);
    assert!(
        MailboxDirs::open(&PathBuf::from("/nonexistent/dir"), None)
            .unwrap()
            .is_none()
    );
    let _ = dirs.root_fd().as_fd();
}
