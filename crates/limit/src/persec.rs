//! The per-second limit behind the IP access limit: at most N requests per key in any one second.
