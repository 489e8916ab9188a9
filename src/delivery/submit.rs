//! The one door into the pipeline: [`Delivery::submit`] commits a send and
//! hands it on. It chooses the route (a single device through the batching
//! intake, anything else in its own transaction), lets deliveries due now
//! skip the queue when this instance's worker has room (created claimed,
//! handed over in memory), wakes the fan-out or the workers otherwise, and
//! waits for the results when asked. Handlers parse, call, and answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pushgate_providers::{DeliveryOptions, NotificationInfo, PayloadError};

use super::completion::Watch;
use super::sender::Prepared;
use super::Delivery;
use crate::domain::local_time::LocalTime;
use crate::domain::{ids::new_id, time::now_ms};
use crate::domain::{Platform, Target};
use crate::store::{
    Accepted, AcceptedSend, Created, DeliveryResult, DeviceSendResult, NewDeviceSend, NewNotification,
    NotificationStatus, Providers, StoreError,
};

/// Most per-device results a wait answers with.
const MAX_WAIT_RESULTS: i64 = 10_000;

/// A send, as a handler parsed it.
#[derive(Debug)]
pub struct NewSend {
    /// The sending app.
    pub app_id: String,
    /// Who receives it.
    pub target: Target,
    /// What it says (its `id` is set here).
    pub info: NotificationInfo,
    /// How to deliver it.
    pub options: DeliveryOptions,
    /// When sending starts (ms); `None`, or a time past, means now.
    pub send_at: Option<i64>,
    /// The request's `Idempotency-Key`, if any.
    pub idempotency: Option<Idempotency>,
    /// Wait this long for every delivery to reach a final state (`wait=true`).
    pub wait: Option<Duration>,
    /// Send each device at this time of day in its time zone.
    pub local_time: Option<LocalTime>,
}

/// An idempotency key and the hash of the request that came with it.
#[derive(Debug)]
pub struct Idempotency {
    /// The `Idempotency-Key`.
    pub key: String,
    /// Hash of the request: a retry must match it.
    pub request_hash: String,
}

/// What became of a send.
#[derive(Debug)]
pub enum Submitted {
    /// Committed; the pipeline delivers it.
    Accepted(Accepted),
    /// Committed, and every delivery reached a final state within the wait.
    Final(Results),
}

/// A finished notification with its per-device results.
#[derive(Debug)]
pub struct Results {
    /// Notification id.
    pub id: String,
    /// `completed` or `cancelled`.
    pub status: NotificationStatus,
    /// Devices targeted.
    pub targeted: i64,
    /// One per delivery, at most [`MAX_WAIT_RESULTS`].
    pub results: Vec<DeliveryResult>,
}

