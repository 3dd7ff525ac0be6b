//! The retry policy: a pure function from (attempt, failure) to "wait this long" or "give up", so it is
//! tested without sleeping and the same rules apply to every request ferry makes.

use std::time::{Duration, SystemTime};

/// When a failed request is tried again, and how long ferry waits first ([`RetryPolicy::decide`]). One policy
/// for every request of a client.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Total tries of one request, the first included.
    pub max_attempts: u32,
    /// First back-off; doubles on each retry.
    pub base: Duration,
    /// Ceiling for exponential back-off.
    pub max_backoff: Duration,
    /// Ceiling for a server's `Retry-After`: past it ferry gives up rather than hang for hours.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// What went wrong with one try.
#[derive(Clone, Debug)]
pub enum Failure<'a> {
    /// Connection refused/reset, timeout, EOF before the response, a broken body.
    Transport,
    /// An HTTP status, with the raw `Retry-After` header if any.
    Status {
        /// The status code.
        code: u16,
        /// The raw `Retry-After` header (seconds or an HTTP date), if the response had one.
        retry_after: Option<&'a str>,
    },
}

/// What to do after a failed try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Wait, then try again. `host_wide` asks every request to the same host to wait too (429, 503 with
    /// Retry-After): the server said it is overloaded, not that this one request failed.
    Retry {
        /// How long to wait.
        wait: Duration,
        /// Whether every request to the host waits too.
        host_wide: bool,
    },
    /// Stop: the failure is permanent, attempts are used up, or the server asks for a longer wait than
    /// allowed.
    GiveUp,
}

/// Statuses worth retrying: timeouts, rate limits, and server errors that are not permanent.
pub fn is_retryable_status(code: u16) -> bool {
    matches!(code, 408 | 429) || (500..600).contains(&code) && !matches!(code, 501 | 505)
}

impl RetryPolicy {
    /// `attempt` is the number of tries made so far (1 after the first failure); `jitter` is in [0, 1)
    /// and spreads the back-off of concurrent requests.
    pub fn decide(
        &self,
        attempt: u32,
        failure: &Failure<'_>,
        now: SystemTime,
        jitter: f64,
    ) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        let backoff = || {
            let exp = self
                .base
                .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
            let capped = exp.min(self.max_backoff);
            // Equal jitter: half fixed, half random, so retries never bunch up nor shrink to nothing.
            capped / 2 + capped.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
        };
        match failure {
            Failure::Transport => Decision::Retry {
                wait: backoff(),
                host_wide: false,
            },
            Failure::Status { code, retry_after } if is_retryable_status(*code) => {
                match retry_after.and_then(|v| parse_retry_after(v, now)) {
                    Some(wait) if wait > self.max_retry_after => Decision::GiveUp,
                    Some(wait) => Decision::Retry {
                        wait,
                        host_wide: true,
                    },
                    None => Decision::Retry {
                        wait: backoff(),
                        host_wide: *code == 429,
                    },
                }
            }
            Failure::Status { .. } => Decision::GiveUp,
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110). A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = ferry_oci::date::parse_rfc1123(v)?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A cheap jitter source; retries need spread, not cryptographic randomness.
pub fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ seed;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy::default();
        let wait = |attempt, j| match p.decide(attempt, &Failure::Transport, at(0), j) {
            Decision::Retry { wait, .. } => wait,
            Decision::GiveUp => panic!("gave up"),
        };
        assert_eq!(wait(1, 0.0), Duration::from_millis(125));
        let top = wait(1, 0.999_999);
        assert!(
            top > Duration::from_millis(249) && top < Duration::from_millis(250),
            "{top:?}"
        );
        assert_eq!(wait(2, 0.0), Duration::from_millis(250));
        assert_eq!(wait(3, 0.0), Duration::from_millis(500));
        let capped = RetryPolicy {
            max_attempts: 100,
            ..p.clone()
        };
        assert_eq!(
            capped.decide(40, &Failure::Transport, at(0), 0.0),
            Decision::Retry {
                wait: Duration::from_secs(4),
                host_wide: false
            }
        );
        assert_eq!(
            p.decide(5, &Failure::Transport, at(0), 0.0),
            Decision::GiveUp
        );
    }

    #[test]
    fn statuses() {
        let p = RetryPolicy::default();
        for code in [400, 401, 403, 404, 501] {
            let f = Failure::Status {
                code,
                retry_after: None,
            };
            assert_eq!(p.decide(1, &f, at(0), 0.0), Decision::GiveUp, "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504] {
            let f = Failure::Status {
                code,
                retry_after: None,
            };
            assert!(
                matches!(p.decide(1, &f, at(0), 0.0), Decision::Retry { .. }),
                "{code}"
            );
        }
        let f = Failure::Status {
            code: 429,
            retry_after: None,
        };
        assert!(matches!(
            p.decide(1, &f, at(0), 0.0),
            Decision::Retry {
                host_wide: true,
                ..
            }
        ));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let p = RetryPolicy::default();
        let f = Failure::Status {
            code: 503,
            retry_after: Some("7"),
        };
        assert_eq!(
            p.decide(1, &f, at(0), 0.5),
            Decision::Retry {
                wait: Duration::from_secs(7),
                host_wide: true
            }
        );
        // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT
        let now = at(784_111_777 - 30);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at(784_111_777 + 5)),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        let f = Failure::Status {
            code: 429,
            retry_after: Some("3600"),
        };
        assert_eq!(
            p.decide(1, &f, at(0), 0.0),
            Decision::GiveUp,
            "beyond max_retry_after"
        );
    }

    #[test]
    fn jitter_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
