//! Results of waited sends (`wait=true`) handed over in memory: the worker
//! that wrote a delivery's final result passes it to the request waiting on
//! its notification, so a wait costs no read of the store when this
//! instance sent everything. Deliveries that end elsewhere (another
//! instance, a cancel, born failed) are not seen here: the waiter then
//! reads the store, as it did before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::store::DeliveryResult;

/// The notifications requests wait on, and the results written so far.
#[derive(Default)]
pub(super) struct Completions {
    /// Entries in `waiting`, read without the lock: most batches have no waiter.
    count: AtomicUsize,
    waiting: Mutex<HashMap<String, Waiter>>,
}

struct Waiter {
    /// `(delivery id, result)` of each final result written by this instance.
    results: Vec<(i64, DeliveryResult)>,
    /// Fired once the notification is completed.
    done: Option<oneshot::Sender<Vec<DeliveryResult>>>,
}

/// A request's wait on one notification; dropping it stops the hand-over.
pub(super) struct Watch {
    completions: Arc<Completions>,
    id: String,
    /// The results, in delivery order, once the notification is completed.
    pub(super) rx: oneshot::Receiver<Vec<DeliveryResult>>,
}

impl Completions {
    /// Starts collecting the results of notification `id`, before any of
    /// its deliveries can be sent.
    pub(super) fn watch(self: &Arc<Self>, id: &str) -> Watch {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.lock();
        waiting.insert(id.to_owned(), Waiter { results: Vec::new(), done: Some(tx) });
        self.count.store(waiting.len(), Ordering::Relaxed);
        Watch { completions: self.clone(), id: id.to_owned(), rx }
    }

    /// Whether a request waits on notification `id`.
    pub(super) fn is_watched(&self, id: &str) -> bool {
        self.count.load(Ordering::Relaxed) > 0 && self.lock().contains_key(id)
    }

    /// Takes final results just committed (`(notification id, delivery id,
    /// result)`), and hands each notification in `completed` its results.
    pub(super) fn record(&self, results: Vec<(String, i64, DeliveryResult)>, completed: &[String]) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut waiting = self.lock();
        for (notification_id, delivery_id, result) in results {
            if let Some(waiter) = waiting.get_mut(&notification_id) {
                waiter.results.push((delivery_id, result));
            }
        }
        for id in completed {
            if let Some(waiter) = waiting.get_mut(id) {
                if let Some(done) = waiter.done.take() {
                    let mut results = std::mem::take(&mut waiter.results);
                    results.sort_by_key(|(delivery_id, _)| *delivery_id);
                    let _ = done.send(results.into_iter().map(|(_, r)| r).collect());
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Watch {
    /// The notification watched.
    pub(super) fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiting = self.completions.lock();
        waiting.remove(&self.id);
        self.completions.count.store(waiting.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DeliveryStatus;

    fn result(device: &str) -> DeliveryResult {
        DeliveryResult {
            device_id: Some(device.into()),
            platform: "ios".into(),
            token: "t".into(),
            status: DeliveryStatus::Delivered,
            reason: None,
        }
    }

    #[tokio::test]
    async fn a_completed_notification_gets_its_results_in_delivery_order() {
        let completions = Arc::new(Completions::default());
        let mut watch = completions.watch("n1");
        assert!(completions.is_watched("n1") && !completions.is_watched("n2"));
        completions.record(vec![("n1".into(), 9, result("b")), ("n2".into(), 3, result("x"))], &[]);
        assert!(watch.rx.try_recv().is_err(), "not completed yet");
        completions.record(vec![("n1".into(), 4, result("a"))], &["n1".into(), "n2".into()]);
        let results = watch.rx.try_recv().expect("completed");
        let devices: Vec<_> = results.iter().filter_map(|r| r.device_id.as_deref()).collect();
        assert_eq!(devices, ["a", "b"]);
        drop(watch);
        assert!(!completions.is_watched("n1"), "a dropped watch is forgotten");
    }
}
