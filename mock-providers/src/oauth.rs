//! The OAuth2 token endpoint stand-in: `POST /token` with a JWT-bearer grant.

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Request, Response};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::json;

use crate::http::{self, Body};
use crate::state::{bump, State};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const SCOPES: &[&str] =
    &["https://www.googleapis.com/auth/firebase.messaging", "https://www.googleapis.com/auth/cloud-platform"];
/// Google's access tokens live an hour; it answers a second less.
pub(crate) const EXPIRES_IN: u64 = 3599;

#[derive(Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    scope: String,
}

fn oauth_error(error: &str, description: &str) -> Response<Body> {
    http::json(400, &json!({ "error": error, "error_description": description }))
}

/// The assertion's `iss`, read before verification to find the key.
fn unverified_issuer(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Claims>(&bytes).ok().map(|c| c.iss)
}

/// Exchanges a signed assertion for an access token.
pub(crate) async fn token(state: &State, req: Request<Incoming>) -> Response<Body> {
    bump(&state.counters.token_requests);
    let scripted = *state.oauth_failure.read().unwrap_or_else(|e| e.into_inner());
    match scripted {
        // Google's answer for a service-account key that was deleted or disabled.
        Some(crate::OAuthFailure::InvalidGrant) => return oauth_error("invalid_grant", "Invalid JWT Signature."),
        Some(crate::OAuthFailure::Unavailable) => {
            return http::with_header(
                http::json(
                    503,
                    &json!({"error": "temporarily_unavailable", "error_description": "Service unavailable."}),
                ),
                "retry-after",
                "5",
            )
        }
        None => {}
    }
    let Some(body) = http::read_body(req).await else {
        return oauth_error("invalid_request", "Body too large.");
    };
    let form = http::form(&body);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if field("grant_type") != Some(GRANT_TYPE) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type.");
    }
    let Some(assertion) = field("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let Some(account) = unverified_issuer(assertion).and_then(|iss| {
        let accounts = state.accounts.read().unwrap_or_else(|e| e.into_inner());
        accounts.get(&iss).cloned()
    }) else {
        return oauth_error("invalid_grant", "Invalid grant: account not found");
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[state.token_url()]);
    validation.set_issuer(&[&account.client_email]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Claims>(assertion, &account.verifier, &validation) {
        Ok(data) => data.claims,
        Err(e) => return oauth_error("invalid_grant", &format!("Invalid JWT: {e}")),
    };
    if !claims.scope.split(' ').any(|s| SCOPES.contains(&s)) {
        return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    }
    let access_token = format!("ya29.mock-{}", uuid::Uuid::new_v4().simple());
    state.access_tokens.insert(access_token.clone(), account.project_id.clone());
    http::json(200, &json!({ "access_token": access_token, "expires_in": EXPIRES_IN, "token_type": "Bearer" }))
}
