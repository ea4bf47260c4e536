//! Cursor pagination shared by list endpoints: `{"data", "has_more",
//! "next_cursor"}`, newest first, keyset on (timestamp, id) so pages stay
//! stable while rows are added.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

pub fn limit(asked: Option<i64>) -> Result<i64> {
    match asked {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Error::InvalidQuery(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// An opaque cursor: the (timestamp, id) of the last row of a page.
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.at.to_rfc3339(),
            self.id
        ))
    }

    pub fn decode(s: &str) -> Result<Cursor> {
        let bad = || Error::InvalidQuery("cursor is not one obol issued".into());
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (at, id) = text.split_once('|').ok_or_else(bad)?;
        let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
        Ok(Cursor {
            at: at.with_timezone(&Utc),
            id: id.to_string(),
        })
    }
}

/// One page of a list, newest first. Its schemas in the OpenAPI document
/// are `crate::openapi::pages`, one per kind of item.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// More rows follow; ask again with `cursor` = `next_cursor`.
    pub has_more: bool,
    /// Present when `has_more`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<R> Page<R> {
    /// `rows` were fetched with `limit + 1`: the extra row only says more exist.
    pub fn from_rows(mut rows: Vec<R>, limit: i64, cursor_of: impl Fn(&R) -> Cursor) -> Page<R> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().map(|r| cursor_of(r).encode())
        } else {
            None
        };
        Page {
            data: rows,
            has_more,
            next_cursor,
        }
    }

    /// Like `map`, for a conversion that can fail (a row obol cannot read).
    pub fn try_map<T>(self, f: impl Fn(R) -> Result<T>) -> Result<Page<T>> {
        Ok(Page {
            data: self.data.into_iter().map(f).collect::<Result<_>>()?,
            has_more: self.has_more,
            next_cursor: self.next_cursor,
        })
    }

    pub fn map<T>(self, f: impl Fn(R) -> T) -> Page<T> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            has_more: self.has_more,
            next_cursor: self.next_cursor,
        }
    }
}
