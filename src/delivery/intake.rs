//! Group commit of single-device sends: requests that arrive together are
//! created in one transaction (see `store/device_sends.rs`) through the
//! gateway's [`Batcher`], so a burst of sends costs a few round trips and
//! one commit per batch instead of per send.

use crate::batcher::Batcher;
use crate::domain::time::now_ms;
use crate::store::{DeviceSendResult, NewDeviceSend, Store};

/// Most sends in one transaction.
const MAX_BATCH: usize = 512;

/// The batching front of single-device sends; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    batcher: Batcher<NewDeviceSend, Option<DeviceSendResult>>,
}

impl Intake {
    /// Starts the batch task on the current runtime.
    pub fn start(store: Store) -> Self {
        let in_flight = store.write_parallelism();
        Self { batcher: Batcher::spawn(MAX_BATCH, in_flight, move |sends| run(store.clone(), sends)) }
    }

    /// Creates `send` with others arriving now. `None` when its batch
    /// failed: the caller takes the one-at-a-time path, which answers with
    /// the store's own error.
    pub async fn submit(&self, send: NewDeviceSend) -> Option<DeviceSendResult> {
        self.batcher.submit(send).await.ok().flatten()
    }
}

async fn run(store: Store, sends: Vec<NewDeviceSend>) -> Vec<Option<DeviceSendResult>> {
    match store.create_device_sends(&sends, now_ms()).await {
        Ok(results) => results.into_iter().map(Some).collect(),
        Err(e) => {
            tracing::warn!(error = %e, sends = sends.len(), "a batch of sends failed; each is tried alone");
            sends.iter().map(|_| None).collect()
        }
    }
}
