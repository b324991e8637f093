//! Pieces every memsy service shares: layered configuration, id minting,
//! the memory and event model as stored, searchable-id rules and logging
//! set-up. Nothing here does I/O beyond reading the configuration file.

pub mod config;
pub mod config_reference;
pub mod error;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod telemetry;
pub mod time;

pub use config::Config;
pub use error::CoreError;
