//! The extractor: raw events in, candidate memories out.

pub mod rules;
