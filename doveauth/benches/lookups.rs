//! Lookup and account-creation throughput of `chatmail-doveauth` over its real socket, next to
//! a trivial dict server answering a constant (the IPC floor), measured in the same run.
//!
//! `cargo bench -p chatmail-doveauth`. Environment: `BENCH_SECONDS` (time per server and
//! round, default 5), `BENCH_ROUNDS` (default 3), `BENCH_CONNS` (default `1,8,64`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DOMAIN: &str = "bench.example.org";
const ACCOUNTS: usize = 1000;
const FLOOR_ENV: &str = "DOVEAUTH_BENCH_FLOOR_SOCKET";
const ASYNC_FLOOR_ENV: &str = "DOVEAUTH_BENCH_ASYNC_FLOOR_SOCKET";

fn main() {
    // `cargo bench` passes --bench; the floor server is this binary re-executed.
    if let Ok(socket) = std::env::var(FLOOR_ENV) {
        floor_server(Path::new(&socket));
        return;
    }
    if let Ok(socket) = std::env::var(ASYNC_FLOOR_ENV) {
        async_floor_server(Path::new(&socket));
        return;
    }
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let duration = Duration::from_secs_f64(seconds);
    let dir = tempfile::tempdir().unwrap();
    let mailboxes = dir.path().join("vmail");
    let hash = chatmail_doveauth::password::hash("benchmark-password").unwrap();
    let users: Vec<String> = (0..ACCOUNTS)
        .map(|i| format!("bench{i:04}@{DOMAIN}"))
        .collect();
    for u in &users {
        let mb = mailboxes.join(u);
        std::fs::create_dir_all(&mb).unwrap();
        std::fs::write(mb.join("password"), &hash).unwrap();
    }
    let config = dir.path().join("chatmail.ini");
    std::fs::write(
        &config,
        format!(
            "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\nusername_min_length = 1\n\
             username_max_length = 20\nmax_load_1m = 99999\nmin_available_memory = 0\nmin_free_disk_space = 0\n",
            mailboxes.display()
        ),
    )
    .unwrap();

    let auth_socket = dir.path().join("doveauth.sock");
    let auth = Server::start(
        Command::new(env!("CARGO_BIN_EXE_chatmail-doveauth"))
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&auth_socket)
            .env("RUST_LOG", "warn"),
        &auth_socket,
    );
    let floor_socket = dir.path().join("floor.sock");
    let floor = Server::start(
        Command::new(std::env::current_exe().unwrap()).env(FLOOR_ENV, &floor_socket),
        &floor_socket,
    );

    let async_floor_socket = dir.path().join("async-floor.sock");
    let async_floor = Server::start(
        Command::new(std::env::current_exe().unwrap()).env(ASYNC_FLOOR_ENV, &async_floor_socket),
        &async_floor_socket,
    );

    // warm up: every account once
    load(&auth, 8, Duration::from_millis(500), &users);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!(
        "Lookups of existing accounts ({ACCOUNTS} accounts, {rounds} interleaved rounds of {seconds} s \
         per server); medians over the rounds, ratios against the floor of the same round"
    );
    println!(
        "{:>5} {:<22} | {:>9} {:>7} {:>7} {:>7} {:>7} | {:>6} {:>6} {:>6}",
        "conns", "server", "req/s", "p50µs", "p99µs", "cpuµs", "usrµs", "rate", "p99", "cpu"
    );
    let conn_counts: Vec<usize> = std::env::var("BENCH_CONNS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 64]);
    let servers = [
        ("floor (threads, const)", &floor),
        ("tokio dict, const", &async_floor),
        ("chatmail-doveauth", &auth),
    ];
    for conns in conn_counts {
        // Rounds alternate the servers, so a noisy moment of the machine hits one round of
        // each rather than all of one server's measurement.
        let per_round: Vec<Vec<Stats>> = (0..rounds)
            .map(|_| {
                servers
                    .iter()
                    .map(|(_, server)| load(server, conns, duration, &users))
                    .collect()
            })
            .collect();
        for (i, (name, _)) in servers.iter().enumerate() {
            let of = |f: &dyn Fn(&Stats, &Stats) -> f64| {
                median(per_round.iter().map(|r| f(&r[i], &r[0])).collect())
            };
            println!(
                "{conns:>5} {name:<22} | {:>9.0} {:>7.0} {:>7.0} {:>7.1} {:>7.1} | {:>6.2} {:>6.2} {:>6.2}",
                of(&|s, _| s.rate),
                of(&|s, _| s.p50),
                of(&|s, _| s.p99),
                of(&|s, _| s.cpu_us),
                of(&|s, _| s.user_us),
                of(&|s, f| s.rate / f.rate),
                of(&|s, f| s.p99 / f.p99),
                of(&|s, f| s.cpu_us / f.cpu_us),
            );
        }
    }
    println!("(cpuµs: server CPU time per request, user + system; usrµs: of which user)");

    // First logins: creation rate versus the SHA512-CRYPT rate on all cores.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let n_hashes = 400;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                for _ in 0..n_hashes / cores {
                    chatmail_doveauth::password::hash("benchmark-password").unwrap();
                }
            });
        }
    });
    let hash_rate = n_hashes as f64 / start.elapsed().as_secs_f64();
    let n_new = 1000;
    // As many connections as Dovecot's default auth_worker_max_count (30), so that one
    // login's disk waits (three fsyncs) overlap with others' hashing.
    let create_conns = 30;
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..create_conns {
            s.spawn(|| {
                let mut c = Client::connect(&auth.socket);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n_new {
                        break;
                    }
                    let reply = c.passdb(&format!("new{i:05}@{DOMAIN}"), "benchmark-password");
                    assert!(reply.starts_with('O'), "{reply}");
                }
            });
        }
    });
    let create_rate = n_new as f64 / start.elapsed().as_secs_f64();
    println!(
        "first-login creations: {create_rate:.0}/s with {create_conns} connections; SHA512-CRYPT alone on {cores} cores: {hash_rate:.0}/s; ratio {:.2}",
        create_rate / hash_rate
    );
    drop((auth, floor));
}

