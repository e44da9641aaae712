//! The runner seam: how a job's numbered tasks get run.
//!
//! A job is tasks `0..total`, each a fixed piece of work that the plan
//! describes ([`Job::task`](crate::physical::Job::task): an output chunk
//! and, for a reduction, the run of chunk tiles it folds). A [`Runner`]
//! runs `work(n)` for every task and hands each result to `merge` strictly
//! in task order on the calling thread, never more than the job's window
//! ahead of the merge; the first error cancels the job. [`Threads`], the
//! worker threads of one process under one memory budget, is the runner
//! today; a process pool or a cluster runs the same tasks from the same
//! plan behind this trait.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use crossbeam_channel::bounded;

use crate::array::EVAL_STACK_BYTES;
use crate::budget::{Budget, Reservation};
use crate::error::{Error, Result};
use crate::eval::EvalCtx;
use crate::kernels::reduce;

/// One message from a worker to the merging thread.
pub(crate) enum Msg {
    /// A map task finished; its output is already delivered and its
    /// memory released (holding it until the in-order merge could starve
    /// the task the merge waits for).
    Chunk {
        n: u64,
        /// False if the chunk was already stored (a resumed write) and
        /// nothing was written.
        written: bool,
    },
    /// The partials of one chunk tile (one per fused reduction).
    Partials {
        n: u64,
        parts: Vec<Option<reduce::Partial>>,
        _res: Reservation,
    },
}

/// A job's tasks as a runner sees them.
pub(crate) struct Tasks<'a> {
    /// Tasks `0..total`.
    pub(crate) total: u64,
    /// How far claims may run ahead of the in-order merge (bounds the
    /// results in flight, and the channel that carries them).
    pub(crate) window: u64,
    /// The caches and the cancel flag the tasks evaluate with.
    pub(crate) ctx: EvalCtx<'a>,
}

/// Runs a job's tasks (see the module docs).
pub(crate) trait Runner {
    /// Run `work(n)` for every task `n` of `tasks` and hand the results to
    /// `merge` in task order.
    ///
    /// # Errors
    /// The first error of a task or of `merge` (a panicking task or merge is
    /// [`Error::WorkerPanic`]); [`Error::Cancelled`] if the job was cancelled.
    fn run(
        &self,
        tasks: &Tasks<'_>,
        work: &(dyn Fn(u64, &EvalCtx<'_>) -> Result<Msg> + Sync),
        merge: &mut dyn FnMut(Msg) -> Result<()>,
    ) -> Result<()>;
}

/// Scoped worker threads of this process: they claim task numbers in
/// order, at most the window ahead of the merge; results travel to the
/// calling thread on a bounded crossbeam channel (capacity = the window).
pub(crate) struct Threads<'a> {
    /// Worker threads (at least one).
    pub(crate) threads: usize,
    /// The budget whose waiters a failure wakes.
    pub(crate) budget: &'a Budget,
    /// The job's cancel flag (set by a failure, or by a `CancelHandle`).
    pub(crate) cancel: &'a AtomicBool,
}

impl Runner for Threads<'_> {
    fn run(
        &self,
        tasks: &Tasks<'_>,
        work: &(dyn Fn(u64, &EvalCtx<'_>) -> Result<Msg> + Sync),
        merge: &mut dyn FnMut(Msg) -> Result<()>,
    ) -> Result<()> {
        let (total, window) = (tasks.total, tasks.window);
        let threads = self.threads.max(1);
        if total == 0 {
            return Ok(());
        }
        let window = window.max(1);
        let claim = Mutex::new((0u64, 0u64)); // (next to claim, merged so far)
        let claim_cv = Condvar::new();
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let fail = |e: Error| {
            let mut g = first_error.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_none() {
                *g = Some(e);
            }
            self.cancel.store(true, Ordering::SeqCst);
            self.budget.cancel();
            claim_cv.notify_all();
        };
        let (tx, rx) = bounded::<Msg>(window as usize);
        let ctx = &tasks.ctx;
        std::thread::scope(|s| {
            for _ in 0..threads {
                let tx = tx.clone();
                let (claim, claim_cv, fail) = (&claim, &claim_cv, &fail);
                let worker = std::thread::Builder::new()
                    .name("ndstream-worker".into())
                    .stack_size(EVAL_STACK_BYTES);
                let spawned = worker.spawn_scoped(s, move || loop {
                    let n = {
                        let mut g = claim.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if self.cancel.load(Ordering::SeqCst) || g.0 >= total {
                                return;
                            }
                            if g.0 < g.1 + window {
                                break;
                            }
                            g = claim_cv.wait(g).unwrap_or_else(|p| p.into_inner());
                        }
                        g.0 += 1;
                        g.0 - 1
                    };
                    let r = catch_unwind(AssertUnwindSafe(|| work(n, ctx)));
                    match r {
                        Ok(Ok(msg)) => {
                            if tx.send(msg).is_err() {
                                return;
                            }
                        }
                        Ok(Err(e)) => {
                            fail(e);
                            return;
                        }
                        Err(p) => {
                            fail(Error::WorkerPanic {
                                task: format!("task {n}"),
                                message: panic_message(p.as_ref()),
                            });
                            return;
                        }
                    }
                });
                if let Err(e) = spawned {
                    fail(Error::ThreadStart {
                        message: e.to_string(),
                    });
                    break;
                }
            }
            drop(tx);
            // Merge strictly in order.
            let mut pending: BTreeMap<u64, Msg> = BTreeMap::new();
            let mut next = 0u64;
            while next < total {
                let msg = match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break, // all workers gone: an error or cancellation
                };
                let n = match &msg {
                    Msg::Chunk { n, .. } | Msg::Partials { n, .. } => *n,
                };
                pending.insert(n, msg);
                while let Some(m) = pending.remove(&next) {
                    // A panic here (in a progress callback, say) must still
                    // wake the workers waiting for the window, or the scope
                    // would wait for them for ever.
                    let merged = catch_unwind(AssertUnwindSafe(|| merge(m))).unwrap_or_else(|p| {
                        Err(Error::WorkerPanic {
                            task: format!("merging task {next}"),
                            message: panic_message(p.as_ref()),
                        })
                    });
                    if let Err(e) = merged {
                        fail(e);
                        break;
                    }
                    next += 1;
                    let mut g = claim.lock().unwrap_or_else(|p| p.into_inner());
                    g.1 = next;
                    claim_cv.notify_all();
                }
                if self.cancel.load(Ordering::SeqCst) {
                    break;
                }
            }
            // Stop the workers (they see the flag or a closed channel).
            if next < total {
                self.cancel.store(true, Ordering::SeqCst);
                self.budget.cancel();
                claim_cv.notify_all();
            }
            drop(rx);
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        if self.cancel.load(Ordering::SeqCst) {
            return Err(Error::Cancelled);
        }
        Ok(())
    }
}

/// The message a panic carried, if it is a string.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string())
}
