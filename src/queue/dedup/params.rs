//! A Bloom filter's shape: bits and hash count from the capacity and the
//! false-positive rate, the bitmap pieces that hold the bits, and where a
//! fingerprint's bits are (sent to the Lua in `lua.rs` with each fingerprint).

/// Bytes Redis adds to a string's allocation (an sds header of 9 bytes and a
/// NUL), rounded up: a piece of `class - OVERHEAD` bytes fills its class.
const OVERHEAD: u64 = 16;
/// Below this a filter is one piece of exactly the bytes it needs.
const SPLIT_FROM: u64 = 1 << 20;
/// The most pieces one filter is split into (every script names them all).
const MAX_PIECES: u64 = 64;
/// SETBIT and BITFIELD offsets stop at 2^32 - 1: 512 MiB per piece.
const MAX_PIECE_BYTES: u64 = 1 << 29;

/// The shape of one Bloom filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Distinct fingerprints it is sized for (`--dedup-capacity`).
    pub capacity: u64,
    /// False-positive rate at capacity (`--dedup-error`).
    pub error: f64,
    /// Bits in each piece.
    pub bits: u64,
    /// Bitmap keys the bits are split over.
    pub pieces: u64,
    /// Bits set per fingerprint.
    pub k: u64,
}

impl Params {
    /// The smallest filter for `capacity` fingerprints at false-positive rate
    /// `error`: m = -n ln P / (ln 2)^2 bits and k = (m / n) ln 2 hashes.
    pub fn new(capacity: u64, error: f64) -> Result<Params, String> {
        if capacity == 0 {
            return Err("--dedup-capacity must be at least 1".into());
        }
        if !(1e-15..0.5).contains(&error) {
            return Err(format!(
                "--dedup-error {error} is out of range (use a rate of at least 1e-15 and below 0.5, e.g. 0.000001)"
            ));
        }
        let ln2 = std::f64::consts::LN_2;
        let m = (capacity as f64 * -error.ln() / (ln2 * ln2)).ceil() as u64;
        let bytes = m.div_ceil(8).max(8);
        let (pieces, piece_bytes) = split(bytes).ok_or_else(|| {
            format!(
                "--dedup-capacity {capacity} at --dedup-error {error} needs a {:.1} GB filter, more than qpipe supports (64 pieces of 512 MiB)",
                bytes as f64 / 1e9
            )
        })?;
        let bits = piece_bytes * 8;
        let k = ((bits * pieces) as f64 / capacity as f64 * ln2).round() as u64;
        Ok(Params {
            capacity,
            error,
            bits,
            pieces,
            k: k.clamp(1, 64),
        })
    }

    /// Bytes of bitmap in each piece.
    pub fn piece_bytes(&self) -> u64 {
        self.bits / 8
    }

    /// The piece and the k bit offsets in it that `fp` sets, by double
    /// hashing: bytes 1-6 of the big-endian fingerprint give the first
    /// offset, bytes 7-12 the step, and bytes 1-8, mixed, the piece. The
    /// writer picks an item's shard as `fp % shards`, which fixes the low
    /// bits: a piece taken from those would leave pieces of every shard's
    /// filter unused (with 2 shards and 2 pieces, half of each filter).
    pub fn positions(&self, fp: u128) -> (u64, Vec<u64>) {
        let mask = (1u64 << 48) - 1;
        let first = ((fp >> 80) as u64) % self.bits;
        let step = match ((fp >> 32) as u64 & mask) % self.bits {
            0 => 1,
            s => s,
        };
        let piece = mix((fp >> 64) as u64) % self.pieces;
        let offsets = (0..self.k)
            .scan(first, |g, _| {
                let here = *g;
                *g = (*g + step) % self.bits;
                Some(here)
            })
            .collect();
        (piece, offsets)
    }
}

/// SplitMix64's finalizer: every input bit moves every output bit, so the
/// piece does not follow the residue of `fp` modulo a shard count.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// jemalloc's size class for a large allocation of `n` bytes: four classes
/// per power of two (Redis's default allocator; MEMORY USAGE reports it).
fn size_class(n: u64) -> u64 {
    let g = 63 - (n - 1).leading_zeros() as u64;
    let spacing = 1u64 << g.saturating_sub(2);
    n.div_ceil(spacing) * spacing
}

