//! The users' pictures as `/session` shows them, remembered for a short while in this process.
//!
//! `/session` answers from the session record (one store read), except for the picture: a
//! picture URL (Google's are 100 characters) would double what a session costs Redis, so it
//! lives only in the user record. Reading that record on every `/session` would be a second
//! round trip on the hot path; this cache makes it one read per user per [`FRESH_FOR`].
//!
//! Nothing here decides access: whether the session is live is read from the store on every
//! request, before the picture is asked for. A write to the user record on this instance
//! forgets its entry at once; one made on another instance shows here within [`FRESH_FOR`].
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a remembered picture is shown without reading the user record again.
pub const FRESH_FOR: Duration = Duration::from_secs(30);
/// At most this many users are remembered (about 200 bytes each); when full, the cache
/// starts over rather than tracking what is least used.
pub const CAPACITY: usize = 4096;

/// A user's picture URL (`None`: the user has none).
pub type Picture = Option<Arc<str>>;

#[derive(Default)]
pub struct Pictures {
    /// user id -> the picture and when it was read. foldhash, not SipHash: ids are latch's
    /// own random ones, read on every `/session`.
    entries: Mutex<HashMap<Box<str>, (Picture, Instant), foldhash::fast::RandomState>>,
    /// Counts `forget`s, so that a read that began before one does not put back what it read.
    forgotten: AtomicU64,
}

impl Pictures {
    /// The remembered picture of `user_id`, if it is fresh (`Some(None)`: the user has none).
    pub fn get(&self, user_id: &str, now: Instant) -> Option<Picture> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (picture, read_at) = entries.get(user_id)?;
        (now.saturating_duration_since(*read_at) < FRESH_FOR).then(|| picture.clone())
    }

    /// Where `forget`s stand: take it before reading the user record, give it to `put`.
    pub fn epoch(&self) -> u64 {
        self.forgotten.load(Ordering::SeqCst)
    }

    /// Remembers `picture` as read from the user record at `read_at`, unless something was
    /// forgotten since `epoch` (that read may predate the write that made it forget).
    pub fn put(&self, user_id: &str, picture: Option<&str>, read_at: Instant, epoch: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if self.forgotten.load(Ordering::SeqCst) != epoch {
            return;
        }
        if entries.len() >= CAPACITY && !entries.contains_key(user_id) {
            entries.clear();
        }
        entries.insert(user_id.into(), (picture.map(Arc::from), read_at));
    }

    /// Forgets `user_id` (its record was written or deleted).
    pub fn forget(&self, user_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.forgotten.fetch_add(1, Ordering::SeqCst);
        entries.remove(user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_is_fresh_for_a_while_then_read_again() {
        let pictures = Pictures::default();
        let t = Instant::now();
        assert_eq!(pictures.get("u1", t), None);
        pictures.put("u1", Some("https://x.test/a.png"), t, 0);
        pictures.put("u2", None, t, 0);
        assert_eq!(
            pictures.get("u1", t + FRESH_FOR - Duration::from_millis(1)),
            Some(Some(Arc::from("https://x.test/a.png")))
        );
        assert_eq!(pictures.get("u2", t), Some(None));
        assert_eq!(pictures.get("u1", t + FRESH_FOR), None);
    }

    #[test]
    fn a_forgotten_user_is_read_again() {
        let pictures = Pictures::default();
        let t = Instant::now();
        pictures.put("u1", Some("a"), t, pictures.epoch());
        pictures.forget("u1");
        assert_eq!(pictures.get("u1", t), None);
    }

    #[test]
    fn a_read_from_before_a_forget_is_not_put_back() {
        let pictures = Pictures::default();
        let t = Instant::now();
        let epoch = pictures.epoch();
        // The user record is written (and forgotten) while this read is in flight.
        pictures.forget("u1");
        pictures.put("u1", Some("old"), t, epoch);
        assert_eq!(pictures.get("u1", t), None);
        pictures.put("u1", Some("new"), t, pictures.epoch());
        assert_eq!(pictures.get("u1", t), Some(Some(Arc::from("new"))));
    }

    #[test]
    fn a_full_cache_starts_over_but_keeps_updating_a_known_user() {
        let pictures = Pictures::default();
        let t = Instant::now();
        for i in 0..CAPACITY {
            pictures.put(&format!("u{i}"), None, t, 0);
        }
        // Updating a remembered user does not clear the others.
        pictures.put("u0", Some("b"), t, 0);
        assert_eq!(pictures.get("u1", t), Some(None));
        // A new one when full does.
        pictures.put("new", Some("c"), t, 0);
        assert_eq!(pictures.get("u1", t), None);
        assert_eq!(pictures.get("new", t), Some(Some(Arc::from("c"))));
        assert_eq!(pictures.entries.lock().unwrap().len(), 1);
    }
}
