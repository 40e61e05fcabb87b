//! Invariants of the instance pool, as property tests: whatever the concurrency, the bound
//! on instances and the pattern of calls,
//! - no function ever has more running instances than `max_instances`;
//! - no instance ever serves more calls at once than its concurrency;
//! - every call gets exactly one answer (a lease), none is lost.
//!
//! They are checked twice. On the state machine itself (`model`), driven by a simulated
//! async layer with simulated time, many interleavings cheaply: starts of varying length,
//! scale-down, pauses and resumes, instances that crash or turn out broken, calls that give
//! up. Then through `InstanceManager` on the fake engine, which proves that the async
//! layer carries the plans out: leases through their channels, and nothing left at
//! shutdown.
//!
//! Behaviour on real containers is proven by the end-to-end tests.

#[path = "pool_properties/model.rs"]
mod model;

use proptest::prelude::*;
use skiff_core::{HttpSettings, Resources, Scaling};
use skiff_invoker::pool::{InstanceManager, InstanceSettings, InstanceTarget};
use skiff_runtime::fake::{FakeEngine, Script};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn listener() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

fn run(concurrency: u32, max: u32, holds: Vec<u64>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let engine = Arc::new(FakeEngine::new());
        engine.add_image(
            "web:1",
            Script {
                stdout: "".into(),
                stderr: "".into(),
                exit_code: 0,
            },
        );
        let port = listener().await;
        let cancel = CancellationToken::new();
        let manager = InstanceManager::new(
            engine.clone(),
            InstanceSettings {
                daemon_id: "test".into(),
                network: None,
                nofile: 1024,
                max_queued: 10_000,
                keep_paused: true,
                paused_ttl: Duration::from_secs(3600),
                autoscale_window: Duration::from_secs(60),
                tokens: Arc::new(skiff_invoker::TokenKey::from_bytes([1; 64])),
                logs: skiff_invoker::logs::LogSink::start(
                    skiff_store::Store::open_in_memory().await.expect("store"),
                    &tokio_util::task::TaskTracker::new(),
                ),
            },
            cancel.clone(),
            skiff_invoker::proxy::client(),
            skiff_invoker::lambda::LambdaRegistry::new(),
        );
        let image = "web:1".to_string();
        manager.set_target(Arc::new(InstanceTarget {
            function: "web".into(),
            version: 1,
            image_reference: image.clone(),
            image,
            env: Vec::new(),
            resources: Resources {
                memory_bytes: 1 << 26,
                cpus: 1.0,
                pids: 64,
                tmp_bytes: 1 << 20,
            },
            http: HttpSettings {
                port,
                readiness_path: None,
                startup_timeout_ms: 5000,
            },
            scaling: Scaling {
                concurrency,
                min_instances: 0,
                max_instances: max,
                idle_timeout_ms: 60_000,
                window_ms: None,
                target_utilization: 0.7,
            },
            contract: skiff_core::Contract::Http,
            cmd: None,
            volumes: Vec::new(),
        }));

        let done = Arc::new(AtomicBool::new(false));
        let most_running = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let (engine, done, most) = (engine.clone(), done.clone(), most_running.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Acquire) {
                    most.fetch_max(engine.running_count(), Ordering::AcqRel);
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            })
        };
        let per_instance: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let most_on_one = Arc::new(AtomicUsize::new(0));
        let calls = holds.iter().map(|&hold| {
            let (manager, per_instance, most_on_one) =
                (manager.clone(), per_instance.clone(), most_on_one.clone());
            async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                let lease = manager
                    .acquire("web", deadline)
                    .await
                    .map_err(|e| e.to_string())?;
                {
                    let mut map = per_instance.lock().expect("lock");
                    let n = map.entry(lease.instance.clone()).or_insert(0);
                    *n += 1;
                    most_on_one.fetch_max(*n as usize, Ordering::AcqRel);
                }
                tokio::time::sleep(Duration::from_millis(hold)).await;
                *per_instance
                    .lock()
                    .expect("lock")
                    .entry(lease.instance.clone())
                    .or_insert(1) -= 1;
                drop(lease);
                Ok::<_, String>(())
            }
        });
        let results = futures::future::join_all(calls).await;
        done.store(true, Ordering::Release);
        let _ = sampler.await;
        for result in &results {
            prop_assert!(result.is_ok(), "a call got no lease: {result:?}");
        }
        prop_assert_eq!(results.len(), holds.len());
        prop_assert!(
            most_running.load(Ordering::Acquire) <= max as usize,
            "{} instances ran at once with max {max}",
            most_running.load(Ordering::Acquire)
        );
        prop_assert!(
            most_on_one.load(Ordering::Acquire) <= concurrency as usize,
            "an instance served {} calls at once with concurrency {concurrency}",
            most_on_one.load(Ordering::Acquire)
        );
        cancel.cancel();
        manager.shutdown().await;
        prop_assert_eq!(engine.container_count(), 0, "shutdown leaves no container");
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn instances_stay_within_bounds_and_every_call_is_answered_once(
        concurrency in 1u32..4,
        max in 1u32..4,
        holds in proptest::collection::vec(0u64..15, 1..40),
    ) {
        run(concurrency, max, holds)?;
    }
}
