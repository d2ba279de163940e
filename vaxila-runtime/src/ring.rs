//! The export queue's ring: bounded, filled by any thread, emptied by one at a time.
//!
//! A general queue (`crossbeam_queue::ArrayQueue`) has the thread that
//! empties a slot write it (a stamp saying "free"), and the thread that fills
//! it next read that stamp first: a read of a cache line another core wrote,
//! which stalls the caller on every span. Here the taker writes nothing in
//! the slots. It publishes how far it has taken (`head`) once a take, and a
//! filling thread reads that only when the ring looks full by the `head` it
//! saw last, which it keeps per thread. A thread that ends spans then writes
//! only lines it can write at once (the slot, and `tail` while no other
//! thread ends spans), which its core's store buffer hides.
//!
//! `cargo bench --bench profile -- paced` measures what the hand-off
//! costs the caller (`docs/benchmarks.md`, "The export queue").

use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

/// A bounded multi-producer queue whose consumers take turns.
pub(crate) struct Ring<T> {
    /// The next position to fill: claimed by a compare-and-swap.
    tail: CachePadded<AtomicU64>,
    /// The next position to take, published once a take.
    head: CachePadded<AtomicU64>,
    /// Held while taking: the export thread, and a thread that found the
    /// ring closed and discards what is left.
    taking: Mutex<()>,
    /// A power of two at least `capacity` long, so that a position's slot
    /// is a mask away.
    slots: Box<[Slot<T>]>,
    capacity: usize,
    /// Positions claimed whose value failed to be made: see [`Skip`].
    skipped: AtomicU64,
    /// This ring among every ring of the process, for [`SEEN`].
    id: u64,
}

/// A position's place in the ring: what the queue's memory is counted in.
pub(crate) struct Slot<T> {
    /// The position it holds the value of, plus one; the same with
    /// [`SKIPPED`] set when that value failed to be made; another number
    /// while it is empty or being filled.
    filled: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// Marks a slot's `filled` when its value failed to be made: a position
/// (plus one) cannot reach this bit.
const SKIPPED: u64 = 1 << 63;

/// Marks its slot skipped when dropped: while a value is being made, and
/// the making unwinds.
struct Skip<'a, T> {
    ring: &'a Ring<T>,
    slot: &'a Slot<T>,
    position: u64,
}

impl<T> Drop for Skip<'_, T> {
    #[cold]
    fn drop(&mut self) {
        self.ring.skipped.fetch_add(1, Ordering::Release);
        self.slot
            .filled
            .store(self.position.wrapping_add(1) | SKIPPED, Ordering::Release);
    }
}

// SAFETY: a value is written by the one thread that claimed its position,
// read by the one thread taking (under `taking`), and handed over by
// `filled` (release, then acquire): as a channel of `T`.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Ring<T> {}

std::thread_local! {
    /// The ring this thread filled last (its `id`), and its `head` then.
    static SEEN: Cell<(u64, u64)> = const { Cell::new((u64::MAX, 0)) };
}

/// Gives every ring of the process an id of its own.
static RINGS: AtomicU64 = AtomicU64::new(0);

