//! OpenAI's image and audio endpoints, as far as a relay needs them: validating the client's
//! request at the edge, making the upstream body, and reading what is billed from the answer.
//!
//! | endpoint | request | billed by | read from |
//! |---|---|---|---|
//! | `POST /v1/images/generations` | [`ImageRequest`] (JSON) | image | [`images_billed`]: the answer's `data[]` entries (gpt-image models also report tokens: [`image_usage`]) |
//! | `POST /v1/audio/speech` | [`SpeechRequest`] (JSON) | input character | [`SpeechRequest::characters`], known before the call |
//! | `POST /v1/audio/transcriptions` | [`TranscriptionRequest`] (`multipart/form-data`) | second of audio | [`duration_seconds`] on the answer, else [`wav_duration_seconds`] on the upload |
//!
//! As with chat, the upstream body is the client's bytes with only the model replaced, so
//! fields this crate does not read (`quality`, `style`, `user`, `background`, `instructions`,
//! `timestamp_granularities[]`, …) reach an OpenAI-compatible upstream unchanged. For
//! DashScope's native API see [`crate::dashscope`], which converts these requests.
//!
//! JSON requests fail with [`RequestError`](crate::openai::RequestError), the same stable
//! codes and `param` as chat; multipart uploads with [`TranscriptionError`].

mod fields;
mod image;
mod multipart;
mod speech;
mod transcription;

#[cfg(test)]
mod tests;

pub use image::{image_usage, images_billed, ImageFormat, ImageRequest, ImageSize, ImageUsage, MAX_IMAGES};
pub use multipart::{Multipart, Part, MAX_PARTS, MAX_PART_HEADER_BYTES};
pub use speech::{SpeechFormat, SpeechRequest, MAX_SPEECH_INPUT_CHARS};
pub use transcription::{
    duration_seconds, wav_duration_seconds, TranscriptionError, TranscriptionFormat, TranscriptionRequest,
};
