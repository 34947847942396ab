//! Lookup and account-creation throughput of `chatmail-doveauth` over its real socket, next to
//! a trivial dict server answering a constant (the IPC floor), measured in the same run.
//!
//! Two client models, each with one request in flight per connection:
//!
//! * threads: a blocking thread per connection;
//! * event loop: one thread driving all connections with epoll, as a Dovecot process's ioloop
//!   does with its dict connections.
//!
//! `cargo bench -p chatmail-doveauth`. Environment: `BENCH_SECONDS` (measured time per server
//! and connection count, default 10), `BENCH_SLICE_MS` (the servers take turns in slices this
//! long, default 250), `BENCH_CONNS` (default `1,8,64`), `BENCH_CLIENTS` (`threads`,
//! `event-loop` or both, the default), `BENCH_RECONNECT=1` (thread clients open a new
//! connection for every request: the worst case of a client that does not keep its
//! connection), `BENCH_DOVEAUTH_ALT=PATH` (also measure another chatmail-doveauth binary, e.g.
//! a build of another commit, as one more server of the same run).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

const DOMAIN: &str = "bench.example.org";
const ACCOUNTS: usize = 1000;
/// The password of every benchmark account.
const PASSWORD: &str = "benchmark-password";
/// The hello line of Dovecot's auth dict connections.
const HELLO: &[u8] = b"H3\t2\t0\t\tauth\n";
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
        .unwrap_or(10.0);
    let duration = Duration::from_secs_f64(seconds);
    let dir = tempfile::tempdir().unwrap();
    let mailboxes = dir.path().join("vmail");
    let hash = chatmail_doveauth::password::hash(PASSWORD).unwrap();
    let users: Vec<String> = (0..ACCOUNTS)
        .map(|i| format!("bench{i:04}@{DOMAIN}"))
        .collect();
    for u in &users {
        let mb = mailboxes.join(u);
        std::fs::create_dir_all(&mb).unwrap();
        std::fs::write(mb.join("password"), &hash).unwrap();
    }
    let auth = start_doveauth(dir.path());
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
    let alt = std::env::var_os("BENCH_DOVEAUTH_ALT").map(|bin| {
        let alt_dir = dir.path().join("alt");
        std::fs::create_dir_all(&alt_dir).unwrap();
        std::os::unix::fs::symlink(&mailboxes, alt_dir.join("vmail")).unwrap();
        start_doveauth_binary(Path::new(&bin), &alt_dir)
    });
    let mut servers = vec![
        ("floor (threads, const)", &floor),
        ("tokio dict, const", &async_floor),
        ("chatmail-doveauth", &auth),
    ];
    if let Some(alt) = &alt {
        warm_up(alt, &users);
        servers.push(("doveauth (ALT binary)", alt));
    }
    let reconnect = std::env::var("BENCH_RECONNECT").is_ok_and(|v| v == "1");
    RECONNECT.store(reconnect, Ordering::SeqCst);
    let slice = Duration::from_millis(
        std::env::var("BENCH_SLICE_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(250),
    );
    warm_up(&auth, &users);
    let conn_counts: Vec<usize> = std::env::var("BENCH_CONNS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 64]);
    let models: Vec<ClientModel> = match std::env::var("BENCH_CLIENTS").ok().as_deref() {
        Some("threads") => vec![ClientModel::Threads],
        Some("event-loop") => vec![ClientModel::EventLoop],
        _ => vec![ClientModel::Threads, ClientModel::EventLoop],
    };
    println!(
        "Lookups of existing accounts ({ACCOUNTS} accounts): each server measured for {seconds} s \
         in slices of {} ms taking turns, connections held open; ratios against the floor and \
         against the tokio dict server",
        slice.as_millis()
    );
    if reconnect {
        println!("thread clients reconnect for every request (BENCH_RECONNECT=1)");
    }
    let list: Vec<&Server> = servers.iter().map(|(_, s)| *s).collect();
    for model in models {
        println!("client: {}", model.describe());
        print_header();
        for &conns in &conn_counts {
            let stats = measure(model, &list, conns, duration, slice, &users);
            for ((name, _), s) in servers.iter().zip(&stats) {
                print_row(conns, name, s, &stats[0], &stats[1]);
            }
        }
    }
    println!("(cpuµs: server CPU time per request, user + system; usrµs: of which user)");

    drop((auth, floor, async_floor, alt));

    // First logins: creation rate versus the SHA512-CRYPT rate on all cores, with the
    // mailboxes on the temporary directory's file system and on tmpfs (no disk).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hash_rate = hash_rate(cores);
    let tmpfs = Path::new("/dev/shm");
    let mut places = vec![(std::env::temp_dir(), "temporary directory")];
    if tmpfs.is_dir() {
        places.push((tmpfs.to_path_buf(), "tmpfs"));
    }
    for (place, what) in places {
        let dir = tempfile::tempdir_in(&place).unwrap();
        let auth = start_doveauth(dir.path());
        let rate = creation_rate(&auth);
        println!(
            "first-login creations on {} ({what}): {rate:.0}/s with {CREATE_CONNS} connections; \
             SHA512-CRYPT alone on {cores} cores: {hash_rate:.0}/s; ratio {:.2}",
            place.display(),
            rate / hash_rate
        );
    }
}

/// How the benchmark's client drives its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientModel {
    /// A blocking thread per connection.
    Threads,
    /// One thread with an epoll loop over all connections.
    EventLoop,
}

