//! Bodies of the trigger routes. A single trigger is a [`TriggerSpec`](crate::TriggerSpec)
//! in and a [`TriggerView`] out.

use crate::trigger::TriggerView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A list of triggers (`GET /v1/triggers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TriggerList {
    /// The triggers, by name.
    pub triggers: Vec<TriggerView>,
}
