//! The one error shape of the API: `{"errors":[{"field", "rule", "index", "line", "column", "message"}]}`, every
//! member but `message` optional, with the HTTP status that goes with it.

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// One thing wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field at fault, as a dotted path relative to what the endpoint edits (`cache.default_ttl`,
    /// `origins[0]`, `rate_limiting.rules[1].name`; for a rule endpoint just `name`). Absent when the request as a
    /// whole is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The custom rule concerned, by name as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The custom rule's position in the domain's list (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// 1-based line in the request body (malformed JSON, or the TOML of `PUT /api/v1/config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column in the request body (malformed JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

impl FieldError {
    pub fn message(message: impl Into<String>) -> Self {
        FieldError {
            field: None,
            rule: None,
            index: None,
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: Some(field.into()),
            ..FieldError::message(message)
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub errors: Vec<FieldError>,
}

/// An error answer: a status and the errors it reports.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            errors: vec![FieldError::message(message)],
        }
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            errors,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn no_domain(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("no domain named {name:?} is configured"),
        )
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            errors: self.errors.clone(),
        }
    }
}

/// A malformed JSON body: serde_json's message with its line and column.
pub fn json_syntax(e: &serde_json::Error) -> ApiError {
    let message = format!("malformed JSON: {e}");
    ApiError::invalid(vec![FieldError {
        line: Some(e.line()),
        column: Some(e.column()),
        ..FieldError::message(message)
    }])
}
