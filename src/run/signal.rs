//! SIGINT/SIGTERM: the first asks for a clean stop, the second exits at once.
//! SIGHUP asks `consume` to reopen its `--out` file (log rotation).

use crate::error::{Error, Exit};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Flags raised by signals; `stop` may also be raised by the run itself.
pub struct Signals {
    /// "Stop taking new work": checked by every loop between blocking calls.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP: reopen output files (log rotation).
    pub hup: Arc<AtomicBool>,
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

/// Installs the handlers. A second signal of either kind exits with 130/143.
pub fn install() -> Result<Signals, Error> {
    let s = Signals {
        stop: Arc::new(AtomicBool::new(false)),
        hup: Arc::new(AtomicBool::new(false)),
        int: Arc::new(AtomicBool::new(false)),
        term: Arc::new(AtomicBool::new(false)),
    };
    let signalled = Arc::new(AtomicBool::new(false));
    let setup = |sig: i32, code: Exit, mine: &Arc<AtomicBool>| -> std::io::Result<()> {
        // Registered first, so the first signal still sees `signalled == false`.
        flag::register_conditional_shutdown(sig, code as i32, Arc::clone(&signalled))?;
        flag::register(sig, Arc::clone(&signalled))?;
        flag::register(sig, Arc::clone(&s.stop))?;
        flag::register(sig, Arc::clone(mine))?;
        Ok(())
    };
    setup(SIGINT, Exit::Interrupted, &s.int)
        .and_then(|()| setup(SIGTERM, Exit::Terminated, &s.term))
        .and_then(|()| flag::register(SIGHUP, Arc::clone(&s.hup)).map(drop))
        .map_err(|e| Error::io("cannot install signal handlers", e))?;
    watch(Arc::clone(&s.int), Arc::clone(&s.term));
    deliver_to_one_thread();
    let _ = RECEIVED.set((Arc::clone(&s.int), Arc::clone(&s.term)));
    Ok(s)
}

/// Makes one idle thread the only one that receives SIGINT, SIGTERM,
/// SIGHUP and SIGUSR1: the calling thread blocks them, and every thread it
/// starts afterwards inherits that mask. Otherwise a signal may land on a
/// thread inside a socket read with a timeout, which Linux never restarts
/// (SO_RCVTIMEO reads fail with EINTR even under SA_RESTART): the Redis
/// client would report a lost connection for a command Redis may have run,
/// and a clean stop would turn into a false outage (a spill, duplicates).
/// Call it before starting any worker thread. qpipe starts no child
/// processes, which would inherit the mask.
fn deliver_to_one_thread() {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for sig in [SIGINT, SIGTERM, SIGHUP, signal_hook::consts::SIGUSR1] {
            libc::sigaddset(&mut set, sig);
        }
    }
    // The receiver keeps the signals unblocked (spawned before the mask).
    let receiver = std::thread::Builder::new()
        .name("signals".into())
        .spawn(|| loop {
            // Ends with the process (a detached thread); handlers run here.
            std::thread::park();
        });
    if let Err(e) = receiver {
        // Without a receiver, blocking would leave signals undelivered.
        crate::run::log::warn(&format!(
            "no signal thread ({e}); a signal may interrupt a Redis read"
        ));
        return;
    }
    // SAFETY: a valid set; a null old set is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// The flags of the installed handlers, for `received`.
static RECEIVED: std::sync::OnceLock<(Arc<AtomicBool>, Arc<AtomicBool>)> =
    std::sync::OnceLock::new();

/// The exit code of the signal that arrived, if one did (for a run that a
/// signal stopped before it could build its summary).
pub fn received() -> Option<Exit> {
    let (int, term) = RECEIVED.get()?;
    if term.load(Ordering::Relaxed) {
        Some(Exit::Terminated)
    } else if int.load(Ordering::Relaxed) {
        Some(Exit::Interrupted)
    } else {
        None
    }
}

/// The exit code of `e`: a stop by a signal while waiting for Redis (say
/// at start-up) exits with the signal's code, anything else as `Error::exit`.
pub fn exit_of(e: &Error) -> Exit {
    match e {
        Error::Stopped(_) => received().unwrap_or(Exit::Fatal),
        e => e.exit(),
    }
}

/// How long a run may take to stop after SIGINT/SIGTERM before it is ended
/// anyway: inside a 10 s container kill grace period, past the few seconds
/// an orderly stop takes (pages in flight, the last batches, a commit).
const GRACE: Duration = Duration::from_secs(8);

/// A watchdog: once a signal arrives, the run gets `GRACE` to stop in order.
/// Past that, something outside qpipe is not answering (a hung Redis node,
/// an output pipe nobody reads), and the process exits as a second signal
/// would. `--reliable` items still held go back through recovery.
fn watch(int: Arc<AtomicBool>, term: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        // Ends with the process (a detached thread).
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let code = match (term.load(Ordering::Relaxed), int.load(Ordering::Relaxed)) {
                (true, _) => Exit::Terminated,
                (false, true) => Exit::Interrupted,
                _ => continue,
            };
            std::thread::sleep(GRACE);
            crate::run::log::error(&format!(
                "still stopping {}s after the signal (Redis or the output is not answering); exiting now (a consume in BRPOP mode may lose items popped but not written; --reliable items come back by recovery)",
                GRACE.as_secs()
            ));
            std::process::exit(code as i32);
        }
    });
}

impl Signals {
    /// The exit code for a run stopped by a signal, if one arrived.
    pub fn exit(&self) -> Option<Exit> {
        if self.term.load(Ordering::Relaxed) {
            Some(Exit::Terminated)
        } else if self.int.load(Ordering::Relaxed) {
            Some(Exit::Interrupted)
        } else {
            None
        }
    }
}

/// Registers SIGUSR1 ("log the counters now") and returns the flag it
/// raises; whoever reports the counters lowers it again.
pub fn usr1() -> Result<Arc<AtomicBool>, Error> {
    let raised = Arc::new(AtomicBool::new(false));
    flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&raised))
        .map_err(|e| Error::io("cannot install the SIGUSR1 handler", e))?;
    Ok(raised)
}
