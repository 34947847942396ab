//! What goes, and why: a pure function of one mailbox's listing, the rules and the time.
//!
//! Nothing here touches the disk, so the dry run and the real run decide the same way and
//! every rule is unit-tested on hand-made listings.

use chatmail_common::config::Config;
use chatmail_common::mailbox::DAY;

use crate::scan::{Folder, Listing, Message};

/// Messages larger than this (bytes on disk) count as large (spec §8).
pub const LARGE_MESSAGE_SIZE: u64 = 200_000;
/// The quota trim never removes messages whose file-name time is less than this old.
pub const PROTECTED_SECS: i64 = DAY;
/// The daily run trims every mailbox to this share of `max_mailbox_size` (Dovecot warns, and
/// calls `chatmail-expire quota`, at 75 %; Delta Chat shows warnings from 80 %).
pub const QUOTA_TARGET_PERCENT: u64 = 70;

/// The expiry rules with their cut-off times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Accounts whose last login is before this are deleted.
    pub inactive_before: i64,
    /// Messages modified before this are deleted.
    pub old_before: i64,
    /// Large seen messages modified before this are deleted.
    pub large_before: i64,
    /// The quota trim stops at this many bytes (`S=` sizes).
    pub quota_target: u64,
    /// The quota trim never removes messages with a file-name time after this.
    pub protect_after: i64,
}

impl Rules {
    /// The daily run's rules. `now` may be shifted by `--days`; `real_now` is the clock, used
    /// for the 24-hour protection.
    pub fn daily(config: &Config, now: i64, real_now: i64) -> Rules {
        Rules {
            inactive_before: now - i64::from(config.delete_inactive_users_after) * DAY,
            old_before: now - i64::from(config.delete_mails_after) * DAY,
            large_before: now - i64::from(config.delete_large_after) * DAY,
            quota_target: daily_quota_target(config.max_mailbox_size_mb),
            protect_after: real_now - PROTECTED_SECS,
        }
    }
}

/// 70 % of `max_mailbox_size`, in bytes.
pub fn daily_quota_target(max_mailbox_size_mb: u64) -> u64 {
    max_mailbox_size_mb.saturating_mul(1024 * 1024 * QUOTA_TARGET_PERCENT) / 100
}

/// Why a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Older than `delete_mails_after`.
    Old,
    /// Larger than 200 kB, seen (`cur/`), older than `delete_large_after`.
    LargeSeen,
    /// Oldest first until the mailbox is under the quota target.
    Quota,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Old => "old",
            Reason::LargeSeen => "large",
            Reason::Quota => "quota",
        }
    }
}

/// Messages of one mailbox to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilePlan {
    /// Indices into [`Listing::messages`], each with its reason.
    pub remove: Vec<(usize, Reason)>,
    /// Dovecot's quota cache goes whenever a message goes.
    pub remove_maildirsize: bool,
}

impl FilePlan {
    fn new(remove: Vec<(usize, Reason)>) -> FilePlan {
        FilePlan {
            remove_maildirsize: !remove.is_empty(),
            remove,
        }
    }

    pub fn count(&self, reason: Reason) -> usize {
        self.remove.iter().filter(|(_, r)| *r == reason).count()
    }
}

/// The decision for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Last login before the cut-off: the whole mailbox goes, if its last login is still
    /// before `inactive_before` right before the removal (its owner may log in meanwhile).
    RemoveMailbox {
        last_login: i64,
        inactive_before: i64,
    },
    /// No password file and nothing inside: the empty directory goes.
    RemoveEmptyDir,
    /// No password file, but not empty: left alone.
    KeepWithoutPassword,
    /// An active account: some messages may go.
    Expire(FilePlan),
}

