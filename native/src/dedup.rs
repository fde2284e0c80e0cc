//! The duplicate-id window of one ingress partition, as `ecoshare.governance.dedup`.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use pyo3::prelude::*;

/// Event ids seen within `window_ms` of processing time, at most `capacity` of them;
/// the same contract as the Python `DedupWindow` (first wins, oldest leave first).
#[pyclass(module = "ecoshare._native")]
pub struct DedupWindow {
    #[pyo3(get)]
    window_ms: i64,
    #[pyo3(get)]
    capacity: usize,
    seen: HashSet<Arc<str>>,
    ids: VecDeque<Arc<str>>,
    runs: VecDeque<(i64, usize)>,
}

impl DedupWindow {
    pub fn insert(&mut self, event_id: &str, at_ms: i64) -> bool {
        if self.seen.contains(event_id) {
            return false;
        }
        let id: Arc<str> = Arc::from(event_id);
        self.seen.insert(id.clone());
        self.ids.push_back(id);
        match self.runs.back_mut() {
            Some(run) if run.0 == at_ms => run.1 += 1,
            _ => self.runs.push_back((at_ms, 1)),
        }
        if self.ids.len() > self.capacity {
            self.drop_oldest(1);
        }
        true
    }

    fn drop_oldest(&mut self, count: usize) {
        for _ in 0..count {
            let Some(id) = self.ids.pop_front() else {
                return;
            };
            self.seen.remove(&id);
            if let Some(run) = self.runs.front_mut() {
                run.1 -= 1;
                if run.1 == 0 {
                    self.runs.pop_front();
                }
            }
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
            seen: HashSet::new(),
            ids: VecDeque::new(),
            runs: VecDeque::new(),
        }
    }

    fn __len__(&self) -> usize {
        self.seen.len()
    }

    fn __contains__(&self, event_id: &Bound<'_, PyAny>) -> bool {
        event_id.extract::<&str>().is_ok_and(|id| self.seen.contains(id))
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
