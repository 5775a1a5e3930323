//! Validation of client input shared by several routes. Each function returns the cleaned value or a 400
//! whose message says exactly what to change.

use shared::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, MAX_SCOPE_CHARS, MAX_TITLE_CHARS};

use crate::error::ApiError;

/// Longest search text accepted.
const MAX_SEARCH_CHARS: usize = 200;
/// Longest model name accepted.
const MAX_MODEL_CHARS: usize = 200;

/// A chat title: trimmed, 1 to 200 characters, no control characters.
pub fn title(raw: &str) -> Result<String, ApiError> {
    let title = raw.trim();
    if title.is_empty() {
        return Err(ApiError::bad_request("title must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request(format!("title must be at most {MAX_TITLE_CHARS} characters")));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::bad_request("title must not contain control characters such as newlines"));
    }
    Ok(title.to_owned())
}

/// A scope key: 1 to 200 characters, no control characters, taken as given (no trimming: it is a key).
pub fn scope(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.chars().count() > MAX_SCOPE_CHARS {
        return Err(ApiError::bad_request(format!("scope must be 1 to {MAX_SCOPE_CHARS} characters")));
    }
    if raw.chars().any(char::is_control) {
        return Err(ApiError::bad_request("scope must not contain control characters"));
    }
    Ok(raw.to_owned())
}

/// A model name: trimmed, 1 to 200 characters.
pub fn model_name(raw: &str) -> Result<String, ApiError> {
    let model = raw.trim();
    if model.is_empty() || model.chars().count() > MAX_MODEL_CHARS || model.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!("model must be a name of 1 to {MAX_MODEL_CHARS} characters")));
    }
    Ok(model.to_owned())
}

/// Page size: default 30, 1 to 100.
pub fn page_limit(raw: Option<u32>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(DEFAULT_PAGE_LIMIT),
        Some(limit) if (1..=MAX_PAGE_LIMIT).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_PAGE_LIMIT}"))),
    }
}

/// Search text: blank means no search; at most 200 characters.
///
/// Control characters separate words like spaces do: a pasted tab or newline means nothing else in a search,
/// and PostgreSQL refuses a NUL in text outright.
pub fn search_text(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let words = |q: String| q.replace(char::is_control, " ").trim().to_owned();
    let Some(text) = raw.map(words).filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::bad_request(format!("q must be at most {MAX_SEARCH_CHARS} characters")));
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(title("  Hello ").expect("valid"), "Hello");
        assert!(title("   ").is_err());
        assert!(title(&"x".repeat(MAX_TITLE_CHARS + 1)).is_err());
        assert!(title(&"é".repeat(MAX_TITLE_CHARS)).is_ok(), "limit counts characters, not bytes");
        assert!(title("two\nlines").is_err());
    }

    #[test]
    fn page_limits_are_bounded() {
        assert_eq!(page_limit(None).expect("default"), DEFAULT_PAGE_LIMIT);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(MAX_PAGE_LIMIT + 1)).is_err());
    }

    #[test]
    fn blank_search_is_no_search() {
        assert_eq!(search_text(Some("   ".into())).expect("valid"), None);
        assert_eq!(search_text(Some(" lake ".into())).expect("valid"), Some("lake".into()));
        assert_eq!(search_text(Some("lake\0house\n".into())).expect("valid"), Some("lake house".into()));
        assert_eq!(search_text(Some("\0\t".into())).expect("valid"), None);
    }
}
