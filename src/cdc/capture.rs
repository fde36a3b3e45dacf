//! The one way to run change capture until a stop condition: [`Capture::start`] runs the loop
//! (with retries of transient failures, see `retry.rs`) in a task of its own and returns a
//! [`CaptureHandle`]. It stops on an explicit [`Stopper::stop`], on Ctrl-C or SIGTERM and once
//! the plan is cut over when the [`CapturePolicy`] says so, or once caught up when the job
//! says so ([`CdcJob::exit_when_caught_up`]). `pgmove apply`, `pgmove cutover`'s own applier and
//! `cutover.mode: auto` all run it through here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::retry::{self, RetryPolicy};
use super::{CdcError, CdcJob, CdcOutcome};
use crate::pg::Endpoint;

/// When change capture stops, besides an explicit [`Stopper::stop`] and the job's
/// `exit_when_caught_up`, and how it retries.
#[derive(Default)]
pub struct CapturePolicy {
    /// On Ctrl-C or SIGTERM (finishing the batch in hand), counted from when the handlers were
    /// installed ([`StopSignal::install`]).
    pub on_signal: Option<StopSignal>,
    /// Once `pgmove.cutover` says the plan is cut over (by `pgmove cutover` in another
    /// process, or `cutover.mode: auto`); [`Stopper::is_cut_over`] tells it afterwards.
    pub on_cut_over: bool,
    pub retry: RetryPolicy,
}

impl CapturePolicy {
    /// `pgmove apply`: until Ctrl-C or SIGTERM (since `signal` was installed), or the cutover.
    pub fn apply(signal: StopSignal) -> CapturePolicy {
        CapturePolicy {
            on_signal: Some(signal),
            on_cut_over: true,
            retry: RetryPolicy::default(),
        }
    }

    /// Until stopped through the handle (`pgmove cutover`'s own applier).
    pub fn until_stopped() -> CapturePolicy {
        CapturePolicy::default()
    }
}

/// Ctrl-C and SIGTERM, caught from [`StopSignal::install`] on: install it before the run
/// reaches a point a supervisor may signal at (the phase `loaded`), and a signal sent then
/// stops change capture cleanly once it runs instead of killing the process.
pub struct StopSignal(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl StopSignal {
    /// Installs the handlers now (call it inside the runtime).
    pub fn install() -> StopSignal {
        StopSignal(Box::pin(stop_signal()))
    }
}

/// Change capture, started.
pub struct Capture;

impl Capture {
    /// Starts change capture for `job` in a task of its own (call it inside the runtime), with
    /// the watchers `policy` asks for.
    pub fn start(job: CdcJob, policy: CapturePolicy) -> CaptureHandle {
        let (tx, rx) = watch::channel(false);
        let stopper = Stopper {
            tx: Arc::new(tx),
            cut_over: Arc::new(AtomicBool::new(false)),
        };
        let mut watchers = Vec::new();
        if let Some(signal) = policy.on_signal {
            let s = stopper.clone();
            watchers.push(tokio::spawn(async move {
                signal.0.await;
                s.stop();
            }));
        }
        if policy.on_cut_over {
            watchers.push(tokio::spawn(watch_cutover(
                job.target.clone(),
                job.plan_name.clone(),
                stopper.clone(),
            )));
        }
        let retry = policy.retry;
        let task = tokio::spawn(async move { retry::run(&job, rx, &retry).await });
        CaptureHandle {
            stopper,
            task: Some(task),
            watchers,
        }
    }
}

/// Stops change capture; cloned to whoever may stop it.
#[derive(Clone, Debug)]
pub struct Stopper {
    tx: Arc<watch::Sender<bool>>,
    cut_over: Arc<AtomicBool>,
}

impl Stopper {
    /// Asks change capture to stop: it finishes the batch in hand (whole transactions) and
    /// returns what it applied.
    pub fn stop(&self) {
        let _ = self.tx.send(true);
    }

    /// The plan is cut over: change capture stops, and [`Stopper::is_cut_over`] says why.
    pub fn stop_cut_over(&self) {
        self.cut_over.store(true, Ordering::SeqCst);
        self.stop();
    }

    /// Whether change capture stopped (or is stopping) because the plan is cut over.
    pub fn is_cut_over(&self) -> bool {
        self.cut_over.load(Ordering::SeqCst)
    }

    fn is_stopping(&self) -> bool {
        *self.tx.borrow()
    }
}

/// Change capture running. Dropping it without [`CaptureHandle::wait`] stops it (the task
/// finishes the batch in hand on its own).
pub struct CaptureHandle {
    stopper: Stopper,
    task: Option<JoinHandle<Result<CdcOutcome, CdcError>>>,
    watchers: Vec<JoinHandle<()>>,
}

impl CaptureHandle {
    /// What stops it, for another task.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Asks it to stop (see [`Stopper::stop`]).
    pub fn stop(&self) {
        self.stopper.stop();
    }

    /// Whether it has ended (stopped, caught up, or failed), without waiting.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits until it ends: what it applied, or why it failed.
    pub async fn wait(mut self) -> Result<CdcOutcome, CdcError> {
        let result = match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| CdcError::Task(format!("change capture task: {e}"))),
            None => Err(CdcError::Task(
                "change capture was already waited for".into(),
            )),
        };
        result?
    }

    /// [`CaptureHandle::stop`], then [`CaptureHandle::wait`].
    pub async fn stop_and_wait(self) -> Result<CdcOutcome, CdcError> {
        self.stop();
        self.wait().await
    }
}

