//! Small tables found by an address: the integrations' per-thread caches and
//! the OTLP encoder's `code.*` cache key by where a static string or
//! metadata lives, and check the key itself on a hit.

/// The place, of `places`, that `address` falls into.
///
/// `places` is a power of two, at least 2. Fibonacci hashing: the top bits
/// of the product spread addresses that share their low bits, as aligned
/// and nearby ones do.
#[inline]
pub(crate) fn place_of(address: usize, places: usize) -> usize {
    debug_assert!(places.is_power_of_two() && places > 1);
    let bits = places.trailing_zeros();
    ((address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_place_is_in_range_and_aligned_addresses_spread() {
        for places in [2, 32, 64, 256] {
            let mut seen = vec![0_usize; places];
            // 16-byte aligned addresses one after another, as a static
            // table's entries are.
            for i in 0..places * 8 {
                let at = place_of(0x5555_0000 + i * 16, places);
                assert!(at < places, "{at} of {places}");
                seen[at] += 1;
            }
            let empty = seen.iter().filter(|&&n| n == 0).count();
            assert!(empty * 8 < places, "{empty} of {places} places never used");
            assert!(
                seen.iter().all(|&n| n <= 24),
                "a place of {places} took {} of {} addresses",
                seen.iter().max().unwrap(),
                places * 8
            );
        }
    }
}
