//! Waiting for something to become true within a bound: one polling loop, and the forms
//! the tests use it in.

use std::time::Duration;
use tokio::time::Instant;

/// How often [`eventually`] and [`wait_until`] look again.
pub const EVERY: Duration = Duration::from_millis(100);

/// Runs `check` every `every` until it gives a value, for at most `bound`; `None` if it
/// never did.
pub async fn poll<T>(
    bound: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let until = Instant::now() + bound;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` every 100 ms until it gives a value, for at most `bound`; panics naming
/// `what` if it never does.
pub async fn eventually<T>(
    what: &str,
    bound: Duration,
    check: impl AsyncFnMut() -> Option<T>,
) -> T {
    match poll(bound, EVERY, check).await {
        Some(value) => value,
        None => panic!("{what}: not within {bound:?}"),
    }
}

/// Polls `check` every 100 ms until it holds, for at most `bound`; panics naming `what` if
/// it never does.
pub async fn wait_until(what: &str, bound: Duration, mut check: impl AsyncFnMut() -> bool) {
    eventually(what, bound, async || check().await.then_some(())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(300);
    const OFTEN: Duration = Duration::from_millis(10);

    #[tokio::test]
    async fn polls_until_a_value_or_the_bound() {
        let mut tries = 0;
        let found = poll(SHORT, OFTEN, async || {
            tries += 1;
            (tries == 3).then_some(tries)
        })
        .await;
        assert_eq!(found, Some(3));
        let started = Instant::now();
        let never: Option<()> = poll(SHORT, OFTEN, async || None).await;
        assert_eq!(never, None);
        assert!(started.elapsed() >= SHORT);
    }

    #[tokio::test]
    #[should_panic(expected = "the moon: not within 300ms")]
    async fn wait_until_names_what_never_came() {
        wait_until("the moon", SHORT, async || false).await;
    }
}
