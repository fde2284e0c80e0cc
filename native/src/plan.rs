//! Rendering of delivery plans: the subscriber's record from the scanned event body.
//!
//! A plan is the list of operations `ecoshare.governance.plan.compile_plan` records
//! beside its Python renderer (`DeliveryPlan.render_ops`): runs of unchanged fields are
//! copied as one slice, personal fields are copied or nulled by consent, and the few
//! transformed fields call their Python transform (mask, hash, generalise), so the
//! transforms' semantics stay in one place.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

enum Op {
    Copy(usize, usize),
    Const(Vec<u8>),
    Branch2(usize),
    Call(usize, Py<PyAny>),
    RoundDouble(usize, i64, Py<PyAny>),
    Personal(Py<PyString>, Box<Op>),
}

fn parse(op: &Bound<'_, PyAny>) -> PyResult<Op> {
    let op = op
        .cast::<PyTuple>()
        .map_err(|_| PyValueError::new_err("a plan operation is a tuple"))?;
    let kind: String = op.get_item(0)?.extract()?;
    Ok(match kind.as_str() {
        "copy" => Op::Copy(op.get_item(1)?.extract()?, op.get_item(2)?.extract()?),
        "const" => Op::Const(op.get_item(1)?.extract()?),
        "branch2" => Op::Branch2(op.get_item(1)?.extract()?),
        "call" => Op::Call(op.get_item(1)?.extract()?, op.get_item(2)?.unbind()),
        "round_double" => Op::RoundDouble(
            op.get_item(1)?.extract()?,
            op.get_item(2)?.extract()?,
            op.get_item(3)?.unbind(),
        ),
        "personal" => Op::Personal(
            op.get_item(1)?.cast_into::<PyString>()?.unbind(),
            Box::new(parse(&op.get_item(2)?)?),
        ),
        other => return Err(PyValueError::new_err(format!("unknown plan operation {other:?}"))),
    })
}

/// One agreement version compiled for one writer schema, rendered natively.
#[pyclass(module = "ecoshare._native", frozen)]
pub struct Plan {
    ops: Vec<Op>,
    /// The highest field position an operation reads the end offset of.
    last_offset: usize,
}

fn offset(offsets: &[usize], index: usize) -> PyResult<usize> {
    offsets
        .get(index)
        .copied()
        .ok_or_else(|| PyValueError::new_err("offsets do not cover the plan"))
}

fn span(body: &[u8], offsets: &[usize], first: usize, stop: usize) -> PyResult<(usize, usize)> {
    let (start, end) = (offset(offsets, first)?, offset(offsets, stop)?);
    if start > end || end > body.len() {
        return Err(PyValueError::new_err("offsets outside the body"));
    }
    Ok((start, end))
}

impl Plan {
    fn apply(
        &self,
        py: Python<'_>,
        op: &Op,
        body: &Bound<'_, PyBytes>,
        offsets: &[usize],
        allowed: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
    ) -> PyResult<()> {
        let raw = body.as_bytes();
        match op {
            Op::Copy(first, stop) => {
                let (start, end) = span(raw, offsets, *first, *stop)?;
                out.extend_from_slice(&raw[start..end]);
            }
            Op::Const(bytes) => out.extend_from_slice(bytes),
            Op::Branch2(field) => {
                let (start, end) = span(raw, offsets, *field, field + 1)?;
                out.push(2);
                out.extend_from_slice(&raw[start..end]);
            }
            Op::Call(field, function) => {
                let (start, end) = span(raw, offsets, *field, field + 1)?;
                let value = function.bind(py).call1((body, start, end))?;
                out.extend_from_slice(value.cast::<PyBytes>()?.as_bytes());
            }
            Op::RoundDouble(field, decimals, function) => {
                let (start, end) = span(raw, offsets, *field, field + 1)?;
                match rounded_double(&raw[start..end], *decimals) {
                    Some(bytes) => out.extend_from_slice(&bytes),
                    None => {
                        let value = function.bind(py).call1((body, start, end))?;
                        out.extend_from_slice(value.cast::<PyBytes>()?.as_bytes());
                    }
                }
            }
            Op::Personal(name, inner) => {
                if allowed.contains(name.bind(py))? {
                    self.apply(py, inner, body, offsets, allowed, out)?;
                } else {
                    out.push(0);
                }
            }
        }
        Ok(())
    }
}

