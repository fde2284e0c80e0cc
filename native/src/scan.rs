//! Strict scanning of Avro binary bodies against a writer schema.
//!
//! A body is accepted exactly when a strict Avro reader would accept it:
//! `int` values (and enum indexes) take at most 5 bytes and fit 32 bits, `long` values
//! (and lengths, block counts and union indexes) take at most 10 bytes and fit 64 bits, booleans are 0 or 1, enum and union indexes are in
//! range, string and bytes lengths are not negative and fit in the body, strings are
//! UTF-8, fixed values fit, and no byte follows the record.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

/// Why a body was refused; mapped to the codec's exception classes at the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    Truncated(&'static str),
    Invalid(String),
    Trailing(usize),
}

pub type ScanResult<T> = Result<T, ScanError>;

#[derive(Debug, Clone)]
pub enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Enum(u32),
    Fixed(usize),
    Record(Vec<usize>),
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    /// A named type referred to before its definition was complete (recursion).
    Ref(usize),
}

/// Deepest nesting a body may reach; beyond it the body is refused rather than
/// exhausting the native stack (no catalog schema comes near it).
const MAX_DEPTH: u32 = 256;

/// A compiled writer schema: a graph of nodes, the top-level record's fields.
#[derive(Debug, Clone)]
pub struct Program {
    pub nodes: Vec<Node>,
    pub fields: Vec<usize>,
    pub field_names: Vec<String>,
    zero_width: Vec<bool>,
}

struct Builder {
    nodes: Vec<Node>,
    names: HashMap<String, usize>,
}

fn err(message: impl Into<String>) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(message.into())
}

impl Builder {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn define(
        &mut self,
        schema: &Bound<'_, PyDict>,
        namespace: Option<&str>,
        index: usize,
    ) -> PyResult<Option<String>> {
        let name: String = schema
            .get_item("name")?
            .ok_or_else(|| err("named type without a name"))?
            .extract()?;
        let space: Option<String> = match schema.get_item("namespace")? {
            Some(value) if !value.is_none() => Some(value.extract()?),
            _ => namespace.map(str::to_owned),
        };
        let full = match (&space, name.contains('.')) {
            (Some(space), false) if !space.is_empty() => format!("{space}.{name}"),
            _ => name.clone(),
        };
        self.names.insert(full.clone(), index);
        self.names.entry(name).or_insert(index);
        Ok(match full.rsplit_once('.') {
            Some((space, _)) => Some(space.to_owned()),
            None => space,
        })
    }

    fn resolve(&self, reference: &str, namespace: Option<&str>) -> PyResult<usize> {
        if let Some(space) = namespace {
            if let Some(found) = self.names.get(&format!("{space}.{reference}")) {
                return Ok(*found);
            }
        }
        self.names
            .get(reference)
            .copied()
            .ok_or_else(|| err(format!("unknown named type {reference:?}")))
    }

    fn primitive(name: &str) -> Option<Node> {
        Some(match name {
            "null" => Node::Null,
            "boolean" => Node::Boolean,
            "int" => Node::Int,
            "long" => Node::Long,
            "float" => Node::Float,
            "double" => Node::Double,
            "bytes" => Node::Bytes,
            "string" => Node::String,
            _ => return None,
        })
    }

