//! `chatmail-relay setup`: chatmail.ini → plan of files → diff → atomic writes → units.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chatmail_common::config::{Config, TlsCertMode};

use crate::Error;
use crate::acme;
use crate::apply::apply;
use crate::cli::SetupArgs;
use crate::dkim;
use crate::installed::{self, DovecotSeries};
use crate::layout::Layout;
use crate::plan::{Change, FileSpec, compare, describe, on_disk};
use crate::render::render;
use crate::system::{group_id, user_ids};
use crate::systemd::{self, Restart};
use crate::templates::{
    CONFIG_FILES, DOVECOT_2_3_FILES, DOVECOT_2_4_FILES, EXTERNAL_TLS_UNITS, MARKER, TURNSERVER_CONF,
};
use crate::tls;
use crate::values::{Vmail, WEB_STATIC, values};

/// A copy of the chatmail.ini the running daemons were (re)started with: when it changes,
/// they restart.
pub const APPLIED_INI: &str = "/var/lib/chatmail-relay/chatmail.ini.applied";

/// Directories setup makes when missing (a later mailboxes_dir, the milter's sockets, the
/// DKIM key's).
#[derive(Debug, Clone)]
pub struct DirSpec {
    pub path: PathBuf,
    pub mode: u32,
    pub owner: (u32, u32),
}

pub fn run(root: &Path, config_path: &Path, args: &SetupArgs) -> Result<ExitCode, Error> {
    let layout = if args.local {
        Layout::Local
    } else {
        Layout::Systemd
    };
    let on_server = layout == Layout::Systemd && root == Path::new("/");
    let mut config = read_config(&on_disk(root, config_path), args.force)?;
    // From here on, paths are the target system's.
    let ini = std::fs::read(&config.path).map_err(|e| Error::io(&config.path, e))?;
    config.path = config_path.to_path_buf();
    let (mut specs, dirs) = plan(root, &config, layout)?;
    if layout == Layout::Systemd {
        specs.push(FileSpec::new(APPLIED_INI, ini, 0o644));
        if !args.force {
            refuse_foreign_files(root, &specs)?;
            if !args.dry_run {
                refuse_taken_ports(root)?;
            }
        }
    }
    // The ACME certificate comes before any file is written, so that a refusing or
    // unreachable ACME server leaves the previous configuration as it was, and before Postfix
    // and Dovecot (re)start (Dovecot does not start without its certificate).
    let acme = on_server && config.deployment.tls_cert_mode == TlsCertMode::Acme;
    if acme && !args.dry_run {
        stop_foreign_nginx(root)?;
    }
    let cert_renewed = acme && acme_certificate(root, &config, args.dry_run)?;
    let changes = Changes::of(root, &specs, &dirs)?;
    if args.dry_run {
        print!("{}", changes.describe());
        return Ok(ExitCode::SUCCESS);
    }
    let written = changes.write(root, root == Path::new("/"))?;
    for spec in &written {
        println!("wrote {}", spec.path.display());
    }
    if written.is_empty() {
        println!("configuration unchanged");
    }
    if let Some(note) = dkim_note(config_path, &config) {
        println!("{note}");
    }
    if on_server {
        systemd::start(restarts(&config, &written, cert_renewed))?;
        println!("relay for {} is running", config.mail_domain);
        if config.ipv4_relay.is_none() {
            warn_about_dns(root, &config);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How the disk differs from the plan.
struct Changes<'a> {
    files: Vec<(&'a FileSpec, Change)>,
    dirs: Vec<(&'a DirSpec, &'static str)>,
}

impl<'a> Changes<'a> {
    fn of(root: &Path, specs: &'a [FileSpec], dirs: &'a [DirSpec]) -> Result<Changes<'a>, Error> {
        let mut files = Vec::new();
        for spec in specs {
            let change = compare(root, spec).map_err(|e| Error::io(&spec.path, e))?;
            files.push((spec, change));
        }
        let dirs = dirs
            .iter()
            .filter_map(|d| dir_change(root, d).map(|c| (d, c)))
            .collect();
        Ok(Changes { files, dirs })
    }

    /// What `--dry-run` prints: the directories, then a diff of every file.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (d, change) in &self.dirs {
            out.push_str(&format!("{}: directory {change}\n", d.path.display()));
        }
        for (spec, change) in &self.files {
            out.extend(describe(spec, change));
        }
        out
    }

    /// Makes the directories and writes the files that differ, all or none; on a server,
    /// Postfix and Dovecot then judge the result, and a refused one is taken back. Returns
    /// what was written.
    fn write(&self, root: &Path, check: bool) -> Result<Vec<&'a FileSpec>, Error> {
        for (d, _) in &self.dirs {
            make_dir(root, d)?;
        }
        let changed: Vec<&FileSpec> = self
            .files
            .iter()
            .filter(|(_, c)| *c != Change::Unchanged)
            .map(|(s, _)| *s)
            .collect();
        let applied = apply(root, &changed)?;
        if check
            && !applied.is_empty()
            && let Err(e) = check_servers()
        {
            applied.rollback()?;
            return Err(Error::Refused(format!(
                "{e}; the previous configuration is back in place"
            )));
        }
        Ok(changed)
    }
}

