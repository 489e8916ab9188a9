//! Group commit inside the gateway: requests that arrive together are handed
//! to one call (one transaction, one commit) and each caller gets its own
//! answer. No timer: a batch is whatever queued while the batches in flight
//! ran, so a lone request goes through at once and a busy store gets bigger
//! batches.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

/// Requests queued per batcher before `submit` waits (back-pressure).
const QUEUE: usize = 4096;

/// The batch task is gone (the gateway is stopping) or dropped this request's
/// answer (its batch panicked).
#[derive(Debug, thiserror::Error)]
#[error("the batch task stopped before answering")]
pub struct BatchDropped;

/// Hands items to a batch task; cheap to clone.
pub struct Batcher<T, R> {
    tx: mpsc::Sender<(T, oneshot::Sender<R>)>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Spawns the batch task: it calls `run` with up to `max_batch` queued
    /// items, with at most `in_flight` calls running at once, and answers
    /// item `i` with result `i`. It stops once every `Batcher` clone is dropped.
    pub fn spawn<F, Fut>(max_batch: usize, in_flight: usize, run: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(batches(rx, max_batch.max(1), in_flight.max(1), run));
        Self { tx }
    }

    /// Queues `item` and waits for its result.
    pub async fn submit(&self, item: T) -> Result<R, BatchDropped> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).await.map_err(|_| BatchDropped)?;
        answer.await.map_err(|_| BatchDropped)
    }
}

async fn batches<T, R, F, Fut>(
    mut rx: mpsc::Receiver<(T, oneshot::Sender<R>)>,
    max_batch: usize,
    in_flight: usize,
    run: F,
) where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Vec<R>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut queued = Vec::with_capacity(max_batch);
    loop {
        // Wait for a free slot first: requests keep queueing meanwhile, and
        // the next batch takes them all.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        if rx.recv_many(&mut queued, max_batch).await == 0 {
            return;
        }
        let (items, replies): (Vec<T>, Vec<_>) = queued.drain(..).unzip();
        let batch = run(items);
        // Its own task, so a panicking batch drops only its callers' answers
        // and the next batch still runs.
        tokio::spawn(async move {
            let results = batch.await;
            drop(slot);
            for (reply, result) in replies.into_iter().zip(results) {
                // The caller may have gone (client disconnected): nothing to tell.
                let _ = reply.send(result);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn concurrent_items_share_batches_and_get_their_own_answers() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let batcher = Batcher::spawn(8, 1, move |items: Vec<u32>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move { items.into_iter().map(|i| i * 10).collect::<Vec<_>>() }
        });
        let answers = futures_util::future::join_all((0..40).map(|i| batcher.submit(i))).await;
        let answers: Vec<u32> = answers.into_iter().map(|a| a.expect("answered")).collect();
        assert_eq!(answers, (0..40).map(|i| i * 10).collect::<Vec<_>>());
        let calls = calls.load(Ordering::Relaxed);
        assert!((5..40).contains(&calls), "40 items in batches of at most 8, some shared: {calls} calls");
    }

    #[tokio::test]
    async fn a_panicking_batch_fails_its_items_only() {
        let batcher = Batcher::spawn(4, 2, |items: Vec<u32>| async move {
            assert!(!items.contains(&13), "unlucky batch");
            items
        });
        assert!(batcher.submit(13).await.is_err());
        assert_eq!(batcher.submit(7).await.ok(), Some(7));
    }
}
