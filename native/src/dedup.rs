//! The duplicate-id window of one ingress partition, as `ecoshare.governance.dedup`.
//!
//! The window holds up to `capacity` ids per partition for a day by default, so its
//! cost per id is the worker's memory bound. The SDK's ids are canonical UUIDs
//! (lowercase, hyphenated): those are kept as their 128-bit value in a ring indexed by
//! an open-addressing table, about 27 bytes an id instead of about 117 as a shared
//! string in a set and a deque; any other id is kept as a string, as before. Only the
//! exact canonical form is converted, so the conversion is lossless and two ids are the
//! same entry exactly when they are the same string ("ABC…" and "abc…" stay different).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The value of `text` if it is a canonical lowercase hyphenated UUID
/// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`), None for any other string.
fn canonical_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut value: u128 = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let digit = match (index, byte) {
            (8 | 13 | 18 | 23, b'-') => continue,
            (8 | 13 | 18 | 23, _) => return None,
            (_, b'0'..=b'9') => byte - b'0',
            (_, b'a'..=b'f') => byte - b'a' + 10,
            _ => return None,
        };
        value = (value << 4) | u128::from(digit);
    }
    Some(value)
}

/// A slot of [`UuidRing`] that holds no position.
const EMPTY: u32 = u32::MAX;
/// Sequence numbers are counted modulo this, so that none of them is [`EMPTY`].
const SEQ_MODULUS: u64 = u32::MAX as u64;
/// The most ids a window may hold: positions must stay distinct modulo [`SEQ_MODULUS`].
pub const MAX_CAPACITY: usize = (u32::MAX - 1) as usize;

/// Canonical UUIDs in arrival order (16 bytes each) and an open-addressing index of
/// their sequence numbers (4 bytes a slot, linear probing, at most half full, so that
/// a new id, which is a search that fails, probes about two slots): 25 to 33 bytes an
/// id, where a set entry plus a deque slot of `u128` would take about 54.
struct UuidRing {
    values: VecDeque<u128>,
    /// Sequence number (mod [`SEQ_MODULUS`]) of `values[0]`.
    head: u32,
    slots: Vec<u32>,
    hasher: RandomState,
}

impl UuidRing {
    fn new() -> Self {
        UuidRing {
            values: VecDeque::new(),
            head: 0,
            slots: Vec::new(),
            hasher: RandomState::new(),
        }
    }

    fn home(&self, value: u128) -> usize {
        (self.hasher.hash_one(value) as usize) & (self.slots.len() - 1)
    }

    fn value_at(&self, seq: u32) -> u128 {
        let position = (u64::from(seq) + SEQ_MODULUS - u64::from(self.head)) % SEQ_MODULUS;
        self.values[position as usize]
    }

