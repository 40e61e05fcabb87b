//! Bodies of the call routes: the list's filters and page, and the answer to an async call.
//! One call is a [`CallDetails`](crate::CallDetails) (`GET /v1/calls/{id}`) or a
//! [`CallRecord`] (`POST /v1/calls/{id}/redrive`).

use crate::call::{CallRecord, CallStatus, Trigger, UnknownName};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Filters of `GET /v1/calls`. The gateway reads the query string as a [`CallQueryText`],
/// keeping `status` and `trigger` as written so that a word naming none is refused with its
/// own message ([`CallQueryText::parse`]); the client builds the typed form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CallQuery<S = CallStatus, T = Trigger> {
    /// Only calls of this function.
    pub function: Option<String>,
    /// Only calls in this status (`queued`, `running`, `succeeded`, `failed`, `timed_out`, `dead`).
    #[param(value_type = Option<String>)]
    pub status: Option<S>,
    /// Only calls from this trigger (`http`, `api`, `async`, `cron`, `queue`, `lambda_api`).
    #[param(value_type = Option<String>)]
    pub trigger: Option<T>,
    /// Only calls older than this call id (the `next` of the previous page).
    pub before: Option<Uuid>,
    /// Only calls received at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Most calls to return (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// The filters of `GET /v1/calls` as its query string carries them.
pub type CallQueryText = CallQuery<String, String>;

impl<S, T> Default for CallQuery<S, T> {
    fn default() -> Self {
        CallQuery {
            function: None,
            status: None,
            trigger: None,
            before: None,
            since: None,
            limit: None,
        }
    }
}

impl CallQueryText {
    /// The filters with `status`, then `trigger`, read.
    pub fn parse(self) -> Result<CallQuery, UnknownName> {
        let CallQuery {
            function,
            status,
            trigger,
            before,
            since,
            limit,
        } = self;
        Ok(CallQuery {
            function,
            status: status.as_deref().map(str::parse).transpose()?,
            trigger: trigger.as_deref().map(str::parse).transpose()?,
            before,
            since,
            limit,
        })
    }
}

/// A page of call records, newest first (`GET /v1/calls`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallPage {
    /// The calls.
    pub calls: Vec<CallRecord>,
    /// Pass as `before` to get the next page; absent on the last page.
    pub next: Option<Uuid>,
}

/// The answer to an async call (202): its id, and that it is queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The call's id: follow it at `/v1/calls/{call_id}`.
    pub call_id: Uuid,
    /// Always `queued`.
    pub status: CallStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_from_their_text() {
        let text = CallQueryText {
            function: Some("f".into()),
            status: Some("timed_out".into()),
            trigger: Some("lambda_api".into()),
            limit: Some(5),
            ..CallQuery::default()
        };
        let query = text.parse().expect("valid");
        assert_eq!(query.function.as_deref(), Some("f"));
        assert_eq!(query.status, Some(CallStatus::TimedOut));
        assert_eq!(query.trigger, Some(Trigger::LambdaApi));
        assert_eq!(query.limit, Some(5));
        let bogus = CallQueryText {
            status: Some("bogus".into()),
            trigger: Some("nope".into()),
            ..CallQuery::default()
        };
        assert_eq!(
            bogus.parse().expect_err("bogus").to_string(),
            "unknown call status `bogus`"
        );
        assert_eq!(CallQueryText::default().parse(), Ok(CallQuery::default()));
    }

    #[test]
    fn an_accepted_call_reads_as_before() {
        let accepted = Accepted {
            call_id: Uuid::nil(),
            status: CallStatus::Queued,
        };
        assert_eq!(
            serde_json::to_value(&accepted).expect("json"),
            serde_json::json!({"call_id": Uuid::nil(), "status": "queued"})
        );
    }
}
