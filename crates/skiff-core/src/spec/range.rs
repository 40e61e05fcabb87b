//! The one range check of every area of a spec.

use super::SpecError;
use std::fmt::Display;
use std::ops::RangeInclusive;

/// `value` if `range` holds it (a NaN never is); else the error `{field}: {value} is out of
/// range: use {usage}`, where `usage` is the range's bounds (`1 to 1000`) unless given.
pub(crate) fn in_range<T: PartialOrd + Display>(
    field: &str,
    value: T,
    range: RangeInclusive<T>,
    usage: Option<&str>,
) -> Result<T, SpecError> {
    if range.contains(&value) {
        return Ok(value);
    }
    let message = match usage {
        Some(usage) => format!("{value} is out of range: use {usage}"),
        None => format!(
            "{value} is out of range: use {} to {}",
            range.start(),
            range.end()
        ),
    };
    Err(SpecError::new(field, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_bounds_are_named_with_them() {
        assert_eq!(in_range("n", 5, 1..=10, None), Ok(5));
        assert_eq!(in_range("n", 10, 1..=10, None), Ok(10));
        let err = in_range("n", 11, 1..=10, None).expect_err("too big");
        assert_eq!(err.to_string(), "n: 11 is out of range: use 1 to 10");
        let err = in_range("x", 0.0, 0.1..=1.0, Some("a tenth to all")).expect_err("0");
        assert_eq!(err.to_string(), "x: 0 is out of range: use a tenth to all");
        assert!(in_range("x", f64::NAN, 0.1..=1.0, None).is_err());
        assert!(in_range("x", f64::INFINITY, 0.1..=1.0, None).is_err());
    }
}
