//! Device registration with group commit: `POST /v1/devices` requests that
//! arrive together are registered in one transaction
//! ([`Store::register_devices`]), up to `config.registration_batch` at a time.
//! A commit per registration (an fsync, and four round trips on a pooled
//! connection) capped registrations near the store's commit rate.

use std::time::Instant;

use futures_util::future::join_all;

use crate::batcher::Batcher;
use crate::store::{NewDevice, RegisteredDevice, Registration, Store, StoreResult};

/// A registration's answer: the device and whether it is new.
type Registered = StoreResult<RegisteredDevice>;

/// Registers devices in batches; cheap to clone.
#[derive(Clone)]
pub struct Registrar {
    batcher: Batcher<Registration, Registered>,
}

impl Registrar {
    /// Starts the batch task on the current runtime: at most `max_batch`
    /// registrations per transaction.
    pub fn new(store: Store, max_batch: usize) -> Self {
        // A few batches overlap where the store allows it, so one batch's
        // commit does not idle the next (on Postgres, 4: 10.6k/s against
        // 8.8k/s with 1 in the registration bench).
        let in_flight = store.write_parallelism();
        let batcher = Batcher::spawn(max_batch, in_flight, move |batch| run(store.clone(), batch));
        Self { batcher }
    }

    /// Registers a device or refreshes the one with the same installation id
    /// (when given) or the same (platform, token), like
    /// [`Store::register_device`].
    pub async fn register(&self, app_id: String, device: NewDevice) -> Registered {
        self.batcher.submit(Registration { app_id, device }).await?
    }
}

/// One batch. If it fails as a whole, nothing was written: its
/// registrations are retried one transaction each, so one that breaks a
/// unique index (or races another instance) gets its own answer and the
/// others still succeed.
async fn run(store: Store, batch: Vec<Registration>) -> Vec<Registered> {
    let start = Instant::now();
    let answers = match store.register_devices(&batch).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::debug!(error = %e, size = batch.len(), "registration batch failed; registering one by one");
            join_all(batch.iter().map(|r| store.register_device(&r.app_id, &r.device))).await
        }
    };
    crate::metrics::registration_batch(batch.len(), start.elapsed());
    answers
}
