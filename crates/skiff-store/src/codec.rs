//! Conversions between Rust values and the columns they are stored in.

use crate::backend::Columns;
use crate::error::corrupt;
use crate::StoreError;
use chrono::{DateTime, Utc};
use std::str::FromStr;

/// A timestamp as stored: unix milliseconds (sub-millisecond precision is dropped).
pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// An unsigned count as stored (as signed 64-bit integers on both backends; larger values saturate).
pub(crate) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Text as stored. PostgreSQL's text cannot hold NUL characters (SQLite's can): they
/// become U+FFFD on both backends, so a stored message reads back the same on either.
pub(crate) fn text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// Reads the columns of one row, naming the row in any error.
pub(crate) struct RowReader<'r> {
    pub(crate) row: &'r dyn Columns,
    pub(crate) what: String,
}

impl RowReader<'_> {
    fn bad(&self, column: &str, message: impl std::fmt::Display) -> StoreError {
        corrupt(self.what.clone(), format!("{column}: {message}"))
    }

    fn required<T>(&self, column: &str, value: Option<T>) -> Result<T, StoreError> {
        value.ok_or_else(|| self.bad(column, "is NULL"))
    }

    /// A nullable integer column.
    pub(crate) fn int_opt(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.row.int(column).map_err(|e| self.bad(column, e))
    }

    /// An integer column.
    pub(crate) fn int(&self, column: &str) -> Result<i64, StoreError> {
        let value = self.int_opt(column)?;
        self.required(column, value)
    }

    /// A nullable text column.
    pub(crate) fn text_opt(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.row.text(column).map_err(|e| self.bad(column, e))
    }

    /// A text column.
    pub(crate) fn text(&self, column: &str) -> Result<String, StoreError> {
        let value = self.text_opt(column)?;
        self.required(column, value)
    }

    /// A nullable boolean column.
    pub(crate) fn bool_opt(&self, column: &str) -> Result<Option<bool>, StoreError> {
        self.row.boolean(column).map_err(|e| self.bad(column, e))
    }

    /// A non-negative integer column.
    pub(crate) fn unsigned<T: TryFrom<i64>>(&self, column: &str) -> Result<T, StoreError> {
        let n = self.int(column)?;
        T::try_from(n).map_err(|_| self.bad(column, format!("{n} is out of range")))
    }

    /// A nullable non-negative integer column.
    pub(crate) fn unsigned_opt<T: TryFrom<i64>>(
        &self,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.int_opt(column)? {
            None => Ok(None),
            Some(n) => T::try_from(n)
                .map(Some)
                .map_err(|_| self.bad(column, format!("{n} is out of range"))),
        }
    }

    /// A timestamp column (unix milliseconds).
    pub(crate) fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        let ms = self.int(column)?;
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| self.bad(column, format!("{ms} is not a valid timestamp")))
    }

    /// A nullable timestamp column.
    pub(crate) fn time_opt(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.int_opt(column)? {
            None => Ok(None),
            Some(ms) => DateTime::from_timestamp_millis(ms)
                .map(Some)
                .ok_or_else(|| self.bad(column, format!("{ms} is not a valid timestamp"))),
        }
    }

    /// A text column parsed with `FromStr` (an enum stored by name, a uuid, ...).
    pub(crate) fn parse<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let text = self.text(column)?;
        text.parse().map_err(|e| self.bad(column, e))
    }

    /// A nullable text column parsed with `FromStr`.
    pub(crate) fn parse_opt<T>(&self, column: &str) -> Result<Option<T>, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.text_opt(column)? {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|e| self.bad(column, e)),
        }
    }

    /// A text column holding JSON.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        column: &str,
    ) -> Result<T, StoreError> {
        let text = self.text(column)?;
        serde_json::from_str(&text).map_err(|e| self.bad(column, e))
    }
}