/// What restarts after `written` changed: the daemons for a new chatmail.ini or DKIM key,
/// Postfix, Dovecot and nginx for their files or a new certificate.
fn restarts(config: &Config, written: &[&FileSpec], cert_renewed: bool) -> Restart {
    let touched = |prefix: &Path| written.iter().any(|s| s.path.starts_with(prefix));
    let self_signed = touched(Path::new(tls::SELF_SIGNED_DIR));
    Restart {
        external_tls: matches!(
            config.deployment.tls_cert_mode,
            TlsCertMode::External { .. }
        ),
        daemons: touched(Path::new(APPLIED_INI)) || touched(&config.dkim_key),
        postfix: touched(Path::new("/etc/postfix"))
            || touched(Path::new("/etc/mailname"))
            || self_signed
            || cert_renewed,
        dovecot: touched(Path::new("/etc/dovecot")) || self_signed || cert_renewed,
        nginx: touched(Path::new("/etc/nginx")) || self_signed || cert_renewed,
        turn: config.turn_secret_file.is_some(),
        turn_changed: touched(Path::new(TURNSERVER_CONF.dest)),
        iroh: config.deployment.enable_iroh_relay,
    }
}

/// A warning for each DNS record that is missing or wrong; DNS never fails setup.
fn warn_about_dns(root: &Path, config: &Config) {
    match crate::dns::missing_records(config, root) {
        Ok(lines) if lines.is_empty() => {}
        Ok(lines) => {
            for line in lines {
                eprintln!("chatmail-relay: warning: DNS: {line}");
            }
            eprintln!("chatmail-relay: warning: DNS: chatmail-relay dns lists every record");
        }
        Err(e) => eprintln!("chatmail-relay: warning: DNS: cannot check the records: {e}"),
    }
}

/// The config, refusing keys this version does not know (a typo would silently do nothing)
/// unless `force`.
fn read_config(path: &Path, force: bool) -> Result<Config, Error> {
    let (config, warnings) = Config::read(path)?;
    match warnings.into_iter().next() {
        Some(w) if !force => Err(Error::UnknownKey {
            path: w.path,
            key: w.key,
            line: w.line,
        }),
        Some(w) => {
            eprintln!("chatmail-relay: warning: {w}");
            Ok(config)
        }
        None => Ok(config),
    }
}

