//! The environment area of a spec: `env` and `secrets`, both passed to the function as
//! environment variables.

use super::SpecError;
use std::collections::BTreeMap;

const MAX_ENV_ENTRIES: usize = 256;
const MAX_ENV_VALUE: usize = 32 * 1024;

/// Checks the names and values of `env` and `secrets`, their number, and that no name is in
/// both.
pub(super) fn check(
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<(), SpecError> {
    check_vars("env", env)?;
    check_vars("secrets", secrets)?;
    if env.len() + secrets.len() > MAX_ENV_ENTRIES {
        return Err(SpecError::new(
            "env",
            format!("too many variables: at most {MAX_ENV_ENTRIES} env and secrets together"),
        ));
    }
    if let Some(key) = secrets.keys().find(|k| env.contains_key(*k)) {
        return Err(SpecError::new(
            format!("secrets.{key}"),
            "is also set in env; a name may be in only one of them",
        ));
    }
    Ok(())
}

fn check_vars(field: &str, vars: &BTreeMap<String, String>) -> Result<(), SpecError> {
    for (key, value) in vars {
        let valid_name = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(SpecError::new(
                format!("{field}.{key}"),
                "is not a valid variable name: use letters, digits and `_`, not starting with a digit",
            ));
        }
        if key.starts_with("SKIFF_") {
            return Err(SpecError::new(
                format!("{field}.{key}"),
                "names starting with SKIFF_ are reserved for call metadata",
            ));
        }
        if value.contains('\0') {
            return Err(SpecError::new(
                format!("{field}.{key}"),
                "must not contain a NUL byte",
            ));
        }
        if value.len() > MAX_ENV_VALUE {
            return Err(SpecError::new(
                format!("{field}.{key}"),
                format!("is longer than {MAX_ENV_VALUE} bytes"),
            ));
        }
    }
    Ok(())
}
