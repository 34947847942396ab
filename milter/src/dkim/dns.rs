//! Fixed DNS TXT answers, for tests and for relays that pin keys.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{ResolverCache, Txt};

/// TXT records answered before any DNS query is sent.
#[derive(Default)]
pub struct StaticTxt(Mutex<HashMap<Box<str>, Txt>>);

impl StaticTxt {
    /// Publishes a DKIM key record (`v=DKIM1; k=rsa; p=...`) for `selector._domainkey.domain`.
    pub fn add_domain_key(&self, selector: &str, domain: &str, record: &str) -> Result<(), String> {
        let key = DomainKey::parse(record.as_bytes()).map_err(|e| e.to_string())?;
        let name = format!("{selector}._domainkey.{domain}.");
        self.lock().insert(name.into_boxed_str(), Txt::from(key));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Txt>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResolverCache<Box<str>, Txt> for StaticTxt {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(name)
    }

    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: Instant) {
        // answers from real DNS are not kept: records here are only the fixed ones
    }
}
