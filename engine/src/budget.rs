//! The memory budget: one byte counter every large buffer is paid from.
//!
//! A [`Budget`] has a hard limit. Code that is about to allocate a chunk
//! buffer, a partial result or a cache entry first takes a [`Reservation`]
//! for its size; the reservation gives the bytes back when dropped (RAII),
//! so an error or a cancelled task cannot leak budget.
//!
//! Two ways to reserve:
//! - [`Budget::try_reserve`] fails at once when the bytes are not free
//!   (used by the planner's up-front checks and by the cache);
//! - [`Budget::reserve`] waits until other tasks release enough, which is
//!   how the executor admits a task only when its whole working set fits
//!   (DESIGN.md rule 2). Before waiting it asks the registered evictor (the
//!   chunk cache) to give memory back, so the cache always yields first.
//!
//! The budget also records its high-water mark ([`Budget::peak`]) for
//! memory tests and reports.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{human_bytes, Error, Result};

type Evictor = Box<dyn Fn(u64) -> u64 + Send + Sync>;

struct Inner {
    limit: u64,
    used: Mutex<u64>,
    freed: Condvar,
    peak: AtomicU64,
    evictor: Mutex<Option<Evictor>>,
    cancelled: AtomicBool,
}

/// A shared byte budget. Cloning gives another handle to the same budget.
///
/// ```
/// use ndstream_engine::Budget;
/// let b = Budget::new(1000);
/// let r = b.try_reserve(600, "chunk").unwrap();
/// assert!(b.try_reserve(600, "another chunk").is_err());
/// drop(r);
/// assert_eq!(b.used(), 0);
/// assert_eq!(b.peak(), 600);
/// ```
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .field("peak", &self.peak())
            .finish()
    }
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                limit,
                used: Mutex::new(0),
                freed: Condvar::new(),
                peak: AtomicU64::new(0),
                evictor: Mutex::new(None),
                cancelled: AtomicBool::new(false),
            }),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes currently reserved.
    pub fn used(&self) -> u64 {
        *lock(&self.inner.used)
    }

    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> u64 {
        self.inner.peak.load(Ordering::Relaxed)
    }

    /// Reset the high-water mark to the current use.
    pub fn reset_peak(&self) {
        let used = self.used();
        self.inner.peak.store(used, Ordering::Relaxed);
    }

    /// Register the function asked to free memory (it gets the bytes wanted
    /// and returns the bytes it released). The chunk cache registers itself.
    pub fn set_evictor(&self, f: impl Fn(u64) -> u64 + Send + Sync + 'static) {
        *lock(&self.inner.evictor) = Some(Box::new(f));
    }

    /// Drop the evictor (the cache is going away).
    pub fn clear_evictor(&self) {
        *lock(&self.inner.evictor) = None;
    }

    fn grant(&self, used: &mut u64, bytes: u64) -> Reservation {
        *used += bytes;
        self.inner.peak.fetch_max(*used, Ordering::Relaxed);
        Reservation {
            budget: self.clone(),
            bytes,
        }
    }

    fn evict(&self, want: u64) {
        // The evictor drops reservations, which lock `used`: never call it
        // while holding that lock.
        if let Some(f) = lock(&self.inner.evictor).as_ref() {
            f(want);
        }
    }

    /// Reserve `bytes` now or fail, after asking the cache to make room.
    ///
    /// # Errors
    /// [`Error::BudgetTooSmall`] naming `what` when the bytes are not free.
    pub fn try_reserve(&self, bytes: u64, what: &str) -> Result<Reservation> {
        {
            let mut used = lock(&self.inner.used);
            if *used + bytes <= self.inner.limit {
                return Ok(self.grant(&mut used, bytes));
            }
        }
        self.evict(bytes);
        let mut used = lock(&self.inner.used);
        if *used + bytes <= self.inner.limit {
            return Ok(self.grant(&mut used, bytes));
        }
        Err(self.too_small(what, bytes, *used))
    }

    /// Reserve `bytes` without asking the cache, or fail (used by the cache
    /// itself, which must never evict others to grow).
    pub fn try_reserve_no_evict(&self, bytes: u64) -> Option<Reservation> {
        let mut used = lock(&self.inner.used);
        if *used + bytes <= self.inner.limit {
            Some(self.grant(&mut used, bytes))
        } else {
            None
        }
    }

    /// Reserve `bytes`, waiting for other reservations to be dropped.
    ///
    /// # Errors
    /// [`Error::BudgetTooSmall`] if `bytes` exceeds the whole limit (it could
    /// never be granted), [`Error::Cancelled`] if the budget is cancelled
    /// while waiting.
    pub fn reserve(&self, bytes: u64, what: &str) -> Result<Reservation> {
        if bytes > self.inner.limit {
            return Err(self.too_small(what, bytes, 0));
        }
        loop {
            {
                let mut used = lock(&self.inner.used);
                if *used + bytes <= self.inner.limit {
                    return Ok(self.grant(&mut used, bytes));
                }
            }
            self.evict(bytes);
            let mut used = lock(&self.inner.used);
            loop {
                if self.inner.cancelled.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                if *used + bytes <= self.inner.limit {
                    return Ok(self.grant(&mut used, bytes));
                }
                let (g, timeout) = self
                    .inner
                    .freed
                    .wait_timeout(used, std::time::Duration::from_millis(50))
                    .unwrap_or_else(|e| e.into_inner());
                used = g;
                if timeout.timed_out() {
                    // Try the evictor again: the cache may have grown meanwhile.
                    break;
                }
            }
        }
    }

    /// Wake every waiter with [`Error::Cancelled`] (the job failed).
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Relaxed);
        self.inner.freed.notify_all();
    }

    /// Clear a previous [`cancel`](Self::cancel) so the budget can run another job.
    pub fn uncancel(&self) {
        self.inner.cancelled.store(false, Ordering::Relaxed);
    }

    fn too_small(&self, what: &str, bytes: u64, used: u64) -> Error {
        let hint = if used == 0 {
            "use smaller chunks (rechunk, or --chunks) or a larger memory budget (--memory)"
                .to_string()
        } else {
            format!(
                "{} are in use; use smaller chunks or a larger memory budget (--memory)",
                human_bytes(used)
            )
        };
        Error::BudgetTooSmall {
            op: what.to_string(),
            needed: bytes,
            needed_h: human_bytes(bytes),
            budget: self.inner.limit,
            budget_h: human_bytes(self.inner.limit),
            hint,
        }
    }

    fn release(&self, bytes: u64) {
        let mut used = lock(&self.inner.used);
        *used = used.saturating_sub(bytes);
        drop(used);
        self.inner.freed.notify_all();
    }
}