/// Every file and directory of the relay's configuration, as it should be.
pub fn plan(
    root: &Path,
    config: &Config,
    layout: Layout,
) -> Result<(Vec<FileSpec>, Vec<DirSpec>), Error> {
    let (uid, gid) = user_ids(root, "vmail")?;
    let values = values(config, layout, Vmail { uid, gid });
    let mut specs = Vec::new();
    let mut dirs = Vec::new();
    let external_tls = matches!(
        config.deployment.tls_cert_mode,
        TlsCertMode::External { .. }
    );
    let units = if layout == Layout::Systemd && external_tls {
        EXTERNAL_TLS_UNITS
    } else {
        &[]
    };
    // Dovecot 2.4 (Debian 13) takes another configuration than 2.3 (Debian 12).
    let dovecot = match installed::dovecot(root)? {
        DovecotSeries::V2_3 => DOVECOT_2_3_FILES,
        DovecotSeries::V2_4 => DOVECOT_2_4_FILES,
    };
    for t in CONFIG_FILES.iter().chain(dovecot).chain(units) {
        let content = render(t.text, &values).map_err(|e| Error::Template {
            path: t.dest.into(),
            reason: e.to_string(),
        })?;
        specs.push(FileSpec::new(t.dest, content, t.mode));
    }
    specs.extend(crate::turn::plan(root, config, layout, &values)?);
    specs.push(FileSpec::new(
        Path::new(WEB_STATIC).join("mta-sts.txt"),
        crate::dns::mta_sts::policy(&config.mail_domain_bare),
        0o644,
    ));
    if layout == Layout::Systemd {
        specs.extend(crate::environment::plan(root)?);
    }
    specs.push(FileSpec::new(
        "/etc/mailname",
        format!("{}\n", config.mail_domain_bare),
        0o644,
    ));
    if config.ipv4_relay.is_none() {
        let dkim_gid = group_id(root, "chatmail-dkim")?;
        let (key, dir) = dkim_key(root, config, dkim_gid)?;
        let record = dkim::record(
            &key.content,
            &config.mail_domain_bare,
            &config.dkim_selector,
        )
        .map_err(|reason| Error::System {
            what: format!("DKIM key {}", config.dkim_key.display()),
            reason: format!("not usable: {reason}"),
        })?;
        specs.push(key);
        dirs.extend(dir);
        let txt = config.path.with_file_name("dkim.txt");
        let line = dkim::zone_line(&config.mail_domain_bare, &config.dkim_selector, &record);
        specs.push(FileSpec::new(txt, line + "\n", 0o644));
    }
    if let TlsCertMode::External { cert, key } = &config.deployment.tls_cert_mode {
        // Postfix and Dovecot would start without them and fail at the first TLS handshake.
        for file in [cert, key] {
            if let Err(e) = std::fs::File::open(on_disk(root, file)) {
                return Err(Error::Refused(format!(
                    "{}: tls_external_cert_and_key: cannot read {}: {e}",
                    config.path.display(),
                    file.display()
                )));
            }
        }
    }
    if config.deployment.tls_cert_mode == TlsCertMode::SelfSigned {
        specs.extend(self_signed(root, config)?);
    }
    dirs.push(DirSpec {
        path: config.mailboxes_dir.clone(),
        mode: 0o700,
        owner: (uid, gid),
    });
    // The milter (vmail) binds its sockets there, Postfix connects: setgid, group postfix,
    // so the sockets (0660) get Postfix's group and nobody else gets in.
    let socket_dirs = milter_socket_dirs(config);
    if !socket_dirs.is_empty() {
        let postfix = group_id(root, "postfix")?;
        for dir in socket_dirs {
            dirs.push(DirSpec {
                path: dir,
                mode: 0o2750,
                owner: (uid, postfix),
            });
        }
    }
    Ok((specs, dirs))
}

