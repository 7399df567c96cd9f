//! ApiVersions: the advertised API table.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};

use super::Pending;
use crate::protocol::ErrorCode;
use crate::protocol::frame;
use crate::protocol::versions::SUPPORTED;

/// The ApiVersions response listing every served API.
pub fn response() -> ApiVersionsResponse {
    let keys = SUPPORTED
        .iter()
        .map(|s| ApiVersion::default().with_api_key(s.key as i16).with_min_version(s.min).with_max_version(s.max))
        .collect();
    ApiVersionsResponse::default().with_api_keys(keys)
}

/// The answer to an ApiVersions request of a version we do not know:
/// `UNSUPPORTED_VERSION` with our ranges, in a v0 body, so the client can
/// retry with a version we serve.
pub fn unsupported(correlation_id: i32) -> Pending {
    let body = response().with_error_code(ErrorCode::UnsupportedVersion.code());
    let frame = frame::encode_response(ApiKey::ApiVersions, 0, correlation_id, &ResponseKind::ApiVersions(body));
    Box::pin(async move { frame.map(frame::Frame::One) })
}