/// Why a send was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A field no provider would accept.
    #[error("{message}")]
    InvalidField {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The payload is over a provider's size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The app, a targeted device or group, or (while waiting) the notification does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The app has no credentials for any targeted platform.
    #[error("the app has no provider credentials for {}", .0.join(", "))]
    NoProvider(Vec<String>),
    /// The idempotency key came before with another request.
    #[error("this Idempotency-Key was used with another request")]
    KeyReused,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Delivery {
    /// Commits `send` and hands it to the pipeline. Answers once it is
    /// committed, or with `wait`, once every delivery is final (if that
    /// comes in time).
    pub async fn submit(&self, send: NewSend) -> Result<Submitted, DeliveryError> {
        check_local_time(&send)?;
        let NewSend { app_id, target, mut info, options, send_at, idempotency, wait, local_time } = send;
        let now = now_ms();
        let send_at = send_at.unwrap_or(now).max(now);
        let expires_at = options.ttl_seconds.map(|ttl| send_at + i64::from(ttl) * 1000);
        let id = new_id();
        info.id = Some(id.clone());
        let too_large = check_payload(&info, &options)?;
        self.refuse_too_large(&app_id, &target, send_at, too_large).await?;
        // Watched before any delivery exists, so no result can pass unseen.
        let watch = wait.map(|_| self.signals.completions.watch(&id));
        let notification = Arc::new(Prepared::new(id, info, options, expires_at));
        let mut accepted = None;
        if let (Target::DeviceIds(ids), None, true) = (&target, &idempotency, send_at <= now) {
            if let [device_id] = ids.as_slice() {
                accepted = self.submit_one(&app_id, device_id, &notification).await?;
            }
        }
        let accepted = match accepted {
            Some(accepted) => accepted,
            None => {
                let local_time = local_time.map(LocalTime::as_text);
                let send = TxSend { target: &target, send_at, idempotency: idempotency.as_ref(), local_time, now };
                self.submit_tx(&app_id, notification, send).await?
            }
        };
        if let Some(timeout) = wait {
            // A replayed send answers for the first request's notification.
            let watch = watch.filter(|w| w.id() == accepted.id && !accepted.status.is_final());
            if let Some(results) = self.wait_final(&app_id, &accepted, watch, timeout).await? {
                return Ok(Submitted::Final(results));
            }
        }
        Ok(Submitted::Accepted(accepted))
    }

    /// A send to one device, due now, with no idempotency key: created in a
    /// batch with the others arriving now (see `intake.rs`) and handed to
    /// this instance's worker. `None` when the batch failed: the caller
    /// takes the transaction, which answers with the store's own error.
    async fn submit_one(
        &self,
        app_id: &str,
        device_id: &str,
        notification: &Arc<Prepared>,
    ) -> Result<Option<Accepted>, DeliveryError> {
        let reservation = self.worker.try_reserve(1);
        let send = NewDeviceSend {
            id: notification.id.clone(),
            app_id: app_id.to_string(),
            device_id: device_id.to_string(),
            info: to_json("notification", &notification.info)?,
            options: to_json("options", &notification.options)?,
            expires_at: notification.expires_at,
            lease_until: reservation.as_ref().map(|r| r.lease_until),
        };
        match self.intake.submit(send).await {
            None => Ok(None),
            Some(DeviceSendResult::NotFound) => Err(DeliveryError::NotFound("device")),
            Some(DeviceSendResult::NoProvider(platform)) => Err(DeliveryError::NoProvider(vec![platform])),
            Some(DeviceSendResult::Accepted(AcceptedSend { accepted, delivery, app_version })) => {
                match (reservation, delivery) {
                    (Some(reservation), Some(row)) => {
                        self.worker.dispatch(reservation, vec![row], notification.clone(), app_version);
                    }
                    _ if accepted.status == NotificationStatus::Queued => self.wake(false),
                    _ => {}
                }
                Ok(Some(accepted))
            }
        }
    }

    /// Any other send, in its own transaction. Deliveries of an explicit
    /// target due now are created claimed when the worker has room for
    /// them all, and handed to it; other targets wake the fan-out.
    async fn submit_tx(
        &self,
        app_id: &str,
        notification: Arc<Prepared>,
        send: TxSend<'_>,
    ) -> Result<Accepted, DeliveryError> {
        let TxSend { target, send_at, idempotency, local_time, now } = send;
        let app = self.store.app(app_id).await?.ok_or(DeliveryError::NotFound("app"))?;
        let reservation =
            (target.is_explicit() && send_at <= now).then(|| self.worker.try_reserve(target.explicit_len())).flatten();
        let info = to_json("notification", &notification.info)?;
        let options = to_json("options", &notification.options)?;
        let created = self
            .store
            .create_notification(&NewNotification {
                id: &notification.id,
                app_id,
                target,
                info: &info,
                options: &options,
                send_at,
                expires_at: notification.expires_at,
                providers: Providers::of(&app),
                idempotency: idempotency.map(|i| (i.key.as_str(), i.request_hash.as_str())),
                lease_until: reservation.as_ref().map(|r| r.lease_until),
                local_time: local_time.as_deref(),
                now,
            })
            .await?;
        match created {
            Created::New(accepted, born) => {
                if !target.is_explicit() {
                    self.wake(true);
                } else if let (Some(reservation), false) = (reservation, born.is_empty()) {
                    self.worker.dispatch(reservation, born, notification, app.updated_at);
                } else if accepted.status == NotificationStatus::Queued {
                    self.wake(false);
                }
                Ok(accepted)
            }
            Created::Replayed(accepted) => Ok(accepted),
            Created::KeyReused => Err(DeliveryError::KeyReused),
            Created::NotFound(what) => Err(DeliveryError::NotFound(what)),
            Created::NoProvider(platforms) => Err(DeliveryError::NoProvider(platforms)),
        }
    }

    /// How many devices `send` would target, sending nothing (`dry_run`):
    /// refused as the send would be, counted as the send would count.
    pub async fn dry_run(&self, send: &NewSend) -> Result<i64, DeliveryError> {
        check_local_time(send)?;
        let too_large = check_payload(&send.info, &send.options)?;
        self.store.app(&send.app_id).await?.ok_or(DeliveryError::NotFound("app"))?;
        let now = now_ms();
        let at = send.send_at.unwrap_or(now).max(now);
        self.refuse_too_large(&send.app_id, &send.target, at, too_large).await?;
        self.store.count_targets(&send.app_id, &send.target, at).await?.map_err(DeliveryError::NotFound)
    }

    /// `413 payload_too_large` when the notification is too large for a
    /// platform the target reaches; a platform it does not reach (an
    /// Android-only app, a send to web devices) does not matter. Costs a
    /// read only when some platform's payload is over its limit.
    async fn refuse_too_large(
        &self,
        app_id: &str,
        target: &Target,
        at: i64,
        too_large: Vec<TooLarge>,
    ) -> Result<(), DeliveryError> {
        if too_large.is_empty() {
            return Ok(());
        }
        let reached = if let Target::Tokens(tokens) = target {
            too_large.iter().filter(|t| tokens.iter().any(|x| x.platform == t.platform)).map(|t| t.platform).collect()
        } else {
            let mut reached = Vec::new();
            for t in &too_large {
                if self.store.targets_platforms(app_id, target, at, &[t.platform.as_str()]).await? {
                    reached.push(t.platform);
                }
            }
            reached
        };
        match too_large.into_iter().find(|t| reached.contains(&t.platform)) {
            Some(t) => Err(DeliveryError::PayloadTooLarge(t.message)),
            None => Ok(()),
        }
    }

    /// Waits until every delivery of `accepted` is final, or `timeout`
    /// passes. The results come in memory from this instance's worker
    /// when it sent them all (`watch`); else the notification is read,
    /// woken by this instance's workers and at least every 100 ms, as work
    /// may finish on another instance.
    async fn wait_final(
        &self,
        app_id: &str,
        accepted: &Accepted,
        watch: Option<Watch>,
        timeout: Duration,
    ) -> Result<Option<Results>, DeliveryError> {
        let deadline = Instant::now() + timeout;
        if let Some(mut watch) = watch {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::select! {
                    handed = &mut watch.rx => match handed {
                        Ok(results) if results.len() as i64 == accepted.targeted => {
                            let (id, targeted) = (accepted.id.clone(), accepted.targeted);
                            return Ok(Some(Results { id, status: NotificationStatus::Completed, targeted, results }));
                        }
                        // Some deliveries ended elsewhere: the store has them all.
                        _ => break,
                    },
                    _ = tokio::time::sleep(left.min(Duration::from_millis(100))) => {
                        // A delivery retried later or sent by another instance.
                        if let Some(results) = self.final_results(app_id, &accepted.id).await? {
                            return Ok(Some(results));
                        }
                        if deadline <= Instant::now() {
                            return Ok(None);
                        }
                    }
                }
            }
        }
        loop {
            if let Some(results) = self.final_results(app_id, &accepted.id).await? {
                return Ok(Some(results));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), self.signals.done.notified()).await;
        }
    }

    /// The results of notification `id` as stored, once it is final.
    async fn final_results(&self, app_id: &str, id: &str) -> Result<Option<Results>, DeliveryError> {
        let row = self.store.notification(app_id, id).await?.ok_or(DeliveryError::NotFound("notification"))?;
        if !row.status.is_final() {
            return Ok(None);
        }
        let results = self.store.delivery_results(id, MAX_WAIT_RESULTS).await?;
        Ok(Some(Results { id: row.id, status: row.status, targeted: row.targeted, results }))
    }
}