    fn compile(&mut self, schema: &Bound<'_, PyAny>, namespace: Option<&str>) -> PyResult<usize> {
        if let Ok(name) = schema.cast::<PyString>() {
            let name = name.to_str()?;
            if let Some(node) = Self::primitive(name) {
                return Ok(self.push(node));
            }
            let target = self.resolve(name, namespace)?;
            return Ok(self.push(Node::Ref(target)));
        }
        if let Ok(branches) = schema.cast::<PyList>() {
            let mut compiled = Vec::with_capacity(branches.len());
            for branch in branches.iter() {
                compiled.push(self.compile(&branch, namespace)?);
            }
            return Ok(self.push(Node::Union(compiled)));
        }
        let schema = schema
            .cast::<PyDict>()
            .map_err(|_| err("an Avro schema is a name, a list or an object"))?;
        let kind_item = schema
            .get_item("type")?
            .ok_or_else(|| err("schema without a type"))?;
        let kind: String = match kind_item.extract::<String>() {
            Ok(kind) => kind,
            // {"type": {...}} or {"type": [...]}: the type is the nested schema.
            Err(_) => return self.compile(&kind_item, namespace),
        };
        if let Some(node) = Self::primitive(&kind) {
            return Ok(self.push(node));
        }
        match kind.as_str() {
            "enum" => {
                let index = self.push(Node::Null);
                self.define(schema, namespace, index)?;
                let symbols = schema
                    .get_item("symbols")?
                    .ok_or_else(|| err("enum without symbols"))?
                    .len()?;
                self.nodes[index] = Node::Enum(u32::try_from(symbols).map_err(|_| err("too many symbols"))?);
                Ok(index)
            }
            "fixed" => {
                let index = self.push(Node::Null);
                self.define(schema, namespace, index)?;
                let size: usize = schema
                    .get_item("size")?
                    .ok_or_else(|| err("fixed without size"))?
                    .extract()?;
                self.nodes[index] = Node::Fixed(size);
                Ok(index)
            }
            "record" | "error" => {
                let index = self.push(Node::Record(Vec::new()));
                let inner = self.define(schema, namespace, index)?;
                let fields = schema
                    .get_item("fields")?
                    .ok_or_else(|| err("record without fields"))?;
                let mut compiled = Vec::new();
                for field in fields.try_iter()? {
                    let field = field?;
                    let field_type = field.get_item("type")?;
                    compiled.push(self.compile(&field_type, inner.as_deref())?);
                }
                self.nodes[index] = Node::Record(compiled);
                Ok(index)
            }
            "array" => {
                let items = schema
                    .get_item("items")?
                    .ok_or_else(|| err("array without items"))?;
                let items = self.compile(&items, namespace)?;
                Ok(self.push(Node::Array(items)))
            }
            "map" => {
                let values = schema
                    .get_item("values")?
                    .ok_or_else(|| err("map without values"))?;
                let values = self.compile(&values, namespace)?;
                Ok(self.push(Node::Map(values)))
            }
            other => Err(err(format!("unsupported Avro type {other:?}"))),
        }
    }
}

impl Program {
    /// Compile a record schema in its JSON form (dicts, lists and strings).
    pub fn compile(schema: &Bound<'_, PyAny>) -> PyResult<Program> {
        let record = schema
            .cast::<PyDict>()
            .map_err(|_| err("only record schemas can be compiled"))?;
        let kind: String = record
            .get_item("type")?
            .ok_or_else(|| err("schema without a type"))?
            .extract()?;
        if kind != "record" {
            return Err(err("only record schemas can be compiled"));
        }
        let mut builder = Builder {
            nodes: Vec::new(),
            names: HashMap::new(),
        };
        let root = builder.compile(schema, None)?;
        let fields = match &builder.nodes[root] {
            Node::Record(fields) => fields.clone(),
            _ => unreachable!("a record compiles to a record node"),
        };
        let mut field_names = Vec::new();
        for field in record
            .get_item("fields")?
            .ok_or_else(|| err("record without fields"))?
            .try_iter()?
        {
            field_names.push(field?.get_item("name")?.extract()?);
        }
        let nodes = builder.nodes;
        let zero_width = (0..nodes.len())
            .map(|index| is_zero_width(&nodes, index, &mut Vec::new()))
            .collect();
        Ok(Program {
            nodes,
            fields,
            field_names,
            zero_width,
        })
    }

    pub fn target(&self, mut node: usize) -> usize {
        while let Node::Ref(target) = self.nodes[node] {
            node = target;
        }
        node
    }

