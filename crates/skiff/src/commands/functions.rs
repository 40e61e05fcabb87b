//! `skiff ls` and `skiff rm`: the deployed functions.

use crate::client::ApiClient;
use crate::output::{self, Table};
use skiff_core::FunctionView;
use std::process::ExitCode;

/// Arguments of `skiff rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The function to remove
    pub name: String,
}

/// The table `skiff ls` prints.
pub fn functions_table(functions: &[FunctionView]) -> Table {
    let mut table = Table::new([
        "NAME", "IMAGE", "CONTRACT", "MEMORY", "TIMEOUT", "VERSION", "UPDATED",
    ]);
    for f in functions {
        table.push(vec![
            f.name.clone(),
            f.image.clone(),
            f.contract.to_string(),
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
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use skiff_core::Contract;

    #[test]
    fn functions_list_as_a_table() {
        let time = Utc
            .with_ymd_and_hms(2026, 11, 22, 11, 4, 5)
            .single()
            .expect("time");
        let view = FunctionView {
            name: "hello".into(),
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
            version: 3,
            created_at: time,
            updated_at: time,
        };
        let text = functions_table(&[view]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with(
                "NAME    IMAGE                CONTRACT   MEMORY   TIMEOUT   VERSION   UPDATED"
            ),
            "{text}"
        );
        assert!(
            lines[1].starts_with(
                "hello   skiff/hello:latest   exec       128Mi    10s       3         "
            ),
            "{text}"
        );
    }
}