/// The DKIM key: the one on disk (to be root:chatmail-dkim 0640), or a new one; and its
/// directory, when missing (root:chatmail-dkim 0750).
fn dkim_key(root: &Path, config: &Config, gid: u32) -> Result<(FileSpec, Option<DirSpec>), Error> {
    let path = on_disk(root, &config.dkim_key);
    let content = match std::fs::read(&path) {
        Ok(existing) => existing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => dkim::generate_key()?.into_bytes(),
        Err(e) => return Err(Error::io(&config.dkim_key, e)),
    };
    let dir = config.dkim_key.parent().map(|p| DirSpec {
        path: p.to_path_buf(),
        mode: 0o750,
        owner: (0, gid),
    });
    let spec = FileSpec {
        owner: Some((0, gid)),
        secret: true,
        ..FileSpec::new(&config.dkim_key, content, 0o640)
    };
    Ok((spec, dir))
}

/// The self-signed certificate and key: kept while the certificate covers the relay's names,
/// else new ones.
fn self_signed(root: &Path, config: &Config) -> Result<Vec<FileSpec>, Error> {
    let (cert_path, key_path) = tls::paths(config);
    let names = tls::self_signed_names(config);
    let cert_on_disk = std::fs::read(on_disk(root, &cert_path)).ok();
    let key_on_disk = std::fs::read(on_disk(root, &key_path)).ok();
    let (cert, key) = match (cert_on_disk, key_on_disk) {
        (Some(cert), Some(key))
            if tls::read_cert(&cert)
                .is_ok_and(|info| names.iter().all(|n| info.names.contains(n))) =>
        {
            (cert, key)
        }
        _ => {
            let (cert, key) = tls::self_signed(&names)?;
            (cert.into_bytes(), key.into_bytes())
        }
    };
    Ok(vec![
        FileSpec::new(cert_path, cert, 0o644),
        FileSpec {
            secret: true,
            ..FileSpec::new(key_path, key, 0o600)
        },
    ])
}

/// Makes sure the relay's ACME certificate exists and is not due (a dry run says whether it
/// would order one); true when a new one was written.
fn acme_certificate(root: &Path, config: &Config, dry_run: bool) -> Result<bool, Error> {
    let names = acme::names(config).join(", ");
    if dry_run {
        let status = acme::status(root, config);
        if status.due.is_due() {
            println!(
                "certificate for {names}: would be ordered from {} ({})",
                config.deployment.acme_directory, status.due
            );
        }
        return Ok(false);
    }
    match acme::ensure(root, config, false)? {
        acme::Outcome::Kept(_) => Ok(false),
        acme::Outcome::Renewed(_) => {
            let (cert, _) = tls::paths(config);
            println!("wrote {} (certificate for {names})", cert.display());
            Ok(true)
        }
    }
}

/// Debian's nginx with its default site (as the package's dependency starts it) holds port 80
/// but does not serve the ACME answers: it stops for the order and starts again with our
/// configuration. An nginx with our configuration serves them from the web root.
fn stop_foreign_nginx(root: &Path) -> Result<(), Error> {
    let conf = std::fs::read_to_string(on_disk(root, Path::new("/etc/nginx/nginx.conf")))
        .unwrap_or_default();
    let ours = conf.lines().take(5).any(|l| l.contains(MARKER));
    if !ours && crate::ports::is_listening(&root.join("proc"), 80) {
        systemd::systemctl(&["stop", systemd::NGINX])?;
    }
    Ok(())
}

/// Postfix's own directories in its queue directory: never given to the milter.
const POSTFIX_DIRS: &[&str] = &[
    "active", "bounce", "corrupt", "defer", "deferred", "dev", "etc", "flush", "hold", "incoming",
    "lib", "maildrop", "pid", "private", "public", "saved", "trace", "usr",
];

/// The directories of the milter's unix sockets: those of their own directly below Postfix's
/// queue directory (`/var/spool/postfix/chatmail`). A socket elsewhere is in a directory the
/// operator looks after.
fn milter_socket_dirs(config: &Config) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for addr in [
        &config.milter_outbound,
        &config.milter_inbound,
        &config.milter_internal,
    ] {
        let Some(dir) = addr
            .strip_prefix("unix:")
            .and_then(|p| Path::new(p).parent())
        else {
            continue;
        };
        let ours = dir.parent() == Some(Path::new("/var/spool/postfix"))
            && dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !POSTFIX_DIRS.contains(&n));
        if ours && !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_path_buf());
        }
    }
    dirs
}