    /// Step over one value at `pos`.
    pub fn skip(&self, node: usize, buf: &[u8], pos: &mut usize, depth: u32) -> ScanResult<()> {
        match &self.nodes[node] {
            Node::Null => Ok(()),
            Node::Boolean => {
                let byte = *buf
                    .get(*pos)
                    .ok_or(ScanError::Truncated("payload ends inside the record"))?;
                if byte > 1 {
                    return Err(ScanError::Invalid("boolean byte > 1".into()));
                }
                *pos += 1;
                Ok(())
            }
            Node::Int => read_int(buf, pos).map(|_| ()),
            Node::Long => read_long(buf, pos).map(|_| ()),
            Node::Float => advance(buf, pos, 4),
            Node::Double => advance(buf, pos, 8),
            Node::Bytes => {
                let length = read_length(buf, pos)?;
                advance(buf, pos, length)
            }
            Node::String => read_str(buf, pos).map(|_| ()),
            Node::Enum(count) => {
                let index = read_int(buf, pos)?;
                if index < 0 || index as u64 >= u64::from(*count) {
                    return Err(ScanError::Invalid(format!(
                        "enum index {index} outside 0..{count}"
                    )));
                }
                Ok(())
            }
            Node::Fixed(size) => advance(buf, pos, *size),
            Node::Record(fields) => {
                let depth = deeper(depth)?;
                for field in fields {
                    self.skip(*field, buf, pos, depth)?;
                }
                Ok(())
            }
            Node::Array(items) => self.skip_blocks(buf, pos, depth, None, *items),
            Node::Map(values) => self.skip_blocks(buf, pos, depth, Some(()), *values),
            Node::Union(branches) => {
                let branch = self.branch(branches, buf, pos)?;
                self.skip(branch, buf, pos, deeper(depth)?)
            }
            Node::Ref(target) => self.skip(*target, buf, pos, depth),
        }
    }

    /// The branch a union value takes. Its index is read as a `long`, as the avro and
    /// fastavro readers and the Python scanner do (the specification writes it as an
    /// `int`; both cores accept the same non-minimal encodings of a valid index).
    pub fn branch(&self, branches: &[usize], buf: &[u8], pos: &mut usize) -> ScanResult<usize> {
        let index = read_long(buf, pos)?;
        if index < 0 || index as usize >= branches.len() {
            return Err(ScanError::Invalid(format!(
                "union branch {index} outside 0..{}",
                branches.len()
            )));
        }
        Ok(branches[index as usize])
    }

    fn skip_blocks(
        &self,
        buf: &[u8],
        pos: &mut usize,
        depth: u32,
        keyed: Option<()>,
        item: usize,
    ) -> ScanResult<()> {
        let depth = deeper(depth)?;
        loop {
            let count = read_long(buf, pos)?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                read_long(buf, pos)?; // the block's size in bytes, which a reader may ignore
            }
            let count = count.unsigned_abs();
            if keyed.is_none() && self.zero_width[item] {
                continue; // items of no bytes: nothing to step over, however many
            }
            for _ in 0..count {
                if keyed.is_some() {
                    read_str(buf, pos)?;
                }
                self.skip(item, buf, pos, depth)?;
            }
        }
    }
}

fn deeper(depth: u32) -> ScanResult<u32> {
    if depth >= MAX_DEPTH {
        return Err(ScanError::Invalid(format!(
            "values nested deeper than {MAX_DEPTH}"
        )));
    }
    Ok(depth + 1)
}

fn is_zero_width(nodes: &[Node], index: usize, visiting: &mut Vec<usize>) -> bool {
    if visiting.contains(&index) {
        return false; // a recursive type that never passes a union or array has no finite value
    }
    visiting.push(index);
    let result = match &nodes[index] {
        Node::Null => true,
        Node::Fixed(size) => *size == 0,
        Node::Record(fields) => fields.iter().all(|field| is_zero_width(nodes, *field, visiting)),
        Node::Ref(target) => is_zero_width(nodes, *target, visiting),
        _ => false,
    };
    visiting.pop();
    result
}

const TRUNCATED: ScanError = ScanError::Truncated("payload ends inside the record");

#[inline]
fn advance(buf: &[u8], pos: &mut usize, length: usize) -> ScanResult<()> {
    let end = pos.checked_add(length).ok_or(TRUNCATED)?;
    if end > buf.len() {
        return Err(TRUNCATED);
    }
    *pos = end;
    Ok(())
}

/// An unsigned varint of at most `max_bytes` bytes whose value fits `max_bits` bits.
#[inline]
fn read_varint(buf: &[u8], pos: &mut usize, max_bytes: u32, kind: &str) -> ScanResult<u64> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    let mut count = 0u32;
    loop {
        let byte = *buf.get(*pos).ok_or(TRUNCATED)?;
        *pos += 1;
        count += 1;
        if count == max_bytes && max_bytes == 10 && byte > 1 {
            return Err(ScanError::Invalid(format!("{kind} varint exceeds 64 bits")));
        }
        value |= u64::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
        if count >= max_bytes {
            return Err(ScanError::Invalid(format!(
                "{kind} varint longer than {max_bytes} bytes"
            )));
        }
        shift += 7;
    }
}

