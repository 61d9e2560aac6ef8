//! The figures of a domain's protection tables (capacity, use, evictions, admission refusals), for /metrics and
//! the admin API.

use super::{DomainGuard, IP_LIMIT_TABLE};

/// Per-table figures of a domain's protection, for /metrics and the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// `ip-access-limit`, or the rule's name.
    pub table: String,
    /// Bytes the table may hold (its share of `table_size`).
    pub size_bytes: u64,
    /// Keys it can hold.
    pub capacity: u64,
    /// Keys it holds now.
    pub in_use: u64,
    /// Keys with live counts evicted for a new key, since the table was built.
    pub evictions: u64,
    /// New keys not stored because each candidate for eviction was estimated more frequent.
    pub admission_refusals: u64,
}

impl DomainGuard {
    /// Capacity, use, evictions and admission refusals of each table: the IP access limit's (when on), then
    /// each rule's in evaluation order.
    pub fn table_stats(&self) -> Vec<TableStats> {
        let ip = self.ip_limit.as_ref().map(|l| TableStats {
            table: IP_LIMIT_TABLE.to_owned(),
            size_bytes: l.size,
            capacity: l.table.capacity() as u64,
            in_use: l.table.in_use() as u64,
            evictions: l.table.evictions(),
            admission_refusals: l.table.admission_refusals(),
        });
        ip.into_iter()
            .chain(self.rules.iter().map(|r| TableStats {
                table: r.rule.name.clone(),
                size_bytes: r.size as u64,
                capacity: r.table.capacity() as u64,
                in_use: r.table.in_use() as u64,
                evictions: r.table.evictions(),
                admission_refusals: r.table.admission_refusals(),
            }))
            .collect()
    }
}
