//! Links one producer already knows the shared frontier has seen, so it
//! does not ask Redis about them again: most links on a page (navigation,
//! tags) were seen long ago, and each check costs Redis CPU (a Bloom
//! filter's far more than a set's). A seen set or filter only ever grows,
//! so "seen" stays true: this cache may forget, never mislead.

use std::collections::HashSet;

/// Hashes per generation: two generations take at most about 5 MB.
const GENERATION: usize = 200_000;

/// A bounded set of 64-bit URL hashes: when the newer generation is full,
/// the older one is dropped, so links seen often stay known.
#[derive(Default)]
pub struct Recent {
    old: HashSet<u64>,
    new: HashSet<u64>,
}

impl Recent {
    /// Whether `h` is known to be seen.
    pub fn contains(&self, h: u64) -> bool {
        self.new.contains(&h) || self.old.contains(&h)
    }

    /// Records that `h` is seen.
    pub fn insert(&mut self, h: u64) {
        if self.new.len() >= GENERATION {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_two_generations_at_most() {
        let mut r = Recent::default();
        for h in 0..(2 * GENERATION as u64 + 1) {
            r.insert(h);
        }
        assert!(!r.contains(0), "the oldest generation is dropped");
        assert!(r.contains(GENERATION as u64));
        assert!(r.contains(2 * GENERATION as u64));
        assert_eq!(r.old.len() + r.new.len(), GENERATION + 1);
    }
}
