//! `GET /v1/openapi.json`: the API as OpenAPI 3.1, generated from the routes.

use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "pushgate", description = "Push notification gateway: APNs, FCM and WebSocket delivery behind one HTTP API."),
    modifiers(&BearerKey),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("admin, server or client key"))
                    .build(),
            ),
        );
    }
}

/// The document's fixed parts; the routes add their paths.
pub fn base() -> OpenApiDoc {
    ApiDoc::openapi()
}

/// Serves the finished document.
pub fn router(mut doc: OpenApiDoc) -> Router<AppState> {
    doc.paths.paths.insert(
        "/v1/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .tag("operations")
                .response("200", utoipa::openapi::Response::new("OpenAPI 3.1 document")),
        ),
    );
    // Serialized once: a route's state is cloned per request, and the
    // document as a value tree is large.
    let body = axum::body::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    Router::new().route(
        "/v1/openapi.json",
        get(move || {
            let body = body.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
        }),
    )
}
