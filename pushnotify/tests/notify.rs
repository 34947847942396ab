//! Notifications end to end inside the process: dict trigger → queue file → gateway stand-in.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chatmail_pushnotify::retry::Schedule;
use support::gateway::{Reply, StandIn, always};
use support::{Harness, USER, fast_schedule};

#[tokio::test]
async fn one_post_per_token_and_200_deletes_the_file() {
    let gw = StandIn::http(always(200)).await;
    let mut h = Harness::new();
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    // no tokens: nothing to do
    assert_eq!(c.message_new(USER).await, "O1");
    c.set_token(USER, "1111").await;
    c.set_token(USER, "2222").await;
    assert_eq!(c.message_new(USER).await, "O4");
    gw.wait_for("two posts", |hits| hits.len() == 2).await;
    h.wait_queue_empty().await;
    let mut bodies = gw.bodies();
    bodies.sort();
    assert_eq!(bodies, vec!["1111", "2222"]);
    assert_eq!(gw.hits()[0].version, hyper::Version::HTTP_11);
    // give a late duplicate a chance to show up
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gw.count(), 2);
    let counts = h.service.as_ref().unwrap().notifier.counts();
    assert_eq!(counts.delivered, 2);
    // tokens stay
    assert_eq!(c.get_tokens(USER).await, "O1111 2222");
}

#[tokio::test]
async fn gone_410_removes_the_token() {
    let gw = StandIn::http(Arc::new(|token: &str, _| {
        Reply::Status(if token == "dead" { 410 } else { 200 })
    }))
    .await;
    let mut h = Harness::new();
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    c.set_token(USER, "dead").await;
    c.set_token(USER, "alive").await;
    c.message_new(USER).await;
    gw.wait_for("two posts", |hits| hits.len() == 2).await;
    h.wait_queue_empty().await;
    assert_eq!(c.get_tokens(USER).await, "Oalive");
    assert!(
        !std::fs::read_to_string(h.metadata_json(USER))
            .unwrap()
            .contains("dead")
    );
    // the next message only notifies the remaining token
    c.message_new(USER).await;
    gw.wait_for("third post", |hits| hits.len() == 3).await;
    assert_eq!(gw.bodies()[2], "alive");
}

#[tokio::test]
async fn failures_are_retried_until_delivered() {
    // 500, then a timeout, then a 503, then 200
    let gw = StandIn::http(Arc::new(|_: &str, nth| match nth {
        0 => Reply::Status(500),
        1 => Reply::Hang,
        2 => Reply::Status(503),
        _ => Reply::Status(200),
    }))
    .await;
    let mut h = Harness::new();
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    c.set_token(USER, "tok").await;
    c.message_new(USER).await;
    assert_eq!(h.queue_files().len(), 1);
    gw.wait_for("four tries", |hits| hits.len() == 4).await;
    h.wait_queue_empty().await;
    let counts = h.service.as_ref().unwrap().notifier.counts();
    assert_eq!(
        (counts.failed_tries, counts.delivered, counts.dropped),
        (3, 1, 0)
    );
    assert_eq!(c.get_tokens(USER).await, "Otok");
}

