//! Checks for plain text fields at the API edge.

use crate::error::{Error, Result, RuleCode};

/// A non-empty, trimmed, single-line string of at most `max` characters.
pub fn text<'a>(field: &str, s: &'a str, max: usize) -> Result<&'a str> {
    let s = s.trim();
    if s.is_empty() {
        return Err(Error::rule(
            RuleCode::FieldEmpty,
            format!("{field} must not be empty"),
        ));
    }
    if s.chars().count() > max {
        return Err(Error::rule(
            RuleCode::FieldTooLong,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::rule(
            RuleCode::FieldInvalid,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(s)
}

/// An e-mail address: one `@` with text on both sides, a dot in the domain,
/// no spaces, at most 254 characters (RFC 5321). Deliverability is the
/// mail server's business; this catches typos and injection attempts.
pub fn email(s: &str) -> Result<String> {
    let s = s.trim();
    let invalid = || {
        Error::rule(
            RuleCode::InvalidEmail,
            format!("{s:?} is not an e-mail address"),
        )
    };
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = s.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty() || local.contains('@') || domain.len() < 3 || !domain.contains('.') {
        return Err(invalid());
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err(invalid());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(email("ana@example.com").is_ok());
        assert_eq!(email(" ana@example.com ").unwrap(), "ana@example.com");
        for bad in [
            "", "ana", "ana@", "@x.de", "a b@x.de", "ana@x", "a@b@x.de", "a@x..de",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn texts() {
        assert_eq!(text("name", " Ana ", 10).unwrap(), "Ana");
        assert_eq!(text("name", "  ", 10).unwrap_err().code(), "field_empty");
        assert_eq!(
            text("name", "abcdefghijk", 10).unwrap_err().code(),
            "field_too_long"
        );
        assert_eq!(
            text("name", "a\u{0}b", 10).unwrap_err().code(),
            "field_invalid"
        );
    }
}
