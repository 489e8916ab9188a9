//! The FCM HTTP v1 stand-in: `POST /v1/projects/{project}/messages:send`.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Map, Value};

use crate::behavior::Decision;
use crate::http::{self, Body};
use crate::state::{bump, Provider, Received, State};

const FCM_ERROR: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
const MAX_DATA: usize = 4096;

/// Google's error body; `error_code` adds the FCM detail.
fn google_error(code: u16, status: &str, message: &str, error_code: Option<&str>) -> Response<Body> {
    let mut error = json!({ "code": code, "message": message, "status": status });
    if let Some(error_code) = error_code {
        error["details"] = json!([{ "@type": FCM_ERROR, "errorCode": error_code }]);
    }
    http::json(code, &json!({ "error": error }))
}

/// What Google answers when the service account may not send for `project`.
fn permission_denied(project: &str) -> Response<Body> {
    google_error(
        403,
        "PERMISSION_DENIED",
        &format!("Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist)."),
        None,
    )
}

fn invalid(message: &str) -> Response<Body> {
    google_error(400, "INVALID_ARGUMENT", message, Some("INVALID_ARGUMENT"))
}

/// Checks the message as FCM does; returns it and its token, or the
/// `INVALID_ARGUMENT` message.
fn check_message(body: &[u8]) -> Result<(Map<String, Value>, String), String> {
    let parsed: Value = serde_json::from_slice(body).map_err(|e| format!("Invalid JSON payload received. {e}"))?;
    let Some(Value::Object(message)) = parsed.get("message").cloned() else {
        return Err("Invalid JSON payload received. Unknown name or missing \"message\".".to_owned());
    };
    let token = match message.get("token") {
        Some(Value::String(t)) => t.clone(),
        _ => return Err("Recipient of the message is not set.".to_owned()),
    };
    if let Some(data) = message.get("data") {
        let Value::Object(data) = data else {
            return Err("Invalid value at 'message.data' (type.googleapis.com/google.protobuf.Struct)".to_owned());
        };
        if let Some(i) = data.values().position(|v| !v.is_string()) {
            return Err(format!("Invalid value at 'message.data[{i}].value' (TYPE_STRING)"));
        }
        if Value::Object(data.clone()).to_string().len() > MAX_DATA {
            return Err("Android message is too big".to_owned());
        }
    }
    if let Some(android) = message.get("android") {
        if let Some(priority) = android.get("priority") {
            if !matches!(priority.as_str(), Some("HIGH" | "NORMAL")) {
                return Err("Invalid value at 'message.android.priority'".to_owned());
            }
        }
        if let Some(ttl) = android.get("ttl") {
            let ok = ttl.as_str().and_then(|t| t.strip_suffix('s')).is_some_and(|n| n.parse::<f64>().is_ok());
            if !ok {
                return Err(
                    "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)".to_owned()
                );
            }
        }
    }
    Ok((message, token))
}

/// Handles one send.
pub(crate) async fn send(state: &State, project: &str, req: Request<Incoming>) -> Response<Body> {
    let issued_for = http::bearer(&req).and_then(|t| state.access_tokens.get(t).map(|p| p.value().clone()));
    let Some(issued_for) = issued_for else {
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            None,
        );
    };
    if issued_for != project {
        return permission_denied(project);
    }
    let Some(body) = http::read_body(req).await else {
        return invalid("Request payload size exceeds the limit");
    };
    let (message, token) = match check_message(&body) {
        Ok(checked) => checked,
        Err(message) => return invalid(&message),
    };
    if token.is_empty() || token.contains(char::is_whitespace) {
        return invalid("The registration token is not a valid FCM registration token");
    }
    bump(&state.counters.fcm_requests);
    let attempt = state.record_attempt(&token);
    let answer = match state.behaviors.decide(&token, attempt) {
        Decision::Accept => None,
        Decision::Delay(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        Decision::Dead => Some(google_error(404, "NOT_FOUND", "Requested entity was not found.", Some("UNREGISTERED"))),
        Decision::UnregisteredSince(_) => {
            Some(google_error(404, "NOT_FOUND", "Requested entity was not found.", Some("UNREGISTERED")))
        }
        Decision::BadToken => Some(invalid("The registration token is not a valid FCM registration token")),
        Decision::SenderIdMismatch => {
            Some(google_error(403, "PERMISSION_DENIED", "SenderId mismatch", Some("SENDER_ID_MISMATCH")))
        }
        Decision::ThirdPartyAuthError => Some(google_error(
            401,
            "UNAUTHENTICATED",
            "Auth error from APNS or Web Push Service",
            Some("THIRD_PARTY_AUTH_ERROR"),
        )),
        Decision::PermissionDenied => Some(permission_denied(project)),
        Decision::Status { status, retry_after } => {
            let (canonical, code, message) = match status {
                429 => ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Send requests'"),
                500 => ("INTERNAL", "INTERNAL", "Internal error encountered."),
                _ => ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
            };
            let resp = google_error(status, canonical, message, Some(code));
            Some(match retry_after {
                Some(secs) => http::with_header(resp, "retry-after", &secs.to_string()),
                None => resp,
            })
        }
        Decision::Fail { status, reason } => {
            Some(google_error(status, &reason, &format!("Mock failure: {reason}"), None))
        }
    };
    if let Some(resp) = answer {
        return resp;
    }
    bump(&state.counters.fcm_delivered);
    state.record_delivery(
        &token,
        Received { provider: Provider::Fcm, sandbox: false, headers: BTreeMap::new(), payload: Value::Object(message) },
    );
    let id = format!("0:{}%{}", attempt, uuid::Uuid::new_v4().simple());
    http::json(200, &json!({ "name": format!("projects/{project}/messages/{id}") }))
}

/// Forgets every issued access token, so the next send gets 401.
pub(crate) fn revoke_tokens(state: &State) {
    state.access_tokens.clear();
}
