//! Firefly's vocabulary: error codes, configuration types, time and ids.
//! Depends on no other Firefly crate.

pub mod config;
pub mod crypto;
pub mod error;
pub mod money;
pub mod time;

pub use error::{Error, ErrorCode, FieldError};
