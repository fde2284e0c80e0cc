//! The duplicate-id window of one ingress partition, as `ecoshare.governance.dedup`.
//!
//! The window holds up to `capacity` ids per partition for a day by default, so its
//! cost per id is the worker's memory bound. The SDK's ids are canonical UUIDs
//! (lowercase, hyphenated): those are kept as their 128-bit value, 16 bytes instead of
//! a string allocation; any other id is kept as a string. Only the exact canonical
//! form is converted, so the conversion is lossless and two ids are the same entry
//! exactly when they are the same string ("ABC…" and "abc…" stay different ids).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

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

/// Event ids seen within `window_ms` of processing time, at most `capacity` of them;
/// the same contract as the Python `DedupWindow` (first wins, oldest leave first).
#[pyclass(module = "ecoshare._native")]
pub struct DedupWindow {
    #[pyo3(get)]
    window_ms: i64,
    #[pyo3(get)]
    capacity: usize,
    uuids: HashSet<u128>,
    uuid_order: VecDeque<u128>,
    others: HashSet<Arc<str>>,
    other_order: VecDeque<Arc<str>>,
    /// Arrival order across both kinds: true for a UUID (the front of `uuid_order`).
    kinds: VecDeque<bool>,
    runs: VecDeque<(i64, usize)>,
}

impl DedupWindow {
    pub fn insert(&mut self, event_id: &str, at_ms: i64) -> bool {
        match canonical_uuid(event_id) {
            Some(value) => {
                if !self.uuids.insert(value) {
                    return false;
                }
                self.uuid_order.push_back(value);
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
            Some(value) => self.uuids.contains(&value),
            None => self.others.contains(event_id),
        }
    }

    fn drop_oldest(&mut self, count: usize) {
        for _ in 0..count {
            let Some(is_uuid) = self.kinds.pop_front() else {
                return;
            };
            if is_uuid {
                if let Some(value) = self.uuid_order.pop_front() {
                    self.uuids.remove(&value);
                }
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

    /// Give back the memory of a window that has shrunk to a quarter of what it holds
    /// room for (after an expiry), so a burst does not keep its peak for good.
    fn release_spare(&mut self) {
        if self.uuids.capacity() > 1024 && self.uuids.len() * 4 < self.uuids.capacity() {
            self.uuids.shrink_to(self.uuids.len() * 2);
            self.uuid_order.shrink_to(self.uuid_order.len() * 2);
            self.kinds.shrink_to(self.kinds.len() * 2);
        }
        if self.others.capacity() > 1024 && self.others.len() * 4 < self.others.capacity() {
            self.others.shrink_to(self.others.len() * 2);
            self.other_order.shrink_to(self.other_order.len() * 2);
            self.kinds.shrink_to(self.kinds.len() * 2);
        }
    }
}

#[pymethods]
impl DedupWindow {
    #[new]
    fn new(window_ms: i64, capacity: usize) -> Self {
        DedupWindow {
            window_ms,
            capacity,
            uuids: HashSet::new(),
            uuid_order: VecDeque::new(),
            others: HashSet::new(),
            other_order: VecDeque::new(),
            kinds: VecDeque::new(),
            runs: VecDeque::new(),
        }
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
    use super::canonical_uuid;

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