/// What a send in its own transaction takes besides the notification.
struct TxSend<'a> {
    target: &'a Target,
    send_at: i64,
    idempotency: Option<&'a Idempotency>,
    local_time: Option<String>,
    now: i64,
}

/// `local_time` schedules the deliveries of a fan-out, device by device: it
/// takes a target expanded from the registry, and no TTL (each device's
/// time is hours apart from the others').
fn check_local_time(send: &NewSend) -> Result<(), DeliveryError> {
    if send.local_time.is_none() {
        return Ok(());
    }
    let refused = |field: &str, message: &str| {
        Err(DeliveryError::InvalidField { field: field.to_owned(), message: message.to_owned() })
    };
    if send.target.is_explicit() {
        return refused("options.local_time", "local_time takes a user_ids, group, groups, filters or all target");
    }
    if send.options.ttl_seconds.is_some() {
        return refused("options.ttl_seconds", "ttl_seconds cannot be combined with local_time");
    }
    Ok(())
}

/// A platform whose provider payload is over its limit.
struct TooLarge {
    platform: Platform,
    message: String,
}

/// Refuses a field a payload cannot carry; answers the platforms the
/// notification is too large for (refused only if the target reaches them).
fn check_payload(info: &NotificationInfo, options: &DeliveryOptions) -> Result<Vec<TooLarge>, DeliveryError> {
    let mut too_large = Vec::new();
    // The field the providers name (a raw merge's `topic`, an alert added
    // to a background push, the collapse key), else the raw object.
    let mut refused = |e: PayloadError, raw_field: &'static str, platform: Platform| match e {
        PayloadError::TooLarge { .. } => {
            too_large.push(TooLarge { platform, message: e.to_string() });
            Ok(())
        }
        other => Err(DeliveryError::InvalidField {
            field: other.field().unwrap_or(raw_field).to_owned(),
            message: other.to_string(),
        }),
    };
    // The collapse key becomes the `apns-collapse-id` header.
    if let Some(key) = &options.collapse_key {
        crate::domain::names::printable("options.collapse_key", key)
            .map_err(|e| DeliveryError::InvalidField { field: "options.collapse_key".into(), message: e.message })?;
    }
    if let Err(e) = pushgate_providers::apns::payload::build(info, options) {
        refused(e, "notification.apns", Platform::Ios)?;
    }
    if let Err(e) = pushgate_providers::fcm::message::build("token", info, options) {
        refused(e, "notification.fcm", Platform::Android)?;
    }
    // Web Push: the notification as JSON, encrypted, within 4096 bytes.
    if let Err(e) = pushgate_providers::webpush::payload(info) {
        refused(e, "notification", Platform::Web)?;
    }
    Ok(too_large)
}

/// The stored JSON of `value`.
fn to_json(field: &'static str, value: &impl serde::Serialize) -> Result<String, DeliveryError> {
    serde_json::to_string(value)
        .map_err(|e| DeliveryError::InvalidField { field: field.to_owned(), message: e.to_string() })
}