impl ClientModel {
    fn describe(self) -> &'static str {
        match self {
            ClientModel::Threads => "threads (one blocking thread per connection)",
            ClientModel::EventLoop => {
                "event loop (one thread, epoll over all connections, as Dovecot's ioloop)"
            }
        }
    }
}

fn print_header() {
    println!(
        "{:>5} {:<22} | {:>9} {:>7} {:>7} {:>7} {:>7} | {:>6} {:>11} {:>6} | {:>6} {:>6}",
        "conns",
        "server",
        "req/s",
        "p50µs",
        "p99µs",
        "cpuµs",
        "usrµs",
        "rate",
        "p99 (range)",
        "cpu",
        "rate/t",
        "p99/t"
    );
}

/// One server's row: its figures, ratios against the floor (with the p99 ratio's range over
/// the blocks of slices) and against the tokio dict server.
fn print_row(conns: usize, name: &str, s: &Stats, floor: &Stats, tokio: &Stats) {
    let blocks: Vec<f64> = s
        .block_p99
        .iter()
        .zip(&floor.block_p99)
        .map(|(a, b)| a / b)
        .collect();
    let lo = blocks.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = blocks.iter().copied().fold(0.0, f64::max);
    println!(
        "{conns:>5} {name:<22} | {:>9.0} {:>7.0} {:>7.0} {:>7.1} {:>7.1} | {:>6.2} {:>4.2} {:>6} {:>6.2} | {:>6.2} {:>6.2}",
        s.rate,
        s.p50,
        s.p99,
        s.cpu_us,
        s.user_us,
        s.rate / floor.rate,
        s.p99 / floor.p99,
        format!("{lo:.1}–{hi:.1}"),
        s.cpu_us / floor.cpu_us,
        s.rate / tokio.rate,
        s.p99 / tokio.p99,
    );
}

/// Starts chatmail-doveauth with its mailboxes in `dir`.
fn start_doveauth(dir: &Path) -> Server {
    start_doveauth_binary(Path::new(env!("CARGO_BIN_EXE_chatmail-doveauth")), dir)
}

/// Starts the chatmail-doveauth binary `bin` with its mailboxes in `dir`.
fn start_doveauth_binary(bin: &Path, dir: &Path) -> Server {
    let config = dir.join("chatmail.ini");
    std::fs::write(
        &config,
        format!(
            "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\nusername_min_length = 1\n\
             username_max_length = 20\nmax_load_1m = 99999\nmin_available_memory = 0\nmin_free_disk_space = 0\n",
            dir.join("vmail").display()
        ),
    )
    .unwrap();
    let socket = dir.join("doveauth.sock");
    Server::start(
        Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .env("RUST_LOG", "warn"),
        &socket,
    )
}

