//! The writer thread: drains the queue in batches, one transaction each, and keeps the failure state
//! `/healthz` reports.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};

use rusqlite::Connection;

use super::{
    ActivityLogOptions, Counters, Message, delete_block, enforce_max_rows, insert_record,
    upsert_block,
};
use crate::StoreError;

pub(super) fn writer_loop(
    mut conn: Connection,
    rx: Receiver<Message>,
    counters: Arc<Counters>,
    options: ActivityLogOptions,
) {
    let batch_size = options.batch_size.max(1);
    let mut batch: Vec<Message> = Vec::with_capacity(batch_size);
    let mut barriers: Vec<mpsc::Sender<()>> = Vec::new();
    // Ends when the log and every writer are gone; what was queued before that is still written.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                // A barrier closes the batch so that it is answered as soon as what precedes it is written.
                Message::Barrier(done) => {
                    barriers.push(done);
                    break;
                }
                other => batch.push(other),
            }
            if batch.len() < batch_size {
                next = rx.try_recv().ok();
            }
        }
        let mut work = 0u64;
        let result = (|| -> Result<(), StoreError> {
            let tx = conn.transaction()?;
            let mut wrote_records = false;
            for msg in batch.drain(..) {
                match msg {
                    Message::Record(r) => {
                        insert_record(&tx, &r)?;
                        wrote_records = true;
                        work += 1;
                    }
                    Message::SaveBlock(b) => {
                        upsert_block(&tx, &b)?;
                        work += 1;
                    }
                    Message::RemoveBlock {
                        domain,
                        object_type,
                        object_value,
                    } => {
                        delete_block(&tx, &domain, &object_type, &object_value)?;
                        work += 1;
                    }
                    Message::Barrier(done) => barriers.push(done),
                }
            }
            if wrote_records {
                enforce_max_rows(&tx, options.max_rows)?;
            }
            tx.commit()?;
            Ok(())
        })();
        batch.clear();
        match result {
            Ok(()) => {
                counters.written.fetch_add(work, Ordering::Relaxed);
                // A batch with nothing in it (a barrier alone) proves nothing about the disk.
                if work > 0 && counters.failing.lock().take().is_some() {
                    tracing::warn!("activity log: writing again");
                }
            }
            Err(e) => {
                counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                let why = e.to_string();
                let mut failing = counters.failing.lock();
                if failing.is_none() {
                    // Once per outage, not per batch: a full disk must not also flood the node's log.
                    tracing::error!(
                        "activity log: cannot write ({why}); the node keeps serving, records are lost until it can"
                    );
                }
                *failing = Some(why);
            }
        }
        for done in barriers.drain(..) {
            let _ = done.send(());
        }
    }
}
