//! Benchmark of the push notifier (not a test: prints figures).
//!
//! `cargo bench -p chatmail-pushnotify --bench notify` runs:
//! * **rate**: 10 000 notifications queued on disk, delivered after a (re)start to a local
//!   TLS + HTTP/2 gateway stand-in (self-signed certificate, trusted as an extra CA), against
//!   the floor: the same HTTP client POSTing 10 000 times with the same concurrency and no
//!   queue, measured in the same run.
//! * **trigger**: `messagenew` commits per second over the dict socket (each writes and fsyncs
//!   a queue file before the reply) against lookups that touch no disk, same connections.
//! * **rss**: peak RSS of a separate process holding 100 000 pending notifications (gateway
//!   unreachable, so all wait for their retry).
//!
//! Pass `rate`, `trigger` or `rss` to run one part only.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatmail_common::mailbox::Address;
use chatmail_pushnotify::clock::{Clock, SystemClock};
use chatmail_pushnotify::gateway::{Gateway, Outcome, TIMEOUT};
use chatmail_pushnotify::notifier::DEFAULT_MAX_IN_FLIGHT;
use chatmail_pushnotify::queue;
use chatmail_pushnotify::retry::Schedule;
use chatmail_pushnotify::service;
use support::gateway::{StandIn, always};
use support::{Client, Harness, USER};

const RATE_N: usize = 10_000;
const RSS_N: usize = 100_000;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("rss-child") {
        return rss_child();
    }
    let all = args.is_empty();
    let want = |name: &str| all || args.iter().any(|a| a == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if want("rate") {
        rt.block_on(rate());
    }
    if want("trigger") {
        rt.block_on(trigger());
    }
    if want("rss") {
        rss();
    }
}

/// Writes `n` queue files for [`USER`] (setup only: no fsync).
fn fill_queue(h: &Harness, n: usize) {
    let dir = h.queue_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let addr = Address::parse(USER).unwrap();
    let now = SystemClock.unix_now();
    for i in 0..n {
        // realistic token length (FCM tokens are ~160 characters)
        let token = format!("{i:08}-{}", "x".repeat(150));
        std::fs::write(
            dir.join(format!("{i:032x}")),
            queue::encode(&addr, now, &token),
        )
        .unwrap();
    }
}

async fn rate() {
    let gw = StandIn::https(always(200)).await;
    let h = Harness::new();
    let ca = h.dir.path().join("gateway-ca.pem");
    std::fs::write(&ca, gw.cert_pem.as_ref().unwrap()).unwrap();
    let gateway = Gateway::new(&gw.url, TIMEOUT, Some(&ca)).unwrap();

    // the floor: bare POSTs with the same client and concurrency
    assert_eq!(gateway.notify("warm-up").await, Outcome::Delivered);
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_IN_FLIGHT));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..RATE_N {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let g = gateway.clone();
        set.spawn(async move {
            let token = format!("{i:08}-{}", "x".repeat(150));
            let outcome = g.notify(&token).await;
            drop(permit);
            outcome
        });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap(), Outcome::Delivered);
    }
    let floor = RATE_N as f64 / started.elapsed().as_secs_f64();
    let version = gw.hits().last().unwrap().version;

    // the notifier: requeue from disk at start, deliver, delete every file
    fill_queue(&h, RATE_N);
    let before = gw.count();
    let started = Instant::now();
    let svc = service::start(
        h.settings(Schedule::default()),
        gateway,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    assert_eq!(svc.requeued, RATE_N);
    let loaded = started.elapsed();
    while svc.notifier.counts().delivered < RATE_N as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // the file is deleted right after the count moves; reading the directory is costly, so
    // look only now
    while !h.queue_files().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let rate = RATE_N as f64 / elapsed.as_secs_f64();
    assert_eq!(gw.count() - before, RATE_N);
    println!(
        "rate: {RATE_N} queued notifications to a TLS gateway stand-in ({version:?}), {DEFAULT_MAX_IN_FLIGHT} in flight"
    );
    println!("  floor (bare POSTs, same client)      {floor:>9.0} /s");
    println!(
        "  notifier (load + POST + delete file) {rate:>9.0} /s  ({:.2} s of which loading {:.2} s; ratio {:.2})",
        elapsed.as_secs_f64(),
        loaded.as_secs_f64(),
        rate / floor
    );
}

async fn trigger() {
    const CONNS: usize = 8;
    const PER_CONN: usize = 250;
    let gw = StandIn::http(always(200)).await;
    let mut h = Harness::new();
    h.start(&gw.url, Schedule::default()).await;
    Client::connect(&h.socket)
        .await
        .set_token(USER, "benchtoken")
        .await;
    let key = "shared/0/vendor/vendor.dovecot/pvt/server/vendor/deltachat/maxsmtprecipients";

    let run = |messagenew: bool| {
        let socket = h.socket.clone();
        async move {
            let started = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..CONNS {
                let socket = socket.clone();
                set.spawn(async move {
                    let mut c = Client::connect(&socket).await;
                    let mut lat = Vec::with_capacity(PER_CONN);
                    for _ in 0..PER_CONN {
                        let t = Instant::now();
                        let reply = if messagenew {
                            c.message_new(USER).await
                        } else {
                            c.lookup(key, USER).await
                        };
                        assert!(reply.starts_with('O'), "{reply}");
                        lat.push(t.elapsed());
                    }
                    lat
                });
            }
            let mut lat = Vec::new();
            while let Some(r) = set.join_next().await {
                lat.extend(r.unwrap());
            }
            let rate = (CONNS * PER_CONN) as f64 / started.elapsed().as_secs_f64();
            lat.sort();
            (rate, lat[lat.len() / 2], lat[lat.len() * 99 / 100])
        }
    };
    let (floor, f50, f99) = run(false).await;
    let (rate, p50, p99) = run(true).await;
    h.wait_queue_empty().await;
    println!(
        "trigger: dict requests over {CONNS} connections ({} each)",
        PER_CONN
    );
    println!("  floor (lookup, no disk)             {floor:>9.0} /s  p50 {f50:?} p99 {f99:?}");
    println!(
        "  messagenew (queue file + fsync)     {rate:>9.0} /s  p50 {p50:?} p99 {p99:?}  (ratio {:.2})",
        rate / floor
    );
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn rss() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("rss-child")
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rss_child() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = Harness::new();
        fill_queue(&h, RSS_N);
        let idle = vm_hwm_kib();
        // nothing listens there: every first try fails at once and waits 8 s for its retry
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let gateway = Gateway::new(&format!("http://127.0.0.1:{port}/notify"), TIMEOUT, None).unwrap();
        let started = Instant::now();
        let svc = service::start(h.settings(Schedule::default()), gateway, Arc::new(SystemClock))
            .await
            .unwrap();
        assert_eq!(svc.requeued, RSS_N);
        while svc.notifier.counts().failed_tries < RSS_N as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let peak = vm_hwm_kib();
        println!("rss: {RSS_N} pending notifications (requeued, tried once, waiting for retry) in {:.2} s", started.elapsed().as_secs_f64());
        println!("  peak RSS before loading  {:>7.1} MiB", idle as f64 / 1024.0);
        println!(
            "  peak RSS with all pending {:>7.1} MiB  ({:.0} bytes per notification)",
            peak as f64 / 1024.0,
            (peak.saturating_sub(idle) * 1024) as f64 / RSS_N as f64
        );
    });
}