impl Drop for CaptureHandle {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.stopper.stop();
        }
        for w in &self.watchers {
            w.abort();
        }
    }
}

/// Returns on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: a signal sent in between is not missed.
#[cfg(unix)]
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        match (interrupt, terminate) {
            (Some(mut i), Some(mut t)) => {
                tokio::select! {
                    _ = i.recv() => {}
                    _ = t.recv() => {}
                }
            }
            (Some(mut s), None) | (None, Some(mut s)) => {
                s.recv().await;
            }
            // No handler could be installed: as tokio's `ctrl_c` failing, stop at once.
            (None, None) => {}
        }
    }
}

/// Returns on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Stops change capture (through `stop`) once `pgmove.cutover` says the plan is cut over.
async fn watch_cutover(target: Endpoint, plan: String, stop: Stopper) {
    let mut client = None;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if stop.is_stopping() {
            return;
        }
        if client.is_none() {
            client = target.connect().await.ok();
        }
        let Some(c) = client.as_ref() else { continue };
        match crate::state::cutover::state(c, &plan).await {
            Ok(Some(crate::state::CutoverState::Done)) => {
                tracing::info!("cutover done: change capture stops");
                stop.stop_cut_over();
                return;
            }
            Ok(_) => {}
            Err(_) => client = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job whose servers do not answer: the loop fails to connect, a transient failure it
    /// retries until stopped.
    fn unreachable_job() -> CdcJob {
        let ep = |side| {
            Endpoint::from_dsn(side, "postgres://nobody@127.0.0.1:1/app", None, &|_| None)
                .expect("a valid DSN")
        };
        CdcJob {
            plan_name: "p".into(),
            source: ep(crate::pg::Side::Source),
            target: ep(crate::pg::Side::Target),
            slot: "pgmove_p".into(),
            publication: "pgmove_p".into(),
            table_lsns: Default::default(),
            batch_changes: 10,
            memory_limit: 1 << 20,
            exit_when_caught_up: false,
            ddl: None,
        }
    }

    #[tokio::test]
    async fn an_explicit_stop_ends_capture_while_it_retries() {
        let h = Capture::start(unreachable_job(), CapturePolicy::until_stopped());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!h.is_finished(), "it retries until stopped");
        let out = tokio::time::timeout(Duration::from_secs(10), h.stop_and_wait())
            .await
            .expect("stops in time")
            .expect("a stop while retrying is not a failure");
        assert_eq!((out.transactions, out.changes), (0, 0));
    }

    #[tokio::test]
    async fn a_dropped_handle_stops_capture_and_a_cut_over_is_told() {
        let h = Capture::start(unreachable_job(), CapturePolicy::until_stopped());
        let stopper = h.stopper();
        assert!(!stopper.is_cut_over());
        stopper.stop_cut_over();
        assert!(stopper.is_stopping() && stopper.is_cut_over());
        drop(h);
        let h = Capture::start(unreachable_job(), CapturePolicy::until_stopped());
        let stopper = h.stopper();
        drop(h);
        assert!(stopper.is_stopping(), "dropping the handle stops capture");
        assert!(!stopper.is_cut_over());
    }

    /// The handlers are in place once installed: a SIGTERM sent before capture starts stops it
    /// (it finishes what it has in hand) instead of killing the process.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_sigterm_right_after_start_stops_capture() {
        let policy = CapturePolicy {
            on_signal: Some(StopSignal::install()),
            ..CapturePolicy::until_stopped()
        };
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let h = Capture::start(unreachable_job(), policy);
        let out = tokio::time::timeout(Duration::from_secs(10), h.wait())
            .await
            .expect("the signal stops capture in time")
            .expect("a stop while retrying is not a failure");
        assert_eq!((out.transactions, out.changes), (0, 0));
    }
}
