//! Function names: a name within a namespace, and a full name (`NS.NAME`).

use super::SpecError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A validated function name: 1 to 64 ASCII letters, digits, `-` or `_`, starting with a
/// letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FunctionName(String);

impl FunctionName {
    /// Checks a full name (`NAME`, or `NS.NAME` for a namespace other than `default`, see
    /// [`crate::access`]) and wraps it.
    pub fn parse(full: &str) -> Result<Self, SpecError> {
        match full.split_once(crate::access::NAMESPACE_SEPARATOR) {
            None => FunctionName::local(full),
            Some((namespace, name)) => {
                crate::access::check_namespace(namespace, false)
                    .map_err(|message| SpecError::new("name", message))?;
                if namespace == crate::access::DEFAULT_NAMESPACE {
                    return Err(SpecError::new(
                        "name",
                        format!(
                            "`{full}`: a function of the default namespace is named without it"
                        ),
                    ));
                }
                FunctionName::local(name)?;
                Ok(FunctionName(full.to_string()))
            }
        }
    }

    /// The namespace the function lives in.
    pub fn namespace(&self) -> &str {
        crate::access::namespace_of(&self.0)
    }

    /// The name within its namespace.
    pub fn local_name(&self) -> &str {
        crate::access::split(&self.0).1
    }

    /// Checks a name within a namespace (no namespace part) and wraps it.
    pub fn local(name: &str) -> Result<Self, SpecError> {
        let ok_len = (1..=64).contains(&name.len());
        let ok_first = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok_len && ok_first && ok_chars {
            Ok(FunctionName(name.to_string()))
        } else {
            Err(SpecError::new(
                "name",
                format!("`{name}` is not a valid function name: use 1 to 64 letters, digits, `-` or `_`, starting with a letter or digit"),
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FunctionName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        FunctionName::parse(&raw).map_err(serde::de::Error::custom)
    }
}
