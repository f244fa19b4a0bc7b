//! DashScope's native API (being written).
