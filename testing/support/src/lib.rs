//! Helpers shared by skiff's end-to-end tests and benchmarks, one module per job:
//!
//! - [`setup`]: what a test needs before it runs: the real Docker engine (in CI a missing
//!   engine or tool fails the test, it is never skipped silently) and the function images,
//!   built from source, FROM scratch, once per test process.
//! - [`daemon`]: a `skiff serve` process per test ([`Daemon`]).
//! - [`api`]: HTTP calls to a daemon's API and public routes, and their [`Answer`]s.
//! - [`aws`]: Lambda API requests signed with SigV4, as AWS clients send them.
//! - [`poll`]: waiting for something to become true, within a bound.
//! - [`postgres`]: a PostgreSQL database per test, for daemons on a shared store.
//! - [`engine`]: what the engine holds: containers by label, their addresses, volumes.
//! - [`cli`]: checks on the `skiff` command line's output.
//! - [`tls`]: the HTTP clients' crypto provider, certificates made with openssl.
//! - [`stats`]: latency statistics and their formatting, for the benchmarks.
//! - [`bench`]: the benchmarks' settings and their raw-engine baseline.
//! - [`swarm`]: a multi-node Docker Swarm of node containers, and skiff running in it.

pub mod api;
pub mod aws;
pub mod bench;
pub mod cli;
pub mod daemon;
pub mod engine;
pub mod nats;
pub mod poll;
pub mod postgres;
pub mod registry;
pub mod setup;
pub mod stats;
pub mod swarm;
pub mod tls;

pub use api::{env_lines, merged, Answer};
pub use aws::AwsKey;
pub use daemon::{free_port, Daemon, DaemonBuilder};
pub use engine::{container_ip, containers_with_label, run_sleepers, CreateWatch, TestVolume};
pub use nats::Nats;
pub use poll::{eventually, poll, wait_until};
pub use postgres::TestDatabase;
pub use registry::Registry;
pub use setup::{
    docker_available, ensure_images, ensure_python_lambda_image, needs, ready, repo_root,
};

/// The path of the `skiff` binary, for a test or benchmark of the `skiff` crate (only there
/// does Cargo set `CARGO_BIN_EXE_skiff`): `Daemon::start(skiff_testing::skiff_bin!(), &[])`.
#[macro_export]
macro_rules! skiff_bin {
    () => {
        ::std::path::Path::new(env!("CARGO_BIN_EXE_skiff"))
    };
}