/// SHA512-CRYPT hashes per second with one thread per core.
fn hash_rate(cores: usize) -> f64 {
    let n = 1000;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                for _ in 0..n / cores {
                    chatmail_doveauth::password::hash(PASSWORD).unwrap();
                }
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

/// As many connections as Dovecot's default `auth_worker_max_count`.
const CREATE_CONNS: usize = 30;

/// First logins (account creations) per second.
fn creation_rate(auth: &Server) -> f64 {
    let n_new = 3000;
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..CREATE_CONNS {
            s.spawn(|| {
                let mut c = Conn::connect(&auth.socket);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n_new {
                        break;
                    }
                    let reply = c.passdb(&format!("new{i:05}@{DOMAIN}"), PASSWORD);
                    assert!(reply.starts_with('O'), "{reply}");
                }
            });
        }
    });
    n_new as f64 / start.elapsed().as_secs_f64()
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

/// A blocking connection.
struct Conn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    line: String,
}

impl Conn {
    fn connect(socket: &Path) -> Conn {
        let stream = UnixStream::connect(socket).unwrap();
        let mut c = Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            line: String::new(),
        };
        c.stream.write_all(HELLO).unwrap();
        c
    }

    fn passdb(&mut self, user: &str, password: &str) -> &str {
        let req = passdb_request(user, password);
        self.stream.write_all(req.as_bytes()).unwrap();
        self.line.clear();
        self.reader.read_line(&mut self.line).unwrap();
        &self.line
    }
}

struct Stats {
    rate: f64,
    p50: f64,
    p99: f64,
    /// p99 of each block of [`BLOCKS`] consecutive slices.
    block_p99: Vec<f64>,
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

/// Loads the servers every account once over a few connections, so that the measurement
/// sees the steady state (Dovecot's auth cache is warm in the same way).
fn warm_up(server: &Server, users: &[String]) {
    std::thread::scope(|s| {
        for chunk in users.chunks(users.len().div_ceil(8)) {
            s.spawn(move || {
                let mut c = Conn::connect(&server.socket);
                for user in chunk {
                    let reply = c.passdb(user, PASSWORD);
                    assert!(reply.starts_with('O'), "{reply}");
                }
            });
        }
    });
}

/// Slices are grouped in this many blocks for the spread of the p99 ratio.
const BLOCKS: usize = 5;
/// Time after a switch during which nothing is recorded: the previous server's last
/// requests finish, the next server's threads wake up.
const SETTLE: Duration = Duration::from_millis(20);
/// Time on the open connections before measuring (Dovecot keeps its auth connections, so
/// the steady state is what counts, not connection setup).
const CONNECTION_WARMUP: Duration = Duration::from_secs(1);

/// Which server's clients run, and whether their requests are recorded: `server << 1 | rec`.
struct Turn(AtomicUsize, Mutex<()>, Condvar);

impl Turn {
    const IDLE: usize = usize::MAX >> 1;

    fn set(&self, server: usize, record: bool) {
        let _g = self.1.lock().unwrap();
        self.0
            .store(server << 1 | record as usize, Ordering::SeqCst);
        self.2.notify_all();
    }

    fn get(&self) -> (usize, bool) {
        let v = self.0.load(Ordering::SeqCst);
        (v >> 1, v & 1 == 1)
    }

