//! `skiff deploy`: builds a [`FunctionSpec`] from `skiff.toml` and flags, and puts it.

use crate::client::ApiClient;
use crate::output;
use anyhow::{anyhow, bail};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use serde::Deserialize;
use skiff_core::{ByteSize, Contract, FunctionName, FunctionSpec, HumanDuration};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The file `skiff deploy` reads in the function's folder.
pub const MANIFEST_FILE: &str = "skiff.toml";

/// Arguments of `skiff deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Function name [default: `name` in skiff.toml]
    pub name: Option<String>,
    /// Container image to run, e.g. skiff/hello:latest
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
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
    /// Environment variable for the function (repeatable; overrides skiff.toml)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Secret for the function (repeatable); `--secret KEY` alone takes the value of KEY
    /// from this shell's environment
    #[arg(long = "secret", short = 's', value_name = "KEY=VALUE", value_parser = parse_secret)]
    pub secrets: Vec<(String, String)>,
    /// Folder holding the function's skiff.toml [default: the current folder]
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

/// A `skiff.toml`: the function's name and any field of a [`FunctionSpec`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The function's name.
    pub name: Option<String>,
    /// The container image.
    pub image: Option<String>,
    /// The contract.
    pub contract: Option<Contract>,
    /// Memory limit.
    pub memory: Option<ByteSize>,
    /// CPU quota.
    pub cpus: Option<f64>,
    /// Pids limit.
    pub pids: Option<u32>,
    /// Size of `/tmp`.
    pub tmp_size: Option<ByteSize>,
    /// Call timeout.
    pub timeout: Option<HumanDuration>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secrets.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
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

/// Reads `text`, the content of the manifest at `path`. Errors are one line naming the file,
/// the problem (an unknown key is named) and where it is.
pub fn parse_manifest(text: &str, path: &Path) -> anyhow::Result<Manifest> {
    toml::from_str(text).map_err(|err| {
        let message = output::one_line(err.message());
        match err.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                anyhow!(
                    "{}: {message} (line {line}, column {column})",
                    path.display()
                )
            }
            None => anyhow!("{}: {message}", path.display()),
        }
    })
}

/// Reads `dir/skiff.toml` if there is one (an empty `dir` is the current folder).
pub fn load_manifest(dir: &Path) -> anyhow::Result<Option<Manifest>> {
    // An empty `dir` is the current folder (and messages then say just `skiff.toml`).
    let path = dir.join(MANIFEST_FILE);
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_manifest(&text, &path).map(Some),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if dir.is_dir() {
                Ok(None)
            } else {
                bail!("{} is not a folder", dir.display())
            }
        }
        Err(err) => bail!("cannot read {}: {err}", path.display()),
    }
}

/// The function's name and spec: the manifest's values, overridden by the flags.
pub fn build_spec(args: &DeployArgs, manifest: Manifest) -> anyhow::Result<(String, FunctionSpec)> {
    let name =
        args.name.clone().or(manifest.name).ok_or_else(|| {
            anyhow!("no function name: pass NAME or set `name` in {MANIFEST_FILE}")
        })?;
    let name = FunctionName::parse(name.trim()).map_err(|err| anyhow!("{}", err.message))?;
    let image = args
        .image
        .clone()
        .or(manifest.image)
        .map(|image| image.trim().to_string())
        .filter(|image| !image.is_empty())
        .ok_or_else(|| anyhow!("no image: pass --image or set `image` in {MANIFEST_FILE}"))?;
    let mut env = manifest.env;
    env.extend(args.env.iter().cloned());
    let mut secrets = manifest.secrets;
    secrets.extend(args.secrets.iter().cloned());
    let spec = FunctionSpec {
        image,
        contract: args.contract.or(manifest.contract),
        memory: args.memory.or(manifest.memory),
        cpus: args.cpus.or(manifest.cpus),
        pids: args.pids.or(manifest.pids),
        tmp_size: args.tmp_size.or(manifest.tmp_size),
        timeout: args.timeout.or(manifest.timeout),
        env,
        secrets,
    };
    Ok((name.to_string(), spec))
}

/// Runs `skiff deploy`.
pub async fn run(client: &ApiClient, args: DeployArgs, json: bool) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone().unwrap_or_default();
    let manifest = load_manifest(&dir)?.unwrap_or_default();
    let (name, spec) = build_spec(&args, manifest)?;
    let deployed = client.put_function(&name, &spec).await?;
    if json {
        output::print_json(&deployed.function)?;
    } else {
        let f = &deployed.function;
        let verb = if deployed.created {
            "deployed"
        } else {
            "updated"
        };
        output::print_line(&format!(
            "{verb} {} (version {}, image {} @ {})",
            f.name,
            f.version,
            f.image,
            output::short_digest(&f.image_digest)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
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
        assert_eq!(m.image.as_deref(), Some("skiff/hello:latest"));
        assert_eq!(m.contract, Some(Contract::Exec));
        assert_eq!(m.memory, Some(ByteSize::mib(128)));
        assert_eq!(m.cpus, Some(0.5));
        assert_eq!(m.pids, Some(64));
        assert_eq!(m.tmp_size, Some(ByteSize::mib(16)));
        assert_eq!(m.timeout, Some(HumanDuration(Duration::from_secs(10))));
        assert_eq!(m.env.get("GREETING").map(String::as_str), Some("hi"));
        assert_eq!(m.secrets.get("TOKEN").map(String::as_str), Some("s3cret"));
        let m = manifest("memory = 134217728\ntimeout = 5").expect("numbers");
        assert_eq!(m.memory, Some(ByteSize::mib(128)));
        assert_eq!(m.timeout, Some(HumanDuration(Duration::from_secs(5))));
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
