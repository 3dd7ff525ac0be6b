//! Answers in the distribution spec's error form: a status and `{"errors":[{"code","message","detail"}]}`.

use hyper::StatusCode;

/// One spec error. `message` names what was asked for and why it failed.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn blob_unknown(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", message)
    }

    pub fn manifest_unknown(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", message)
    }

    pub fn name_unknown(name: &str) -> ApiError {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository {name:?} is not known to this registry"),
        )
    }

    pub fn name_invalid(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", message)
    }

    pub fn digest_invalid(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }

    pub fn unsupported(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }

    pub fn upload_unknown(id: &str) -> ApiError {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            format!("upload {id:?} is not in progress (finished, cancelled or expired)"),
        )
    }

    pub fn upload_invalid(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", message)
    }

    pub fn range_invalid(message: impl Into<String>) -> ApiError {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            message,
        )
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", message)
    }

    pub fn manifest_invalid(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", message)
    }

    pub fn unauthorized() -> ApiError {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "errors": [{"code": self.code, "message": self.message, "detail": null}]
        }))
        .expect("an error body always serializes")
    }
}