    /// Waits until it is `server`'s turn or the end; false at the end.
    fn wait_for(&self, server: usize, end: &AtomicBool) -> bool {
        let mut g = self.1.lock().unwrap();
        loop {
            if end.load(Ordering::SeqCst) {
                return false;
            }
            if self.get().0 == server {
                return true;
            }
            g = self.2.wait(g).unwrap();
        }
    }
}

/// `conns` connections to each server, each with one request outstanding at a time (as
/// Dovecot's auth workers do). The servers take turns in slices of `slice` until each was
/// measured for `duration`, so that the machine's slow drifts (this is a shared VM) hit
/// every server alike instead of one server's whole measurement.
fn measure(
    model: ClientModel,
    servers: &[&Server],
    conns: usize,
    duration: Duration,
    slice: Duration,
    users: &[String],
) -> Vec<Stats> {
    let turn = Turn(
        AtomicUsize::new(Turn::IDLE << 1),
        Mutex::new(()),
        Condvar::new(),
    );
    let end = AtomicBool::new(false);
    let slices = (duration.as_secs_f64() / slice.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    // per server: (user, system) CPU µs and the time measured
    let mut cpu = vec![(0.0, 0.0); servers.len()];
    let mut measured = vec![Duration::ZERO; servers.len()];
    let per_client: Vec<Vec<Vec<(usize, u32)>>> = std::thread::scope(|s| {
        let handles: Vec<Vec<_>> = servers
            .iter()
            .enumerate()
            .map(|(si, server)| {
                let client = Client {
                    server,
                    si,
                    turn: &turn,
                    end: &end,
                    users,
                };
                match model {
                    ClientModel::Threads => (0..conns)
                        .map(|t| s.spawn(move || thread_client::run(&client, t)))
                        .collect(),
                    ClientModel::EventLoop => {
                        vec![s.spawn(move || event_loop_client::run(&client, conns))]
                    }
                }
            })
            .collect();
        for (si, _) in servers.iter().enumerate() {
            turn.set(si, false);
            std::thread::sleep(CONNECTION_WARMUP);
        }
        for n in 0..slices {
            for (si, server) in servers.iter().enumerate() {
                turn.set(si, false);
                std::thread::sleep(SETTLE);
                let before = cpu_time_us(server.child.id());
                let t0 = Instant::now();
                SLICE_NO.store(n, Ordering::SeqCst);
                turn.set(si, true);
                std::thread::sleep(slice);
                turn.set(si, false);
                measured[si] += t0.elapsed();
                let after = cpu_time_us(server.child.id());
                cpu[si].0 += after.0 - before.0;
                cpu[si].1 += after.1 - before.1;
            }
        }
        end.store(true, Ordering::SeqCst);
        turn.set(Turn::IDLE, false);
        handles
            .into_iter()
            .map(|hs| hs.into_iter().map(|h| h.join().unwrap()).collect())
            .collect()
    });
    per_client
        .into_iter()
        .enumerate()
        .map(|(si, clients)| {
            let mut all: Vec<u32> = Vec::new();
            let mut blocks: Vec<Vec<u32>> = vec![Vec::new(); BLOCKS];
            for (n, lat) in clients.into_iter().flatten() {
                all.push(lat);
                blocks[n * BLOCKS / slices].push(lat);
            }
            let n = all.len().max(1) as f64;
            Stats {
                rate: all.len() as f64 / measured[si].as_secs_f64(),
                p50: percentile(&mut all, 0.50),
                p99: percentile(&mut all, 0.99),
                block_p99: blocks.iter_mut().map(|b| percentile(b, 0.99)).collect(),
                cpu_us: (cpu[si].0 + cpu[si].1) / n,
                user_us: cpu[si].0 / n,
            }
        })
        .collect()
}

/// The slice being recorded, for the block statistics.
static SLICE_NO: AtomicUsize = AtomicUsize::new(0);
/// Thread clients open a new connection for every request (`BENCH_RECONNECT=1`).
static RECONNECT: AtomicBool = AtomicBool::new(false);

/// What a client (of either model) of one server needs.
#[derive(Clone, Copy)]
struct Client<'a> {
    server: &'a Server,
    /// The server's index, for [`Turn`].
    si: usize,
    turn: &'a Turn,
    end: &'a AtomicBool,
    users: &'a [String],
}

/// The passdb lookup request line for `user`.
fn passdb_request(user: &str, password: &str) -> String {
    format!("Lshared/passdb/{password}\"{user}\t{user}\n")
}

/// A blocking thread per connection, each with one request in flight.
mod thread_client {
    use super::*;

    /// One connection on this thread: runs while it is its server's turn, records the latency
    /// (µs) of the requests that started in a recording window, with the slice number.
    pub fn run(client: &Client<'_>, t: usize) -> Vec<(usize, u32)> {
        let Client {
            server,
            si,
            turn,
            end,
            users,
        } = *client;
        let mut c = Conn::connect(&server.socket);
        let mut lat = Vec::with_capacity(100_000);
        let mut i = t * 7919;
        while turn.wait_for(si, end) {
            loop {
                let (now, record) = turn.get();
                if now != si {
                    break;
                }
                let n = SLICE_NO.load(Ordering::SeqCst);
                let user = &users[i % users.len()];
                i += 1;
                let t0 = Instant::now();
                if RECONNECT.load(Ordering::Relaxed) {
                    c = Conn::connect(&server.socket);
                }
                let reply = c.passdb(user, PASSWORD);
                assert!(reply.starts_with('O'), "{reply}");
                if record {
                    lat.push((n, t0.elapsed().as_micros() as u32));
                }
            }
        }
        lat
    }
}

/// One thread driving all connections with a level-triggered epoll loop, each connection with
/// one request in flight: what a Dovecot process does with its dict connections (its ioloop
/// is epoll, and its dict client sends the next lookup on a connection when the reply came).
mod event_loop_client {
    use super::*;
    use rustix::buffer::spare_capacity;
    use rustix::event::epoll;
    use std::io::{ErrorKind, Read};

