//! `skiff instances` and `skiff scale`: the long-lived instances of an `http` function.

use crate::client::ApiClient;
use crate::output::{self, Table};
use anyhow::bail;
use skiff_core::api::{InstanceView, ScaleRequest};
use std::process::ExitCode;

/// Arguments of `skiff instances`.
#[derive(Debug, clap::Args)]
pub struct InstancesArgs {
    /// The function whose instances to list
    pub name: String,
}

/// Arguments of `skiff scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The function to scale (http contract)
    pub name: String,
    /// Instances kept running even with no calls (min_instances)
    #[arg(long, value_name = "N")]
    pub min: Option<u32>,
    /// Most instances at once (max_instances)
    #[arg(long, value_name = "N")]
    pub max: Option<u32>,
}

/// The table `skiff instances` prints.
pub fn instances_table(instances: &[InstanceView]) -> Table {
    let mut table = Table::new(["ID", "STATE", "IN-FLIGHT", "VERSION", "IDLE", "CONTAINER"]);
    for i in instances {
        // An instance serving calls is not idle, whatever its last finished call.
        let idle = if i.in_flight > 0 {
            "-".to_string()
        } else {
            output::format_duration_secs(i.idle_seconds)
        };
        table.push(vec![
            i.id.clone(),
            i.state.to_string(),
            i.in_flight.to_string(),
            i.version.to_string(),
            idle,
            output::short_id(&i.container),
        ]);
    }
    table
}

/// Runs `skiff instances`.
pub async fn list(client: &ApiClient, args: InstancesArgs, json: bool) -> anyhow::Result<ExitCode> {
    let instances = client.list_instances(&args.name).await?;
    if json {
        output::print_json(&instances)?;
    } else if instances.is_empty() {
        output::print_line("no instances")?;
    } else {
        output::print_text(&instances_table(&instances).render())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The request `skiff scale` sends; refused before any request when it would change
/// nothing or could never be valid.
pub fn scale_request(args: &ScaleArgs) -> anyhow::Result<ScaleRequest> {
    match (args.min, args.max) {
        (None, None) => bail!("nothing to scale: pass --min N, --max N or both"),
        (Some(min), Some(max)) if min > max => {
            bail!("--min {min} is more than --max {max}")
        }
        (min, max) => Ok(ScaleRequest {
            min_instances: min,
            max_instances: max,
        }),
    }
}

/// Runs `skiff scale`.
pub async fn scale(client: &ApiClient, args: ScaleArgs, json: bool) -> anyhow::Result<ExitCode> {
    let request = scale_request(&args)?;
    let function = client.scale(&args.name, &request).await?;
    if json {
        output::print_json(&function)?;
    } else {
        let range = output::instance_range(function.min_instances, function.max_instances)
            .unwrap_or_else(|| "?".to_string());
        output::print_line(&format!("scaled {}: {range} instances", function.name))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use skiff_core::InstanceState;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ScaleArgs,
    }

    fn scale_args(argv: &[&str]) -> ScaleArgs {
        let argv = std::iter::once("scale").chain(argv.iter().copied());
        Cli::try_parse_from(argv).expect("parses").args
    }

    #[test]
    fn scale_needs_at_least_one_bound() {
        let err = scale_request(&scale_args(&["web"])).expect_err("no bounds");
        assert_eq!(
            err.to_string(),
            "nothing to scale: pass --min N, --max N or both"
        );
        let err = scale_request(&scale_args(&["web", "--min", "3", "--max", "2"]))
            .expect_err("min > max");
        assert_eq!(err.to_string(), "--min 3 is more than --max 2");
    }

    #[test]
    fn scale_sends_only_the_bounds_given() {
        let request = scale_request(&scale_args(&["web", "--max", "5"])).expect("valid");
        assert_eq!(
            serde_json::to_value(request).expect("json"),
            serde_json::json!({"max_instances": 5})
        );
        let request =
            scale_request(&scale_args(&["web", "--min", "1", "--max", "5"])).expect("valid");
        assert_eq!(
            serde_json::to_value(request).expect("json"),
            serde_json::json!({"min_instances": 1, "max_instances": 5})
        );
        let request = scale_request(&scale_args(&["web", "--min", "0"])).expect("valid");
        assert_eq!(
            request,
            ScaleRequest {
                min_instances: Some(0),
                max_instances: None
            }
        );
        assert!(Cli::try_parse_from(["scale", "web", "--min", "-1"]).is_err());
    }

    #[test]
    fn instances_list_as_a_table() {
        let instances = [
            InstanceView {
                id: "4f9a0c1d2e3b".into(),
                container: "0123456789abcdef0123456789abcdef".into(),
                version: 2,
                state: InstanceState::Idle,
                in_flight: 0,
                idle_seconds: 125,
            },
            InstanceView {
                id: "77aa00bb11cc".into(),
                container: "fedcba9876543210".into(),
                version: 2,
                state: InstanceState::Busy,
                in_flight: 3,
                idle_seconds: 9,
            },
        ];
        let text = instances_table(&instances).render();
        assert_eq!(
            text,
            "ID             STATE   IN-FLIGHT   VERSION   IDLE    CONTAINER\n\
             4f9a0c1d2e3b   idle    0           2         2m05s   0123456789ab\n\
             77aa00bb11cc   busy    3           2         -       fedcba987654\n"
        );
    }
}