/// What making `d` right would change, if anything.
fn dir_change(root: &Path, d: &DirSpec) -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(on_disk(root, &d.path)) {
        Err(_) => Some("would be created"),
        Ok(m) if m.mode() & 0o7777 != d.mode || (m.uid(), m.gid()) != d.owner => {
            Some("would get its mode and owner fixed")
        }
        Ok(_) => None,
    }
}

fn make_dir(root: &Path, d: &DirSpec) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let path = on_disk(root, &d.path);
    let io = |e| Error::io(&d.path, e);
    std::fs::create_dir_all(&path).map_err(io)?;
    std::os::unix::fs::chown(&path, Some(d.owner.0), Some(d.owner.1)).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(d.mode)).map_err(io)?;
    Ok(())
}

/// Files of Postfix or Dovecot that setup would replace but did not write: an operator's
/// configuration (Debian's stock files are fine to replace).
fn refuse_foreign_files(root: &Path, specs: &[FileSpec]) -> Result<(), Error> {
    let mut foreign = Vec::new();
    for spec in specs {
        let p = &spec.path;
        if !(p.starts_with("/etc/postfix")
            || p.starts_with("/etc/dovecot")
            || p.starts_with("/etc/nginx"))
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(on_disk(root, p)) else {
            continue;
        };
        let head: String = text.lines().take(5).collect::<Vec<_>>().join("\n");
        if head.contains(MARKER) || text == String::from_utf8_lossy(&spec.content) {
            continue;
        }
        if is_debian_stock(root, p, &text) {
            continue;
        }
        foreign.push(p.display().to_string());
    }
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "not written by chatmail-relay nor Debian's default: {}; setup would replace {} \
             (run again with --force to do so; each is kept as .bak)",
            foreign.join(", "),
            if foreign.len() == 1 { "it" } else { "them" }
        )))
    }
}

/// Debian's own configuration as the packages install it.
fn is_debian_stock(root: &Path, path: &Path, text: &str) -> bool {
    let same_as = |dist: &str| {
        std::fs::read_to_string(on_disk(root, Path::new(dist))).is_ok_and(|d| d == text)
    };
    match path.to_str() {
        Some("/etc/postfix/main.cf") => text.starts_with("# See /usr/share/postfix/main.cf.dist"),
        Some("/etc/postfix/master.cf") => same_as("/usr/share/postfix/master.cf.dist"),
        Some("/etc/dovecot/dovecot.conf") => text.starts_with("## Dovecot configuration file"),
        // nginx-common's conffile: the default site, which setup's nginx.conf replaces.
        Some("/etc/nginx/nginx.conf") => {
            text.starts_with("user www-data;")
                && text.contains("include /etc/nginx/sites-enabled/*;")
        }
        _ => false,
    }
}

fn refuse_taken_ports(root: &Path) -> Result<(), Error> {
    let taken = crate::ports::taken_by_others(&root.join("proc"));
    if taken.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "another program listens on the relay's ports: {}; stop it first",
            taken.join("; ")
        )))
    }
}

/// Postfix's, Dovecot's and nginx's own checks of the configuration just written.
fn check_servers() -> Result<(), Error> {
    crate::command::run("postfix", &["check"])?;
    crate::command::run("doveconf", &["-n"])?;
    crate::command::run("nginx", &["-t", "-q"])
}

/// Where the DKIM record is, for the operator.
fn dkim_note(config_path: &Path, config: &Config) -> Option<String> {
    config.ipv4_relay.is_none().then(|| {
        format!(
            "DKIM record for {}: {} (chatmail-relay dns lists every record)",
            config.mail_domain_bare,
            config_path.with_file_name("dkim.txt").display()
        )
    })
}