/// The daily rules for one mailbox (spec §8).
pub fn plan_mailbox(listing: &Listing, rules: &Rules) -> Plan {
    let Some(last_login) = listing.last_login else {
        return if listing.is_empty() {
            Plan::RemoveEmptyDir
        } else {
            Plan::KeepWithoutPassword
        };
    };
    if last_login < rules.inactive_before {
        return Plan::RemoveMailbox {
            last_login,
            inactive_before: rules.inactive_before,
        };
    }
    let mut remove = Vec::new();
    let mut gone = vec![false; listing.messages.len()];
    for (i, m) in listing.messages.iter().enumerate() {
        let reason = if m.mtime < rules.old_before {
            Some(Reason::Old)
        } else if m.folder == Folder::Cur
            && m.size > LARGE_MESSAGE_SIZE
            && m.mtime < rules.large_before
        {
            Some(Reason::LargeSeen)
        } else {
            None
        };
        if let Some(reason) = reason {
            remove.push((i, reason));
            gone[i] = true;
        }
    }
    let trimmed = quota_trim(listing, &gone, rules.quota_target, rules.protect_after);
    remove.extend(trimmed.into_iter().map(|i| (i, Reason::Quota)));
    Plan::Expire(FilePlan::new(remove))
}

/// The quota mode: only the trim to `target` bytes.
pub fn plan_quota(listing: &Listing, target: u64, protect_after: i64) -> FilePlan {
    let gone = vec![false; listing.messages.len()];
    let trimmed = quota_trim(listing, &gone, target, protect_after);
    FilePlan::new(trimmed.into_iter().map(|i| (i, Reason::Quota)).collect())
}

/// Oldest first (by file-name time, then `S=` size, then path) until the messages Dovecot
/// counts (`cur/` and `new/` of every folder) add up to at most `target` bytes. Stops at the
/// first message newer than `protect_after`. Messages marked in `gone` are already removed.
fn quota_trim(listing: &Listing, gone: &[bool], target: u64, protect_after: i64) -> Vec<usize> {
    let mut counted: Vec<(i64, u64, usize)> = listing
        .messages
        .iter()
        .enumerate()
        .filter(|(i, m)| !gone[*i] && m.folder != Folder::Tmp)
        .map(|(i, m)| (name_time(listing, m), quota_size(listing, m), i))
        .collect();
    let mut total: u64 = counted.iter().map(|(_, size, _)| size).sum();
    if total <= target {
        return Vec::new();
    }
    counted.sort_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| listing_path_cmp(listing, a.2, b.2))
    });
    let mut removed = Vec::new();
    for (time, size, i) in counted {
        if total <= target || time > protect_after {
            break;
        }
        removed.push(i);
        total = total.saturating_sub(size);
    }
    removed
}

fn listing_path_cmp(listing: &Listing, a: usize, b: usize) -> std::cmp::Ordering {
    let (ma, mb) = (&listing.messages[a], &listing.messages[b]);
    listing
        .dir(ma)
        .cmp(listing.dir(mb))
        .then_with(|| listing.name(ma).cmp(listing.name(mb)))
}

/// The delivery time in Dovecot's file name (`<unix secs>.<unique>...`), else the mtime.
pub fn name_time(listing: &Listing, m: &Message) -> i64 {
    parse_name_time(listing.name(m)).unwrap_or(m.mtime)
}

/// The quota size (`,S=<bytes>` in the file name), else the size on disk (Dovecot stats
/// files without `S=` too).
pub fn quota_size(listing: &Listing, m: &Message) -> u64 {
    parse_name_size(listing.name(m)).unwrap_or(m.size)
}

fn parse_name_time(name: &[u8]) -> Option<i64> {
    let digits = name.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 18 || name.get(digits) != Some(&b'.') {
        return None;
    }
    std::str::from_utf8(&name[..digits]).ok()?.parse().ok()
}

