//! Strings that come back request after request (a client's user agent, an
//! upstream's host), kept per thread so that the spans that see one again
//! share a copy of it instead of each making their own.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::thread::LocalKey;

use opentelemetry::StringValue;

/// How many of one kind a thread keeps: a service sees a few clients and
/// calls a few upstreams.
const KEPT: usize = 4;

/// Longer strings are copied for each span, not kept.
const KEPT_LENGTH: usize = 512;

/// The last few strings of one kind that a thread has seen.
pub(crate) struct Recent {
    kept: RefCell<[Option<Arc<str>>; KEPT]>,
    /// The place the next new string takes.
    next: Cell<usize>,
}

impl Recent {
    pub(crate) const fn new() -> Self {
        Self {
            kept: RefCell::new([const { None }; KEPT]),
            next: Cell::new(0),
        }
    }

    /// `text`, shared with the spans before it that saw the same; `None`
    /// when it is not kept (too long, or the table is in use).
    fn shared(&self, text: &str) -> Option<Arc<str>> {
        if text.len() > KEPT_LENGTH {
            return None;
        }
        let mut kept = self.kept.try_borrow_mut().ok()?;
        if let Some(seen) = kept.iter().flatten().find(|seen| ***seen == *text) {
            return Some(seen.clone());
        }
        let at = self.next.get();
        self.next.set((at + 1) % KEPT);
        Some(kept[at].insert(Arc::from(text)).clone())
    }
}

/// `text` as an attribute value: the copy this thread's `recent` keeps, or
/// a copy of its own.
pub(crate) fn value(recent: &'static LocalKey<Recent>, text: &str) -> StringValue {
    match recent.try_with(|recent| recent.shared(text)) {
        Ok(Some(shared)) => StringValue::from(shared),
        // A thread being torn down, or a string not kept.
        _ => StringValue::from(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    std::thread_local! {
        static SEEN: Recent = const { Recent::new() };
    }

    #[test]
    fn a_string_seen_again_is_shared_and_each_is_itself() {
        let recent = Recent::new();
        let first = recent.shared("curl/8.5.0").unwrap();
        assert!(Arc::ptr_eq(&first, &recent.shared("curl/8.5.0").unwrap()));
        // Same length, other text.
        let other = recent.shared("curl/8.5.1").unwrap();
        assert_eq!(&*other, "curl/8.5.1");
        assert!(Arc::ptr_eq(&first, &recent.shared("curl/8.5.0").unwrap()));
        assert_eq!(value(&SEEN, "wrk").as_str(), "wrk");
    }

    #[test]
    fn more_strings_than_kept_are_each_right_and_the_newest_are_kept() {
        let recent = Recent::new();
        let texts: Vec<String> = (0..KEPT * 3).map(|n| format!("agent/{n}")).collect();
        for round in 0..2 {
            for text in &texts {
                assert_eq!(&*recent.shared(text).unwrap(), text, "round {round}");
            }
        }
        let newest = recent.shared(&texts[texts.len() - 1]).unwrap();
        assert!(Arc::ptr_eq(
            &newest,
            &recent.shared(&texts[texts.len() - 1]).unwrap()
        ));
        let kept = recent.kept.borrow();
        assert_eq!(kept.iter().flatten().count(), KEPT);
    }

    #[test]
    fn a_long_string_is_copied_not_kept() {
        let long = "x".repeat(KEPT_LENGTH + 1);
        let recent = Recent::new();
        assert!(recent.shared(&long).is_none());
        assert!(recent.kept.borrow().iter().all(Option::is_none));
        SEEN.with(|seen| assert!(seen.shared(&long).is_none()));
        assert_eq!(value(&SEEN, &long).as_str(), long);
    }
}
