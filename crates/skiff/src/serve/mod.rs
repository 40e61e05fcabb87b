//! `skiff serve`: assembles the daemon from the library crates and runs it until SIGTERM or
//! SIGINT. Its settings are resolved in [`settings`].

mod settings;

pub use settings::{EngineKind, ServeArgs, Settings};

use anyhow::{Context, Result};
use skiff_invoker::{fds, Platform};
use skiff_runtime::docker::DockerEngine;
use skiff_runtime::endpoint::Endpoint;
use skiff_runtime::swarm::SwarmEngine;
use skiff_runtime::ContainerEngine;
use skiff_store::{DataDir, Store};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The daemon's log output: stderr, where a failed write (say, the reader of a pipe went
/// away) loses that line and nothing else. A logging error must never stop a daemon in the
/// middle of its shutdown, before it has removed its containers.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Log directives that hold whatever `SKIFF_LOG` says: bollard's debug lines carry the
/// bodies of its requests to the engine, and a container's spec holds the function's
/// secrets, which must never reach a log.
const QUIET_TARGETS: &[&str] = &["bollard=info"];

fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for directive in QUIET_TARGETS {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(|| LossyStderr)
        .try_init();
}

/// SIGTERM and SIGINT, listened for from the daemon's first step: one that arrives while it
/// starts is kept, and stops it cleanly once it has started, never by the default action
/// (which would leave its containers behind).
struct Termination {
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Termination {
    fn listen() -> Termination {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Termination {
                streams: Some((term, int)),
            },
            _ => {
                tracing::error!("cannot listen for SIGTERM/SIGINT; stop skiff with SIGKILL");
                Termination { streams: None }
            }
        }
    }

    /// Resolves when the process gets SIGTERM or SIGINT.
    async fn received(mut self) {
        let Some((term, int)) = self.streams.as_mut() else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
        }
    }
}

/// `skiff init-carrier DIR`: writes `skiff-init` into DIR, then waits for SIGTERM or
/// SIGINT (see `skiff_runtime::swarm::exec`).
pub async fn init_carrier(dir: &Path) -> Result<ExitCode> {
    init_logging();
    let termination = Termination::listen();
    let path = skiff_runtime::swarm::exec::write_init(dir)
        .with_context(|| format!("cannot write skiff-init into {}", dir.display()))?;
    tracing::info!(path = %path.display(), "skiff-init is in place for exec tasks on this node");
    termination.received().await;
    Ok(ExitCode::SUCCESS)
}

