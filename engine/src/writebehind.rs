//! Write-behind: finished chunks handed to I/O threads that write them,
//! for sinks whose every write is a request with latency (an object store;
//! [`ChunkSink::write_behind`]).
//!
//! A worker that wrote each chunk itself would wait a request's latency per
//! chunk, so a store answering in 20–50 ms would be written at `threads /
//! latency` chunks per second. Instead the worker hands the chunk, with its
//! task's reservation, to a bounded queue and claims its next task; a few
//! writer threads call [`ChunkSink::write_chunk`]. A chunk's memory stays
//! reserved until its write ends, so the chunks waiting to be written are
//! inside the budget (a full budget holds the next task back, as a slow
//! disk would); the queue holds at most as many chunks as there are
//! writers. Writers are only as many as the room the job leaves beside
//! its workers pays for, each with its own per-thread memory. The first failed write cancels the job and is its error; the
//! job returns (and the sink is finished) only after every write handed
//! over has ended, so a finished store holds every chunk, and an
//! interrupted one is incomplete and resumable as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::block::Block;
use crate::budget::{lock, Budget, Reservation};
use crate::error::{Error, Result};
use crate::readahead::IO_THREAD_BYTES;
use crate::source::ChunkSink;

/// Writers at most, whatever the sink asks.
const MAX_WRITERS: usize = 64;

type Item = (Vec<u64>, Block, Reservation);

/// The write-behind of one job (see the module docs).
pub(crate) struct WriteBehind<'a> {
    /// The writers' own memory ([`IO_THREAD_BYTES`] each).
    _threads: Reservation,
    sink: &'a dyn ChunkSink,
    writers: usize,
    tx: Mutex<Option<Sender<Item>>>,
    rx: Receiver<Item>,
    cancel: &'a AtomicBool,
    budget: &'a Budget,
    error: Mutex<Option<Error>>,
}

impl<'a> WriteBehind<'a> {
    /// A write-behind into `sink`, or `None` for a sink that writes where
    /// it is called (`write_behind() == 0`).
    ///
    /// Each writer holds [`IO_THREAD_BYTES`] of `budget` for the job, and
    /// each chunk handed over keeps its task's `chunk_bytes`: the writers
    /// are as many as `room` pays for (none: the workers write).
    pub(crate) fn new(
        sink: &'a dyn ChunkSink,
        room: u64,
        chunk_bytes: u64,
        cancel: &'a AtomicBool,
        budget: &'a Budget,
    ) -> Option<WriteBehind<'a>> {
        // A writer and the chunk it writes, and one waiting for it.
        let fit = room / IO_THREAD_BYTES.saturating_add(chunk_bytes.saturating_mul(2));
        let writers = (sink.write_behind().min(MAX_WRITERS) as u64).min(fit) as usize;
        if writers == 0 {
            return None;
        }
        let threads = budget.try_reserve_no_evict(writers as u64 * IO_THREAD_BYTES)?;
        let (tx, rx) = bounded(writers);
        Some(WriteBehind {
            _threads: threads,
            sink,
            writers,
            tx: Mutex::new(Some(tx)),
            rx,
            cancel,
            budget,
            error: Mutex::new(None),
        })
    }

    /// Bytes of the job's room the write-behind may hold: its writers'
    /// own, and a chunk being written and one waiting for each.
    pub(crate) fn room_used(&self, chunk_bytes: u64) -> u64 {
        self.writers as u64 * IO_THREAD_BYTES.saturating_add(chunk_bytes.saturating_mul(2))
    }

    /// The writer threads to run [`writer`](Self::writer) on.
    pub(crate) fn writers(&self) -> usize {
        self.writers
    }

    /// Hand chunk `idx` over to be written, with the reservation that
    /// holds its memory; waits while every writer is busy and the queue
    /// is full.
    ///
    /// # Errors
    /// [`Error::Cancelled`] once the job has failed or been cancelled.
    pub(crate) fn write(&self, idx: Vec<u64>, block: Block, res: Reservation) -> Result<()> {
        let tx = lock(&self.tx).clone();
        match tx {
            Some(tx) if !self.cancel.load(Ordering::Relaxed) => {
                tx.send((idx, block, res)).map_err(|_| Error::Cancelled)
            }
            _ => Err(Error::Cancelled),
        }
    }

    /// No more chunks: the writers end when the queue is empty.
    pub(crate) fn close(&self) {
        lock(&self.tx).take();
    }

    /// A writer thread: write what is handed over until the queue closes.
    /// After a failure (of any writer, or of the job) the rest is dropped
    /// unwritten.
    pub(crate) fn writer(&self) {
        for (idx, block, res) in self.rx.iter() {
            if self.cancel.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(e) = self.sink.write_chunk(&idx, &block) {
                let mut g = lock(&self.error);
                if g.is_none() {
                    *g = Some(e);
                }
                self.cancel.store(true, Ordering::SeqCst);
                self.budget.cancel();
            }
            drop((block, res));
        }
    }

    /// The first failed write, if any.
    pub(crate) fn take_error(&self) -> Option<Error> {
        lock(&self.error).take()
    }
}
