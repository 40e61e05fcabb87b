//! `skiff deploy`: builds a [`FunctionSpec`] from `skiff.toml` and flags, and puts it.

use super::manifest::{load_manifest, Manifest, MANIFEST_FILE};
use crate::client::{ApiClient, ClientError};
use crate::output;
use anyhow::{anyhow, bail};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use skiff_core::spec::INSTANCE_FIELDS;
use skiff_core::{
    ByteSize, Contract, FunctionName, FunctionSpec, FunctionView, HumanDuration, VolumeMount,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `skiff deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Function name [default: `name` in skiff.toml]
    pub name: Option<String>,
    /// Container image to run, e.g. skiff/hello:latest
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Pull the image from its registry first, even when the engine has it (a missing
    /// image is always pulled)
    #[arg(long)]
    pub pull: bool,
    /// How skiff talks to the container [default: exec]
    #[arg(long, value_name = "CONTRACT", value_parser = contract_parser())]
    pub contract: Option<Contract>,
    /// Memory limit, e.g. 128Mi, 1Gi [default: 256Mi]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<ByteSize>,
    /// CPU quota in CPUs, e.g. 0.5 [default: 1]
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Most processes and threads the function may run [default: 256]
    #[arg(long, value_name = "N")]
    pub pids: Option<u32>,
    /// Size of the writable /tmp, e.g. 64Mi [default: 64Mi]
    #[arg(long, value_name = "SIZE")]
    pub tmp_size: Option<ByteSize>,
    /// Longest a call may run, e.g. 10s, 2m [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<HumanDuration>,
    /// Longest a call may wait for a slot and a container before it runs, e.g. 30s
    /// [default: the daemon's --max-wait, 60s]
    #[arg(long, value_name = "DURATION")]
    pub max_wait: Option<HumanDuration>,
    /// Environment variable for the function (repeatable; overrides skiff.toml)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Secret for the function (repeatable); `--secret KEY` alone takes the value of KEY
    /// from this shell's environment
    #[arg(long = "secret", short = 's', value_name = "KEY=VALUE", value_parser = parse_secret)]
    pub secrets: Vec<(String, String)>,
    /// Port the instance serves HTTP on, passed as $PORT (http contract) [default: 8080]
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Path that answers 2xx once an instance is ready, e.g. /healthz (http contract)
    /// [default: ready once the port accepts connections]
    #[arg(long, value_name = "PATH")]
    pub readiness_path: Option<String>,
    /// Longest an instance may take to become ready, e.g. 10s (http contract) [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub startup_timeout: Option<HumanDuration>,
    /// Calls one instance serves at once (http contract) [default: 10]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// Instances kept running even with no calls (http contract) [default: 0]
    #[arg(long = "min", value_name = "N")]
    pub min_instances: Option<u32>,
    /// Most instances at once (http contract) [default: 10]
    #[arg(long = "max", value_name = "N")]
    pub max_instances: Option<u32>,
    /// An instance beyond --min with no call for this long is stopped, e.g. 1m (http
    /// contract) [default: 5m]
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<HumanDuration>,
    /// The autoscaler's stable window for this function, e.g. 30s (http contract)
    /// [default: the daemon's --autoscale-window]
    #[arg(long, value_name = "DURATION")]
    pub autoscale_window: Option<HumanDuration>,
    /// Share of each instance's concurrency the autoscaler aims to use, 0.1 to 1 (http
    /// contract) [default: 0.7]
    #[arg(long, value_name = "SHARE")]
    pub target_utilization: Option<f64>,
    /// The handler (lambda contract), e.g. app.handler: passed as _HANDLER and as the
    /// container's command [default: the image's command]
    #[arg(long, value_name = "NAME")]
    pub handler: Option<String>,
    /// Retries of a failed async call, 0 to 10 [default: the daemon's, 2]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Oldest an async call may get before it is given up, e.g. 1h [default: the
    /// daemon's --async-max-event-age, 6h]
    #[arg(long, value_name = "DURATION")]
    pub max_event_age: Option<HumanDuration>,
    /// Docker named volume to mount, NAME:/path or NAME:/path:ro (repeatable; replaces a
    /// skiff.toml volume on the same path); created if missing, never removed by skiff
    #[arg(long = "volume", short = 'v', value_name = "NAME:/PATH[:ro]", value_parser = parse_volume)]
    pub volumes: Vec<String>,
    /// Anyone may call the function on its public route, /fn/NAME, without a token
    #[arg(long, conflicts_with = "private")]
    pub public: bool,
    /// Calls need a token with the invoke scope or an invoke key (the default)
    #[arg(long)]
    pub private: bool,
    /// A function (of its namespace) this one may call through the function API
    /// (repeatable) [default: any]
    #[arg(long = "callee", value_name = "NAME")]
    pub callees: Vec<String>,
    /// Folder holding the function's skiff.toml [default: the current folder]
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

impl DeployArgs {
    /// Writes the flags given onto `spec` (read from `skiff.toml`, or empty): a flag replaces
    /// the file's value, `--env` and `--secret` add to the file's tables (replacing a key
    /// set there), and `--volume` adds to the file's volumes (replacing one on the same
    /// path).
    pub fn apply_to(&self, spec: &mut FunctionSpec) {
        // Every field of the spec is named, so that a new one cannot miss its flag.
        let FunctionSpec {
            image,
            contract,
            memory,
            cpus,
            pids,
            tmp_size,
            timeout,
            max_wait,
            env,
            secrets,
            port,
            readiness_path,
            startup_timeout,
            concurrency,
            min_instances,
            max_instances,
            idle_timeout,
            autoscale_window,
            target_utilization,
            handler,
            retries,
            max_event_age,
            volumes,
            public,
            callees,
        } = spec;
        if let Some(flag) = &self.image {
            image.clone_from(flag);
        }
        set(contract, &self.contract);
        set(memory, &self.memory);
        set(cpus, &self.cpus);
        set(pids, &self.pids);
        set(tmp_size, &self.tmp_size);
        set(timeout, &self.timeout);
        set(max_wait, &self.max_wait);
        env.extend(self.env.iter().cloned());
        secrets.extend(self.secrets.iter().cloned());
        set(port, &self.port);
        set(readiness_path, &self.readiness_path);
        set(startup_timeout, &self.startup_timeout);
        set(concurrency, &self.concurrency);
        set(min_instances, &self.min_instances);
        set(max_instances, &self.max_instances);
        set(idle_timeout, &self.idle_timeout);
        set(autoscale_window, &self.autoscale_window);
        set(target_utilization, &self.target_utilization);
        set(handler, &self.handler);
        set(retries, &self.retries);
        set(max_event_age, &self.max_event_age);
        *volumes = merge_volumes(std::mem::take(volumes), &self.volumes);
        if self.public || self.private {
            *public = Some(self.public);
        }
        if !self.callees.is_empty() {
            *callees = Some(self.callees.clone());
        }
    }
}

/// `field` replaced by `flag`, when the flag was given.
fn set<T: Clone>(field: &mut Option<T>, flag: &Option<T>) {
    if flag.is_some() {
        field.clone_from(flag);
    }
}

fn contract_parser() -> impl TypedValueParser<Value = Contract> {
    PossibleValuesParser::new(["exec", "http", "lambda"]).try_map(|name| parse_contract(&name))
}

fn parse_contract(name: &str) -> Result<Contract, String> {
    match name {
        "exec" => Ok(Contract::Exec),
        "http" => Ok(Contract::Http),
        "lambda" => Ok(Contract::Lambda),
        other => Err(format!(
            "unknown contract `{other}`: use exec, http or lambda"
        )),
    }
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(cpus) if cpus.is_finite() && cpus > 0.0 => Ok(cpus),
        _ => Err(format!("`{text}` is not a number of CPUs, e.g. 0.5 or 2")),
    }
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

fn parse_volume(text: &str) -> Result<String, String> {
    VolumeMount::parse(text.trim()).map(|v| v.to_string())
}

/// The manifest's volumes, then the flags' (a flag replaces a volume on the same path).
fn merge_volumes(manifest: Vec<String>, flags: &[String]) -> Vec<String> {
    let target = |text: &str| VolumeMount::parse(text.trim()).ok().map(|v| v.target);
    let mut volumes: Vec<String> = manifest
        .into_iter()
        .filter(|m| {
            let path = target(m);
            path.is_none() || !flags.iter().any(|f| target(f) == path)
        })
        .collect();
    volumes.extend(flags.iter().cloned());
    volumes
}

fn parse_secret(text: &str) -> Result<(String, String), String> {
    parse_secret_with(text, |key| std::env::var(key).ok())
}

fn parse_secret_with(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, String), String> {
    if text.contains('=') {
        return parse_env(text);
    }
    if text.is_empty() {
        return Err("a secret needs a name: use KEY=VALUE or KEY".to_string());
    }
    match lookup(text) {
        Some(value) => Ok((text.to_string(), value)),
        None => Err(format!(
            "`{text}` has no value: use KEY=VALUE, or set {text} in the environment"
        )),
    }
}

/// The function's name and spec: the manifest's values, overridden by the flags.
pub fn build_spec(args: &DeployArgs, manifest: Manifest) -> anyhow::Result<(String, FunctionSpec)> {
    let Manifest { name, mut spec } = manifest;
    let name =
        args.name.clone().or(name).ok_or_else(|| {
            anyhow!("no function name: pass NAME or set `name` in {MANIFEST_FILE}")
        })?;
    let name = FunctionName::parse(name.trim()).map_err(|err| anyhow!("{}", err.message))?;
    args.apply_to(&mut spec);
    spec.image = spec.image.trim().to_string();
    if spec.image.is_empty() {
        bail!("no image: pass --image or set `image` in {MANIFEST_FILE}");
    }
    Ok((name.to_string(), spec))
}

/// The line `skiff deploy` prints: `deployed web (version 1, image ... @ sha256:..., http on
/// port 8080, 0-10 instances x 10 calls)`.
pub fn deployed_line(verb: &str, f: &FunctionView) -> String {
    let mut line = format!(
        "{verb} {} (version {}, image {} @ {}",
        f.name,
        f.version,
        f.image,
        output::short_digest(&f.image_digest)
    );
    if f.contract != Contract::Exec {
        match f.port {
            Some(port) => line.push_str(&format!(", {} on port {port}", f.contract)),
            None => line.push_str(&format!(", {}", f.contract)),
        }
        if let Some(range) = output::instance_range(f.min_instances, f.max_instances) {
            line.push_str(&format!(", {range} instances"));
            if let Some(concurrency) = f.concurrency {
                line.push_str(&format!(" x {concurrency} calls"));
            }
        }
    }
    line.push(')');
    line
}

/// `err` from a deploy of `spec`, with a hint when an `http` setting was refused because
/// the contract was left to its default (`exec`).
fn explain(err: ClientError, spec: &FunctionSpec) -> anyhow::Error {
    let needs_http = matches!(
        &err,
        ClientError::Api { code, field: Some(field), .. }
            if code == "invalid_spec" && INSTANCE_FIELDS.contains(&field.as_str())
    );
    if needs_http && spec.contract.is_none() {
        anyhow!("{err}; pass --contract http or set `contract = \"http\"` in {MANIFEST_FILE}")
    } else {
        err.into()
    }
}

/// Runs `skiff deploy`.
pub async fn run(client: &ApiClient, args: DeployArgs, json: bool) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone().unwrap_or_default();
    let manifest = load_manifest(&dir)?.unwrap_or_default();
    let (name, spec) = build_spec(&args, manifest)?;
    if args.pull {
        super::images::pull_with_progress(client, &spec.image, None).await?;
    }
    let deployed = match client.put_function(&name, &spec).await {
        Err(ClientError::Api { code, .. }) if code == "image_not_found" && !args.pull => {
            let heading = format!(
                "image {} is not on the engine: pulling it from its registry",
                spec.image
            );
            super::images::pull_with_progress(client, &spec.image, Some(&heading)).await?;
            client.put_function(&name, &spec).await
        }
        other => other,
    }
    .map_err(|err| explain(err, &spec))?;
    if json {
        output::print_json(&deployed.function)?;
    } else {
        let verb = if deployed.created {
            "deployed"
        } else {
            "updated"
        };
        output::print_line(&deployed_line(verb, &deployed.function))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::manifest::parse_manifest;
    use clap::Parser;
    use std::path::Path;
    use std::time::Duration;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: DeployArgs,
    }

    fn args(argv: &[&str]) -> DeployArgs {
        let argv = std::iter::once("deploy").chain(argv.iter().copied());
        Cli::try_parse_from(argv).expect("parses").args
    }

    fn manifest(text: &str) -> anyhow::Result<Manifest> {
        parse_manifest(text, Path::new("skiff.toml"))
    }

    const FULL: &str = r#"
name = "hello"
image = "skiff/hello:latest"
contract = "exec"
memory = "128Mi"
cpus = 0.5
pids = 64
tmp_size = "16Mi"
timeout = "10s"

[env]
GREETING = "hi"
LANG = "en"

[secrets]
TOKEN = "s3cret"
"#;

    #[test]
    fn a_manifest_reads_every_field() {
        let m = manifest(FULL).expect("valid");
        assert_eq!(m.name.as_deref(), Some("hello"));
        assert_eq!(m.spec.image, "skiff/hello:latest");
        assert_eq!(m.spec.contract, Some(Contract::Exec));
        assert_eq!(m.spec.memory, Some(ByteSize::mib(128)));
        assert_eq!(m.spec.cpus, Some(0.5));
        assert_eq!(m.spec.pids, Some(64));
        assert_eq!(m.spec.tmp_size, Some(ByteSize::mib(16)));
        assert_eq!(m.spec.timeout, Some(HumanDuration(Duration::from_secs(10))));
        assert_eq!(m.spec.env.get("GREETING").map(String::as_str), Some("hi"));
        assert_eq!(
            m.spec.secrets.get("TOKEN").map(String::as_str),
            Some("s3cret")
        );
        let m = manifest("memory = 134217728\ntimeout = 5").expect("numbers");
        assert_eq!(m.spec.memory, Some(ByteSize::mib(128)));
        assert_eq!(m.spec.timeout, Some(HumanDuration(Duration::from_secs(5))));
    }

    const HTTP: &str = r#"
name = "web"
image = "skiff/echo-http:latest"
contract = "http"
port = 9000
readiness_path = "/ready"
startup_timeout = "5s"
concurrency = 4
min_instances = 1
max_instances = 3
idle_timeout = "2m"
"#;

    #[test]
    fn a_manifest_reads_the_instance_settings() {
        let m = manifest(HTTP).expect("valid");
        assert_eq!(m.spec.contract, Some(Contract::Http));
        assert_eq!(m.spec.port, Some(9000));
        assert_eq!(m.spec.readiness_path.as_deref(), Some("/ready"));
        assert_eq!(
            m.spec.startup_timeout,
            Some(HumanDuration(Duration::from_secs(5)))
        );
        assert_eq!(m.spec.concurrency, Some(4));
        assert_eq!(m.spec.min_instances, Some(1));
        assert_eq!(m.spec.max_instances, Some(3));
        assert_eq!(
            m.spec.idle_timeout,
            Some(HumanDuration(Duration::from_secs(120)))
        );
        let (_, spec) = build_spec(&args(&[]), m).expect("builds");
        assert_eq!(spec.port, Some(9000));
        assert_eq!(spec.max_instances, Some(3));
        let err = manifest("idle_timeout = \"a while\"").expect_err("bad duration");
        assert!(err.to_string().contains("is not a duration"), "{err}");
        let err = manifest("port = 70000").expect_err("bad port");
        assert!(err.to_string().starts_with("skiff.toml: "), "{err}");
        let err = manifest("min = 1").expect_err("flag name, not a key");
        assert!(
            err.to_string()
                .starts_with("skiff.toml: unknown field `min`"),
            "{err}"
        );
    }

    #[test]
    fn instance_flags_override_the_manifest() {
        let m = manifest(HTTP).expect("valid");
        let a = args(&[
            "--port",
            "8081",
            "--readiness-path",
            "/healthz",
            "--startup-timeout",
            "1m",
            "--concurrency",
            "20",
            "--min",
            "2",
            "--max",
            "5",
        ]);
        let (name, spec) = build_spec(&a, m).expect("builds");
        assert_eq!(name, "web");
        assert_eq!(spec.port, Some(8081));
        assert_eq!(spec.readiness_path.as_deref(), Some("/healthz"));
        assert_eq!(
            spec.startup_timeout,
            Some(HumanDuration(Duration::from_secs(60)))
        );
        assert_eq!(spec.concurrency, Some(20));
        assert_eq!(spec.min_instances, Some(2));
        assert_eq!(spec.max_instances, Some(5));
        assert_eq!(
            spec.idle_timeout,
            Some(HumanDuration(Duration::from_secs(120))),
            "kept from the file"
        );
        let a = args(&[
            "web",
            "--image",
            "img",
            "--contract",
            "http",
            "--idle-timeout",
            "30s",
        ]);
        let (_, spec) = build_spec(&a, Manifest::default()).expect("builds");
        assert_eq!(
            spec,
            FunctionSpec {
                image: "img".into(),
                contract: Some(Contract::Http),
                idle_timeout: Some(HumanDuration(Duration::from_secs(30))),
                ..FunctionSpec::default()
            },
            "unset settings stay unset"
        );
    }

    #[test]
    fn every_flag_reaches_the_spec() {
        let a = args(&[
            "f",
            "--image",
            "img",
            "--contract",
            "lambda",
            "--memory",
            "64Mi",
            "--cpus",
            "0.5",
            "--pids",
            "32",
            "--tmp-size",
            "8Mi",
            "--timeout",
            "5s",
            "--max-wait",
            "45s",
            "-e",
            "A=1",
            "-s",
            "B=2",
            "--port",
            "81",
            "--readiness-path",
            "/r",
            "--startup-timeout",
            "3s",
            "--concurrency",
            "1",
            "--min",
            "1",
            "--max",
            "2",
            "--idle-timeout",
            "1m",
            "--autoscale-window",
            "20s",
            "--target-utilization",
            "0.5",
            "--handler",
            "app.h",
            "--retries",
            "3",
            "--max-event-age",
            "1h",
            "-v",
            "d1:/data",
            "--public",
            "--callee",
            "worker",
        ]);
        let (_, spec) = build_spec(&a, Manifest::default()).expect("builds");
        let secs = |s| Some(HumanDuration(Duration::from_secs(s)));
        assert_eq!(
            spec,
            FunctionSpec {
                image: "img".into(),
                contract: Some(Contract::Lambda),
                memory: Some(ByteSize::mib(64)),
                cpus: Some(0.5),
                pids: Some(32),
                tmp_size: Some(ByteSize::mib(8)),
                timeout: secs(5),
                max_wait: secs(45),
                env: [("A".to_string(), "1".to_string())].into(),
                secrets: [("B".to_string(), "2".to_string())].into(),
                port: Some(81),
                readiness_path: Some("/r".into()),
                startup_timeout: secs(3),
                concurrency: Some(1),
                min_instances: Some(1),
                max_instances: Some(2),
                idle_timeout: secs(60),
                autoscale_window: secs(20),
                target_utilization: Some(0.5),
                handler: Some("app.h".into()),
                retries: Some(3),
                max_event_age: secs(3600),
                volumes: vec!["d1:/data".into()],
                public: Some(true),
                callees: Some(vec!["worker".into()]),
            }
        );
    }

    #[test]
    fn volumes_come_from_the_manifest_and_the_flags() {
        let m =
            manifest("name = \"w\"\nimage = \"i\"\nvolumes = [\"data:/data\", \"cache:/cache\"]")
                .expect("valid");
        let a = args(&["--volume", "other:/data:ro", "-v", "logs:/logs"]);
        let (_, spec) = build_spec(&a, m).expect("builds");
        assert_eq!(
            spec.volumes,
            vec!["cache:/cache", "other:/data:ro", "logs:/logs"],
            "a flag replaces the file's volume on the same path"
        );
        let argv = ["deploy", "--volume", "/srv/data:/data"];
        let err = Cli::try_parse_from(argv).expect_err("a host path");
        assert!(err.to_string().contains("host path"), "{err}");
    }

    #[test]
    fn deploys_print_one_line() {
        let exec = crate::commands::functions::tests::exec_view();
        assert_eq!(
            deployed_line("updated", &exec),
            "updated hello (version 3, image skiff/hello:latest @ sha256:0deb1fb9310d)"
        );
        let http = crate::commands::functions::tests::http_view();
        assert_eq!(
            deployed_line("deployed", &http),
            "deployed web (version 1, image skiff/echo-http:latest @ sha256:0deb1fb9310d, \
             http on port 8080, 0-10 instances x 10 calls)"
        );
    }

    #[test]
    fn refused_http_settings_hint_at_the_contract() {
        let refused = |field: &str| ClientError::Api {
            status: 400,
            code: "invalid_spec".into(),
            message: format!("{field}: applies to long-lived instances"),
            field: Some(field.into()),
            call_id: None,
        };
        let unset = FunctionSpec::default();
        let text = explain(refused("port"), &unset).to_string();
        assert_eq!(
            text,
            "port: applies to long-lived instances (invalid_spec); \
             pass --contract http or set `contract = \"http\"` in skiff.toml"
        );
        let exec = FunctionSpec {
            contract: Some(Contract::Exec),
            ..FunctionSpec::default()
        };
        let text = explain(refused("port"), &exec).to_string();
        assert!(!text.contains("--contract"), "{text}");
        let text = explain(refused("memory"), &unset).to_string();
        assert!(!text.contains("--contract"), "{text}");
    }

    #[test]
    fn unknown_keys_are_named_on_one_line() {
        let err = manifest("name = \"x\"\nmemroy = \"1Gi\"\n").expect_err("unknown key");
        let text = err.to_string();
        assert!(
            text.starts_with("skiff.toml: unknown field `memroy`"),
            "{text}"
        );
        assert!(text.ends_with("(line 2, column 1)"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        let err = manifest("memory = \"12 parsecs\"").expect_err("bad size");
        assert!(err.to_string().contains("is not a size"), "{err}");
    }

    #[test]
    fn flags_override_the_manifest() {
        let m = manifest(FULL).expect("valid");
        let a = args(&[
            "other",
            "--image",
            "img:2",
            "--memory",
            "1Gi",
            "--timeout",
            "2m",
            "--contract",
            "http",
        ]);
        let (name, spec) = build_spec(&a, m).expect("builds");
        assert_eq!(name, "other");
        assert_eq!(spec.image, "img:2");
        assert_eq!(spec.memory, Some(ByteSize(1 << 30)));
        assert_eq!(spec.timeout, Some(HumanDuration(Duration::from_secs(120))));
        assert_eq!(spec.contract, Some(Contract::Http));
        assert_eq!(spec.cpus, Some(0.5), "kept from the file");
        assert_eq!(spec.tmp_size, Some(ByteSize::mib(16)), "kept from the file");
    }

    #[test]
    fn env_and_secret_flags_add_to_the_tables() {
        let m = manifest(FULL).expect("valid");
        let a = args(&[
            "-e",
            "GREETING=hello there",
            "--env",
            "NEW=a=b",
            "--secret",
            "KEY=v",
        ]);
        let (name, spec) = build_spec(&a, m).expect("builds");
        assert_eq!(name, "hello");
        let env: Vec<_> = spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [("GREETING", "hello there"), ("LANG", "en"), ("NEW", "a=b")]
        );
        assert_eq!(spec.secrets.len(), 2);
        assert_eq!(spec.secrets.get("KEY").map(String::as_str), Some("v"));
    }

    #[test]
    fn flags_alone_make_a_spec_with_only_what_was_given() {
        let (name, spec) =
            build_spec(&args(&["hello", "--image", "img"]), Manifest::default()).expect("builds");
        assert_eq!(name, "hello");
        assert_eq!(
            spec,
            FunctionSpec {
                image: "img".into(),
                ..FunctionSpec::default()
            }
        );
    }

    #[test]
    fn a_missing_name_or_image_is_explained() {
        let err = build_spec(&args(&["--image", "img"]), Manifest::default()).expect_err("no name");
        assert!(err.to_string().starts_with("no function name"), "{err}");
        let err = build_spec(&args(&["hello"]), Manifest::default()).expect_err("no image");
        assert!(err.to_string().starts_with("no image"), "{err}");
        let err = build_spec(&args(&["a/b", "--image", "img"]), Manifest::default())
            .expect_err("bad name");
        assert!(
            err.to_string().contains("not a valid function name"),
            "{err}"
        );
    }

    #[test]
    fn bad_flag_values_fail_before_any_request() {
        let argv = |extra: &[&'static str]| {
            let mut v = vec!["deploy", "hello"];
            v.extend_from_slice(extra);
            Cli::try_parse_from(v)
        };
        assert!(argv(&["--memory", "12 parsecs"]).is_err());
        assert!(argv(&["--timeout", "soon"]).is_err());
        assert!(argv(&["--startup-timeout", "soon"]).is_err());
        assert!(argv(&["--idle-timeout", "forever"]).is_err());
        assert!(argv(&["--port", "65536"]).is_err());
        assert!(argv(&["--min", "-1"]).is_err());
        assert!(argv(&["--max", "many"]).is_err());
        assert!(argv(&["--concurrency", "1.5"]).is_err());
        assert!(argv(&["--idle-timeout", "90s", "--min", "0", "--max", "3"]).is_ok());
        assert!(argv(&["--contract", "grpc"]).is_err());
        assert!(argv(&["--env", "NOEQUALS"]).is_err());
        assert!(argv(&["--cpus", "NaN"]).is_err());
        assert!(argv(&["--cpus", "0.25"]).is_ok());
    }

    #[test]
    fn a_bare_secret_reads_the_environment() {
        let lookup = |key: &str| (key == "TOKEN").then(|| "from-env".to_string());
        assert_eq!(
            parse_secret_with("TOKEN", lookup),
            Ok(("TOKEN".to_string(), "from-env".to_string()))
        );
        assert!(parse_secret_with("MISSING", lookup).is_err());
        assert_eq!(
            parse_secret_with("A=b", lookup),
            Ok(("A".to_string(), "b".to_string()))
        );
    }

    #[test]
    fn manifests_load_from_a_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load_manifest(dir.path()).expect("no file"), None);
        std::fs::write(dir.path().join(MANIFEST_FILE), "name = \"x\"\n").expect("write");
        let m = load_manifest(dir.path()).expect("reads").expect("some");
        assert_eq!(m.name.as_deref(), Some("x"));
        assert!(load_manifest(&dir.path().join("missing")).is_err());
    }
}
