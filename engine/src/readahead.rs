//! Read-ahead: chunk reads kept in flight ahead of the workers, for sources
//! whose every read is a request with latency (an object store, a web
//! server; [`ChunkSource::read_ahead`]).
//!
//! A worker reads one chunk at a time, so a store that answers each request
//! in 20–50 ms would be read at `threads / latency` chunks per second,
//! whatever its bandwidth. While a job runs, a few I/O threads of the job
//! walk its tasks in the order the workers claim them, work out which
//! chunks of such sources each task will read (its *footprint*: the same
//! selections evaluation asks for, passed down the expression), and read
//! them before the workers ask. A worker that asks for a chunk takes it
//! from here, waits for it if its read is under way, or reads it itself if
//! the read-ahead has not reached it.
//!
//! Two ways to keep reads in flight:
//! - *fetching*, where every such source [`fetches`](ChunkSource::fetches)
//!   (an object store: its requests are driven by the store's own I/O
//!   runtime): one I/O thread starts each read and goes on, the stored
//!   bytes arrive on the runtime's threads, and the worker that takes a
//!   chunk decodes it ([`ChunkSource::decode_fetched`]). Reads in flight
//!   cost their bytes, not a thread each.
//! - otherwise one I/O thread per read in flight, each calling
//!   [`ChunkSource::read_chunk`] (a read blocks its thread for the
//!   request's latency).
//!
//! Memory: each chunk read ahead holds a reservation of the source's
//! [`chunk_read_bytes`](ChunkSource::chunk_read_bytes) from the job's
//! budget, from before its read starts until a worker takes it (the
//! worker's task has reserved the chunk's bytes already, as it does without
//! read-ahead), and each I/O thread holds [`IO_THREAD_BYTES`] for the job
//! (fetching: [`FETCH_IO_BYTES`] in all). The read-ahead uses only what the
//! job leaves free when every worker holds its largest task, so a task can
//! always be admitted: the number of chunks ahead (the *slots*) is that
//! room divided by a chunk's bytes (plus a thread's, where each slot has
//! one), capped by the sources' own [`read_ahead`](ChunkSource::read_ahead)
//! and by [`MAX_SLOTS`] ([`MAX_FETCHES`] fetching). A budget with no such
//! room gets no read-ahead, and the job runs as before.
//!
//! Results do not depend on it: a chunk read ahead is the same chunk of the
//! same source (`read_chunk`, or `decode_fetched` of its stored bytes), and
//! only where it is read changes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::array::{Array, Op};
use crate::block::Block;
use crate::budget::{lock, Budget, Reservation};
use crate::error::Result;
use crate::eval::{broadcast_sel, select_child_sel, ReduceSetup};
use crate::grid::{AxisSel, Selection};
use crate::source::{ChunkSource, Fetched};

/// A chunk of a source node: (node id, chunk index).
type Key = (u64, Vec<u64>);

/// What a task reads: `plan(n, out)` appends task `n`'s chunks to `out`.
type PlanFn<'a> = dyn Fn(u64, &mut Vec<Want>) + Sync + 'a;

/// Most chunks kept ahead of the workers by I/O threads (one thread each),
/// whatever the budget allows.
pub(crate) const MAX_SLOTS: usize = 64;

/// Most chunks kept ahead of the workers by fetching, whatever the budget
/// allows: at 20–50 ms per request, 256 requests at once move 1.3–3.2 GB/s
/// of 250 KB chunks, more than the workers decode.
pub(crate) const MAX_FETCHES: usize = 256;

/// How long a cancelled or failed job waits for its fetches under way
/// (a request to a store answers in tens of milliseconds; one that hangs
/// must not hold up Ctrl-C).
const FETCH_GRACE: Duration = Duration::from_millis(500);

/// What fetching costs besides the chunks it holds: the store's I/O
/// runtime threads (two, see `ndstream-formats`' `remote`), whose
/// allocator caches hold freed request buffers, like an I/O thread's.
pub(crate) const FETCH_IO_BYTES: u64 = 2 * IO_THREAD_BYTES;