struct Server {
    child: Child,
    socket: PathBuf,
}

impl Server {
    fn start(cmd: &mut Command, socket: &Path) -> Server {
        let child = cmd.stdout(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(socket).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Server {
            child,
            socket: socket.to_path_buf(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    line: String,
}

impl Client {
    fn connect(socket: &Path) -> Client {
        let stream = UnixStream::connect(socket).unwrap();
        let mut c = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            line: String::new(),
        };
        c.stream.write_all(b"H3\t2\t0\t\tauth\n").unwrap();
        c
    }

    fn passdb(&mut self, user: &str, password: &str) -> &str {
        let req = format!("Lshared/passdb/{password}\"{user}\t{user}\n");
        self.stream.write_all(req.as_bytes()).unwrap();
        self.line.clear();
        self.reader.read_line(&mut self.line).unwrap();
        &self.line
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

struct Stats {
    rate: f64,
    p50: f64,
    p99: f64,
    /// Server CPU time (user + system) per request, in µs.
    cpu_us: f64,
    /// Of which user time.
    user_us: f64,
}

/// CPU time (user, system) a process used so far, in µs.
fn cpu_time_us(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the parenthesised command name; utime and stime are the 12th and 13th
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) / hz * 1e6, ticks(12) / hz * 1e6)
}

/// Time the connections of a load run before measuring starts (Dovecot keeps its auth
/// connections open, so the steady state is what counts, not connection setup).
const CONNECTION_WARMUP: Duration = Duration::from_secs(1);

/// `conns` connections, each with one request outstanding at a time (as Dovecot's auth
/// workers do), measured for `duration` after [`CONNECTION_WARMUP`].
fn load(server: &Server, conns: usize, duration: Duration, users: &[String]) -> Stats {
    let socket = server.socket.as_path();
    let measure_from = Instant::now() + CONNECTION_WARMUP;
    let measure_until = measure_from + duration;
    let mut cpu = (0.0, 0.0);
    let mut latencies: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|t| {
                s.spawn(move || {
                    let mut c = Client::connect(socket);
                    let mut lat = Vec::with_capacity(100_000);
                    let mut i = t * 7919;
                    loop {
                        let user = &users[i % users.len()];
                        i += 1;
                        let t0 = Instant::now();
                        if t0 >= measure_until {
                            break;
                        }
                        let reply = c.passdb(user, "benchmark-password");
                        assert!(reply.starts_with('O'), "{reply}");
                        if t0 >= measure_from {
                            lat.push(t0.elapsed().as_micros() as u32);
                        }
                    }
                    lat
                })
            })
            .collect();
        std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
        let before = cpu_time_us(server.child.id());
        std::thread::sleep(measure_until.saturating_duration_since(Instant::now()));
        let after = cpu_time_us(server.child.id());
        cpu = (after.0 - before.0, after.1 - before.1);
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let n = latencies.len().max(1) as f64;
    let user_us = cpu.0 / n;
    let cpu_us = (cpu.0 + cpu.1) / n;
    latencies.sort_unstable();
    let pct =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64;
    Stats {
        rate: latencies.len() as f64 / duration.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        cpu_us,
        user_us,
    }
}

/// The shared crate's dict server (tokio) with a handler answering one constant record:
/// what the async I/O model costs without any account logic.
fn async_floor_server(socket: &Path) {
    struct Constant(String);
    impl chatmail_common::dict::Handler for Constant {
        async fn lookup(
            &self,
            _: &chatmail_common::dict::Session,
            _: String,
            _: String,
        ) -> chatmail_common::dict::LookupReply {
            chatmail_common::dict::LookupReply::Found(self.0.clone())
        }
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        let reply = constant_reply();
        let json = reply.trim_start_matches('O').trim_end().to_string();
        chatmail_common::dict::serve(
            listener,
            std::sync::Arc::new(Constant(json)),
            std::future::pending(),
        )
        .await
        .unwrap();
    });
}

fn constant_reply() -> String {
    format!(
        "O{{\"addr\": \"x@{DOMAIN}\", \"home\": \"/home/vmail/mail/{DOMAIN}/x@{DOMAIN}\", \"uid\": \"vmail\", \"gid\": \"vmail\", \"password\": \"{}\"}}\n",
        "{SHA512-CRYPT}$6$0123456789abcdef$".to_string() + &"x".repeat(86)
    )
}

/// The IPC floor: a dict server that answers every lookup with one constant record, using a
/// thread per connection and no parsing beyond finding the line end.
fn floor_server(socket: &Path) {
    let _ = std::fs::remove_file(socket);
    let reply = constant_reply();
    let listener = UnixListener::bind(socket).unwrap();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let reply = reply.clone();
        std::thread::Builder::new()
            .name("floor-conn".into())
            .spawn(move || floor_conn(stream, reply))
            .unwrap();
    }
}

fn floor_conn(stream: UnixStream, reply: String) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        if line.first() == Some(&b'L') && writer.write_all(reply.as_bytes()).is_err() {
            break;
        }
        line.clear();
    }
}
