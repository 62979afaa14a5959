//! Field validation that collects every problem, so a client fixes them all at once.

use crate::error::{ApiError, FieldError};

/// Collects field errors; `finish` turns them into a 422.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// A fresh validator.
    pub fn new() -> Validator {
        Validator::default()
    }

    /// Records a problem when `ok` is false.
    pub fn check(&mut self, ok: bool, field: &str, message: &str) -> &mut Self {
        if !ok {
            self.errors.push(FieldError {
                field: field.to_string(),
                message: message.to_string(),
            });
        }
        self
    }

    /// Checks a string's length in characters.
    pub fn length(&mut self, value: &str, field: &str, min: usize, max: usize) -> &mut Self {
        let n = value.chars().count();
        self.check(
            (min..=max).contains(&n),
            field,
            &format!("must be {min} to {max} characters"),
        )
    }

    /// A one-line name or title: `min` to `max` characters and no control characters
    /// (no NUL, no newline, no escape sequence that would rewrite a terminal or a log).
    pub fn text(&mut self, value: &str, field: &str, min: usize, max: usize) -> &mut Self {
        self.length(value, field, min, max).check(
            !value.chars().any(char::is_control),
            field,
            "must not contain control characters",
        )
    }

    /// `Ok` when nothing was recorded, else a 422 listing everything.
    pub fn finish(&mut self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(std::mem::take(&mut self.errors)))
        }
    }
}

/// A UUID path parameter; anything else cannot name an object, so it is a 404.
pub fn uuid_param(value: &str, what: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::not_found(what))
}
