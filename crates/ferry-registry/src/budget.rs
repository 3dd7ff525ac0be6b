//! Per-host request budgets: at most N requests per second (paced evenly, no bursts) and at most M
//! requests waiting for their response at once. Every request takes its turn in `RegistryClient::send`, so
//! every command honours them. A registry that says "slow down" (429, or HTTP/2 GOAWAY with
//! ENHANCE_YOUR_CALM) halves the host's rate for the rest of the run.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits per registry host; `None` is no limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostLimits {
    /// Requests per second, paced evenly (`--requests-per-second`).
    pub requests_per_second: Option<f64>,
    /// Requests waiting for their response at once.
    pub concurrency: Option<usize>,
}

/// The slowest a slowed-down host gets: one request every 10 s still finishes a run.
const MIN_RATE: f64 = 0.1;
/// After a slow-down without a configured rate, this is where pacing starts.
const RATE_AFTER_SLOWDOWN: f64 = 10.0;

pub(crate) struct HostBudget {
    /// Seconds between requests, and when the next may start.
    pace: Mutex<Pace>,
    slots: Option<std::sync::Arc<Semaphore>>,
}

struct Pace {
    interval: Option<Duration>,
    next: Instant,
}

/// A request's turn: held until its response head arrives (the body streams outside the budget).
pub(crate) struct Turn {
    _slot: Option<OwnedSemaphorePermit>,
}

impl HostBudget {
    pub(crate) fn new(limits: &HostLimits) -> HostBudget {
        HostBudget {
            pace: Mutex::new(Pace {
                interval: limits
                    .requests_per_second
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .map(|r| Duration::from_secs_f64(1.0 / r.max(MIN_RATE))),
                next: Instant::now(),
            }),
            slots: limits
                .concurrency
                .map(|n| std::sync::Arc::new(Semaphore::new(n.max(1)))),
        }
    }

    /// Wait for a concurrency slot, then for the request's start time.
    pub(crate) async fn turn(&self) -> Turn {
        let slot = match &self.slots {
            Some(s) => Some(s.clone().acquire_owned().await.expect("semaphore open")),
            None => None,
        };
        let start = {
            let mut pace = self.pace.lock().expect("pace lock");
            pace.interval.map(|interval| {
                let now = Instant::now();
                let start = pace.next.max(now);
                pace.next = start + interval;
                start
            })
        };
        if let Some(start) = start {
            tokio::time::sleep_until(start).await;
        }
        Turn { _slot: slot }
    }

    /// The registry asked for less: halve the rate (start pacing if there was none).
    pub(crate) fn slow_down(&self, registry: &str) {
        let mut pace = self.pace.lock().expect("pace lock");
        let rate = match pace.interval {
            Some(i) => (1.0 / i.as_secs_f64() / 2.0).max(MIN_RATE),
            None => RATE_AFTER_SLOWDOWN,
        };
        tracing::warn!("{registry} asked to slow down; now at most {rate:.1} requests per second");
        pace.interval = Some(Duration::from_secs_f64(1.0 / rate));
    }
}

/// Whether a transport error is an HTTP/2 GOAWAY or reset with ENHANCE_YOUR_CALM: the server's "too many
/// requests" at the connection level.
pub(crate) fn is_enhance_your_calm(err: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(h2) = e.downcast_ref::<h2::Error>()
            && h2.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM)
        {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pacing_spaces_requests_evenly() {
        let budget = HostBudget::new(&HostLimits {
            requests_per_second: Some(50.0),
            concurrency: None,
        });
        let t0 = Instant::now();
        for _ in 0..11 {
            budget.turn().await;
        }
        // The first starts at once, each next 20 ms later.
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(600),
            "{took:?}"
        );
        budget.slow_down("r");
        let t1 = Instant::now();
        for _ in 0..3 {
            budget.turn().await;
        }
        // Halved: 40 ms apart.
        assert!(
            t1.elapsed() >= Duration::from_millis(80),
            "{:?}",
            t1.elapsed()
        );
    }

    #[tokio::test]
    async fn concurrency_is_capped() {
        let budget = HostBudget::new(&HostLimits {
            requests_per_second: None,
            concurrency: Some(1),
        });
        let first = budget.turn().await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.turn()).await;
        assert!(waiting.is_err(), "a second turn while the first is held");
        drop(first);
        budget.turn().await;
    }
}
