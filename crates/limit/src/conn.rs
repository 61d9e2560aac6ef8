//! nginx `limit_conn`: per-key concurrent counters, released by a guard on drop.