    /// The slot holding `value`, if it is in the ring.
    fn find(&self, value: u128) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.home(value);
        loop {
            match self.slots[slot] {
                EMPTY => return None,
                seq if self.value_at(seq) == value => return Some(slot),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Append `value` as the newest; false (and nothing changes) if it is already in.
    fn push(&mut self, value: u128) -> bool {
        if self.find(value).is_some() {
            return false;
        }
        if (self.values.len() + 1) * 2 > self.slots.len() {
            self.reindex((self.slots.len() * 2).max(16));
        }
        let seq = (u64::from(self.head) + self.values.len() as u64) % SEQ_MODULUS;
        self.values.push_back(value);
        self.place(value, seq as u32);
        true
    }

    fn place(&mut self, value: u128, seq: u32) {
        let mask = self.slots.len() - 1;
        let mut slot = self.home(value);
        while self.slots[slot] != EMPTY {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = seq;
    }

    /// Forget the oldest value (backward-shift deletion: no tombstones to pile up).
    fn pop_oldest(&mut self) {
        let Some(&oldest) = self.values.front() else {
            return;
        };
        let Some(mut hole) = self.find(oldest) else {
            unreachable!("every value of the ring is indexed");
        };
        let mask = self.slots.len() - 1;
        self.slots[hole] = EMPTY;
        let mut next = (hole + 1) & mask;
        while self.slots[next] != EMPTY {
            let seq = self.slots[next];
            let home = self.home(self.value_at(seq));
            // Move it back into the hole unless that would put it before its home.
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                self.slots[hole] = seq;
                self.slots[next] = EMPTY;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.values.pop_front();
        self.head = ((u64::from(self.head) + 1) % SEQ_MODULUS) as u32;
        if self.slots.len() > 64 && self.values.len() * 8 < self.slots.len() {
            // Mostly expired after a burst: give the room back.
            self.values.shrink_to(self.values.len() * 2);
            self.reindex((self.values.len() * 4).next_power_of_two().max(16));
        }
    }

    fn reindex(&mut self, slots: usize) {
        self.slots = vec![EMPTY; slots];
        for index in 0..self.values.len() {
            let seq = (u64::from(self.head) + index as u64) % SEQ_MODULUS;
            self.place(self.values[index], seq as u32);
        }
    }
}

/// Event ids seen within `window_ms` of processing time, at most `capacity` of them;
/// the same contract as the Python `DedupWindow` (first wins, oldest leave first).
#[pyclass(module = "ecoshare._native")]
pub struct DedupWindow {
    #[pyo3(get)]
    window_ms: i64,
    #[pyo3(get)]
    capacity: usize,
    uuids: UuidRing,
    others: HashSet<Arc<str>>,
    other_order: VecDeque<Arc<str>>,
    /// Arrival order across both kinds: true for a UUID (the oldest of `uuids`).
    kinds: VecDeque<bool>,
    runs: VecDeque<(i64, usize)>,
}

impl DedupWindow {
    pub fn insert(&mut self, event_id: &str, at_ms: i64) -> bool {
        match canonical_uuid(event_id) {
            Some(value) => {
                if !self.uuids.push(value) {
                    return false;
                }
                self.kinds.push_back(true);
            }
            None => {
                if self.others.contains(event_id) {
                    return false;
                }
                let id: Arc<str> = Arc::from(event_id);
                self.others.insert(id.clone());
                self.other_order.push_back(id);
                self.kinds.push_back(false);
            }
        }
        match self.runs.back_mut() {
            Some(run) if run.0 == at_ms => run.1 += 1,
            _ => self.runs.push_back((at_ms, 1)),
        }
        if self.kinds.len() > self.capacity {
            self.drop_oldest(1);
        }
        true
    }

    pub fn contains(&self, event_id: &str) -> bool {
        match canonical_uuid(event_id) {
            Some(value) => self.uuids.find(value).is_some(),
            None => self.others.contains(event_id),
        }
    }

    fn drop_oldest(&mut self, count: usize) {
        for _ in 0..count {
            let Some(is_uuid) = self.kinds.pop_front() else {
                return;
            };
            if is_uuid {
                self.uuids.pop_oldest();
            } else if let Some(id) = self.other_order.pop_front() {
                self.others.remove(&id);
            }
            if let Some(run) = self.runs.front_mut() {
                run.1 -= 1;
                if run.1 == 0 {
                    self.runs.pop_front();
                }
            }
        }
        self.release_spare();
    }

    /// Give back the room of ids other than UUIDs once a quarter of it is used (after
    /// an expiry), so a burst does not keep its peak for good; the ring does the same.
    fn release_spare(&mut self) {
        if self.others.capacity() > 1024 && self.others.len() * 4 < self.others.capacity() {
            self.others.shrink_to(self.others.len() * 2);
            self.other_order.shrink_to(self.other_order.len() * 2);
        }
        if self.kinds.capacity() > 1024 && self.kinds.len() * 4 < self.kinds.capacity() {
            self.kinds.shrink_to(self.kinds.len() * 2);
        }
    }
}

#[pymethods]
impl DedupWindow {
    #[new]
    fn new(window_ms: i64, capacity: usize) -> PyResult<Self> {
        if capacity > MAX_CAPACITY {
            return Err(PyValueError::new_err(format!(
                "dedup capacity {capacity} is over the most a window holds, {MAX_CAPACITY}"
            )));
        }
        Ok(DedupWindow {
            window_ms,
            capacity,
            uuids: UuidRing::new(),
            others: HashSet::new(),
            other_order: VecDeque::new(),
            kinds: VecDeque::new(),
            runs: VecDeque::new(),
        })
    }

    fn __len__(&self) -> usize {
        self.kinds.len()
    }

    fn __contains__(&self, event_id: &Bound<'_, PyAny>) -> bool {
        event_id.extract::<&str>().is_ok_and(|id| self.contains(id))
    }

    /// Remember `event_id`; False if it was already in the window (a duplicate).
    fn add(&mut self, event_id: &str, at_ms: i64) -> bool {
        self.insert(event_id, at_ms)
    }

    fn add_all(&mut self, event_ids: &Bound<'_, PyAny>, at_ms: i64) -> PyResult<()> {
        for event_id in event_ids.try_iter()? {
            let event_id = event_id?;
            self.insert(event_id.extract::<&str>()?, at_ms);
        }
        Ok(())
    }

    /// Forget ids seen more than `window_ms` before `now_ms`.
    fn expire(&mut self, now_ms: i64) {
        let horizon = now_ms - self.window_ms;
        while let Some(&(at_ms, count)) = self.runs.front() {
            if at_ms >= horizon {
                break;
            }
            self.drop_oldest(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{canonical_uuid, UuidRing, SEQ_MODULUS};

    #[test]
    fn the_ring_answers_the_same_across_the_wrap_of_its_sequence_numbers() {
        let mut ring = UuidRing::new();
        ring.head = (SEQ_MODULUS - 50) as u32; // a window that has seen ~4 billion ids
        for value in 0..3000u128 {
            assert!(ring.push(value * 7919));
            assert!(!ring.push(value * 7919));
            if value >= 100 {
                ring.pop_oldest(); // keep 100: positions wrap while entries shift back
                assert!(ring.find((value - 100) * 7919).is_none());
            }
            let oldest = value.saturating_sub(99);
            assert!((oldest..=value).all(|kept| ring.find(kept * 7919).is_some()));
        }
        for _ in 0..100 {
            ring.pop_oldest();
        }
        assert!(ring.values.is_empty() && ring.slots.len() <= 64);
    }

    #[test]
    fn only_the_canonical_lowercase_form_is_a_uuid() {
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(canonical_uuid(id), Some(0x0f8fad5b_d9cb_469f_a165_70867728950e));
        assert_eq!(canonical_uuid(&id.to_uppercase()), None);
        assert_eq!(canonical_uuid(&id.replace('-', "")), None);
        assert_eq!(canonical_uuid("0f8fad5bd-9cb-469f-a165-70867728950e"), None);
        assert_eq!(canonical_uuid(&format!("{{{id}}}")), None);
        assert_eq!(canonical_uuid("0f8fad5b-d9cb-469f-a165-70867728950g"), None);
        assert_eq!(canonical_uuid(""), None);
    }
}
