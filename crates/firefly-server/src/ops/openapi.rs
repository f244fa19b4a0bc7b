//! The OpenAPI 3.1 document. Routes are registered through `utoipa_axum`, so a route
//! cannot exist without its documentation (see `router.rs`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "Firefly", description = "Self-hosted AI platform backend. Every error has the shape of ErrorResponse with a stable code."),
    modifiers(&Security),
    components(schemas(ErrorResponse, ErrorDetail))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "An API key (sk-ff-...), also accepted as Authorization: Bearer",
            ))),
        );
    }
}

/// Every error response.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorResponse {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable, dotted code such as `auth.invalid_credentials`.
    code: String,
    message: String,
    request_id: String,
    /// For `validation.failed`: `{"fields": [{"field", "reason"}]}`.
    details: Option<serde_json::Value>,
}
