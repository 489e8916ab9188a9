//! Groups: API.md, Groups. A group is a named set of an app's devices; it
//! exists while it has members. Membership is the same whether set through a
//! device's `groups` field or through these endpoints. Server key only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::devices::DeviceView;
use super::json::Query;
use super::reader::Reader;
use crate::auth::Auth;
use crate::domain::cursor::{self, Page, PageOf};
use crate::domain::names;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::store::{DeviceFilter, GroupRow};

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(members)).routes(routes!(add, remove))
}

/// A group and its member counts.
#[derive(Serialize, ToSchema)]
struct GroupView {
    name: String,
    /// Member devices.
    devices: i64,
    /// Member devices that are active (what a send to the group targets).
    active_devices: i64,
}

impl From<GroupRow> for GroupView {
    fn from(row: GroupRow) -> Self {
        Self { name: row.name, devices: row.devices, active_devices: row.active_devices }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/groups", tag = "groups", params(("app_id" = Option<String>, Query, description = "admin key: the app read"), ListQuery), description = "Groups by name.",
    responses((status = 200, body = inline(PageOf<GroupView>)), (status = "4XX", body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<GroupView>>> {
    let app_id = app_id.as_str();
    let limit = cursor::limit(q.limit)?;
    let cursors = st.cursors.list("groups");
    let after = cursors.decode(q.cursor.as_deref())?;
    let rows = st.store.list_groups(app_id, after.as_deref(), limit + 1).await?;
    Ok(axum::Json(Page::from_rows(rows, limit, cursors, |r| r.name.clone()).map(GroupView::from)))
}

#[utoipa::path(get, path = "/v1/groups/{name}/devices", tag = "groups", params(("app_id" = Option<String>, Query, description = "admin key: the app read"), ("name" = String, Path), ListQuery),
    description = "Member devices, newest first; a group without members lists none.",
    responses((status = 200, body = inline(PageOf<DeviceView>)), (status = "4XX", body = ErrorBody)))]
async fn members(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<DeviceView>>> {
    let app_id = app_id.as_str();
    names::group("name", &name)?;
    let limit = cursor::limit(q.limit)?;
    let cursors = st.cursors.list("group_devices");
    let after = cursors.decode(q.cursor.as_deref())?;
    let filter = DeviceFilter { group: Some(&name), ..DeviceFilter::default() };
    let rows = st.store.list_devices(app_id, &filter, after.as_deref(), limit + 1).await?;
    Ok(axum::Json(DeviceView::page(rows, limit, cursors)?))
}

#[utoipa::path(put, path = "/v1/groups/{name}/devices/{device_id}", tag = "groups",
    params(("name" = String, Path), ("device_id" = String, Path)),
    description = "Adds the device to the group; adding a member again changes nothing.",
    responses((status = 204, description = "the device is a member"), (status = "4XX", body = ErrorBody)))]
async fn add(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path((name, device_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app_id = who.server_app()?;
    names::group("name", &name)?;
    found(st.store.add_to_group(app_id, &name, &device_id).await?)
}

#[utoipa::path(delete, path = "/v1/groups/{name}/devices/{device_id}", tag = "groups",
    params(("name" = String, Path), ("device_id" = String, Path)),
    description = "Removes the device from the group. Removing a device that is not a member is not an error (204); \
        an unknown device is `not_found`.",
    responses((status = 204, description = "the device is not a member"), (status = "4XX", body = ErrorBody)))]
async fn remove(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path((name, device_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app_id = who.server_app()?;
    names::group("name", &name)?;
    found(st.store.remove_from_group(app_id, &name, &device_id).await?)
}

/// 204 when the device was found, else `not_found`.
fn found(device_found: bool) -> ApiResult<StatusCode> {
    if device_found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("device"))
    }
}