/// Bytes held from a [`Budget`]; released on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Budget,
    bytes: u64,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Give back all but `keep` bytes (e.g. a task's working set shrinking
    /// to the size of its result).
    pub fn shrink_to(&mut self, keep: u64) {
        if keep < self.bytes {
            let give = self.bytes - keep;
            self.bytes = keep;
            self.budget.release(give);
        }
    }

    /// Split off `bytes` into a reservation of its own.
    pub fn split(&mut self, bytes: u64) -> Reservation {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Reservation {
            budget: self.budget.clone(),
            bytes,
        }
    }

    /// Merge another reservation of the same budget into this one.
    pub fn merge(&mut self, mut other: Reservation) {
        self.bytes += other.bytes;
        other.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.release(self.bytes);
        }
    }
}

/// Lock `m`, ignoring poisoning: a panic inside a job is caught and
/// reported as that job's error, and what these locks guard (counters, a
/// slot, a job's turn) is valid at any point a holder could stop.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_reserve_waits_for_release() {
        let b = Budget::new(100);
        let r = b.reserve(80, "a").unwrap();
        std::thread::scope(|s| {
            let h = s.spawn(|| b.reserve(50, "b").map(|r| r.bytes()));
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(r);
            assert_eq!(h.join().unwrap().unwrap(), 50);
        });
        assert_eq!(b.used(), 0);
        assert_eq!(b.peak(), 80);
    }

    #[test]
    fn too_big_is_refused_with_a_clear_error() {
        let b = Budget::new(1 << 30);
        let e = b
            .reserve(3_200_000_000, "reading chunk (0, 0) of big.h5:/x")
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("big.h5:/x"), "{msg}");
        assert!(msg.contains("3200000000"), "{msg}");
        assert!(msg.contains("1.00 GiB"), "{msg}");
    }

    #[test]
    fn evictor_is_asked_first() {
        let b = Budget::new(100);
        let held = Arc::new(Mutex::new(Some(b.try_reserve(90, "cache").unwrap())));
        let h2 = held.clone();
        b.set_evictor(move |_| {
            let r = h2.lock().unwrap().take();
            r.map(|r| r.bytes()).unwrap_or(0)
        });
        let r = b.try_reserve(50, "task").unwrap();
        assert_eq!(r.bytes(), 50);
        assert!(held.lock().unwrap().is_none());
    }

    #[test]
    fn shrink_and_split() {
        let b = Budget::new(100);
        let mut r = b.try_reserve(60, "x").unwrap();
        let s = r.split(20);
        assert_eq!(b.used(), 60);
        r.shrink_to(10);
        assert_eq!(b.used(), 30);
        drop(s);
        assert_eq!(b.used(), 10);
    }
}
