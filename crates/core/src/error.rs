//! Validation errors that name the offending field, shared by every dialect.

use std::fmt;

/// One problem with one field of a request; `field` is a path such as `messages[2].role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, in the request's own naming.
    pub field: String,
    /// What is wrong with it, for a human.
    pub message: String,
}

/// A request that cannot be accepted; always names at least one field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationError {
    /// The problems found, in the order they were found.
    pub errors: Vec<FieldError>,
}

impl ValidationError {
    /// A single-field error.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            errors: vec![FieldError {
                field: field.into(),
                message: message.into(),
            }],
        }
    }

    /// Records another problem.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok(v)` when nothing was recorded, else the error.
    pub fn into_result<T>(self, v: T) -> Result<T, ValidationError> {
        if self.is_empty() { Ok(v) } else { Err(self) }
    }

    /// Prefixes every field path (used when a nested value is validated on its own).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        for e in &mut self.errors {
            e.field = if e.field.starts_with('[') {
                format!("{prefix}{}", e.field)
            } else {
                format!("{prefix}.{}", e.field)
            };
        }
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.first() {
            Some(e) if self.errors.len() == 1 => write!(f, "{}: {}", e.field, e.message),
            Some(e) => write!(
                f,
                "{}: {} (and {} more)",
                e.field,
                e.message,
                self.errors.len() - 1
            ),
            None => write!(f, "invalid request"),
        }
    }
}

impl std::error::Error for ValidationError {}