fn parse_name_size(name: &[u8]) -> Option<u64> {
    let pos = name.windows(3).position(|w| w == b",S=")?;
    let rest = &name[pos + 3..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const NOW: i64 = 1_775_000_000;
    const MB: u64 = 1024 * 1024;

    fn rules() -> Rules {
        Rules {
            inactive_before: NOW - 90 * DAY,
            old_before: NOW - 20 * DAY,
            large_before: NOW - 7 * DAY,
            quota_target: daily_quota_target(500),
            protect_after: NOW - DAY,
        }
    }

    struct Builder {
        listing: Listing,
    }

    impl Builder {
        fn new() -> Builder {
            let mut listing = Listing::new("user@example.org");
            listing.last_login = Some(NOW - DAY);
            listing.top_entries = 3;
            Builder { listing }
        }

        fn dir(&mut self, rel: &str) -> usize {
            let rel = PathBuf::from(rel);
            if let Some(i) = self.listing.dirs.iter().position(|d| *d == rel) {
                return i;
            }
            self.listing.dirs.push(rel);
            self.listing.dirs.len() - 1
        }

        /// A message in `rel` (e.g. `cur`, `.DeltaChat/new`) with name time = mtime.
        fn msg(self, rel: &str, mtime: i64, size: u64) -> Builder {
            let name = format!("{mtime}.M1P2.host,S={size},W={}:2,S", size + 10);
            self.raw(rel, &name, mtime, size)
        }

        fn raw(mut self, rel: &str, name: &str, mtime: i64, size: u64) -> Builder {
            let dir = self.dir(rel);
            let folder = match rel.rsplit('/').next() {
                Some("cur") => Folder::Cur,
                Some("new") => Folder::New,
                _ => Folder::Tmp,
            };
            assert!(
                self.listing
                    .push_message(dir, name.as_bytes(), folder, mtime, size)
            );
            self
        }

        fn login(mut self, last_login: Option<i64>) -> Builder {
            self.listing.last_login = last_login;
            self
        }

        fn done(self) -> Listing {
            self.listing
        }
    }

    fn removed(plan: &Plan) -> Vec<(usize, Reason)> {
        match plan {
            Plan::Expire(fp) => {
                let mut r = fp.remove.clone();
                r.sort_by_key(|(i, _)| *i);
                r
            }
            other => panic!("unexpected plan {other:?}"),
        }
    }

    #[test]
    fn inactive_account_goes_whole_at_the_exact_boundary() {
        let l = Builder::new().login(Some(NOW - 90 * DAY - 1)).done();
        assert_eq!(
            plan_mailbox(&l, &rules()),
            Plan::RemoveMailbox {
                last_login: NOW - 90 * DAY - 1,
                inactive_before: NOW - 90 * DAY,
            }
        );
        let l = Builder::new().login(Some(NOW - 90 * DAY)).done();
        assert_eq!(removed(&plan_mailbox(&l, &rules())), vec![]);
    }

    #[test]
    fn passwordless_directory_goes_only_if_empty() {
        let mut l = Builder::new().login(None).done();
        l.top_entries = 0;
        assert_eq!(plan_mailbox(&l, &rules()), Plan::RemoveEmptyDir);
        l.top_entries = 1;
        assert_eq!(plan_mailbox(&l, &rules()), Plan::KeepWithoutPassword);
        // unreadable parts: never called empty
        l.top_entries = 0;
        l.incomplete = true;
        assert_eq!(plan_mailbox(&l, &rules()), Plan::KeepWithoutPassword);
        // old messages of a password-less mailbox are left alone too
        let l = Builder::new()
            .login(None)
            .msg("cur", NOW - 100 * DAY, 10)
            .done();
        assert_eq!(plan_mailbox(&l, &rules()), Plan::KeepWithoutPassword);
    }

    #[test]
    fn old_messages_go_in_every_folder_at_the_exact_boundary() {
        let cut = NOW - 20 * DAY;
        let l = Builder::new()
            .msg("cur", cut - 1, 10)
            .msg("new", cut - 1, 10)
            .msg("tmp", cut - 1, 10)
            .msg(".DeltaChat/cur", cut - 1, 10)
            .msg(".a.b/new", cut - 1, 10)
            .msg("cur", cut, 10)
            .msg(".DeltaChat/cur", cut, 10)
            .done();
        assert_eq!(
            removed(&plan_mailbox(&l, &rules())),
            (0..5).map(|i| (i, Reason::Old)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn large_seen_messages_go_only_from_cur() {
        let cut = NOW - 7 * DAY;
        let big = LARGE_MESSAGE_SIZE + 1;
        let l = Builder::new()
            .msg("cur", cut - 1, big) // 0: goes
            .msg("new", cut - 1, big) // 1: unseen, kept
            .msg("tmp", cut - 1, big) // 2: kept
            .msg(".DeltaChat/cur", cut - 1, big) // 3: goes
            .msg("cur", cut, big) // 4: exactly at the cut-off, kept
            .msg("cur", cut - 1, LARGE_MESSAGE_SIZE) // 5: not larger than the limit
            .done();
        assert_eq!(
            removed(&plan_mailbox(&l, &rules())),
            vec![(0, Reason::LargeSeen), (3, Reason::LargeSeen)]
        );
    }

    #[test]
    fn large_rule_uses_disk_size_not_s_equals() {
        let cut = NOW - 7 * DAY;
        let l = Builder::new()
            .raw("cur", &format!("{cut}.x,S=10:2,S"), cut - 1, 300_000)
            .raw("cur", &format!("{cut}.y,S=300000:2,S"), cut - 1, 10)
            .done();
        assert_eq!(
            removed(&plan_mailbox(&l, &rules())),
            vec![(0, Reason::LargeSeen)]
        );
    }

    #[test]
    fn maildirsize_goes_only_when_something_goes() {
        let l = Builder::new().msg("cur", NOW - 2 * DAY, 10).done();
        assert_eq!(
            plan_mailbox(&l, &rules()),
            Plan::Expire(FilePlan::default())
        );
        let l = Builder::new().msg("new", NOW - 30 * DAY, 10).done();
        let Plan::Expire(fp) = plan_mailbox(&l, &rules()) else {
            panic!()
        };
        assert!(fp.remove_maildirsize);
        // a large unseen message is kept, and maildirsize with it (unlike the reference)
        let l = Builder::new().msg("new", NOW - 10 * DAY, 1_000_000).done();
        assert_eq!(
            plan_mailbox(&l, &rules()),
            Plan::Expire(FilePlan::default())
        );
    }

    fn quota_rules(target: u64) -> Rules {
        Rules {
            quota_target: target,
            ..rules()
        }
    }

    #[test]
    fn quota_trim_oldest_first_by_name_time_and_s_size() {
        // three 1 MiB messages aged 10 d, 5 d and 0 d; target 1 MiB: the two oldest go.
        // The disk sizes are tiny: S= counts.
        let l = Builder::new()
            .raw("cur", &format!("{}.a,S={MB}:2,S", NOW - 5 * DAY), NOW, 1)
            .raw("cur", &format!("{}.b,S={MB}:2,S", NOW), NOW, 1)
            .raw("new", &format!("{}.c,S={MB}", NOW - 10 * DAY), NOW, 1)
            .done();
        let plan = plan_mailbox(&l, &quota_rules(MB));
        let Plan::Expire(fp) = &plan else { panic!() };
        assert_eq!(fp.remove, vec![(2, Reason::Quota), (0, Reason::Quota)]);
        assert!(fp.remove_maildirsize);
    }

    #[test]
    fn quota_trim_stops_at_target_and_equality_is_enough() {
        let l = Builder::new()
            .msg("cur", NOW - 3 * DAY, 100)
            .msg("cur", NOW - 2 * DAY, 100)
            .msg("cur", NOW - 2 * DAY, 100)
            .done();
        assert_eq!(removed(&plan_mailbox(&l, &quota_rules(300))), vec![]);
        assert_eq!(
            removed(&plan_mailbox(&l, &quota_rules(200))),
            vec![(0, Reason::Quota)]
        );
        assert_eq!(
            removed(&plan_mailbox(&l, &quota_rules(199))),
            vec![(0, Reason::Quota), (1, Reason::Quota)]
        );
    }

    #[test]
    fn quota_trim_never_touches_the_last_24_hours() {
        let l = Builder::new()
            .msg("cur", NOW - DAY, 100) // exactly 24 h old: may go
            .msg("cur", NOW - DAY + 1, 100) // younger: protected
            .msg("new", NOW, 100)
            .done();
        assert_eq!(
            removed(&plan_mailbox(&l, &quota_rules(0))),
            vec![(0, Reason::Quota)]
        );
    }

    #[test]
    fn quota_trim_counts_nested_folders_but_not_tmp() {
        let l = Builder::new()
            .msg(".DeltaChat/cur", NOW - 3 * DAY, 100)
            .msg("tmp", NOW - 4 * DAY, 1000)
            .msg("new", NOW - 2 * DAY, 100)
            .done();
        // counted: 200 bytes; tmp is neither counted nor trimmed
        assert_eq!(removed(&plan_mailbox(&l, &quota_rules(200))), vec![]);
        assert_eq!(
            removed(&plan_mailbox(&l, &quota_rules(150))),
            vec![(0, Reason::Quota)]
        );
    }

    #[test]
    fn quota_trim_without_s_uses_disk_size_and_mtime() {
        let l = Builder::new()
            .raw("cur", "no-dovecot-name", NOW - 5 * DAY, 500)
            .raw("cur", &format!("{}.x,W=9:2,S", NOW - 3 * DAY), NOW, 500)
            .raw("cur", &format!("{}.y,S=500:2,S", NOW - 4 * DAY), NOW, 7)
            .done();
        // total 1500 > 600: oldest first: "no-dovecot-name" (mtime -5 d), then y (-4 d)
        assert_eq!(
            removed(&plan_mailbox(&l, &quota_rules(600))),
            vec![(0, Reason::Quota), (2, Reason::Quota)]
        );
    }

    #[test]
    fn quota_trim_ties_break_by_size_then_path() {
        let t = NOW - 3 * DAY;
        let l = Builder::new()
            .raw("new", &format!("{t}.b,S=200"), NOW, 1)
            .raw("cur", &format!("{t}.c,S=100:2,S"), NOW, 1)
            .raw("cur", &format!("{t}.a,S=200:2,S"), NOW, 1)
            .done();
        let fp = plan_quota(&l, 300, NOW - DAY);
        assert_eq!(fp.remove, vec![(1, Reason::Quota), (2, Reason::Quota)]);
    }

    #[test]
    fn quota_trim_runs_after_the_other_rules() {
        let l = Builder::new()
            .msg("cur", NOW - 30 * DAY, 1000) // old: goes anyway
            .msg("cur", NOW - 3 * DAY, 100)
            .msg("cur", NOW - 2 * DAY, 100)
            .done();
        assert_eq!(
            removed(&plan_mailbox(&l, &quota_rules(200))),
            vec![(0, Reason::Old)]
        );
        assert_eq!(
            removed(&plan_mailbox(&l, &quota_rules(100))),
            vec![(0, Reason::Old), (1, Reason::Quota)]
        );
    }

    #[test]
    fn daily_target_is_70_percent() {
        assert_eq!(daily_quota_target(500), 350 * MB);
        assert_eq!(daily_quota_target(10), 7 * MB);
        let cfg = chatmail_common::config::Config::from_str(
            "[params]\nmail_domain = example.org\nmax_mailbox_size = 100M\n",
            std::path::Path::new("x.ini"),
        )
        .unwrap()
        .0;
        let r = Rules::daily(&cfg, NOW, NOW + 5);
        assert_eq!(r.quota_target, 70 * MB);
        assert_eq!(r.inactive_before, NOW - 90 * DAY);
        assert_eq!(r.old_before, NOW - 20 * DAY);
        assert_eq!(r.large_before, NOW - 7 * DAY);
        assert_eq!(r.protect_after, NOW + 5 - DAY);
    }

    #[test]
    fn name_parsing() {
        let parsed = |name: &str| {
            let l = Builder::new().raw("cur", name, 42, 7).done();
            let m = &l.messages[0];
            (name_time(&l, m), quota_size(&l, m))
        };
        assert_eq!(
            parsed("1775324677.M448978P3029757.host,S=3235,W=3305:2,S"),
            (1775324677, 3235)
        );
        assert_eq!(parsed("1775324677.M1.host"), (1775324677, 7));
        for odd in [
            "x.y,S=",
            "abc",
            "12345",
            ".1,S=x",
            "99999999999999999999.a,S=1",
        ] {
            assert_eq!(parsed(odd).0, 42, "{odd}");
        }
        assert_eq!(parsed("1.a,S=12a,W=1").1, 12);
        assert_eq!(parsed("1.a,S=99999999999999999999999").1, 7);
    }
}
