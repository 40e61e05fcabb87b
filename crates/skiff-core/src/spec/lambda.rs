//! The `lambda` area of a spec: the handler, and the settings the `lambda` contract has no
//! use for.

use super::{Contract, FunctionSpec, SpecError};

/// Checks the handler (given for the `lambda` contract only) and, for that contract, that
/// no HTTP setting is given and that instances take one event at a time.
pub(super) fn check(spec: &FunctionSpec, contract: Contract) -> Result<(), SpecError> {
    if let Some(handler) = &spec.handler {
        if contract != Contract::Lambda {
            return Err(SpecError::new(
                "handler",
                "applies to the `lambda` contract only",
            ));
        }
        if handler.is_empty()
            || handler.len() > 256
            || handler.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(SpecError::new(
                "handler",
                format!("`{handler}` is not a handler name"),
            ));
        }
    }
    if contract == Contract::Lambda {
        for (field, set) in [
            ("port", spec.port.is_some()),
            ("readiness_path", spec.readiness_path.is_some()),
        ] {
            if set {
                return Err(SpecError::new(
                    field,
                    "does not apply to the `lambda` contract: instances talk to skiff's Runtime API",
                ));
            }
        }
        if spec.concurrency.is_some_and(|c| c != 1) {
            return Err(SpecError::new(
                "concurrency",
                "a `lambda` instance serves one event at a time: leave it unset or 1",
            ));
        }
    }
    Ok(())
}