impl<T> Ring<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let slots = (0..capacity.next_power_of_two())
            .map(|_| Slot {
                filled: AtomicU64::new(0),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Self {
            tail: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            taking: Mutex::new(()),
            slots,
            capacity,
            skipped: AtomicU64::new(0),
            id: RINGS.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions claimed so far: every value put in, taken or not.
    ///
    /// `SeqCst`, as the claims: read after a value's fate, it counts it.
    pub(crate) fn claimed(&self) -> u64 {
        self.tail.load(Ordering::SeqCst)
    }

    /// Values in the ring, and positions claimed but not yet filled (or
    /// skipped, and not yet passed over).
    pub(crate) fn len(&self) -> usize {
        let head = self.head.load(Ordering::Acquire);
        // At most the capacity, which is a `usize`.
        self.tail.load(Ordering::Acquire).wrapping_sub(head) as usize
    }

    fn slot(&self, position: u64) -> &Slot<T> {
        // The mask keeps fewer bits than the cast to `usize` does.
        &self.slots[position as usize & (self.slots.len() - 1)]
    }

    /// Puts `value` in and returns its position (counted from 0), or gives
    /// it back when the ring is full.
    #[cfg(test)]
    pub(crate) fn push(&self, value: T) -> Result<u64, T> {
        self.push_with(|| value).map_err(|make| make())
    }

    /// Makes a value in the next free slot and returns its position
    /// (counted from 0), or gives `make` back, uncalled, when the ring is
    /// full.
    ///
    /// Made where it is kept, the value is not copied on its way in (a
    /// queued span is 152 bytes). Should `make` unwind, its slot is marked skipped, and
    /// counted in [`skipped`](Self::skipped), for the taker not to wait on it.
    ///
    /// The claim of its position is `SeqCst`, so that a taker that closes
    /// the ring and then reads `tail` ([`discard_all`](Self::discard_all))
    /// sees it, or the caller sees the ring closed after this returns.
    #[inline]
    pub(crate) fn push_with<F: FnOnce() -> T>(&self, make: F) -> Result<u64, F> {
        let seen = SEEN.try_with(Cell::get).unwrap_or((u64::MAX, 0));
        // A `head` read earlier is never ahead of the real one: the ring
        // can only look fuller than it is.
        let mut head = if seen.0 == self.id {
            seen.1
        } else {
            self.head.load(Ordering::Acquire)
        };
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail.wrapping_sub(head) >= self.capacity as u64 {
                // Acquire: the values before `head` are read, their slots free.
                let now = self.head.load(Ordering::Acquire);
                let _ = SEEN.try_with(|seen| seen.set((self.id, now)));
                if now == head {
                    return Err(make);
                }
                head = now;
                continue;
            }
            match self.tail.compare_exchange_weak(
                tail,
                tail.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => tail = now,
            }
        }
        if seen != (self.id, head) {
            let _ = SEEN.try_with(|seen| seen.set((self.id, head)));
        }
        let slot = self.slot(tail);
        let skip = Skip {
            ring: self,
            slot,
            position: tail,
        };
        // SAFETY: `tail` is this thread's alone (claimed above), and its
        // slot's last value, `tail - slots.len()` or earlier, is taken:
        // `head` was past it.
        unsafe { (*slot.value.get()).write(make()) };
        std::mem::forget(skip);
        slot.filled.store(tail.wrapping_add(1), Ordering::Release);
        Ok(tail)
    }

    /// Positions whose value failed to be made (its `make` unwound).
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Acquire)
    }

    /// Takes up to `count` values into `out`, in order, stopping early at a
    /// position claimed but not yet filled; returns how many.
    pub(crate) fn take(&self, count: usize, out: &mut Vec<T>) -> usize {
        let _taking = self.taking.lock().unwrap_or_else(|e| e.into_inner());
        self.take_locked(count, out)
    }

    fn take_locked(&self, count: usize, out: &mut Vec<T>) -> usize {
        let mut head = self.head.load(Ordering::Relaxed);
        let before = out.len();
        out.reserve(count.min(self.capacity));
        while out.len() - before < count {
            let slot = self.slot(head);
            let filled = slot.filled.load(Ordering::Acquire);
            if filled == head.wrapping_add(1) {
                // SAFETY: filled (acquired above) and not taken: `head` is
                // behind it, and only the holder of `taking` moves `head`.
                out.push(unsafe { (*slot.value.get()).assume_init_read() });
            } else if filled != (head.wrapping_add(1) | SKIPPED) {
                break;
            }
            head = head.wrapping_add(1);
        }
        // Release: the values are read before their slots are free to fill.
        self.head.store(head, Ordering::Release);
        out.len() - before
    }

    /// Takes every value out, waiting (a moment at most) for positions
    /// claimed before this call to be filled; returns how many.
    pub(crate) fn discard_all(&self) -> usize {
        let _taking = self.taking.lock().unwrap_or_else(|e| e.into_inner());
        let tail = self.tail.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut out = Vec::new();
        let mut taken = 0;
        loop {
            taken += self.take_locked(usize::MAX, &mut out);
            out.clear();
            let head = self.head.load(Ordering::Relaxed);
            // Being filled by a thread that has yet to store `filled`: it
            // is making the value (a few dozen instructions), unless it was
            // stopped there.
            if tail.wrapping_sub(head) as i64 <= 0 || Instant::now() > deadline {
                return taken;
            }
            std::thread::yield_now();
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        let mut out = Vec::new();
        self.take(usize::MAX, &mut out);
    }
}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn holds_up_to_its_capacity_in_order() {
        // 5 slots of 8: the bound is the capacity, not the slots.
        let ring = Ring::new(5);
        for i in 0..5 {
            assert_eq!(ring.push(i), Ok(i), "each value's position");
        }
        assert_eq!(ring.push(5), Err(5));
        assert_eq!(ring.len(), 5);
        let mut out = Vec::new();
        assert_eq!(ring.take(3, &mut out), 3);
        assert_eq!(out, [0, 1, 2]);
        // Room seen again by the thread that found it full.
        for i in 5..8 {
            assert_eq!(ring.push(i), Ok(i));
        }
        assert_eq!(ring.push(8), Err(8));
        // The values refused claimed nothing.
        assert_eq!(ring.claimed(), 8);
        out.clear();
        assert_eq!(ring.take(usize::MAX, &mut out), 5);
        assert_eq!(out, [3, 4, 5, 6, 7]);
        assert_eq!(ring.len(), 0);
    }

    #[test]
    fn values_left_are_dropped_with_it() {
        let value = Arc::new(());
        let ring = Ring::new(4);
        ring.push(value.clone()).unwrap();
        ring.push(value.clone()).unwrap();
        assert_eq!(ring.discard_all(), 2);
        ring.push(value.clone()).unwrap();
        drop(ring);
        assert_eq!(Arc::strong_count(&value), 1);
    }

    #[test]
    fn a_value_that_failed_to_be_made_is_skipped() {
        let ring = Ring::new(4);
        ring.push(1).unwrap();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = ring.push_with(|| -> i32 { panic!("making the value") });
        }));
        assert!(unwound.is_err());
        assert_eq!(ring.push(3), Ok(2), "the failed value kept its position");
        assert_eq!((ring.claimed(), ring.skipped()), (3, 1));
        let mut out = Vec::new();
        // Not waited on: the values after it are taken.
        assert_eq!(ring.take(usize::MAX, &mut out), 2);
        assert_eq!(out, [1, 3]);
        assert_eq!(ring.len(), 0, "its slot is free again");
        for i in 0..4 {
            assert_eq!(ring.push(i), Ok(3 + i as u64));
        }
        out.clear();
        assert_eq!(ring.take(2, &mut out), 2, "a count of values, not slots");
        assert_eq!(out, [0, 1]);
    }

    #[test]
    fn a_full_ring_gives_back_the_maker_uncalled() {
        let ring = Ring::new(1);
        ring.push(0).unwrap();
        let made = Cell::new(false);
        let refused = ring.push_with(|| {
            made.set(true);
            1
        });
        assert!(refused.is_err());
        assert!(!made.get());
        assert_eq!(refused.map_err(|make| make()), Err(1));
    }

    /// Four threads filling while one takes: every value out once, none
    /// lost but those refused, and each thread's in its order.
    #[test]
    fn many_threads_fill_while_one_takes() {
        const PER_THREAD: usize = 50_000;
        let ring = Arc::new(Ring::new(100));
        let fillers: Vec<_> = (0..4)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    let mut refused = 0;
                    for i in 0..PER_THREAD {
                        if ring.push((t, i)).is_err() {
                            refused += 1;
                        }
                    }
                    refused
                })
            })
            .collect();
        let mut last = [None::<usize>; 4];
        let mut taken = 0;
        let mut out = Vec::new();
        let mut done = false;
        while !done {
            done = fillers.iter().all(std::thread::JoinHandle::is_finished);
            out.clear();
            taken += ring.take(64, &mut out);
            for &(t, i) in &out {
                assert!(
                    last[t].is_none_or(|l| l < i),
                    "thread {t}: {i} after {last:?}"
                );
                last[t] = Some(i);
            }
        }
        out.clear();
        taken += ring.take(usize::MAX, &mut out);
        let refused: usize = fillers.into_iter().map(|f| f.join().unwrap()).sum();
        assert_eq!(taken + refused, 4 * PER_THREAD);
        assert_eq!(
            ring.claimed(),
            taken as u64,
            "a position for each value put in"
        );
        assert!(taken > 0 && refused < 4 * PER_THREAD);
    }
}