/// Connects to the engine the functions run on.
async fn connect_engine(
    settings: &Settings,
    endpoint: &Endpoint,
) -> Result<Arc<dyn ContainerEngine>> {
    let timeout = settings.engine_timeout;
    Ok(match settings.engine {
        EngineKind::Docker => {
            let engine = DockerEngine::connect_to(endpoint)
                .await
                .with_context(|| {
                    format!("cannot reach the Docker engine at {endpoint} (is it running, and is DOCKER_HOST right?)")
                })?
                .with_timeout(timeout);
            tracing::info!(
                api_version = engine.api_version(),
                engine = %endpoint,
                "connected to the Docker engine"
            );
            Arc::new(engine)
        }
        EngineKind::Swarm => {
            let engine = SwarmEngine::connect_to(endpoint)
                .await
                .with_context(|| format!("cannot use the Swarm manager at {endpoint}"))?;
            let image = match &settings.swarm_image {
                Some(image) => Some(image.clone()),
                None => engine.own_image().await,
            };
            match &image {
                Some(image) => {
                    tracing::info!(image, "exec functions get skiff-init from this image")
                }
                None => tracing::warn!(
                    "skiff's own image is not known (not given with --swarm-image, and skiff \
                     does not run in a container on the manager): exec functions are refused"
                ),
            }
            let engine = engine.with_exec_image(image);
            tracing::info!(
                api_version = engine.manager().api_version(),
                manager = %endpoint,
                "connected to the Swarm manager: functions run as services on its nodes"
            );
            Arc::new(engine)
        }
    })
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    init_logging();
    let termination = Termination::listen();
    let settings = args.resolve()?;
    // An address skiff cannot use is refused, never swapped for the local socket.
    let endpoint = Endpoint::from_process()?;
    let given_admin_token = crate::access::read_given(settings.admin_token_file.as_deref())?;
    let data_dir = DataDir::open(&settings.platform.data_dir)?;
    // Every call and every prepared container holds descriptors: take all the system gives.
    match fds::raise_open_files_limit() {
        Ok(limit) => tracing::info!(
            "open files limit {} (was {}); new calls get 429 when fewer than {} are free",
            limit.now,
            limit.was,
            fds::free_floor(limit.now)
        ),
        Err(err) => tracing::warn!(%err, "cannot raise the open files limit"),
    }
    let engine = connect_engine(&settings, &endpoint).await?;
    let store = match &settings.store {
        Some(url) => Store::connect(url).await?,
        None => {
            let db = data_dir.store_path();
            Store::open(&db)
                .await
                .with_context(|| format!("cannot open the store at {}", db.display()))?
        }
    };
    if let Some(previous) = store.bind_daemon_id(data_dir.identity()).await? {
        tracing::warn!(
            previous,
            daemon = store.daemon_id().await?,
            data_dir = data_dir.identity(),
            "this data directory is a copy (or was moved): it gets a daemon id of its own; \
             containers labelled with the previous id are left to their daemon"
        );
    }
    crate::security::use_keys(&store, &data_dir).await?;
    let store_backend = store.backend();
    let tls = match &settings.tls {
        Some((cert, key)) => Some(skiff_gateway::tls::acceptor(cert, key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let mut platform_config = settings.platform.clone();
    platform_config.listeners = vec![listener.local_addr().unwrap_or(settings.listen)];
    let platform = Platform::start(platform_config, store, engine)
        .await
        .context("cannot start the platform")?;
    if let Err(err) = crate::security::first_access_key(&platform, &data_dir).await {
        platform.shutdown(Duration::ZERO).await;
        return Err(err);
    }
    let address = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(
        daemon = platform.daemon_id(),
        data_dir = %settings.platform.data_dir.display(),
        store = store_backend.as_str(),
        "skiff is listening on {scheme}://{address}"
    );

    if settings.gateway.auth {
        if let Err(err) = crate::access::first_token(
            &platform,
            &settings.platform.data_dir,
            given_admin_token.as_deref(),
            scheme,
            address,
        )
        .await
        {
            platform.shutdown(Duration::ZERO).await;
            return Err(err);
        }
    } else {
        tracing::warn!("authentication is off (--no-auth): every request may do everything");
    }

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let app = skiff_gateway::app(platform.clone(), settings.gateway.clone());
    let mut runtime_stop = stop_rx.clone();
    let server = tokio::spawn(skiff_gateway::serve(listener, tls, app, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    // The Lambda Runtime API and the function API, on the functions' network gateway. Its
    // long polls are cut at shutdown (the platform has stopped every instance by then).
    let runtime = platform.take_runtime_listener().map(|listener| {
        tracing::info!(
            address = %platform.runtime_api_address(),
            "Lambda Runtime API and function API listening"
        );
        tokio::spawn(skiff_gateway::runtime_api::serve(
            listener,
            platform.clone(),
            async move {
                let _ = runtime_stop.wait_for(|stop| *stop).await;
            },
        ))
    });
    termination.received().await;
    let _ = stop_tx.send(true);
    // Calls in flight get the grace period; the platform then removes every container.
    platform.shutdown(settings.shutdown_grace).await;
    if let Some(runtime) = runtime {
        runtime.abort();
    }
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::error!(%err, "the HTTP server failed"),
        Ok(Err(err)) => tracing::error!(%err, "the HTTP server task failed"),
        Err(_) => tracing::warn!("connections still open 5s after shutdown were dropped"),
    }
    tracing::info!("skiff stopped");
    // The data directory stays locked until the very end.
    drop(data_dir);
    Ok(ExitCode::SUCCESS)
}