    /// One non-blocking connection and its request in flight.
    struct Conn {
        stream: UnixStream,
        /// Bytes of the reply read so far.
        buf: Vec<u8>,
        /// When the request in flight was sent, whether it is recorded, and in which slice.
        sent: Option<(Instant, bool, usize)>,
        /// Index of the next user to look up.
        next: usize,
    }

    impl Conn {
        fn connect(socket: &Path, t: usize) -> Conn {
            let mut stream = UnixStream::connect(socket).unwrap();
            stream.write_all(HELLO).unwrap();
            stream.set_nonblocking(true).unwrap();
            Conn {
                stream,
                buf: Vec::with_capacity(1024),
                sent: None,
                next: t * 7919,
            }
        }

        /// Sends the next lookup. A request is far smaller than the socket buffer, which holds
        /// nothing else: the write completes at once.
        fn send(&mut self, users: &[String], record: bool) {
            let user = &users[self.next % users.len()];
            self.next += 1;
            let slice = SLICE_NO.load(Ordering::SeqCst);
            let t0 = Instant::now();
            self.stream
                .write_all(passdb_request(user, PASSWORD).as_bytes())
                .unwrap();
            self.sent = Some((t0, record, slice));
        }

        /// Reads what arrived; the latency of the request in flight once its reply is complete
        /// (`Some(None)` if it is not recorded), `None` while the reply is incomplete.
        fn receive(&mut self) -> Option<Option<(usize, u32)>> {
            let mut chunk = [0u8; 1024];
            loop {
                match self.stream.read(&mut chunk) {
                    Ok(0) => panic!("server closed the connection"),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
            if self.buf.last() != Some(&b'\n') {
                return None;
            }
            let (t0, record, slice) = self.sent.take().expect("a reply without a request");
            let latency = t0.elapsed().as_micros() as u32;
            assert!(
                self.buf.starts_with(b"O"),
                "{}",
                String::from_utf8_lossy(&self.buf)
            );
            assert_eq!(self.buf.iter().filter(|&&b| b == b'\n').count(), 1);
            self.buf.clear();
            Some(record.then_some((slice, latency)))
        }
    }

    /// `conns` connections on this thread: while it is its server's turn, every connection
    /// sends its next lookup as soon as its reply came; at the end of a turn the requests in
    /// flight are answered before the loop waits for the next turn.
    pub fn run(client: &Client<'_>, conns: usize) -> Vec<(usize, u32)> {
        let Client {
            server,
            si,
            turn,
            end,
            users,
        } = *client;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        let mut conns: Vec<Conn> = (0..conns)
            .map(|t| Conn::connect(&server.socket, t))
            .collect();
        for (i, c) in conns.iter().enumerate() {
            let data = epoll::EventData::new_u64(i as u64);
            epoll::add(&epoll, &c.stream, data, epoll::EventFlags::IN).unwrap();
        }
        let mut events = Vec::with_capacity(conns.len());
        let mut lat = Vec::with_capacity(1_000_000);
        while turn.wait_for(si, end) {
            let record = turn.get().1;
            for c in &mut conns {
                c.send(users, record);
            }
            let mut in_flight = conns.len();
            while in_flight > 0 {
                events.clear();
                match epoll::wait(&epoll, spare_capacity(&mut events), None) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => panic!("epoll_wait: {e}"),
                }
                for event in &events {
                    let c = &mut conns[event.data.u64() as usize];
                    let Some(latency) = c.receive() else {
                        continue;
                    };
                    lat.extend(latency);
                    let (now, record) = turn.get();
                    if now == si {
                        c.send(users, record);
                    } else {
                        in_flight -= 1;
                    }
                }
            }
        }
        lat
    }
}

fn percentile(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64
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
