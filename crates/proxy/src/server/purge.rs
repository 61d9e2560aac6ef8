//! Purge of a domain's cache on the running node (the admin API's `POST /api/v1/domains/{name}/purge`).

use http::Uri;

use super::RunningNode;

/// What to purge from a domain's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// These URLs: paths with their query (`/a?b=1`), or absolute URLs whose path is taken.
    Urls(Vec<String>),
    /// Every object whose path starts with this (`/img/`).
    Prefix(String),
    /// Every object the origin tagged (`Cache-Tag`, `Surrogate-Key`) with one of these.
    Tags(Vec<String>),
}

impl RunningNode {
    /// Purges `what` from `domain`'s cache; returns how many objects were removed, `None` when the domain
    /// does not exist or keeps no cache.
    pub fn purge(&self, domain: &str, what: &Purge) -> Option<usize> {
        let runtime = self.shared.runtime.load();
        let d = runtime.domains.get(&domain.to_ascii_lowercase())?;
        let cache = d.cache.as_ref()?;
        Some(match what {
            Purge::Urls(urls) => {
                let keys: Vec<_> = urls
                    .iter()
                    .filter_map(|u| u.parse::<Uri>().ok())
                    .flat_map(|uri| cache.keys_of(&d.name, &uri))
                    .collect();
                cache.purge_keys(&keys)
            }
            Purge::Prefix(prefix) => {
                // Keys are the lower-cased host followed by the path as sent (and a suffix for HTTPS, so
                // the prefix covers both schemes).
                let mut key = d.name.to_ascii_lowercase();
                key.push_str(prefix);
                cache.purge_prefix(&key)
            }
            Purge::Tags(tags) => {
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                cache.purge_tags(&tags)
            }
        })
    }
}
