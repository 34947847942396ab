//! A short-lived cache of account records, so that repeated lookups of the same account (a
//! passdb lookup followed by a userdb lookup at every login, many logins of active users)
//! are answered without touching the disk.
//!
//! Only existing accounts are cached, for at most [`TTL`]. Dovecot's own auth cache works the
//! same way (default one hour); a shorter time bounds how long an account deleted behind our
//! back (by an operator) remains known. Accounts created here are inserted at once. The
//! expirer deletes only accounts without a login for months, which are never in the cache.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a record is trusted.
pub const TTL: Duration = Duration::from_secs(60);

pub struct RecordCache {
    entries: RwLock<HashMap<String, (Instant, String)>>,
    capacity: usize,
}

impl RecordCache {
    pub fn new(capacity: usize) -> RecordCache {
        RecordCache {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The cached JSON record of `addr`, if fresh.
    pub fn get(&self, addr: &str) -> Option<String> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(addr)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, json)| json.clone())
    }

    pub fn insert(&self, addr: &str, json: String) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(addr) {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
            if entries.len() >= self.capacity {
                // still full of fresh entries: start over rather than grow
                entries.clear();
            }
        }
        entries.insert(addr.to_string(), (Instant::now(), json));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_fresh() {
        let c = RecordCache::new(2);
        assert_eq!(c.get("a"), None);
        c.insert("a", "A".into());
        c.insert("b", "B".into());
        assert_eq!(c.get("a").as_deref(), Some("A"));
        c.insert("c", "C".into());
        assert!(c.entries.read().unwrap().len() <= 2);
        assert_eq!(c.get("c").as_deref(), Some("C"));
        c.insert("c", "C2".into());
        assert_eq!(c.get("c").as_deref(), Some("C2"));
    }
}
