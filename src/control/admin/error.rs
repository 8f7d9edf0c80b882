//! The admin API's error: a status, a stable code, a message and (for bad input) the fields at
//! fault, rendered in the gateway's JSON error shape.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::config::ConfigError;
use crate::control::catalog::CatalogError;
use crate::control::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }

    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn internal(message: &str) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// 422 naming one field.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        let (field, reason) = (field.into(), reason.into());
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("{field}: {reason}"),
        );
        e.fields.insert(field, reason);
        e
    }

    /// A body that is not JSON: 400, the body named.
    pub fn bad_json(e: serde_json::Error) -> ApiError {
        let msg = e.to_string();
        let mut a = ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body is not valid JSON: {msg}"),
        );
        a.fields.insert("body".into(), msg);
        a
    }

    /// A body that is not of the expected shape: 422, naming the field (an unknown or missing
    /// field by its own name).
    pub fn from_json(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::bad_json(inner);
        }
        // serde reports "missing field `x`" and "unknown field `x`, expected ..." at the object
        // holding x: name x itself.
        let named = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|p| msg.strip_prefix(p))
            .and_then(|rest| rest.split('`').next());
        let field = match (named, path.as_str()) {
            (Some(n), "." | "") => n.to_string(),
            // An unknown field's path already ends with it.
            (Some(n), p) if p == n || p.ends_with(&format!(".{n}")) => p.to_string(),
            (Some(n), p) => format!("{p}.{n}"),
            (None, "." | "") => "body".to_string(),
            (None, p) => p.to_string(),
        };
        let reason = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        ApiError::field(field, reason)
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> ApiError {
        match e {
            ConfigError::Invalid { field, reason } => ApiError::field(field, reason),
            other => ApiError::field("body", other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(m) => ApiError::conflict(m),
            other => {
                tracing::error!(error = %other, "admin API: store error");
                ApiError::internal("the store failed (logged)")
            }
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        match e {
            CatalogError::Store(s) => s.into(),
            CatalogError::Config(c) => c.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = serde_json::json!({ "code": self.code, "message": self.message });
        if !self.fields.is_empty() {
            err["fields"] = serde_json::json!(self.fields);
        }
        let body = serde_json::json!({ "error": err });
        (self.status, axum::Json(body)).into_response()
    }
}
