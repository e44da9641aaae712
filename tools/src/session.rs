//! One run's executor: the memory budget and threads from [`ExecConfig`],
//! a progress bar on stderr (when it is a terminal and not `--quiet`), and
//! a Ctrl-C handler that cancels the running job cleanly (a second Ctrl-C
//! exits at once with status 130).
//!
//! A cancelled store leaves its output marked incomplete; running the same
//! command with `--resume` finishes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ndstream::{Array, Executor, Progress, StoreOptions, StoreReport};

use crate::config::ExecConfig;

/// An executor with its progress bar.
#[derive(Debug)]
pub struct Session {
    pub exec: Executor,
    bar: Option<ProgressBar>,
    quiet: bool,
}

static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

impl Session {
    /// An executor per `cfg`; `show_progress` asks for a bar (still only on a terminal).
    ///
    /// # Errors
    /// An invalid budget.
    pub fn new(cfg: &ExecConfig, show_progress: bool, quiet: bool) -> anyhow::Result<Session> {
        let bar = (cfg.progress && show_progress).then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} chunks, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar
        });
        let mut b = Executor::builder().memory(cfg.memory).threads(cfg.threads);
        if let Some(bar) = &bar {
            let bar = bar.clone();
            b = b.progress(Arc::new(move |p: &Progress| {
                bar.set_length(p.chunks_total);
                bar.set_position(p.chunks_done);
            }));
        }
        let exec = b
            .build()
            .map_err(|e| crate::config::usage(format!("--memory: {e}")))?;
        let cancel = exec.cancel_handle();
        // Only one handler per process; a second Session (never made by one command) keeps the first.
        let _ = ctrlc::set_handler(move || {
            if INTERRUPTS.fetch_add(1, Ordering::SeqCst) > 0 {
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: stopping (Ctrl-C again to quit at once)");
            cancel.cancel();
        });
        Ok(Session { exec, bar, quiet })
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Compute arrays in one pass.
    ///
    /// # Errors
    /// Library errors (budget, reads, cancellation).
    pub fn compute_many(&self, arrays: &[Array]) -> anyhow::Result<Vec<ndstream::Block>> {
        let r = self.exec.compute_many(arrays);
        self.done();
        Ok(r?)
    }

    /// Store `a` at `dst`, reporting what was written on stderr.
    ///
    /// # Errors
    /// Library errors; an interrupted store says how to resume.
    pub fn store(&self, a: &Array, dst: &str, opts: &StoreOptions) -> anyhow::Result<StoreReport> {
        let t = Instant::now();
        let r = ndstream::store(&self.exec, a, dst, opts);
        self.done();
        let report = match r {
            Err(ndstream::Error::Cancelled) => {
                return Err(anyhow::Error::new(ndstream::Error::Cancelled)).with_context(|| {
                    format!("{dst} is incomplete; run the same command with --resume to finish it")
                })
            }
            Err(e @ (ndstream::Error::Source { .. } | ndstream::Error::Sink { .. })) => {
                return Err(anyhow::Error::new(e)).with_context(|| {
                    format!("writing {dst} failed; it is marked incomplete (--resume continues it)")
                })
            }
            r => r?,
        };
        if !self.quiet {
            eprintln!(
                "wrote {dst}: {} chunks ({}){} in {:.2} s, peak memory {}",
                report.chunks_written,
                ndstream::human_bytes(report.bytes_written),
                if report.chunks_skipped > 0 {
                    format!(", {} already done", report.chunks_skipped)
                } else {
                    String::new()
                },
                t.elapsed().as_secs_f64(),
                ndstream::human_bytes(report.peak_reserved),
            );
        }
        Ok(report)
    }
}
