//! Conversions between Rust values and the columns they are stored in.

use crate::error::corrupt;
use crate::StoreError;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use std::str::FromStr;

/// A timestamp as stored: unix milliseconds (sub-millisecond precision is dropped).
pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// An unsigned count as stored (SQLite integers are signed 64-bit; larger values saturate).
pub(crate) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reads the columns of one row, naming the row in any error.
pub(crate) struct RowReader<'r> {
    pub(crate) row: &'r SqliteRow,
    pub(crate) what: String,
}

impl RowReader<'_> {
    fn bad(&self, column: &str, message: impl std::fmt::Display) -> StoreError {
        corrupt(self.what.clone(), format!("{column}: {message}"))
    }

    /// A column of any type sqlx decodes; a type mismatch is corruption.
    pub(crate) fn get<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: for<'a> sqlx::Decode<'a, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        self.row
            .try_get::<T, _>(column)
            .map_err(|e| self.bad(column, e))
    }

    /// A non-negative integer column.
    pub(crate) fn unsigned<T: TryFrom<i64>>(&self, column: &str) -> Result<T, StoreError> {
        let n: i64 = self.get(column)?;
        T::try_from(n).map_err(|_| self.bad(column, format!("{n} is out of range")))
    }

    /// A nullable non-negative integer column.
    pub(crate) fn unsigned_opt<T: TryFrom<i64>>(
        &self,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get::<Option<i64>>(column)? {
            None => Ok(None),
            Some(n) => T::try_from(n)
                .map(Some)
                .map_err(|_| self.bad(column, format!("{n} is out of range"))),
        }
    }

    /// A timestamp column (unix milliseconds).
    pub(crate) fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        let ms: i64 = self.get(column)?;
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| self.bad(column, format!("{ms} is not a valid timestamp")))
    }

    /// A nullable timestamp column.
    pub(crate) fn time_opt(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.get::<Option<i64>>(column)? {
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
        let text: String = self.get(column)?;
        text.parse().map_err(|e| self.bad(column, e))
    }

    /// A nullable text column parsed with `FromStr`.
    pub(crate) fn parse_opt<T>(&self, column: &str) -> Result<Option<T>, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get::<Option<String>>(column)? {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|e| self.bad(column, e)),
        }
    }

    /// A text column holding JSON.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        column: &str,
    ) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        serde_json::from_str(&text).map_err(|e| self.bad(column, e))
    }
}
