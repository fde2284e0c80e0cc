//! The compiled governance core of ecoshare.
//!
//! Every function here has a pure-Python reference in the `ecoshare` package that
//! the test suite holds it equal to; the Python engine falls back to those when this
//! extension is not built.

mod audit;
mod dedup;
mod filter;
mod kernel;
mod kernel_routes;
mod partition;
mod plan;
mod produce;
mod scan;
mod sign;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString, PyTuple};

use scan::{Captured, Program, ScanError};

/// The codec exception (from `ecoshare.codec.errors`) a scan error maps to.
pub(crate) fn scan_error(py: Python<'_>, error: ScanError) -> PyErr {
    let (class, message) = match error {
        ScanError::Truncated(message) => ("TruncatedPayloadError", message.to_owned()),
        ScanError::Invalid(message) => ("InvalidValueError", message),
        ScanError::Trailing(count) => ("TrailingBytesError", format!("{count} bytes after the record")),
    };
    match py
        .import("ecoshare.codec.errors")
        .and_then(|module| module.getattr(class))
        .and_then(|class| class.call1((message,)))
    {
        Ok(instance) => PyErr::from_value(instance),
        Err(failure) => failure,
    }
}

pub(crate) fn captured_to_py<'py>(py: Python<'py>, value: &Captured<'_>) -> Bound<'py, PyAny> {
    match value {
        Captured::None => py.None().into_bound(py),
        Captured::Str(text) => PyString::new(py, text).into_any(),
        Captured::Int(number) => PyInt::new(py, *number).into_any(),
    }
}

/// A writer schema compiled for strict scanning, with the envelope fields it captures.
#[pyclass(module = "ecoshare._native", frozen)]
pub struct Layout {
    pub(crate) program: Program,
    pub(crate) slots: Vec<Option<usize>>,
    pub(crate) captures: usize,
}

impl Layout {
    fn offsets_tuple<'py>(py: Python<'py>, offsets: &[usize]) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, offsets)
    }
}

#[pymethods]
impl Layout {
    #[new]
    #[pyo3(signature = (schema, captures = Vec::new()))]
    fn new(schema: &Bound<'_, PyAny>, captures: Vec<String>) -> PyResult<Self> {
        let program = Program::compile(schema)?;
        let mut slots = vec![None; program.fields.len()];
        for (slot, name) in captures.iter().enumerate() {
            if let Some(index) = program.field_names.iter().position(|field| field == name) {
                if program.capturable(program.fields[index]) {
                    slots[index] = Some(slot);
                }
            }
        }
        Ok(Layout {
            program,
            slots,
            captures: captures.len(),
        })
    }

    /// The compiled row filter of `ecoshare.governance.plan.row_filter_ops` output.
    fn row_filter(&self, ops: &Bound<'_, PyAny>) -> PyResult<filter::RowFilter> {
        filter::RowFilter::compile(&self.program, ops)
    }

    #[getter]
    fn field_names(&self) -> Vec<String> {
        self.program.field_names.clone()
    }

    /// Start offset of every top-level field, then the end; raises a codec error.
    fn scan<'py>(&self, py: Python<'py>, body: &[u8], start: usize) -> PyResult<Bound<'py, PyTuple>> {
        let mut offsets = Vec::with_capacity(self.program.fields.len() + 1);
        self.program
            .scan(body, start.min(body.len()), &mut offsets, &[], &mut [])
            .map_err(|error| scan_error(py, error))?;
        Self::offsets_tuple(py, &offsets)
    }

    /// As `scan`, and the captured envelope fields' values (None where absent).
    fn scan_reading<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
        start: usize,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyTuple>)> {
        let mut offsets = Vec::with_capacity(self.program.fields.len() + 1);
        let mut values: Vec<Captured<'_>> = (0..self.captures).map(|_| Captured::None).collect();
        self.program
            .scan(
                body,
                start.min(body.len()),
                &mut offsets,
                &self.slots,
                &mut values,
            )
            .map_err(|error| scan_error(py, error))?;
        let envelope = PyTuple::new(py, values.iter().map(|value| captured_to_py(py, value)))?;
        Ok((Self::offsets_tuple(py, &offsets)?, envelope))
    }
}

fn checked_key(key: &[u8]) -> PyResult<&[u8]> {
    if key.len() > blake2b_simd::KEYBYTES {
        return Err(PyValueError::new_err("BLAKE2b keys are at most 64 bytes"));
    }
    Ok(key)
}

/// Hex keyed BLAKE2b-256 over the event type, the record key (None signs as empty)
/// and the value, as `ecoshare.domain.identity.sign_event`.
#[pyfunction]
fn event_signature<'py>(
    py: Python<'py>,
    signing_key: &[u8],
    event_type: &str,
    record_key: Option<&[u8]>,
    value: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let signature = sign::event_signature(
        checked_key(signing_key)?,
        event_type.as_bytes(),
        record_key.unwrap_or(b""),
        value,
    );
    Ok(PyBytes::new(py, &signature))
}

/// Constant-time check of a signature made by `event_signature`.
#[pyfunction]
fn signature_matches(
    signing_key: &[u8],
    event_type: &str,
    record_key: Option<&[u8]>,
    value: &[u8],
    signature: &[u8],
) -> PyResult<bool> {
    Ok(sign::signature_matches(
        checked_key(signing_key)?,
        event_type.as_bytes(),
        record_key.unwrap_or(b""),
        value,
        signature,
    ))
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<Layout>()?;
    module.add_class::<dedup::DedupWindow>()?;
    module.add_class::<plan::Plan>()?;
    module.add_class::<filter::RowFilter>()?;
    module.add_class::<produce::Produce>()?;
    module.add_function(wrap_pyfunction!(event_signature, module)?)?;
    module.add_function(wrap_pyfunction!(kernel::govern_batch, module)?)?;
    module.add_function(wrap_pyfunction!(audit::audit_json, module)?)?;
    module.add_function(wrap_pyfunction!(partition::murmur2_py, module)?)?;
    module.add_function(wrap_pyfunction!(partition::key_partition, module)?)?;
    module.add_function(wrap_pyfunction!(signature_matches, module)?)?;
    Ok(())
}