impl Plan {
    /// The rendered record appended to `out`; `positions` are the scanner's offsets.
    pub(crate) fn render_into(
        &self,
        py: Python<'_>,
        body: &Bound<'_, PyBytes>,
        positions: &[usize],
        allowed: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
    ) -> PyResult<()> {
        for op in &self.ops {
            self.apply(py, op, body, positions, allowed, out)?;
        }
        Ok(())
    }
}

const POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];
const TWO_TO_40: f64 = 1_099_511_627_776.0;
const TWO_TO_MINUS_12: f64 = 1.0 / 4096.0;

/// `round(value, decimals)` of the little-endian double `bytes`, as Python rounds
/// (correctly rounded decimal digits, ties to even on the binary value, read back
/// correctly rounded), where no saturation can apply: a finite value below 1e300 and
/// 0 to 15 decimals. None otherwise (the Python transform decides).
fn rounded_double(bytes: &[u8], decimals: i64) -> Option<[u8; 8]> {
    let value = f64::from_le_bytes(bytes.try_into().ok()?);
    if !(0..=15).contains(&decimals) || !value.is_finite() || value.abs() >= 1e300 {
        return None;
    }
    // Fast path: value * 10^d is one correctly rounded product, off by at most
    // |product| * 2^-53 < 2^-13 below 2^40; unless it lies that close to a half, its
    // nearest integer N is the correctly rounded decimal's, and N / 10^d (N and 10^d
    // exact) is the double nearest that decimal, which is what parsing it gives.
    let scale = POWERS_OF_TEN[decimals as usize];
    let scaled = value * scale;
    if scaled.abs() < TWO_TO_40 && (scaled - scaled.floor() - 0.5).abs() > TWO_TO_MINUS_12 {
        return Some((scaled.round() / scale).to_le_bytes());
    }
    let text = format!("{value:.prec$}", prec = decimals as usize);
    let rounded: f64 = text.parse().ok()?;
    Some(rounded.to_le_bytes())
}

fn highest(op: &Op) -> usize {
    match op {
        Op::Copy(_, stop) => *stop,
        Op::Const(_) => 0,
        Op::Branch2(field) | Op::Call(field, _) | Op::RoundDouble(field, _, _) => field + 1,
        Op::Personal(_, inner) => highest(inner),
    }
}

#[pymethods]
impl Plan {
    #[new]
    fn new(ops: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut parsed = Vec::new();
        for op in ops.try_iter()? {
            parsed.push(parse(&op?)?);
        }
        let last_offset = parsed.iter().map(highest).max().unwrap_or(0);
        Ok(Plan {
            ops: parsed,
            last_offset,
        })
    }

    /// `prefix` (the framing header) followed by the rendered record; `offsets` are the
    /// scanner's, `allowed` the personal fields with consent.
    fn render<'py>(
        &self,
        py: Python<'py>,
        prefix: &[u8],
        body: &Bound<'py, PyBytes>,
        offsets: &Bound<'py, PyTuple>,
        allowed: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let count = offsets.len().min(self.last_offset + 1);
        let mut positions = Vec::with_capacity(count);
        for index in 0..count {
            positions.push(offsets.get_item(index)?.extract::<usize>()?);
        }
        let mut out = Vec::with_capacity(prefix.len() + body.as_bytes().len());
        out.extend_from_slice(prefix);
        self.render_into(py, body, &positions, allowed, &mut out)?;
        Ok(PyBytes::new(py, &out))
    }
}