#[inline]
pub fn read_long(buf: &[u8], pos: &mut usize) -> ScanResult<i64> {
    let first = *buf.get(*pos).ok_or(TRUNCATED)?;
    if first < 0x80 {
        *pos += 1;
        return Ok(i64::from(first >> 1) ^ -i64::from(first & 1));
    }
    let raw = read_varint(buf, pos, 10, "long")?;
    Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
}

#[inline]
pub fn read_int(buf: &[u8], pos: &mut usize) -> ScanResult<i32> {
    let first = *buf.get(*pos).ok_or(TRUNCATED)?;
    if first < 0x80 {
        *pos += 1;
        return Ok(i32::from(first >> 1) ^ -i32::from(first & 1));
    }
    let raw = read_varint(buf, pos, 5, "int")?;
    if raw > u64::from(u32::MAX) {
        return Err(ScanError::Invalid("int value outside 32 bits".into()));
    }
    let raw = raw as u32;
    Ok((raw >> 1) as i32 ^ -((raw & 1) as i32))
}

#[inline]
fn read_length(buf: &[u8], pos: &mut usize) -> ScanResult<usize> {
    let length = read_long(buf, pos)?;
    if length < 0 {
        return Err(ScanError::Invalid("negative length".into()));
    }
    usize::try_from(length).map_err(|_| TRUNCATED)
}

/// A string's UTF-8 text at `pos`.
#[inline]
pub fn read_str<'b>(buf: &'b [u8], pos: &mut usize) -> ScanResult<&'b str> {
    let length = read_length(buf, pos)?;
    let start = *pos;
    advance(buf, pos, length)?;
    let raw = &buf[start..*pos];
    std::str::from_utf8(raw).map_err(|exc| ScanError::Invalid(format!("string is not UTF-8: {exc}")))
}

/// A value decoded in passing for the envelope (strings, ints, longs, null, unions of those).
pub enum Captured<'b> {
    None,
    Str(&'b str),
    Int(i64),
}

impl Program {
    /// Whether a field's type can be captured (strings, ints, longs, null and unions of those).
    pub fn capturable(&self, node: usize) -> bool {
        match &self.nodes[self.target(node)] {
            Node::Null | Node::String | Node::Int | Node::Long => true,
            Node::Union(branches) => branches.iter().all(|branch| {
                matches!(
                    self.nodes[self.target(*branch)],
                    Node::Null | Node::String | Node::Int | Node::Long
                )
            }),
            _ => false,
        }
    }

    /// Step over one capturable value, returning it.
    pub fn capture<'b>(&self, node: usize, buf: &'b [u8], pos: &mut usize) -> ScanResult<Captured<'b>> {
        match &self.nodes[self.target(node)] {
            Node::Null => Ok(Captured::None),
            Node::String => read_str(buf, pos).map(Captured::Str),
            Node::Int => read_int(buf, pos).map(|value| Captured::Int(i64::from(value))),
            Node::Long => read_long(buf, pos).map(Captured::Int),
            Node::Union(branches) => {
                let branch = self.branch(branches, buf, pos)?;
                self.capture(branch, buf, pos)
            }
            _ => unreachable!("only capturable fields are captured"),
        }
    }

    /// Scan a body from `start`: the start offset of each top-level field, then the end.
    /// `slots` gives, per top-level field, the envelope slot its value is captured into.
    pub fn scan<'b>(
        &self,
        buf: &'b [u8],
        start: usize,
        offsets: &mut Vec<usize>,
        slots: &[Option<usize>],
        values: &mut [Captured<'b>],
    ) -> ScanResult<()> {
        let mut pos = start;
        offsets.clear();
        for (index, field) in self.fields.iter().enumerate() {
            offsets.push(pos);
            match slots.get(index).copied().flatten() {
                Some(slot) => values[slot] = self.capture(*field, buf, &mut pos)?,
                None => self.skip(*field, buf, &mut pos, 0)?,
            }
        }
        offsets.push(pos);
        if pos != buf.len() {
            return Err(ScanError::Trailing(buf.len() - pos));
        }
        Ok(())
    }
}