/// What an I/O thread costs besides the chunks it holds: the allocator's
/// per-thread caches of freed chunk-sized buffers. Measured on a 2-core
/// machine reading 250 KB zstd chunks from a loopback S3 server: peak RSS
/// grew by about 10 MB per thread, with mimalloc (the CLI) and glibc
/// (Python) alike. Reserved from the budget for each I/O thread while it
/// runs, so that threads the budget cannot pay for are not started.
pub(crate) const IO_THREAD_BYTES: u64 = 10 << 20;

/// One chunk a task will read.
#[derive(Clone)]
pub(crate) struct Want {
    id: u64,
    src: Arc<dyn ChunkSource>,
    idx: Vec<u64>,
}

/// The chunks of latency-bound sources that evaluating `a` at `sel` reads,
/// in the order evaluation reads them, appended to `out`. Nodes whose reads
/// depend on data or on a layout change (reshape, scans, `map_blocks`)
/// contribute nothing: their chunks are read by the workers as usual.
pub(crate) fn footprint(a: &Array, sel: &[AxisSel], out: &mut Vec<Want>) {
    walk(a, sel, out, &mut HashSet::new());
}

fn walk(a: &Array, sel: &[AxisSel], out: &mut Vec<Want>, seen: &mut HashSet<(u64, Selection)>) {
    if !crate::eval::has_io(a) || !seen.insert((a.id(), sel.to_vec())) {
        return;
    }
    match a.op() {
        Op::Source { src } => {
            if src.read_ahead() == 0 || src.supports_selection() {
                return;
            }
            let grid = src.grid();
            let per_axis: Vec<Vec<u64>> = grid
                .axes()
                .iter()
                .zip(sel)
                .map(|(ax, s)| {
                    ax.chunks_overlapping(&s.bounds())
                        .filter(|&c| {
                            let r = s.intersect(&ax.range(c));
                            r.end > r.start
                        })
                        .collect()
                })
                .collect();
            if per_axis.iter().any(Vec::is_empty) {
                return;
            }
            // Every combination, last axis fastest (the order gather reads).
            let mut odo = vec![0usize; per_axis.len()];
            loop {
                out.push(Want {
                    id: a.id(),
                    src: Arc::clone(src),
                    idx: odo.iter().zip(&per_axis).map(|(&i, v)| v[i]).collect(),
                });
                let mut d = odo.len();
                loop {
                    if d == 0 {
                        return;
                    }
                    d -= 1;
                    odo[d] += 1;
                    if odo[d] < per_axis[d].len() {
                        break;
                    }
                    odo[d] = 0;
                }
            }
        }
        Op::Unary { x, .. }
        | Op::Cast { x }
        | Op::Clip { x, .. }
        | Op::Tri { x, .. }
        | Op::Rechunk { x } => walk(x, sel, out, seen),
        Op::Masked { x, mask } => {
            walk(x, sel, out, seen);
            walk(mask, sel, out, seen);
        }
        Op::Binary { a: x, b: y, .. } => {
            walk(x, &broadcast_sel(sel, x.shape()), out, seen);
            walk(y, &broadcast_sel(sel, y.shape()), out, seen);
        }
        Op::Where { cond, a: x, b: y } => {
            walk(cond, &broadcast_sel(sel, cond.shape()), out, seen);
            walk(x, &broadcast_sel(sel, x.shape()), out, seen);
            walk(y, &broadcast_sel(sel, y.shape()), out, seen);
        }
        Op::Select { x, items } => walk(x, &select_child_sel(x, items, sel), out, seen),
        Op::Stack { xs, axis } => {
            let s = sel[*axis];
            let mut rest: Selection = sel.to_vec();
            rest.remove(*axis);
            for i in 0..s.len {
                walk(&xs[s.index(i) as usize], &rest, out, seen);
            }
        }
        Op::Concat { xs, axis } => {
            let s = sel[*axis];
            let mut offset = 0;
            for x in xs {
                let n = x.shape()[*axis];
                let r = s.intersect(&(offset..offset + n));
                if r.end > r.start {
                    let mut sub: Selection = sel.to_vec();
                    let mut local = s.sub(r);
                    local.start -= offset;
                    sub[*axis] = local;
                    walk(x, &sub, out, seen);
                }
                offset += n;
            }
        }
        Op::Transpose { x, perm } => {
            let mut child = vec![AxisSel::full(0); perm.len()];
            for (j, &p) in perm.iter().enumerate() {
                child[p] = sel[j];
            }
            walk(x, &child, out, seen);
        }
        Op::Reduce { x, .. } => {
            if let Some(setup) = ReduceSetup::of(a) {
                walk(x, &setup.in_sel(sel), out, seen);
            }
        }
        // Reads that depend on a layout change or a user function: left to
        // the workers.
        Op::Reshape { .. } | Op::Scan { .. } | Op::ScanCarry { .. } | Op::MapBlocks { .. } => {}
        Op::Memory { .. } | Op::Random { .. } | Op::Full { .. } | Op::Arange { .. } => {}
    }
}

