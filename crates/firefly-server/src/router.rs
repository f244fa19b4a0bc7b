//! The HTTP surface. Routes are registered with `utoipa_axum::routes!`, which takes the
//! path from each handler's OpenAPI annotation: a route cannot exist undocumented.

use crate::http::edge::{EdgeLayer, KeepMatchedPathLayer};
use crate::http::error::ApiError;
use crate::http::extract::TrustedProxies;
use crate::ops::openapi::ApiDoc;
use crate::state::AppState;
use crate::{accounts::handlers as auth, admin, billing, keys, ops, relay};
use axum::extract::DefaultBodyLimit;
use axum::Router;
use firefly_core::ErrorCode;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The documented API routes and their OpenAPI document.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::get_profile, auth::put_profile))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::get_preferences, auth::put_preferences))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::update_key, keys::delete_key))
        .routes(routes!(keys::current_key))
        .routes(routes!(admin::list_users))
        .routes(routes!(admin::set_status))
        .routes(routes!(admin::set_role))
        .routes(routes!(billing::balance))
        .routes(routes!(billing::ledger))
        .routes(routes!(billing::redeem))
        .routes(routes!(billing::admin::change_credits))
        .routes(routes!(billing::admin::create_batch, billing::admin::list_batches))
        .routes(routes!(billing::pricing::list_prices))
        .routes(routes!(billing::pricing::put_price, billing::pricing::delete_price))
        .routes(routes!(billing::pricing::list_groups, billing::pricing::create_group))
        .routes(routes!(billing::pricing::update_group, billing::pricing::delete_group))
        .routes(routes!(billing::pricing::set_user_group))
        .routes(routes!(relay::channels::list_channels, relay::channels::create_channel))
        .routes(routes!(relay::channels::get_channel, relay::channels::update_channel, relay::channels::delete_channel))
        .routes(routes!(relay::probe::test_channel))
        .routes(routes!(relay::openai::list_models))
        .routes(routes!(relay::openai::get_model))
        .routes(routes!(relay::openai::chat_completions))
        .routes(routes!(relay::anthropic::messages))
        .routes(routes!(relay::anthropic::count_tokens))
        .routes(routes!(relay::media::images))
        .routes(routes!(relay::media::speech))
        .routes(routes!(relay::media::transcriptions))
        .routes(routes!(relay::openai::embeddings))
        .routes(routes!(relay::usage::my_logs))
        .routes(routes!(relay::usage::all_logs))
        .routes(routes!(relay::usage::stats))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
        .routes(routes!(ops::docs::page))
        .routes(routes!(ops::docs::script))
        .split_for_parts()
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The whole service: the routes, and around them, once, the middleware.
///
/// The middleware wraps the router as one service rather than through `Router::layer`,
/// which wraps every route's boxed service in another box per layer: each request then
/// cloned that nested chain of boxes once per layer above it (about forty allocations per
/// request before any handler ran). Here a request clones one route and passes through
/// plain services ([`Edge`](crate::http::edge::Edge)). Only the matched route's template
/// has to come from inside the router ([`KeepMatchedPathLayer`]).
pub fn build(state: AppState) -> Router {
    let (api, _) = api();
    let cfg = &state.config.server;
    let edge = EdgeLayer {
        timeout: Duration::from_secs(cfg.request_timeout_secs),
        hsts: cfg.hsts,
        trusted_proxies: TrustedProxies::parse(&cfg.trusted_proxies),
    };
    let routes = api
        .fallback(|| async { ApiError::from(ErrorCode::RouteNotFound) })
        .method_not_allowed_fallback(|| async { ApiError::from(ErrorCode::MethodNotAllowed) })
        .route_layer(KeepMatchedPathLayer)
        .with_state(state.clone());
    let service = ServiceBuilder::new()
        .layer(edge)
        .option_layer(cors(&cfg.cors_origins))
        .layer(DefaultBodyLimit::max(cfg.body_limit_bytes))
        .service(routes);
    Router::new().fallback_service(service)
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    // Browsers never let `*` cover Authorization, so the headers are named.
    let headers = ["authorization", "content-type", "x-api-key", "x-request-id", "anthropic-version"]
        .map(http::HeaderName::from_static);
    let layer = CorsLayer::new()
        .allow_methods(Any)
        .allow_headers(headers)
        .expose_headers([http::HeaderName::from_static("x-request-id"), http::header::RETRY_AFTER])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(Any));
    }
    let list = origins.iter().filter_map(|o| o.parse().ok()).collect::<Vec<http::HeaderValue>>();
    Some(layer.allow_origin(AllowOrigin::list(list)))
}
