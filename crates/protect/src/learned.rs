//! The node's learned baselines, one per domain, kept in `data_dir/baselines/DOMAIN.txt` so a restart keeps
//! what the node learned ([`crate::Baseline::to_text`] is the format). Disk I/O: start, reload and the
//! background round only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::baseline::Baseline;

/// Folder of `data_dir` holding the baselines.
pub const BASELINE_DIR: &str = "baselines";

/// The baselines of every domain the node has served, by lower-case name.
#[derive(Debug)]
pub struct Baselines {
    dir: PathBuf,
    map: Mutex<HashMap<String, Arc<Baseline>>>,
}

fn file_name(domain: &str) -> String {
    // Host names are letters, digits, dots and dashes; anything else is replaced so the name stays one file.
    let safe: String = domain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.txt")
}

impl Baselines {
    pub fn new(data_dir: &Path) -> Baselines {
        Baselines {
            dir: data_dir.join(BASELINE_DIR),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The baseline of `domain`, read from disk the first time it is asked for.
    pub fn get(&self, domain: &str, now_ms: u64) -> Arc<Baseline> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(domain.to_ascii_lowercase())
            .or_insert_with(|| {
                let b = Baseline::default();
                if let Ok(text) = std::fs::read_to_string(self.dir.join(file_name(domain))) {
                    b.restore_text(&text, now_ms);
                }
                Arc::new(b)
            })
            .clone()
    }

    /// The baseline of `domain` if the node has one.
    pub fn peek(&self, domain: &str) -> Option<Arc<Baseline>> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&domain.to_ascii_lowercase()).cloned()
    }

    /// Writes every baseline (to a temporary file renamed over the old one, so a crash leaves one or the other).
    pub fn save(&self) -> std::io::Result<()> {
        let all: Vec<(String, Arc<Baseline>)> = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if all.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        for (domain, b) in all {
            let path = self.dir.join(file_name(&domain));
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, b.to_text())?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::Measure;

    #[test]
    fn saved_baselines_come_back() {
        let dir = std::env::temp_dir().join(format!("eg-baselines-{}", std::process::id()));
        let a = Baselines::new(&dir);
        let b = a.get("WWW.Example.com", 1);
        for i in 0..3_000 {
            b.learn(Measure::PathRequests10s, i % 7, i * 100);
        }
        a.save().unwrap();
        let again = Baselines::new(&dir).get("www.example.com", 2);
        assert_eq!(again.summary(), b.summary());
        assert!(Baselines::new(&dir).peek("www.example.com").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
