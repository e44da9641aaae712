//! The chunk cache: decoded source chunks kept for reuse, inside the budget.
//!
//! An LRU (the `lru` crate) keyed by (source node, chunk index) and sized
//! in bytes. Every entry holds a [`Reservation`] from the job's
//! [`Budget`], and the cache registers itself as the budget's evictor, so
//! when a task needs memory the cache gives it up first (DESIGN.md rule 1).
//! Only sources read more than once in a plan go through the cache
//! (`x[0] - x.mean(0)`, misaligned slices, several results of one input).

use std::sync::{Arc, Mutex, Weak};

use lru::LruCache;

use crate::block::Block;
use crate::budget::{Budget, Reservation};
use crate::error::Result;

type Key = (u64, Vec<u64>);

struct Inner {
    lru: LruCache<Key, (Arc<Block>, Reservation)>,
    bytes: u64,
    hits: u64,
    misses: u64,
}

/// A byte-bounded LRU of decoded chunks.
pub(crate) struct ChunkCache {
    inner: Arc<Mutex<Inner>>,
    budget: Budget,
    capacity: u64,
}

impl ChunkCache {
    /// A cache of at most `capacity` bytes paid from `budget`; registers as its evictor.
    pub(crate) fn new(budget: &Budget, capacity: u64) -> ChunkCache {
        let inner = Arc::new(Mutex::new(Inner {
            lru: LruCache::unbounded(),
            bytes: 0,
            hits: 0,
            misses: 0,
        }));
        let weak: Weak<Mutex<Inner>> = Arc::downgrade(&inner);
        budget.set_evictor(move |want| match weak.upgrade() {
            Some(inner) => evict(&inner, want),
            None => 0,
        });
        ChunkCache {
            inner,
            budget: budget.clone(),
            capacity,
        }
    }

    /// The chunk, from the cache or from `load` (then kept if it fits).
    pub(crate) fn get_or_load(
        &self,
        id: u64,
        idx: &[u64],
        load: impl FnOnce() -> Result<Block>,
    ) -> Result<Arc<Block>> {
        let key = (id, idx.to_vec());
        {
            let mut g = lock(&self.inner);
            if let Some((b, _)) = g.lru.get(&key) {
                let b = b.clone();
                g.hits += 1;
                return Ok(b);
            }
            g.misses += 1;
        }
        let block = Arc::new(load()?);
        let bytes = block.nbytes() as u64;
        if bytes <= self.capacity {
            // Make room inside the cache's own capacity first.
            let over = {
                let g = lock(&self.inner);
                (g.bytes + bytes).saturating_sub(self.capacity)
            };
            if over > 0 {
                evict(&self.inner, over);
            }
            if let Some(r) = self.budget.try_reserve_no_evict(bytes) {
                let mut g = lock(&self.inner);
                if g.lru.put(key, (block.clone(), r)).is_none() {
                    g.bytes += bytes;
                }
            }
        }
        Ok(block)
    }

    /// Bytes the cache holds now (all of them evictable: a job may count
    /// them as free).
    pub(crate) fn bytes(&self) -> u64 {
        lock(&self.inner).bytes
    }

    /// (hits, misses) so far.
    #[allow(dead_code)]
    pub(crate) fn stats(&self) -> (u64, u64) {
        let g = lock(&self.inner);
        (g.hits, g.misses)
    }
}

impl Drop for ChunkCache {
    fn drop(&mut self) {
        self.budget.clear_evictor();
        let mut g = lock(&self.inner);
        g.lru.clear();
        g.bytes = 0;
    }
}

fn evict(inner: &Mutex<Inner>, want: u64) -> u64 {
    // Pop under the lock, drop the reservations after releasing it: a
    // reservation's drop takes the budget's lock.
    let mut dropped = Vec::new();
    let mut freed = 0;
    {
        let mut g = lock(inner);
        while freed < want {
            match g.lru.pop_lru() {
                Some((_, (b, r))) => {
                    freed += r.bytes();
                    g.bytes -= r.bytes();
                    dropped.push((b, r));
                }
                None => break,
            }
        }
    }
    drop(dropped);
    freed
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hits_and_yields_to_tasks() {
        let budget = Budget::new(1000);
        let cache = ChunkCache::new(&budget, 800);
        let mk = || Ok(Block::zeros(crate::DType::U8, &[300]));
        cache.get_or_load(1, &[0], mk).unwrap();
        cache.get_or_load(1, &[1], mk).unwrap();
        assert_eq!(budget.used(), 600);
        cache.get_or_load(1, &[0], || panic!("should hit")).unwrap();
        // Over capacity: the least recently used ([1]) goes.
        cache.get_or_load(1, &[2], mk).unwrap();
        assert_eq!(budget.used(), 600);
        assert_eq!(cache.stats(), (1, 3));
        // A task needing memory makes the cache give way.
        let r = budget.try_reserve(900, "task").unwrap();
        assert_eq!(budget.used(), 900);
        drop(r);
    }
}
