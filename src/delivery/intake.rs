//! Group commit of single-device sends: requests that arrive together are
//! created in one transaction (see `store/device_sends.rs`), so a burst of
//! sends costs a few round trips and one commit per batch instead of per
//! send. A batch starts as soon as one send waits; those arriving while it
//! runs form the next one.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::domain::time::now_ms;
use crate::store::{DeviceSendResult, NewDeviceSend, Store};

/// Most sends in one transaction.
const MAX_BATCH: usize = 512;
/// Batches in flight at once (each holds one connection).
const CONCURRENT_BATCHES: usize = 4;
/// Sends waiting for a batch before callers wait to enqueue.
const QUEUE: usize = 4096;

struct Pending {
    send: NewDeviceSend,
    reply: oneshot::Sender<Option<DeviceSendResult>>,
}

/// The batching front of single-device sends.
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Pending>,
}

impl Intake {
    /// Starts the batching task on the current runtime.
    pub fn start(store: Store) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx));
        Self { queue }
    }

    /// Creates `send` with others arriving now. `None` when its batch
    /// failed: the caller takes the one-at-a-time path, which answers with
    /// the store's own error.
    pub async fn submit(&self, send: NewDeviceSend) -> Option<DeviceSendResult> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Pending { send, reply }).await.ok()?;
        answer.await.ok().flatten()
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_BATCHES));
    while let Some(first) = rx.recv().await {
        // Wait for a free slot before draining, so a batch takes everything
        // that queued up meanwhile.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            let sends: Vec<NewDeviceSend> = batch.iter().map(|p| p.send.clone()).collect();
            match store.create_device_sends(&sends, now_ms()).await {
                Ok(results) => {
                    for (p, r) in batch.into_iter().zip(results) {
                        let _ = p.reply.send(Some(r));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, sends = batch.len(), "a batch of sends failed; each is tried alone");
                    for p in batch {
                        let _ = p.reply.send(None);
                    }
                }
            }
            drop(slot);
        });
    }
}
