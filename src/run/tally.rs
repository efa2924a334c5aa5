//! One way to merge counters: what threads, crawls and jobs counted is
//! added up with `Tally`, field by field, so a new counter cannot be
//! forgotten in one of several hand-written merges. `tally!` implements it
//! for a struct: listed fields add up (numbers, counts by name, per-field
//! tallies), `first` fields keep the first value set (a failure, a path),
//! `max` fields keep the larger.

use crate::run::summary::Counts;

/// Counters that add up.
pub trait Tally {
    /// Adds `other` into `self`.
    fn tally(&mut self, other: Self);
}

impl Tally for u64 {
    fn tally(&mut self, other: u64) {
        *self += other;
    }
}

impl Tally for Counts {
    fn tally(&mut self, other: Counts) {
        for (k, v) in other {
            *self.entry(k).or_default() += v;
        }
    }
}

/// Per field name: items that have it, and items on which it was empty.
impl Tally for Vec<(String, u64, u64)> {
    fn tally(&mut self, other: Self) {
        for (name, have, empty) in other {
            match self.iter_mut().find(|(n, _, _)| *n == name) {
                Some((_, h, e)) => {
                    *h += have;
                    *e += empty;
                }
                None => self.push((name, have, empty)),
            }
        }
    }
}

/// Implements `Tally` for a struct, field by field:
/// `tally!(Type { sum, fields } first { failure } max { deepest })`.
macro_rules! tally {
    ($t:ty { $($sum:ident),* $(,)? } $(first { $($first:ident),* $(,)? })? $(max { $($max:ident),* $(,)? })?) => {
        impl $crate::run::tally::Tally for $t {
            fn tally(&mut self, other: Self) {
                $( $crate::run::tally::Tally::tally(&mut self.$sum, other.$sum); )*
                $($( self.$first = self.$first.take().or(other.$first); )*)?
                $($( self.$max = self.$max.max(other.$max); )*)?
            }
        }
    };
}

pub(crate) use tally;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Two {
        n: u64,
        by: Counts,
        first: Option<&'static str>,
        deepest: u32,
    }
    crate::run::tally::tally!(Two { n, by } first { first } max { deepest });

    #[test]
    fn sums_keep_the_first_and_the_largest() {
        let mut a = Two {
            n: 1,
            by: Counts::from([("x".into(), 1)]),
            first: None,
            deepest: 3,
        };
        a.tally(Two {
            n: 2,
            by: Counts::from([("x".into(), 2), ("y".into(), 5)]),
            first: Some("b"),
            deepest: 2,
        });
        a.tally(Two {
            first: Some("c"),
            deepest: 7,
            ..Two::default()
        });
        assert_eq!(a.n, 3);
        assert_eq!(a.by, Counts::from([("x".into(), 3), ("y".into(), 5)]));
        assert_eq!(a.first, Some("b"));
        assert_eq!(a.deepest, 7);
    }

    #[test]
    fn field_tallies_add_by_name_in_first_seen_order() {
        let mut a = vec![("q".to_string(), 1, 0)];
        a.tally(vec![("t".to_string(), 2, 1), ("q".to_string(), 3, 2)]);
        assert_eq!(a, [("q".to_string(), 4, 2), ("t".to_string(), 2, 1)]);
    }
}
