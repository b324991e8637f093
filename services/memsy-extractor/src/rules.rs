//! The `rules` extraction engine (placeholder, to be written).
