//! `skiff ls` and `skiff rm`: the deployed functions.

use crate::client::ApiClient;
use crate::output::{self, Table};
use chrono::{DateTime, Utc};
use skiff_core::api::{FunctionState, FunctionStatus};
use skiff_core::FunctionView;
use std::process::ExitCode;

/// Arguments of `skiff rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The function to remove
    pub name: String,
}

/// The contract of `f` as `skiff ls` shows it: `exec`, or `http 0-10` with the bounds of its
/// instances.
pub fn contract_cell(f: &FunctionView) -> String {
    match output::instance_range(f.min_instances, f.max_instances) {
        Some(range) => format!("{} {range}", f.contract),
        None => f.contract.to_string(),
    }
}

/// Where a function stands as `skiff ls` shows it at `now`: `ready`, `idle`, `starting`,
/// `refused`, or `backing off (next start in 8s)`.
pub fn state_cell(state: Option<&FunctionState>, now: DateTime<Utc>) -> String {
    let Some(state) = state else {
        return "-".to_string();
    };
    match (state.status, state.retry_at) {
        (FunctionStatus::BackingOff, Some(at)) => {
            let ms = u64::try_from((at - now).num_milliseconds()).unwrap_or(0);
            format!(
                "backing off (next start in {})",
                output::format_duration_secs(ms.div_ceil(1000))
            )
        }
        (FunctionStatus::BackingOff, None) => "backing off".to_string(),
        (status, _) => status.as_str().to_string(),
    }
}

/// The table `skiff ls` prints.
pub fn functions_table(functions: &[FunctionView]) -> Table {
    let mut table = Table::new([
        "NAME", "IMAGE", "CONTRACT", "STATE", "MEMORY", "TIMEOUT", "VERSION", "UPDATED",
    ]);
    let now = Utc::now();
    for f in functions {
        table.push(vec![
            f.name.clone(),
            f.image.clone(),
            contract_cell(f),
            state_cell(f.state.as_ref(), now),
            f.memory.clone(),
            f.timeout.clone(),
            f.version.to_string(),
            output::local_time(&f.updated_at),
        ]);
    }
    table
}

/// Runs `skiff ls`.
pub async fn list(client: &ApiClient, json: bool) -> anyhow::Result<ExitCode> {
    let functions = client.list_functions().await?;
    if json {
        output::print_json(&functions)?;
    } else if functions.is_empty() {
        output::print_line("no functions")?;
    } else {
        output::print_text(&functions_table(&functions).render())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `skiff rm`.
pub async fn remove(client: &ApiClient, args: RmArgs, json: bool) -> anyhow::Result<ExitCode> {
    client.delete_function(&args.name).await?;
    if json {
        output::print_json(&serde_json::json!({ "name": args.name, "removed": true }))?;
    } else {
        output::print_line(&format!("removed {}", args.name))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use skiff_core::Contract;

    pub(crate) fn exec_view() -> FunctionView {
        let time = Utc
            .with_ymd_and_hms(2026, 11, 22, 11, 4, 5)
            .single()
            .expect("time");
        FunctionView {
            name: "hello".into(),
            namespace: "default".into(),
            public: false,
            callees: None,
            image: "skiff/hello:latest".into(),
            image_digest: "sha256:0deb1fb9310d".into(),
            contract: Contract::Exec,
            memory: "128Mi".into(),
            cpus: 1.0,
            pids: 256,
            tmp_size: "64Mi".into(),
            timeout: "10s".into(),
            env: Default::default(),
            secrets: Vec::new(),
            port: None,
            readiness_path: None,
            startup_timeout: None,
            concurrency: None,
            min_instances: None,
            max_instances: None,
            idle_timeout: None,
            autoscale_window: None,
            target_utilization: None,
            handler: None,
            retries: None,
            max_event_age: None,
            volumes: Vec::new(),
            version: 3,
            created_at: time,
            updated_at: time,
            state: Some(FunctionState {
                status: FunctionStatus::Ready,
                instances: None,
                failures: 0,
                last_error: None,
                retry_at: None,
            }),
        }
    }

    pub(crate) fn http_view() -> FunctionView {
        FunctionView {
            name: "web".into(),
            image: "skiff/echo-http:latest".into(),
            contract: Contract::Http,
            port: Some(8080),
            startup_timeout: Some("30s".into()),
            concurrency: Some(10),
            min_instances: Some(0),
            max_instances: Some(10),
            idle_timeout: Some("5m".into()),
            version: 1,
            state: Some(FunctionState {
                status: FunctionStatus::BackingOff,
                instances: Some(0),
                failures: 3,
                last_error: Some("the instance exited before it was ready".into()),
                retry_at: Some(Utc::now() + chrono::Duration::seconds(8)),
            }),
            ..exec_view()
        }
    }

    #[test]
    fn functions_list_as_a_table() {
        let text = functions_table(&[exec_view(), http_view()]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with(
                "NAME    IMAGE                    CONTRACT    STATE                            MEMORY   TIMEOUT   VERSION   UPDATED"
            ),
            "{text}"
        );
        assert!(
            lines[1].starts_with(
                "hello   skiff/hello:latest       exec        ready                            128Mi    10s       3         "
            ),
            "{text}"
        );
        assert!(
            lines[2].starts_with(
                "web     skiff/echo-http:latest   http 0-10   backing off (next start in 8s)   128Mi    10s       1         "
            ),
            "{text}"
        );
    }

    #[test]
    fn a_state_reads_as_a_word_or_the_wait_before_the_next_start() {
        let now = Utc::now();
        let mut state = FunctionState {
            status: FunctionStatus::Idle,
            instances: Some(0),
            failures: 0,
            last_error: None,
            retry_at: None,
        };
        assert_eq!(state_cell(Some(&state), now), "idle");
        assert_eq!(state_cell(None, now), "-");
        state.status = FunctionStatus::BackingOff;
        state.retry_at = Some(now + chrono::Duration::milliseconds(64_200));
        assert_eq!(
            state_cell(Some(&state), now),
            "backing off (next start in 1m05s)"
        );
        state.retry_at = Some(now - chrono::Duration::seconds(1));
        assert_eq!(
            state_cell(Some(&state), now),
            "backing off (next start in 0s)"
        );
    }
}
