//! How many page bytes the fetchers parse at once (`--max-parse-bytes`).
//! A parsed page takes about 12 times its size in memory (scraper's tree:
//! nodes, attributes, text), so eight threads each parsing a 2.5 MB page
//! would hold 240 MB. Each parse takes its page's bytes from one budget for
//! the process and gives them back when the tree is dropped; a page larger
//! than the whole budget waits until it can be parsed alone. Small pages
//! (most of a site) almost never wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// The budget in bytes; 0 until `set` (no limit).
static CAP: AtomicU64 = AtomicU64::new(0);
/// Pages this large or larger hand their tree's memory back when done.
const TRIM_FROM: u64 = 512 << 10;
/// Bytes being parsed now.
static USED: Mutex<u64> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// Sets the budget (`--max-parse-bytes`) for every fetcher of the process.
pub fn set(cap: usize) {
    CAP.store(cap as u64, Ordering::Relaxed);
}

/// Bytes of the budget held while one page is parsed.
pub struct Permit(u64);

/// Waits until `bytes` (at most the whole budget) can be parsed, and takes
/// them. The wait ends as other parses finish, which are bounded in time.
pub fn take(bytes: usize) -> Permit {
    let cap = CAP.load(Ordering::Relaxed);
    if cap == 0 {
        return Permit(bytes as u64);
    }
    let n = (bytes as u64).min(cap);
    let mut used = USED.lock().unwrap_or_else(|p| p.into_inner());
    while *used + n > cap {
        used = FREED.wait(used).unwrap_or_else(|p| p.into_inner());
    }
    *used += n;
    Permit(n)
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.0 >= TRIM_FROM {
            // The tree just dropped was large: give its memory back to the
            // system now. glibc keeps freed memory in the arena of the
            // thread that freed it, so each fetcher would otherwise keep
            // the largest tree it ever parsed.
            // SAFETY: malloc_trim only releases free memory; no pointer is involved.
            unsafe { libc::malloc_trim(0) };
        }
        if self.0 == 0 || CAP.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut used = USED.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.0;
        FREED.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn parses_never_hold_more_than_the_budget_and_a_large_page_goes_alone() {
        set(100);
        let most = Arc::new(AtomicUsize::new(0));
        let now = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = [60usize, 60, 30, 250, 10, 90]
            .into_iter()
            .map(|size| {
                let (most, now) = (most.clone(), now.clone());
                std::thread::spawn(move || {
                    let permit = take(size);
                    let held =
                        now.fetch_add(permit.0 as usize, Ordering::SeqCst) + permit.0 as usize;
                    most.fetch_max(held, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    now.fetch_sub(permit.0 as usize, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 100);
        assert_eq!(*USED.lock().unwrap(), 0);
        set(0);
    }
}
