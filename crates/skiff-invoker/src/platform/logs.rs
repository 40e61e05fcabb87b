//! Logs as transports read them (followed live, or an instance's kept lines), and the
//! stats of calls.

use super::Platform;
use crate::error::PlatformError;
use chrono::Utc;
use futures::Stream;
use skiff_core::api::{FunctionStats, LogEvent, LogLine, StatsTotals};
use skiff_store::InstanceLogFilter;
use std::collections::HashMap;
use std::time::Duration;

/// The most call records one answer of stats reads: past it, the oldest calls of the
/// window are left out (and the answer says it is not complete).
const MAX_SAMPLES: usize = 200_000;

impl Platform {
    fn known(&self, name: &str) -> Result<(), PlatformError> {
        match self.functions.get(name) {
            Some(_) => Ok(()),
            None => Err(PlatformError::FunctionNotFound {
                name: name.to_string(),
            }),
        }
    }

    /// What `function` writes from now on, line by line, until the daemon stops: the
    /// stderr of each call of an `exec` function, the output of each instance of an `http`
    /// or `lambda` one.
    pub fn follow_logs(
        &self,
        function: &str,
    ) -> Result<impl Stream<Item = LogEvent> + Send + 'static, PlatformError> {
        self.known(function)?;
        self.logs
            .follow(function)
            .map_err(|_| PlatformError::TooManyFollowers {
                max: crate::logs::MAX_FOLLOWERS,
            })
    }

    /// The kept lines of `function`'s instance `instance` (any instance when `None`),
    /// oldest first.
    pub async fn instance_logs(
        &self,
        function: &str,
        instance: Option<&str>,
        filter: InstanceLogFilter,
    ) -> Result<Vec<LogLine>, PlatformError> {
        self.known(function)?;
        let filter = InstanceLogFilter {
            function: Some(function.to_string()),
            instance: instance.map(str::to_string),
            ..filter
        };
        Ok(self.store.instance_logs(&filter).await?)
    }

    /// The figures of `function`'s calls over the `window` before now.
    pub async fn function_stats(
        &self,
        function: &str,
        window: Duration,
    ) -> Result<FunctionStats, PlatformError> {
        self.known(function)?;
        self.contracts.log.recorder().flush().await;
        let now = Utc::now();
        let (from, _, _) = skiff_core::stats::window_bounds(now, window);
        let (samples, complete) = self
            .store
            .call_samples(Some(&[function.to_string()]), from, MAX_SAMPLES)
            .await?;
        Ok(skiff_core::stats::function_stats(
            function, &samples, now, window, complete,
        ))
    }

    /// The totals of the calls of `functions` (full names; `None`: every function) over the
    /// `window` before now.
    pub async fn stats_by_function(
        &self,
        functions: Option<&[String]>,
        window: Duration,
    ) -> Result<HashMap<String, StatsTotals>, PlatformError> {
        self.contracts.log.recorder().flush().await;
        let now = Utc::now();
        let from = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero());
        let (samples, _) = self
            .store
            .call_samples(functions, from, MAX_SAMPLES)
            .await?;
        Ok(skiff_core::stats::totals_by_function(&samples, now, window))
    }
}
