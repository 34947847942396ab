//! System limits for registration: refuse new accounts when the box is overloaded.

use std::path::Path;

use chatmail_common::config::Config;

/// Current readings; `None` where a value could not be read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readings {
    pub load_1m: Option<f64>,
    pub available_memory_mb: Option<u64>,
    pub free_disk_mb: Option<u64>,
}

impl Readings {
    /// Reads `/proc/loadavg`, `/proc/meminfo` and the free space of `mailboxes_dir` (or of its
    /// closest existing ancestor). Unreadable values are logged and left out.
    pub fn read(mailboxes_dir: &Path) -> Readings {
        Readings {
            load_1m: logged("load average", load_1m()),
            available_memory_mb: logged("available memory", available_memory_mb()),
            free_disk_mb: logged("free disk space", free_disk_mb(mailboxes_dir)),
        }
    }

    /// The first limit that is exceeded, as a log-ready reason. Unknown readings pass.
    pub fn refusal(&self, config: &Config) -> Option<String> {
        if let Some(load) = self.load_1m
            && load > config.max_load_1m
        {
            return Some(format!("load avg {load:.2} > {:.2}", config.max_load_1m));
        }
        if let Some(mem) = self.available_memory_mb
            && mem < config.min_available_memory_mb
        {
            return Some(format!(
                "available memory {mem}MB < {}MB",
                config.min_available_memory_mb
            ));
        }
        if let Some(disk) = self.free_disk_mb
            && disk < config.min_free_disk_space_mb
        {
            return Some(format!(
                "free disk {disk}MB < {}MB",
                config.min_free_disk_space_mb
            ));
        }
        None
    }
}

fn logged<T>(what: &str, value: Result<T, String>) -> Option<T> {
    value
        .map_err(|e| tracing::warn!("ignoring unreadable system limit {what}: {e}"))
        .ok()
}

fn load_1m() -> Result<f64, String> {
    let text = std::fs::read_to_string("/proc/loadavg").map_err(|e| e.to_string())?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "unexpected /proc/loadavg format".into())
}

fn available_memory_mb() -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .ok_or_else(|| "no MemAvailable in /proc/meminfo".into())
}

fn free_disk_mb(dir: &Path) -> Result<u64, String> {
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .ok_or("no existing directory")?;
    let stat = rustix::fs::statvfs(existing).map_err(|e| e.to_string())?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize) / (1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_str("[params]\nmail_domain = x.org\n", Path::new("t.ini"))
            .unwrap()
            .0
    }

    #[test]
    fn limits_in_order_and_unknown_values_pass() {
        let c = config();
        let ok = Readings {
            load_1m: Some(0.5),
            available_memory_mb: Some(500),
            free_disk_mb: Some(5000),
        };
        assert_eq!(ok.refusal(&c), None);
        let load = Readings {
            load_1m: Some(9.0),
            ..ok
        };
        assert_eq!(load.refusal(&c).unwrap(), "load avg 9.00 > 5.00");
        let mem = Readings {
            available_memory_mb: Some(10),
            ..ok
        };
        assert_eq!(mem.refusal(&c).unwrap(), "available memory 10MB < 200MB");
        let disk = Readings {
            free_disk_mb: Some(10),
            ..ok
        };
        assert_eq!(disk.refusal(&c).unwrap(), "free disk 10MB < 1024MB");
        let unknown = Readings {
            load_1m: None,
            available_memory_mb: None,
            free_disk_mb: Some(10),
        };
        assert_eq!(unknown.refusal(&c).unwrap(), "free disk 10MB < 1024MB");
        let none = Readings {
            load_1m: None,
            available_memory_mb: None,
            free_disk_mb: None,
        };
        assert_eq!(none.refusal(&c), None);
    }

    #[test]
    fn reads_this_machine() {
        let r = Readings::read(Path::new("/nonexistent/dir/below/root"));
        assert!(r.load_1m.is_some());
        assert!(r.available_memory_mb.is_some());
        assert!(r.free_disk_mb.is_some());
    }
}
