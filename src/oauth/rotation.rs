//! The background task that runs [`KeyRing::rotate`] every [`KeyRing::tick_interval`].
//!
//! Started by the server next to its other background tasks; it stops when the injected
//! `shutdown` future completes. A tick reads and writes `keys_dir`, so it runs on the
//! blocking pool, off the connection workers.

use std::future::Future;
use std::sync::Arc;

use super::keyring::KeyRing;

pub async fn run_rotation(keys: Arc<KeyRing>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(keys.tick_interval()) => {}
        }
        let ring = keys.clone();
        match tokio::task::spawn_blocking(move || ring.rotate()).await {
            Ok(Ok(rotation)) => {
                if let Some((kid, active_from_ms)) = &rotation.generated {
                    tracing::info!(%kid, active_from_ms, "new oauth signing key published");
                }
                for kid in &rotation.loaded {
                    tracing::info!(%kid, "oauth signing key from keys_dir published");
                }
                for kid in &rotation.retired {
                    tracing::info!(%kid, "oauth signing key retired: its last token has expired");
                }
            }
            // The current keys stay in use; the next tick tries again.
            Ok(Err(error)) => tracing::error!(%error, "oauth key rotation failed"),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use crate::oauth::clock::ManualClock;
    use crate::oauth::keyring::KeySettings;
    use std::time::Duration;

    #[tokio::test]
    async fn rotation_task_publishes_the_next_key_and_stops_on_shutdown() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let keys = Arc::new(
            KeyRing::open(
                KeySettings {
                    rotate_every: Duration::from_secs(3600),
                    publish_ahead: Duration::from_millis(400),
                    token_lifetime: Duration::from_secs(60),
                    keys_dir: None,
                },
                clock.clone(),
            )
            .unwrap(),
        );
        clock.advance(Duration::from_secs(3600));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_rotation(keys.clone(), async move {
            let _ = stopped.await;
        }));
        tokio::time::timeout(Duration::from_secs(5), async {
            while keys.published().len() < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
