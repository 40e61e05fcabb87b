//! Call records as transports read them, redrive of dead async calls, and the metrics.

use super::Platform;
use crate::error::PlatformError;
use chrono::Utc;
use skiff_core::CallRecord;
use skiff_store::CallFilter;
use std::collections::HashMap;
use uuid::Uuid;

/// The longest a reader waits for an async call's answer to be stored with its record.
const SETTLE_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

impl Platform {
    /// One call's record.
    pub async fn get_call(&self, id: Uuid) -> Result<CallRecord, PlatformError> {
        self.contracts.log.recorder().flush().await;
        self.store
            .get_call(id)
            .await?
            .ok_or(PlatformError::CallNotFound { id })
    }

    /// A call's record and, for an async call that answered, its (size-capped) result.
    pub async fn call_details(&self, id: Uuid) -> Result<skiff_core::CallDetails, PlatformError> {
        let mut record = self.get_call(id).await?;
        if record.status.is_final() && self.unsettled.contains(id) {
            // Final a moment before the dispatcher stored its answer: read them together.
            self.unsettled.settled(id, SETTLE_BOUND).await;
            record = self.get_call(id).await?;
        }
        let result =
            self.store.get_result(id).await?.map(|r| {
                skiff_core::CallOutput::new(r.status_code, r.content_type, &r.body, r.size)
            });
        Ok(skiff_core::CallDetails { record, result })
    }

    /// A call's details as the function API shows them to `caller`: only calls its
    /// function made (any other is "not found", whether it exists or not).
    pub async fn call_details_for(
        &self,
        caller: &crate::token::Caller,
        id: Uuid,
    ) -> Result<skiff_core::CallDetails, PlatformError> {
        let details = self.call_details(id).await?;
        if details.record.caller.as_deref() != Some(caller.function.as_str()) {
            return Err(PlatformError::CallNotFound { id });
        }
        Ok(details)
    }

    /// A call's details, if its function is of `namespace` (any other call is "not found",
    /// whether it exists or not).
    pub async fn call_details_in(
        &self,
        namespace: &str,
        id: Uuid,
    ) -> Result<skiff_core::CallDetails, PlatformError> {
        let details = self.call_details(id).await?;
        if skiff_core::access::namespace_of(&details.record.function) != namespace {
            return Err(PlatformError::CallNotFound { id });
        }
        Ok(details)
    }

    /// A call's log, if its function is of `namespace`.
    pub async fn call_logs_in(&self, namespace: &str, id: Uuid) -> Result<Vec<u8>, PlatformError> {
        self.call_in(namespace, id).await?;
        self.call_logs(id).await
    }

    /// Redrives a dead call, if its function is of `namespace`.
    pub async fn redrive_in(&self, namespace: &str, id: Uuid) -> Result<CallRecord, PlatformError> {
        self.call_in(namespace, id).await?;
        self.redrive(id).await
    }

    /// A call's record, if its function is of `namespace`.
    async fn call_in(&self, namespace: &str, id: Uuid) -> Result<CallRecord, PlatformError> {
        let record = self.get_call(id).await?;
        if skiff_core::access::namespace_of(&record.function) != namespace {
            return Err(PlatformError::CallNotFound { id });
        }
        Ok(record)
    }

    /// Call records, newest first.
    pub async fn list_calls(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, PlatformError> {
        self.contracts.log.recorder().flush().await;
        Ok(self.store.list_calls(filter).await?)
    }

    /// One call's log (what the function wrote to stderr, capped).
    pub async fn call_logs(&self, id: Uuid) -> Result<Vec<u8>, PlatformError> {
        self.contracts.log.recorder().flush().await;
        self.store
            .call_logs(id)
            .await?
            .ok_or(PlatformError::CallNotFound { id })
    }

    /// Puts a dead call back in the queue for a new round of attempts.
    pub async fn redrive(&self, id: Uuid) -> Result<CallRecord, PlatformError> {
        self.contracts.log.recorder().flush().await;
        let record = self
            .store
            .get_call(id)
            .await?
            .ok_or(PlatformError::CallNotFound { id })?;
        // A new round of attempts gets a new event age.
        let age = match self.functions.get(&record.function) {
            Some(entry) => self.policy.max_event_age(&entry.function),
            None => self.policy.default_max_event_age(),
        };
        if !self.store.redrive(id, Some(Utc::now() + age)).await? {
            return Err(PlatformError::BadRequest {
                message: format!(
                    "call {id} is {}, not dead: only dead calls are redriven",
                    record.status
                ),
            });
        }
        self.queued.notify_one();
        self.store
            .get_call(id)
            .await?
            .ok_or(PlatformError::CallNotFound { id })
    }

    /// The metrics in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let (running, queued) = self.load();
        let (instances, _waiting) = self.contracts.instances.totals();
        let gate = self.gate.stats();
        self.contracts
            .log
            .metrics()
            .engine(gate.limit, gate.in_flight, gate.waiting);
        self.contracts
            .log
            .metrics()
            .exec(self.contracts.exec.stats());
        self.contracts
            .log
            .metrics()
            .render(running, queued, &instances)
    }

    /// Instances by state and calls waiting for one, across all functions.
    pub fn instance_totals(&self) -> (HashMap<skiff_core::InstanceState, usize>, usize) {
        self.contracts.instances.totals()
    }
}
