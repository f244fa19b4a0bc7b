//! HTTP plumbing shared by every module: the error type, extractors that turn every
//! rejection into that error, and the per-request middleware.

pub mod context;
pub mod edge;
pub mod error;
pub mod extract;
pub mod headers;

pub use error::{ApiError, ApiResult};
pub use extract::{ClientIp, Json, Path, Query};
