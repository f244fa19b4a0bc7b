//! Image and speech requests (being written).
