//! The lookup that consults the disk tier: a memory miss that leads a fill first asks the disk, whose object
//! then answers (fresh) or is revalidated (expired, with a validator) instead of a whole fetch.

use std::sync::Arc;
use std::time::SystemTime;

use crate::{Cache, CacheKey, CachedResponse, Lookup};

impl Cache {
    /// [`lookup_or_lead`](Self::lookup_or_lead), then, for a miss this request leads, the disk tier: the file
    /// is read on tokio's blocking pool while followers wait on this fill as on any other. Without a disk
    /// tier this is `lookup_or_lead`.
    pub async fn lookup(
        &self,
        key: &CacheKey,
        req: &http::request::Parts,
        now: SystemTime,
    ) -> Lookup {
        let lookup = self.lookup_or_lead(key, req, now);
        let Some(disk) = &self.shared.disk else {
            return lookup;
        };
        let Lookup::Lead { mut fill, stale } = lookup else {
            return lookup;
        };
        if fill.is_revalidation() || stale.is_some() {
            return Lookup::Lead { fill, stale };
        }
        let Some(id) = disk.find(key.as_str(), &req.headers) else {
            return Lookup::Lead { fill, stale };
        };
        let shared = Arc::clone(&self.shared);
        let name = key.boxed();
        let read = tokio::task::spawn_blocking(move || {
            shared.disk.as_ref().and_then(|d| d.read(id, &name))
        })
        .await
        .ok()
        .flatten();
        let Some(entry) = read else {
            return Lookup::Lead { fill, stale };
        };
        if now < entry.fresh_until {
            return Lookup::Hit(fill.promote(entry, now));
        }
        if now >= entry.keep_until {
            return Lookup::Lead { fill, stale };
        }
        let entry = Arc::new(entry);
        let head = req.method == http::Method::HEAD;
        let stale =
            (now < entry.stale_until).then(|| CachedResponse::new(Arc::clone(&entry), now, head));
        if entry.has_validator() {
            fill.revalidate(entry);
        }
        Lookup::Lead { fill, stale }
    }
}
