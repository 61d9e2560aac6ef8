//! The IP access limit recommendation computed from an access log instead of the node's statistics: exact
//! per-IP counts per five-minute point, in memory bounded by the points still open.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::net::IpAddr;

use crate::StoreError;
use crate::log::{LogFormat, LogReader, LogStats};
use crate::recommend::{POINT_MS, Recommendation, WINDOW_MS, point_start, recommend};

/// Points more than this far behind the newest line are closed: logs are written in order give or take the time a
/// request took, so an hour of slack loses nothing in practice and keeps memory to about 13 points of counts.
const SLACK_MS: i64 = 3_600_000;

/// Exact maximum per-IP count of every point of one log (or one host of it).
#[derive(Default)]
struct PointAggregator {
    open: BTreeMap<i64, HashMap<IpAddr, u32>>,
    closed: BTreeMap<i64, u64>,
    newest: Option<i64>,
}

impl PointAggregator {
    /// Returns whether the line was late (its point had been closed already).
    fn add(&mut self, ip: IpAddr, time_ms: i64) -> bool {
        let point = point_start(time_ms);
        let late = self.closed.contains_key(&point) && !self.open.contains_key(&point);
        *self.open.entry(point).or_default().entry(ip).or_insert(0) += 1;
        if self.newest.is_none_or(|n| point > n) {
            self.newest = Some(point);
        }
        let horizon = self.newest.unwrap_or(point) - SLACK_MS;
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() >= horizon {
                break;
            }
            let (point, counts) = entry.remove_entry();
            self.close(point, &counts);
        }
        late
    }

    /// A reopened point keeps the larger of its two partial maxima: a lower bound of its true maximum, exact
    /// unless one IP's requests straddle the late lines.
    fn close(&mut self, point: i64, counts: &HashMap<IpAddr, u32>) {
        let max = counts.values().copied().max().map_or(0, u64::from);
        let slot = self.closed.entry(point).or_insert(0);
        *slot = (*slot).max(max);
    }

    /// The recommendation over the 30 days that end with the newest point.
    fn finish(mut self) -> Recommendation {
        for (point, counts) in std::mem::take(&mut self.open) {
            self.close(point, &counts);
        }
        let Some(newest) = self.newest else {
            return recommend([]);
        };
        let first = newest + POINT_MS - WINDOW_MS;
        recommend(self.closed.range(first..).map(|(_, &max)| max))
    }
}

/// The section 3 default limit from an access log, over all hosts together: points aligned to Unix time (multiples
/// of 300 s), each valued at the request count of its busiest client IP, over the 30 days ending with the log's
/// newest line.
pub fn recommend_from_log(
    reader: impl BufRead,
    format: LogFormat,
) -> Result<(Recommendation, LogStats), StoreError> {
    let mut lines = LogReader::new(reader, format);
    let mut agg = PointAggregator::default();
    let mut late = 0;
    while let Some(line) = lines.next_line()? {
        late += u64::from(agg.add(line.client, line.time_ms));
    }
    lines.stats_mut().late_lines = late;
    Ok((agg.finish(), lines.into_stats()))
}

/// Like [`recommend_from_log`], one recommendation per `host` (lines without a host, such as every combined-format
/// line, are grouped under `"-"`). Each host's 30-day window ends with that host's newest line.
pub fn recommend_from_log_per_host(
    reader: impl BufRead,
    format: LogFormat,
) -> Result<(BTreeMap<String, Recommendation>, LogStats), StoreError> {
    let mut lines = LogReader::new(reader, format);
    let mut hosts: HashMap<String, PointAggregator> = HashMap::new();
    let mut late = 0;
    while let Some(line) = lines.next_line()? {
        let host = line.host.unwrap_or_else(|| "-".to_owned());
        late += u64::from(
            hosts
                .entry(host)
                .or_default()
                .add(line.client, line.time_ms),
        );
    }
    lines.stats_mut().late_lines = late;
    let result = hosts
        .into_iter()
        .map(|(host, agg)| (host, agg.finish()))
        .collect();
    Ok((result, lines.into_stats()))
}
