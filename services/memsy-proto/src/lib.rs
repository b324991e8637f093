//! The protobuf contract shared by every memsy service: the messages that
//! travel between pipeline stages on JetStream and the internal gRPC services
//! (status, query embedding). Generated from `proto/memsy/v1/`.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("memsy.v1");
}

pub use v1::*;