#[tokio::test]
async fn five_failed_tries_then_dropped() {
    let gw = StandIn::http(always(500)).await;
    let mut h = Harness::new();
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    c.set_token(USER, "tok").await;
    c.message_new(USER).await;
    h.wait_queue_empty().await;
    assert_eq!(gw.count(), 5);
    let counts = h.service.as_ref().unwrap().notifier.counts();
    assert_eq!((counts.failed_tries, counts.dropped), (5, 1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gw.count(), 5);
}

#[tokio::test]
async fn dropped_once_past_the_deadline() {
    let gw = StandIn::http(always(500)).await;
    let mut h = Harness::new();
    // the second retry (after 2 s) would be past the 1 s deadline
    let schedule = Schedule {
        delays: vec![
            Duration::from_millis(10),
            Duration::from_secs(2),
            Duration::from_secs(2),
        ],
        deadline: Duration::from_secs(1),
    };
    h.start(&gw.url, schedule).await;
    let mut c = h.client().await;
    c.set_token(USER, "tok").await;
    c.message_new(USER).await;
    h.wait_queue_empty().await;
    // start_ts has whole-second precision, so the first retry may already be too late
    assert!((1..=2).contains(&gw.count()), "{}", gw.count());
    assert_eq!(h.service.as_ref().unwrap().notifier.counts().dropped, 1);
}

#[tokio::test]
async fn pending_notifications_survive_a_crash() {
    // a gateway that never answers: notifications stay pending
    let dead = StandIn::http(Arc::new(|_: &str, _| Reply::Hang)).await;
    let mut h = Harness::new();
    h.start(&dead.url, fast_schedule()).await;
    let mut c = h.client().await;
    c.set_token(USER, "1111").await;
    c.set_token(USER, "2222").await;
    for _ in 0..3 {
        c.message_new(USER).await;
    }
    dead.wait_for("six requests in flight", |hits| hits.len() == 6)
        .await;
    let pending = h.queue_files();
    assert_eq!(pending.len(), 6);
    let contents: Vec<String> = pending
        .iter()
        .map(|f| std::fs::read_to_string(h.queue_dir().join(f)).unwrap())
        .collect();
    // crash: drop everything without any cleanup
    h.stop();
    drop(c);
    assert_eq!(h.queue_files(), pending);

    let gw = StandIn::http(always(200)).await;
    h.start(&gw.url, fast_schedule()).await;
    assert_eq!(h.service.as_ref().unwrap().requeued, 6);
    gw.wait_for("six posts", |hits| hits.len() == 6).await;
    h.wait_queue_empty().await;
    let mut bodies = gw.bodies();
    bodies.sort();
    assert_eq!(bodies, vec!["1111", "1111", "1111", "2222", "2222", "2222"]);
    // the files kept their start time (whole seconds, same for one trigger)
    for content in contents {
        let lines: Vec<&str> = content.split('\n').collect();
        assert_eq!(lines[0], USER);
        assert!(lines[1].parse::<i64>().is_ok());
    }
}

#[tokio::test]
async fn requeue_removes_spurious_and_corrupt_files_and_keeps_start_ts() {
    let gw = StandIn::http(always(200)).await;
    let mut h = Harness::new();
    let q = h.queue_dir();
    std::fs::create_dir_all(&q).unwrap();
    std::fs::write(q.join("0123.tmp"), format!("{USER}\n1\ntok")).unwrap();
    std::fs::write(q.join("corrupt1"), "garbage").unwrap();
    std::fs::write(q.join("corrupt2"), format!("{USER}\nnot-a-time\ntok")).unwrap();
    std::fs::write(q.join("corrupt3"), b"\xff\xfe\n1\n2").unwrap();
    // an old notification whose deadline passed long ago: tried once anyway
    std::fs::write(q.join("aaaa"), format!("{USER}\n1000\nold")).unwrap();
    let now = chatmail_common::unix_time::now();
    std::fs::write(q.join("bbbb"), format!("{USER}\n{now}\nnew")).unwrap();
    h.start(&gw.url, fast_schedule()).await;
    assert_eq!(h.service.as_ref().unwrap().requeued, 2);
    gw.wait_for("two posts", |hits| hits.len() == 2).await;
    h.wait_queue_empty().await;
    let mut bodies = gw.bodies();
    bodies.sort();
    assert_eq!(bodies, vec!["new", "old"]);
}

#[tokio::test]
async fn old_requeued_notification_failing_is_dropped_not_retried() {
    let gw = StandIn::http(always(500)).await;
    let mut h = Harness::new();
    std::fs::create_dir_all(h.queue_dir()).unwrap();
    std::fs::write(h.queue_dir().join("aaaa"), format!("{USER}\n1000\nold")).unwrap();
    h.start(&gw.url, Schedule::default()).await;
    h.wait_queue_empty().await;
    assert_eq!(gw.count(), 1);
    assert_eq!(h.service.as_ref().unwrap().notifier.counts().dropped, 1);
}

#[tokio::test]
async fn a_dead_gateway_never_slows_the_dict() {
    let gw = StandIn::http(Arc::new(|_: &str, _| Reply::Hang)).await;
    let mut h = Harness::new();
    // requests hang for the whole test
    h.timeout = Duration::from_secs(60);
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    c.set_token(USER, "tok").await;
    // far more triggers than requests allowed in flight (16 in the harness)
    for i in 0..200 {
        assert_eq!(c.message_new(USER).await, format!("O{}", i + 2));
    }
    assert_eq!(c.get_tokens(USER).await, "Otok");
    assert_eq!(gw.answered(), 0);
    assert_eq!(h.queue_files().len(), 200);
    // bounded: 16 requests in flight (the harness's limit), never more
    gw.wait_for("16 requests", |hits| hits.len() >= 16).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gw.max_concurrent(), 16);
}

#[tokio::test]
async fn a_missing_queue_directory_refuses_the_trigger_and_keeps_serving() {
    let gw = StandIn::http(always(200)).await;
    let mut h = Harness::new();
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    c.set_token(USER, "tok").await;
    std::fs::remove_dir(h.queue_dir()).unwrap();
    // a file where the directory was: writes fail with ENOTDIR
    std::fs::write(h.queue_dir(), "").unwrap();
    let reply = c.message_new(USER).await;
    assert!(
        reply.starts_with("F2\tcannot queue notifications"),
        "{reply}"
    );
    assert_eq!(c.get_tokens(USER).await, "Otok");
    let mut other = h.client().await;
    assert_eq!(other.get_tokens(USER).await, "Otok");
    std::fs::remove_file(h.queue_dir()).unwrap();
    std::fs::create_dir(h.queue_dir()).unwrap();
    assert_eq!(c.message_new(USER).await, "O3");
    gw.wait_for("one post", |hits| hits.len() == 1).await;
}

/// A real full disk: the mailboxes on a tiny tmpfs (skipped where mounting is not allowed).
#[tokio::test]
async fn a_full_disk_refuses_the_trigger_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    /// Unmounts (lazily: a task may still hold a file) before the temporary dir is removed.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let gw = StandIn::http(always(200)).await;
    let mut h = Harness::with_mailboxes(dir, mnt.join("mail"));
    // declared after `h`, so dropped before it
    let _unmount = Unmount(mnt.clone());
    h.start(&gw.url, fast_schedule()).await;
    let mut c = h.client().await;
    assert_eq!(c.set_token(USER, "tok").await, "O1");
    // fill the file system
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
    }
    let reply = c.message_new(USER).await;
    assert!(
        reply.starts_with("F2\tcannot queue notifications"),
        "{reply}"
    );
    let reply = c.set_token(USER, "other").await;
    assert!(reply.starts_with('F'), "{reply}");
    assert!(
        h.queue_files().iter().all(|f| !f.ends_with(".tmp")),
        "{:?}",
        h.queue_files()
    );
    // still serving, the old token intact
    assert_eq!(c.get_tokens(USER).await, "Otok");
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(c.message_new(USER).await, "O4");
    gw.wait_for("one post", |hits| hits.len() == 1).await;
    h.stop();
}