/// How many pieces, of how many bytes, hold `bytes` in little memory: each
/// piece fills its allocator size class, so one 36 MB filter (which would
/// take a 40 MiB class) becomes 5 pieces of 7 MiB. The fewest pieces within
/// 2 % of the least memory: every script names every piece. `None` if too big.
fn split(bytes: u64) -> Option<(u64, u64)> {
    if bytes < SPLIT_FROM {
        return Some((1, bytes));
    }
    let fits: Vec<(u64, u64, u64)> = (1..=MAX_PIECES)
        .filter_map(|n| {
            let class = size_class(bytes.div_ceil(n) + OVERHEAD);
            let piece = class - OVERHEAD;
            (piece <= MAX_PIECE_BYTES).then_some((n * class, n, piece))
        })
        .collect();
    let least = fits.iter().map(|f| f.0).min()?;
    fits.into_iter()
        .find(|f| f.0 <= least + least / 50)
        .map(|(_, n, piece)| (n, piece))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_formulas_size_small_filters_exactly() {
        // m = 20000 * ln(100) / ln(2)^2 = 191,701.2 bits; k = 6.64 -> 7.
        let p = Params::new(20_000, 0.01).unwrap();
        assert_eq!((p.pieces, p.bits, p.k), (1, 23_963 * 8, 7));
        let p = Params::new(1, 0.5 - 1e-9).unwrap();
        assert_eq!((p.pieces, p.bits, p.k), (1, 64, 44));
    }

    #[test]
    fn ten_million_at_one_in_a_million_fits_in_four_bytes_each() {
        let p = Params::new(10_000_000, 1e-6).unwrap();
        // 287,551,752 bits are needed; the pieces fill their size classes.
        assert!(p.bits * p.pieces >= 287_551_752);
        let allocated = p.pieces * size_class(p.piece_bytes() + OVERHEAD);
        assert!(allocated <= 37_000_000, "{p:?}: {allocated} bytes");
        assert_eq!((p.pieces, p.piece_bytes()), (5, (7 << 20) - OVERHEAD));
        assert_eq!(p.k, 20);
        assert!(p.bits < 1 << 32);
    }

    #[test]
    fn size_classes_are_four_per_power_of_two() {
        assert_eq!(size_class(1 << 22), 1 << 22);
        assert_eq!(size_class((1 << 22) + 1), 5 << 20);
        assert_eq!(size_class(35_943_969), 40 << 20);
        assert_eq!(size_class(5 << 20), 5 << 20);
    }

    #[test]
    fn bad_parameters_are_refused_with_the_flag_named() {
        assert!(Params::new(0, 0.01)
            .unwrap_err()
            .contains("--dedup-capacity"));
        assert!(Params::new(10, 0.0).unwrap_err().contains("--dedup-error"));
        assert!(Params::new(10, 0.7).unwrap_err().contains("--dedup-error"));
        assert!(Params::new(10, 0.5).unwrap_err().contains("below 0.5"));
        assert!(Params::new(u64::MAX / 64, 1e-9)
            .unwrap_err()
            .contains("GB filter"));
    }

    #[test]
    fn positions_follow_the_documented_byte_layout() {
        let p = Params {
            capacity: 1,
            error: 0.1,
            bits: 1000,
            pieces: 3,
            k: 4,
        };
        // first = 0x010203040506 % 1000, step = 0x0708090a0b0c % 1000,
        // piece = mix(0x0102030405060708) % 3.
        let fp = u128::from_be_bytes(
            *b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10",
        );
        let (first, step) = (0x010203040506u64 % 1000, 0x0708090a0b0cu64 % 1000);
        let want: Vec<u64> = (0..4).map(|i| (first + i * step) % 1000).collect();
        assert_eq!(p.positions(fp), (mix(0x0102030405060708) % 3, want));
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161d_100b_05e5);
        // A zero step still spreads the bits.
        let (_, offs) = p.positions(0);
        assert_eq!(offs, [0, 1, 2, 3]);
    }

    #[test]
    fn every_piece_is_used_for_every_shard_residue() {
        for (shards, pieces) in [(2u128, 2u64), (2, 4), (4, 8), (3, 6), (6, 4), (8, 64)] {
            let p = Params {
                capacity: 1,
                error: 0.1,
                bits: 1 << 20,
                pieces,
                k: 1,
            };
            let mut used = vec![vec![0u32; pieces as usize]; shards as usize];
            for i in 0..20_000u64 {
                // Real fingerprints, as the writer routes them.
                let fp = crate::queue::item::fingerprint(&i.to_le_bytes());
                used[(fp % shards) as usize][p.positions(fp).0 as usize] += 1;
            }
            for (residue, counts) in used.iter().enumerate() {
                let least = counts.iter().min().copied().unwrap_or(0);
                let fair = 20_000 / (shards as u32 * pieces as u32);
                assert!(
                    least > fair / 2,
                    "{shards} shards, {pieces} pieces: shard {residue} uses {counts:?}"
                );
            }
        }
    }
}
