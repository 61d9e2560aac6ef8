//! Sliding-window counters for custom rules: requests and response statuses per key over 10-600 s.
