//! The audit block's JSON, byte for byte what `json.dumps(obj, separators=(",", ":"))`
//! writes (ASCII only, the same escapes, floats through Python's own repr).

use std::io::Write;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

const HEX: &[u8; 16] = b"0123456789abcdef";

fn escape_into(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    // Most audit text (ids, names, reasons) needs no escape: copied in one go.
    if text
        .bytes()
        .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\')
    {
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    for character in text.chars() {
        match character {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(character as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in character.encode_utf16(&mut units) {
                    out.extend_from_slice(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[usize::from((*unit >> shift) & 0xF)]);
                    }
                }
            }
        }
    }
    out.push(b'"');
}

fn float_into(value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    let number: f64 = value.extract()?;
    if number.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if number.is_infinite() {
        out.extend_from_slice(if number > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        // Python's float repr (shortest round-trip), exactly as json uses it.
        let text = value
            .py()
            .get_type::<PyFloat>()
            .call_method1("__repr__", (value,))?;
        out.extend_from_slice(text.cast::<PyString>()?.to_str()?.as_bytes());
    }
    Ok(())
}

fn encode_into(value: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: u32) -> PyResult<()> {
    if depth > 64 {
        return Err(PyTypeError::new_err("audit value nested too deeply"));
    }
    if value.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(flag) = value.cast::<PyBool>() {
        out.extend_from_slice(if flag.is_true() { b"true" } else { b"false" });
    } else if let Ok(text) = value.cast::<PyString>() {
        escape_into(text.to_str()?, out);
    } else if value.is_instance_of::<PyInt>() {
        match value.extract::<i64>() {
            Ok(number) => {
                let _ = write!(out, "{number}");
            }
            Err(_) => {
                let text = value
                    .py()
                    .get_type::<PyInt>()
                    .call_method1("__repr__", (value,))?;
                out.extend_from_slice(text.cast::<PyString>()?.to_str()?.as_bytes());
            }
        }
    } else if value.is_instance_of::<PyFloat>() {
        float_into(value, out)?;
    } else if let Ok(items) = value.cast::<PyList>() {
        out.push(b'[');
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            encode_into(&item, out, depth + 1)?;
        }
        out.push(b']');
    } else if let Ok(items) = value.cast::<PyTuple>() {
        out.push(b'[');
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            encode_into(&item, out, depth + 1)?;
        }
        out.push(b']');
    } else if let Ok(mapping) = value.cast::<PyDict>() {
        out.push(b'{');
        for (index, (key, item)) in mapping.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let key = key
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("audit object keys must be strings"))?;
            escape_into(key.to_str()?, out);
            out.push(b':');
            encode_into(&item, out, depth + 1)?;
        }
        out.push(b'}');
    } else {
        return Err(PyTypeError::new_err(format!(
            "cannot encode {} in an audit block",
            value.get_type().name()?
        )));
    }
    Ok(())
}

/// Compact JSON of an audit block, as bytes; TypeError for what it does not encode
/// (the caller then uses `json.dumps`).
#[pyfunction]
pub fn audit_json<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::with_capacity(4096);
    encode_into(value, &mut out, 0)?;
    Ok(PyBytes::new(py, &out))
}
