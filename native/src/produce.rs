//! The record of one output to produce, as `ecoshare.governance.rendering.Produce`.
//!
//! The batch kernel makes ~2.4 of these per event. Built here they cost an allocation
//! and six reference counts; a Python dataclass cost a call into Python and a frame of
//! its `__init__` each, the largest single cost left in the engine. Where this
//! extension is built, the Python paths make the same records, so a batch's outputs
//! are of one type whichever path governed them.

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// One record to produce, to an explicit partition, for one ingress partition.
#[pyclass(module = "ecoshare._native", name = "Produce", frozen, get_all)]
pub struct Produce {
    pub(crate) topic: Py<PyString>,
    pub(crate) partition: Py<PyAny>,
    pub(crate) key: Py<PyAny>,
    pub(crate) value: Py<PyBytes>,
    pub(crate) headers: Py<PyList>,
    pub(crate) source: Py<PyAny>,
}

impl Produce {
    fn fields<'py>(&self, py: Python<'py>) -> [Bound<'py, PyAny>; 6] {
        [
            self.topic.bind(py).clone().into_any(),
            self.partition.bind(py).clone(),
            self.key.bind(py).clone(),
            self.value.bind(py).clone().into_any(),
            self.headers.bind(py).clone().into_any(),
            self.source.bind(py).clone(),
        ]
    }
}

#[pymethods]
impl Produce {
    #[new]
    #[pyo3(signature = (topic, partition, key, value, headers, source))]
    fn new(
        topic: Bound<'_, PyString>,
        partition: Bound<'_, PyAny>,
        key: Bound<'_, PyAny>,
        value: Bound<'_, PyBytes>,
        headers: Bound<'_, PyList>,
        source: Bound<'_, PyTuple>,
    ) -> Self {
        Produce {
            topic: topic.unbind(),
            partition: partition.unbind(),
            key: key.unbind(),
            value: value.unbind(),
            headers: headers.unbind(),
            source: source.into_any().unbind(),
        }
    }

    /// Equal field by field, as the dataclass it stands for (other types: not equal).
    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let (Ok(other), CompareOp::Eq | CompareOp::Ne) = (other.cast::<Produce>(), op) else {
            return Ok(py.NotImplemented());
        };
        let mut equal = true;
        for (mine, theirs) in self.fields(py).iter().zip(other.get().fields(py).iter()) {
            if !mine.eq(theirs)? {
                equal = false;
                break;
            }
        }
        let answer = equal == matches!(op, CompareOp::Eq);
        Ok(answer.into_pyobject(py)?.to_owned().into_any().unbind())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let [topic, partition, key, value, headers, source] = self.fields(py);
        Ok(format!(
            "Produce(topic={}, partition={}, key={}, value={}, headers={}, source={})",
            topic.repr()?,
            partition.repr()?,
            key.repr()?,
            value.repr()?,
            headers.repr()?,
            source.repr()?
        ))
    }
}