/// What the latency-bound sources under `roots` ask of a read-ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wanted {
    /// The most reads any of them asks to keep in flight (0: none of them
    /// is latency-bound, and a job needs no read-ahead).
    pub(crate) depth: usize,
    /// The largest chunk any of them reads.
    pub(crate) chunk_bytes: u64,
    /// Every one of them [fetches](ChunkSource::fetches).
    pub(crate) fetching: bool,
}

/// What the latency-bound sources under `roots` ask of a read-ahead.
pub(crate) fn wanted(roots: &[&Array]) -> Wanted {
    let mut w = Wanted {
        depth: 0,
        chunk_bytes: 0,
        fetching: true,
    };
    for r in roots {
        for s in r.sources() {
            let d = s.read_ahead();
            if d > 0 && !s.supports_selection() {
                w.depth = w.depth.max(d);
                w.chunk_bytes = w.chunk_bytes.max(s.chunk_read_bytes());
                w.fetching &= s.fetches();
            }
        }
    }
    w.fetching &= w.depth > 0;
    w
}

enum Entry {
    /// An I/O thread is reading it (or its fetch is under way), for task
    /// `task`.
    Reading { task: u64 },
    /// Read, waiting for a worker; its bytes are reserved.
    Ready {
        task: u64,
        block: Block,
        _res: Reservation,
    },
    /// Fetched, waiting for a worker to decode it; its bytes are reserved.
    Fetched {
        task: u64,
        data: Fetched,
        _res: Reservation,
    },
    /// Read by a worker itself (or the read-ahead's read failed, and the
    /// worker reads it again to report the error); not to be read ahead.
    Gone { task: u64 },
}

impl Entry {
    fn task(&self) -> u64 {
        match self {
            Entry::Reading { task }
            | Entry::Ready { task, .. }
            | Entry::Fetched { task, .. }
            | Entry::Gone { task } => *task,
        }
    }
    fn holds_slot(&self) -> bool {
        !matches!(self, Entry::Gone { .. })
    }
}

struct State {
    /// The next task whose footprint is planned.
    next_task: u64,
    /// Planned reads not started, with their tasks.
    queue: VecDeque<(u64, Want)>,
    entries: HashMap<Key, Entry>,
    /// Entries that hold a slot (reading or ready).
    in_use: usize,
    /// Tasks claimed by the workers so far (the highest claimed + 1).
    claimed: u64,
    /// One bit per task: over (its reads ahead are no longer wanted).
    over: Vec<u64>,
    /// Fetches started and not yet done.
    fetching: usize,
    stopped: bool,
}

impl State {
    fn is_over(&self, n: u64) -> bool {
        self.over
            .get((n / 64) as usize)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }
}

