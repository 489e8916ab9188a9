//! Web notifications over WebSockets: API.md, Web notifications (socket).

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::{Json, Query};
use super::reader::Reader;
use crate::auth::{bearer, Auth, Principal};
use crate::domain::cursor::{self, Page, PageOf};
use crate::domain::names;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::identity::IdentityMode;
use crate::socket::identity::SocketIdentity;
use crate::socket::{conn, Target};
use crate::state::AppState;
use crate::store::ClientPresence;

/// Inbound reads start small so an idle connection stays small; larger
/// frames grow the buffer as needed.
const READ_BUFFER: usize = 4 * 1024;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(connect))
        .routes(routes!(send_to_client))
        .routes(routes!(send_to_user))
        .routes(routes!(broadcast))
        .routes(routes!(clients))
}

/// `GET /v1/socket` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ConnectQuery {
    /// Identifies this client (e.g. a browser installation). In a `verified`
    /// app it is scoped to the user (`{user_id}:{client_id}`); left out, one
    /// is assigned. The welcome frame says which.
    client_id: Option<String>,
    /// The signed-in user, so user sends reach it.
    user_id: Option<String>,
    /// With a client key of a `verified` app: the app server's signed proof of the user.
    user_token: Option<String>,
    /// The id of the last message received: what was sent since is replayed first.
    since: Option<String>,
    /// The client key, for clients that cannot set headers (browsers).
    key: Option<String>,
}

#[utoipa::path(get, path = "/v1/socket", tag = "socket", params(ConnectQuery),
    responses((status = 101, description = "switching to the WebSocket protocol"), (status = "4XX", body = ErrorBody)))]
async fn connect(
    State(st): State<AppState>,
    parts: Parts,
    Query(q): Query<ConnectQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    // The key first: nothing about the request is answered to an unknown caller.
    let key = q.key.as_deref().or_else(|| bearer(&parts)).ok_or(ApiError::Unauthorized)?;
    let who = st.auth.resolve(key).await?;
    let app_id = who.app()?;
    if let Some(client_id) = &q.client_id {
        names::opaque("client_id", client_id)?;
    }
    if let Some(user_id) = &q.user_id {
        names::opaque("user_id", user_id)?;
    }
    if let Some(since) = &q.since {
        names::opaque("since", since)?;
    }
    let policy = st.identities.policy(app_id).await?.ok_or(ApiError::Unauthorized)?;
    let identity = match (&who, policy.mode) {
        (Principal::Client { .. }, IdentityMode::Verified) => {
            let user = policy.client_user(q.user_id.as_deref(), q.user_token.as_deref())?;
            SocketIdentity::verified(user, q.client_id, policy.relay)?
        }
        _ => {
            let client_id = q.client_id.ok_or_else(|| ApiError::field("client_id", "client_id is required"))?;
            SocketIdentity::open(q.user_id, Some(client_id), policy.relay)
        }
    };
    // A cap per address, so one host cannot hold the instance's sockets.
    let slot = match who {
        Principal::Client { .. } => {
            let addr = super::rate_limit::client_addr(&parts, &st);
            Some(
                st.sockets_per_address
                    .acquire(&addr.to_string())
                    .ok_or(ApiError::RateLimited { retry_after_secs: 1 })?,
            )
        }
        _ => None,
    };
    let ws = ws.map_err(|e| ApiError::field("upgrade", format!("this endpoint needs a WebSocket upgrade: {e}")))?;
    let (reg, joined) = st.hub.join(app_id, &identity.client_id, identity.user_id.as_deref()).await?;
    let since = q.since;
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        // Each frame goes out as it is written: no per-connection write buffer builds up.
        .write_buffer_size(0)
        .max_message_size(st.config.body_limit)
        .on_upgrade(move |socket| async move {
            conn::run(socket, reg, joined, since, identity).await;
            drop(slot);
        }))
}

/// Body of the send endpoints.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// A NotificationInfo object, passed to clients unchanged.
    #[schema(value_type = Object)]
    notification: Map<String, Value>,
}

/// Answer of the send endpoints.
#[derive(Serialize, ToSchema)]
struct Delivered {
    /// Connections the notification was handed to.
    delivered: usize,
}

#[utoipa::path(post, path = "/v1/socket/clients/{client_id}/notifications", tag = "socket",
    params(("client_id" = String, Path)), request_body = SendBody,
    responses((status = 200, body = Delivered), (status = "4XX", body = ErrorBody)))]
async fn send_to_client(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(client_id): Path<String>,
    Json(body): Json<SendBody>,
) -> ApiResult<axum::Json<Delivered>> {
    let app_id = who.server_app()?;
    names::opaque("client_id", &client_id)?;
    let delivered = st.hub.send(app_id, Target::Client(client_id), &body.notification, None).await?;
    Ok(axum::Json(Delivered { delivered }))
}

#[utoipa::path(post, path = "/v1/socket/users/{user_id}/notifications", tag = "socket",
    params(("user_id" = String, Path)), request_body = SendBody,
    responses((status = 200, body = Delivered), (status = "4XX", body = ErrorBody)))]
async fn send_to_user(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(user_id): Path<String>,
    Json(body): Json<SendBody>,
) -> ApiResult<axum::Json<Delivered>> {
    let app_id = who.server_app()?;
    names::opaque("user_id", &user_id)?;
    let delivered = st.hub.send(app_id, Target::User(user_id), &body.notification, None).await?;
    Ok(axum::Json(Delivered { delivered }))
}

#[utoipa::path(post, path = "/v1/socket/broadcast", tag = "socket", request_body = SendBody,
    responses((status = 200, body = Delivered), (status = "4XX", body = ErrorBody)))]
async fn broadcast(
    State(st): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<SendBody>,
) -> ApiResult<axum::Json<Delivered>> {
    let app_id = who.server_app()?;
    let delivered = st.hub.send(app_id, Target::All, &body.notification, None).await?;
    Ok(axum::Json(Delivered { delivered }))
}

/// A connected client.
#[derive(Serialize, ToSchema)]
struct ClientView {
    client_id: String,
    user_id: Option<String>,
    /// Open connections, across instances.
    connections: i64,
}

impl From<ClientPresence> for ClientView {
    fn from(p: ClientPresence) -> Self {
        Self { client_id: p.client_id, user_id: p.user_id, connections: p.connections }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/socket/clients", tag = "socket", params(("app_id" = Option<String>, Query, description = "admin key: the app read"), ListQuery),
    responses((status = 200, body = inline(PageOf<ClientView>)), (status = "4XX", body = ErrorBody)))]
async fn clients(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<ClientView>>> {
    let app_id = app_id.as_str();
    let limit = cursor::limit(q.limit)?;
    let cursors = st.cursors.list("socket_clients");
    let after = cursors.decode(q.cursor.as_deref())?;
    let rows = st.hub.clients(app_id, after.as_deref(), limit + 1).await?;
    Ok(axum::Json(Page::from_rows(rows, limit, cursors, |r| r.client_id.clone()).map(ClientView::from)))
}
