//! Batch sends (API.md, Batch sends): up to 1,000 independent sends in one
//! request, each with its own target, notification, options and answer, so
//! a server with many small sends pays one request instead of a thousand.
//! Single-device sends among them are committed together by the intake's
//! group commit, as concurrent requests would be.

use axum::extract::State;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::Json;
use super::notifications::{checked_key, new_send, request_hash, AcceptedView};
use crate::auth::Auth;
use crate::delivery::{Idempotency, Submitted};
use crate::domain::{json, Target};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Most sends in one batch.
const MAX_SENDS: usize = 1_000;
/// Sends of one batch handed to the pipeline at once: enough for the
/// intake to commit them in large groups, few enough that sends with their
/// own transactions do not take every pooled connection.
const IN_FLIGHT: usize = 128;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_batch))
}

/// Body of `POST /v1/notifications/batch`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    /// 1…1000 sends, each the body of `POST /v1/notifications`
    /// (`to`, `notification`, `options`) with an optional `idempotency_key`.
    #[schema(value_type = Vec<Object>)]
    notifications: Vec<Value>,
}

/// One send of a batch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchSend {
    to: Value,
    notification: Value,
    #[serde(default)]
    options: Option<Value>,
    /// As the `Idempotency-Key` header of a single send: a retry of this
    /// send (same key, same send) answers the first answer for 24 h.
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// The answer of one send: the 202 body of a single send, or its error body.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum BatchResult {
    Accepted(AcceptedView),
    Refused(ErrorBody),
}

/// The 200 answer: one result per send, in the order of the request.
#[derive(Serialize, ToSchema)]
struct BatchView {
    /// Sends accepted.
    accepted: usize,
    /// Sends refused (their result is an error body).
    refused: usize,
    results: Vec<BatchResult>,
}

#[utoipa::path(post, path = "/v1/notifications/batch", tag = "sending", request_body = BatchBody,
    responses((status = 200, description = "every send answered, in order: its 202 body or its error body", body = BatchView),
        (status = "4XX", description = "the batch itself is malformed: nothing was sent", body = ErrorBody)))]
async fn send_batch(
    State(st): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<Value>,
) -> ApiResult<axum::Json<BatchView>> {
    let app_id = who.server_app()?.to_string();
    let body: BatchBody = json::from_value(body)?;
    if body.notifications.is_empty() || body.notifications.len() > MAX_SENDS {
        return Err(ApiError::field("notifications", format!("notifications holds 1…{MAX_SENDS} sends")));
    }
    let results: Vec<BatchResult> = futures_util::stream::iter(body.notifications)
        .map(|item| send_one(&st, &app_id, item))
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let accepted = results.iter().filter(|r| matches!(r, BatchResult::Accepted(_))).count();
    Ok(axum::Json(BatchView { accepted, refused: results.len() - accepted, results }))
}

/// Checks and submits one send of a batch; its error is its answer.
async fn send_one(st: &AppState, app_id: &str, item: Value) -> BatchResult {
    let answer: ApiResult<AcceptedView> = async {
        let hash = item.get("idempotency_key").is_some().then(|| request_hash("/v1/notifications/batch", &item));
        let send: BatchSend = json::from_value(item)?;
        let key = send.idempotency_key.map(|key| checked_key("idempotency_key", Some(&key))).transpose()?;
        let idempotency = key.zip(hash).map(|(key, request_hash)| Idempotency { key, request_hash });
        let target = Target::parse(&send.to)?;
        let send = new_send(st, app_id, target, send.notification, send.options, idempotency)?;
        match st.delivery.submit(send).await? {
            Submitted::Accepted(accepted) => Ok(AcceptedView::of(accepted)),
            // Batches do not wait, but a final send is accepted all the same.
            Submitted::Final(done) => {
                Ok(AcceptedView { id: done.id, status: done.status.to_string(), targeted: done.targeted })
            }
        }
    }
    .await;
    match answer {
        Ok(view) => BatchResult::Accepted(view),
        Err(e) => {
            e.log();
            BatchResult::Refused(e.error_body())
        }
    }
}