thread_local! {
    /// The task this worker thread is running (set by the job's runner).
    static TASK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Run `f` as task `n` on this thread (what [`ReadAhead::read`] files a
/// chunk read here under).
pub(crate) fn as_task<R>(n: u64, f: impl FnOnce() -> R) -> R {
    let before = TASK.with(|t| t.replace(n));
    let r = f();
    TASK.with(|t| t.set(before));
    r
}

/// What the job's threads and the fetches' completions share.
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Wait for a change, at most `ms` milliseconds.
    fn wait<'g>(&self, g: MutexGuard<'g, State>, ms: u64) -> MutexGuard<'g, State> {
        self.changed
            .wait_timeout(g, Duration::from_millis(ms))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    /// The fetch of `key` is done: keep its bytes for a worker (under
    /// `res`), or give its slot back where its task no longer wants it or
    /// the fetch failed (the worker then reads the chunk itself and
    /// reports the error, as it would have).
    fn fetched(&self, key: Key, got: Result<Fetched>, res: Reservation) {
        let mut g = self.lock();
        let task = match g.entries.get(&key) {
            Some(Entry::Reading { task }) => Some(*task),
            // The job gave every chunk back already.
            _ => None,
        };
        let unwanted = match (task, got) {
            (Some(task), Ok(data)) if !g.is_over(task) && !g.stopped => {
                g.entries.insert(
                    key,
                    Entry::Fetched {
                        task,
                        data,
                        _res: res,
                    },
                );
                None
            }
            (Some(task), got) => {
                if got.is_ok() {
                    g.entries.remove(&key);
                } else {
                    g.entries.insert(key, Entry::Gone { task });
                }
                g.in_use -= 1;
                Some((got, res))
            }
            (None, got) => Some((got, res)),
        };
        // Given back before the fetch counts as done, so that a job that
        // waited for its fetches holds none of their bytes.
        drop(unwanted);
        g.fetching -= 1;
        self.changed.notify_all();
    }
}

/// The read-ahead of one job (see the module docs).
pub(crate) struct ReadAhead<'a> {
    /// The I/O threads' own memory ([`IO_THREAD_BYTES`] each, or
    /// [`FETCH_IO_BYTES`] when fetching).
    _threads: Reservation,
    total: u64,
    /// How many tasks past the last claimed one are planned.
    lookahead: u64,
    slots: usize,
    /// Reads are started by fetching, from one I/O thread.
    fetching: bool,
    chunk_bytes: u64,
    plan: Box<PlanFn<'a>>,
    budget: &'a Budget,
    cancel: &'a AtomicBool,
    shared: Arc<Shared>,
}

