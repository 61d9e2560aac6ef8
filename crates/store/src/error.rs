use thiserror::Error;

/// Everything the store can fail with. Database failures are internal errors (the caller logs them and keeps
/// serving); `InvalidQuery` is the caller's mistake (an admin API answers it with 400).
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("the activity log writer thread has stopped")]
    WriterGone,
}
