//! Row filters over a scanned body: prefix and set membership on text fields natively,
//! any other filter through its Python predicate.

use std::collections::HashSet;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::scan::{read_long, read_str, Node, Program};

/// How a text field is stored: a plain string, or a union with a null and a string.
#[derive(Clone, Copy)]
enum Text {
    Plain,
    Nullable { string_branch: i64, null_branch: i64 },
}

enum Test {
    Prefix(usize, Text, Vec<String>),
    OneOf(usize, Text, HashSet<String>),
    Call(Py<PyAny>),
    Never,
}

/// All of an agreement's row filters (`DeliveryPlan.row_filter` natively); called as
/// `filter(body, offsets)`.
#[pyclass(module = "ecoshare._native", frozen)]
pub struct RowFilter {
    tests: Vec<Test>,
}

fn text_kind(program: &Program, position: usize) -> Option<Text> {
    let field = *program.fields.get(position)?;
    match &program.nodes[program.target(field)] {
        Node::String => Some(Text::Plain),
        Node::Union(branches) if branches.len() == 2 => {
            let kinds: Vec<&Node> = branches
                .iter()
                .map(|branch| &program.nodes[program.target(*branch)])
                .collect();
            match (kinds[0], kinds[1]) {
                (Node::Null, Node::String) => Some(Text::Nullable {
                    string_branch: 1,
                    null_branch: 0,
                }),
                (Node::String, Node::Null) => Some(Text::Nullable {
                    string_branch: 0,
                    null_branch: 1,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

impl RowFilter {
    pub fn compile(program: &Program, ops: &Bound<'_, PyAny>) -> PyResult<RowFilter> {
        let mut tests = Vec::new();
        for op in ops.try_iter()? {
            let op = op?;
            let op = op
                .cast::<PyTuple>()
                .map_err(|_| PyValueError::new_err("a filter operation is a tuple"))?;
            let kind: String = op.get_item(0)?.extract()?;
            let test = match kind.as_str() {
                "never" => Test::Never,
                "call" => Test::Call(op.get_item(1)?.unbind()),
                "prefix" | "in" => {
                    let position: usize = op.get_item(1)?.extract()?;
                    let operands: Vec<String> = op.get_item(2)?.extract()?;
                    match text_kind(program, position) {
                        Some(text) if kind == "prefix" => Test::Prefix(position, text, operands),
                        Some(text) => Test::OneOf(position, text, operands.into_iter().collect()),
                        None => Test::Call(op.get_item(3)?.unbind()),
                    }
                }
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown filter operation {other:?}"
                    )))
                }
            };
            tests.push(test);
        }
        Ok(RowFilter { tests })
    }
}

fn text_at(body: &[u8], start: usize, text: Text) -> PyResult<Option<&str>> {
    let mut pos = start;
    let unreadable = |_| PyValueError::new_err("row filter field does not decode (body not scanned?)");
    if let Text::Nullable {
        string_branch,
        null_branch,
    } = text
    {
        let branch = read_long(body, &mut pos).map_err(unreadable)?;
        if branch == null_branch {
            return Ok(None);
        }
        if branch != string_branch {
            return Err(PyValueError::new_err("row filter field has no such union branch"));
        }
    }
    read_str(body, &mut pos).map(Some).map_err(unreadable)
}

/// Where a filtered field starts: from the scanner's offsets, a tuple or a slice.
trait Offsets {
    fn at(&self, position: usize) -> PyResult<usize>;
    fn as_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>>;
}

impl Offsets for Bound<'_, PyTuple> {
    fn at(&self, position: usize) -> PyResult<usize> {
        self.get_item(position)?.extract()
    }

    fn as_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        Ok(self.clone().unbind().into_bound(py))
    }
}

impl Offsets for [usize] {
    fn at(&self, position: usize) -> PyResult<usize> {
        self.get(position)
            .copied()
            .ok_or_else(|| PyValueError::new_err("offsets do not cover the filtered field"))
    }

    fn as_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self)
    }
}

impl RowFilter {
    fn check<O: Offsets + ?Sized>(&self, body: &Bound<'_, PyBytes>, offsets: &O) -> PyResult<bool> {
        let raw = body.as_bytes();
        for test in &self.tests {
            let passed = match test {
                Test::Never => false,
                Test::Call(predicate) => predicate
                    .bind(body.py())
                    .call1((body, offsets.as_tuple(body.py())?))?
                    .is_truthy()?,
                Test::Prefix(position, text, prefixes) => text_at(raw, offsets.at(*position)?, *text)?
                    .is_some_and(|value| prefixes.iter().any(|prefix| value.starts_with(prefix.as_str()))),
                Test::OneOf(position, text, options) => {
                    text_at(raw, offsets.at(*position)?, *text)?.is_some_and(|value| options.contains(value))
                }
            };
            if !passed {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// True when the event passes every filter; `offsets` are the scanner's.
    pub(crate) fn passes(&self, body: &Bound<'_, PyBytes>, offsets: &[usize]) -> PyResult<bool> {
        self.check(body, offsets)
    }
}

#[pymethods]
impl RowFilter {
    /// True when the event passes every filter.
    fn __call__(&self, body: &Bound<'_, PyBytes>, offsets: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.check(body, offsets)
    }
}