impl<'a> ReadAhead<'a> {
    /// A read-ahead over tasks `0..total`, whose task `n` reads what
    /// `plan(n, out)` appends, for sources that ask for `want`, holding at
    /// most `room` bytes of `budget`; `None` when that leaves no slot.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        total: u64,
        lookahead: u64,
        want: Wanted,
        room: u64,
        budget: &'a Budget,
        cancel: &'a AtomicBool,
        plan: impl Fn(u64, &mut Vec<Want>) + Sync + 'a,
    ) -> Option<ReadAhead<'a>> {
        let chunk_bytes = want.chunk_bytes.max(1);
        let (fit, most, thread_bytes) = if want.fetching {
            (
                room.saturating_sub(FETCH_IO_BYTES) / chunk_bytes,
                MAX_FETCHES,
                FETCH_IO_BYTES,
            )
        } else {
            (
                room / chunk_bytes.saturating_add(IO_THREAD_BYTES),
                MAX_SLOTS,
                IO_THREAD_BYTES,
            )
        };
        let slots = (want.depth.min(most) as u64).min(fit) as usize;
        if slots == 0 || total == 0 {
            return None;
        }
        let threads = if want.fetching { 1 } else { slots as u64 };
        let threads = budget.try_reserve_no_evict(threads * thread_bytes)?;
        Some(ReadAhead {
            _threads: threads,
            total,
            lookahead: lookahead.max(1),
            slots,
            fetching: want.fetching,
            chunk_bytes,
            plan: Box::new(plan),
            budget,
            cancel,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    next_task: 0,
                    queue: VecDeque::new(),
                    entries: HashMap::new(),
                    in_use: 0,
                    claimed: 0,
                    over: vec![0; total.div_ceil(64) as usize],
                    fetching: 0,
                    stopped: false,
                }),
                changed: Condvar::new(),
            }),
        })
    }

    /// The I/O threads to run [`io_loop`](Self::io_loop) on: one per slot
    /// (a read blocks its thread for the request's latency), or one that
    /// starts every fetch.
    pub(crate) fn io_threads(&self) -> usize {
        if self.fetching {
            1
        } else {
            self.slots
        }
    }

    /// A worker claimed task `n`.
    pub(crate) fn claimed(&self, n: u64) {
        let mut g = self.shared.lock();
        if n + 1 > g.claimed {
            g.claimed = n + 1;
            self.shared.changed.notify_all();
        }
    }

    /// Task `n` is over: chunks read ahead for it and not taken (a chunk
    /// the cache already held, a resumed chunk skipped) give their slots back.
    pub(crate) fn finished(&self, n: u64) {
        let mut g = self.shared.lock();
        if let Some(w) = g.over.get_mut((n / 64) as usize) {
            *w |= 1 << (n % 64);
        }
        let before = g.entries.len();
        let mut freed = 0;
        let mut dropped = Vec::new();
        let entries = std::mem::take(&mut g.entries);
        for (k, e) in entries {
            if e.task() == n && !matches!(e, Entry::Reading { .. }) {
                if e.holds_slot() {
                    freed += 1;
                }
                dropped.push(e);
            } else {
                g.entries.insert(k, e);
            }
        }
        g.in_use -= freed;
        if g.entries.len() != before {
            self.shared.changed.notify_all();
        }
        drop(g);
        drop(dropped);
    }

    /// Stop the I/O threads (the job is over).
    pub(crate) fn stop(&self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_all();
    }

    /// Give back every chunk still held (after the I/O threads have ended),
    /// once the fetches under way are done. A cancelled (or failed) job
    /// waits for them at most [`FETCH_GRACE`]; a fetch done later gives its
    /// own reservation back.
    pub(crate) fn clear(&self) {
        let start = std::time::Instant::now();
        let mut g = self.shared.lock();
        while g.fetching > 0
            && (!self.cancel.load(Ordering::Relaxed) || start.elapsed() < FETCH_GRACE)
        {
            g = self.shared.wait(g, 10);
        }
        let entries = std::mem::take(&mut g.entries);
        g.queue.clear();
        g.in_use = 0;
        drop(g);
        drop(entries);
    }

    /// Chunk `idx` of source node `id`: read ahead, waited for if its read
    /// is under way, or read here.
    ///
    /// # Errors
    /// As [`ChunkSource::read_chunk`].
    pub(crate) fn read(&self, id: u64, src: &dyn ChunkSource, idx: &[u64]) -> Result<Block> {
        let key = (id, idx.to_vec());
        let mut g = self.shared.lock();
        loop {
            match g.entries.get(&key) {
                Some(Entry::Reading { .. }) => {
                    g = self.shared.wait(g, 50);
                    if self.cancel.load(Ordering::Relaxed) {
                        break;
                    }
                }
                Some(Entry::Ready { task, .. } | Entry::Fetched { task, .. }) => {
                    let task = *task;
                    let taken = g.entries.insert(key.clone(), Entry::Gone { task });
                    g.in_use -= 1;
                    self.shared.changed.notify_all();
                    drop(g);
                    return match taken {
                        Some(Entry::Ready { block, .. }) => Ok(block),
                        Some(Entry::Fetched { data, .. }) => src.decode_fetched(idx, data),
                        _ => src.read_chunk(idx),
                    };
                }
                Some(Entry::Gone { .. }) => break,
                None => {
                    // Not reached yet: read here, and keep the read-ahead
                    // from reading it again for this task.
                    let task = TASK.with(|t| t.get());
                    g.entries.insert(key, Entry::Gone { task });
                    break;
                }
            }
        }
        drop(g);
        src.read_chunk(idx)
    }

    /// An I/O thread: read (or start fetching) the planned chunks, in task
    /// order, while slots and budget room are free.
    pub(crate) fn io_loop(&self) {
        let mut plan_buf = Vec::new();
        let mut g = self.shared.lock();
        loop {
            if g.stopped || self.cancel.load(Ordering::Relaxed) {
                return;
            }
            if g.in_use < self.slots {
                if let Some((task, w)) = g.queue.pop_front() {
                    if g.is_over(task) {
                        continue;
                    }
                    let key = (w.id, w.idx.clone());
                    if let Some(e) = g.entries.get_mut(&key) {
                        // Read already (or being read) for an earlier task:
                        // keep it for this one too.
                        let t = task.max(e.task());
                        match e {
                            Entry::Reading { task }
                            | Entry::Ready { task, .. }
                            | Entry::Fetched { task, .. } => *task = t,
                            Entry::Gone { .. } => {}
                        }
                        continue;
                    }
                    let Some(res) = self.reserve() else {
                        // The workers hold the room for now: wait for them.
                        g.queue.push_front((task, w));
                        g = self.shared.wait(g, 20);
                        continue;
                    };
                    g.entries.insert(key.clone(), Entry::Reading { task });
                    g.in_use += 1;
                    if self.fetching {
                        g.fetching += 1;
                        drop(g);
                        let shared = Arc::clone(&self.shared);
                        w.src
                            .fetch(&w.idx, Box::new(move |got| shared.fetched(key, got, res)));
                        g = self.shared.lock();
                        continue;
                    }
                    drop(g);
                    let got = w.src.read_chunk(&w.idx);
                    g = self.shared.lock();
                    let task = g.entries.get(&key).map(Entry::task).unwrap_or(task);
                    match got {
                        Ok(_) if g.is_over(task) => {
                            // Its task ended without it.
                            g.entries.remove(&key);
                            g.in_use -= 1;
                        }
                        Ok(block) => {
                            g.entries.insert(
                                key,
                                Entry::Ready {
                                    task,
                                    block,
                                    _res: res,
                                },
                            );
                        }
                        Err(_) => {
                            // The worker reads it again and reports the error.
                            g.entries.insert(key, Entry::Gone { task });
                            g.in_use -= 1;
                        }
                    }
                    self.shared.changed.notify_all();
                    continue;
                }
                if g.next_task < self.total && g.next_task < g.claimed + self.lookahead {
                    let n = g.next_task;
                    g.next_task += 1;
                    // The footprint walk runs unlocked, so that workers
                    // taking chunks never wait for it; another I/O thread
                    // may queue a later task meanwhile, so this one's reads
                    // go in before those.
                    drop(g);
                    plan_buf.clear();
                    (self.plan)(n, &mut plan_buf);
                    g = self.shared.lock();
                    let at = g
                        .queue
                        .iter()
                        .position(|(t, _)| *t > n)
                        .unwrap_or(g.queue.len());
                    for (i, w) in plan_buf.drain(..).enumerate() {
                        g.queue.insert(at + i, (n, w));
                    }
                    continue;
                }
            }
            g = self.shared.wait(g, 50);
        }
    }

    /// One chunk's bytes, if the read-ahead's room and the budget have them.
    /// Never evicts the cache: what it holds was read once already, and
    /// the read-ahead's slots fit its room by construction.
    fn reserve(&self) -> Option<Reservation> {
        self.budget.try_reserve_no_evict(self.chunk_bytes)
    }
}

impl std::fmt::Debug for ReadAhead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("slots", &self.slots)
            .field("fetching", &self.fetching)
            .field("chunk_bytes", &self.chunk_bytes)
            .finish()
    }
}
