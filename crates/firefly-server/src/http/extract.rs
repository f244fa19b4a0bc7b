//! Extractors whose every rejection is an [`ApiError`] with a stable code, so malformed
//! JSON, wrong types, missing fields and oversized bodies all answer 4xx in our shape.

use super::error::ApiError;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use firefly_core::{Error, ErrorCode, FieldError};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A JSON body (`Content-Type: application/json`) or a JSON response.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ErrorCode::UnsupportedMediaType.into());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(bytes_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

fn bytes_rejection(r: BytesRejection) -> ApiError {
    if r.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        ErrorCode::BodyTooLarge.into()
    } else {
        Error::with_message(ErrorCode::MalformedJson, "The request body could not be read.").into()
    }
}

/// Parses JSON, naming the offending field for type errors and missing fields.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                Error::with_message(ErrorCode::MalformedJson, format!("The request body is not valid JSON: {inner}"))
                    .into()
            }
            Category::Data => {
                let message = inner.to_string();
                let mut reason = message.split(" at line ").next().unwrap_or(&message).to_owned();
                if reason.contains("expected struct") {
                    // Do not leak Rust type names; the body or field had the wrong shape.
                    reason = "expected a JSON object".to_owned();
                }
                // serde reports a missing field at the parent's path; name the field itself.
                let field = match reason.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
                    Some(name) if path == "." => name.to_owned(),
                    Some(name) => format!("{path}.{name}"),
                    None if path == "." => "body".to_owned(),
                    None => path,
                };
                Error::fields(vec![FieldError::new(field, reason)]).into()
            }
        }
    })
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// For `Option<Option<T>>` fields with `#[serde(default, deserialize_with = ...)]`: an
/// absent field is `None` (leave it), `null` is `Some(None)` (clear it).
pub fn present<'de, T: serde::Deserialize<'de>, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(de).map(Some)
}

/// Path parameters; a bad one (such as a non-numeric id) is `request.invalid_path`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(path_rejection(e)),
        }
    }
}

fn path_rejection(e: PathRejection) -> ApiError {
    Error::with_message(ErrorCode::InvalidPath, e.body_text()).into()
}

/// Query parameters; a bad one is `request.invalid_query`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    Error::with_message(ErrorCode::InvalidQuery, e.body_text()).into()
}

/// Proxies whose `X-Forwarded-For` is believed; set as a router extension from the config.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Arc<Vec<IpNet>>);

impl TrustedProxies {
    pub fn parse(list: &[String]) -> Self {
        let nets = list
            .iter()
            .filter_map(|s| s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from)))
            .collect();
        TrustedProxies(Arc::new(nets))
    }
}

/// The client's address: the socket peer, or — when the peer is a trusted proxy — the
/// rightmost `X-Forwarded-For` entry. `UNSPECIFIED` when unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip(parts).unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))))
    }
}

/// The client's address, canonical (an IPv4 client on an IPv6 socket is IPv4), or `None`
/// when the server was run without connection info.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_canonical())?;
    let trusted = parts.extensions.get::<TrustedProxies>().is_some_and(|t| t.0.iter().any(|net| net.contains(&peer)));
    if !trusted {
        return Some(peer);
    }
    // The rightmost entry was written by the trusted proxy; earlier ones are the client's word.
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical());
    Some(forwarded.unwrap_or(peer))
}
