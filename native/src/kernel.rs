//! The batch kernel: the common case of governing an ingress batch, natively.
//!
//! `govern_batch(run, messages)` walks the messages in order. For each it runs the
//! admission checks of `ecoshare.governance.admission.Admission.admit` (value, headers,
//! publisher, signature, framing, writer schema, strict scan, payload publisher, role,
//! key, partition), decides every route (`kernel_routes`) and renders the deliveries,
//! all without changing anything; only then does it add the event id to the duplicate
//! window and, the id being new, write the event's outputs, audit row and counts. Any
//! event it does not take (a refusal, a duplicate, a rate-limited agreement, a
//! partition under recovery, anything that raises) goes, at that point and untouched,
//! to the Python path `run.govern_event(message)`, after the counts kept so far are
//! handed over; so both cores produce the same result in the same order.

use std::collections::HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::dedup::DedupWindow;
use crate::kernel_routes::{no_consent, Decision, RouteProgram};
use crate::partition::murmur2;
use crate::scan::Captured;
use crate::sign;
use crate::Layout;

mod write;

/// The envelope fields the writer layouts capture, in `ADMISSION_FIELDS` order.
const EVENT_ID: usize = 0;
const PUBLISHER_ID: usize = 1;
const LOCATION_ID: usize = 2;
const PUBLISHED_AT: usize = 3;
const SUBJECT: usize = 4;
const ENVELOPE: usize = 5;

/// One ingress partition met in the batch.
struct Partition {
    topic: String,
    partition: i64,
    batch: Py<PyAny>,
    audit_events: Py<PyList>,
    new_event_ids: Py<PyList>,
    /// None: every event of the partition goes the Python way.
    window: Option<Py<DedupWindow>>,
    partition_count: i64,
    source: Py<PyAny>,
    source_header: Py<PyAny>,
    event_type: String,
    next_offset: Option<i64>,
}

struct Publisher {
    partner: Py<PyAny>,
    id: Py<PyString>,
    signing_key: Vec<u8>,
    may_publish: bool,
}

struct Writer {
    writer: Py<PyAny>,
    layout: Py<Layout>,
}

/// What an event admitted and decided needs to be written.
struct Decided<'b> {
    part: usize,
    program: (u32, usize),
    publisher: usize,
    event_id: &'b str,
    location_id: &'b str,
    published_ms: i64,
    subject: &'b str,
    ingested_ms: i64,
    record_key: Py<PyBytes>,
    decisions: Vec<Decision>,
}

struct Kernel {
    outputs: Py<PyList>,
    event_id_header: Py<PyString>,
    offsets_header: Py<PyString>,
    publisher_header: String,
    signature_header: String,
    now_ms: i64,
    max_event_bytes: usize,
    no_consent: Py<PyAny>,
    partitions: Vec<Partition>,
    publisher_index: HashMap<String, Option<usize>>,
    publishers: Vec<Publisher>,
    writers: HashMap<(usize, u32), Option<Writer>>,
    programs: HashMap<(u32, usize), Option<RouteProgram>>,
}

fn bytes_of<'a, 'py>(value: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, PyBytes>> {
    value.cast::<PyBytes>().ok()
}

impl Kernel {
    fn new(run: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = run.py();
        let settings = run.call_method0(intern!(py, "kernel_settings"))?;
        Ok(Kernel {
            outputs: settings.get_item(0)?.cast_into::<PyList>()?.unbind(),
            event_id_header: settings.get_item(1)?.cast_into::<PyString>()?.unbind(),
            offsets_header: settings.get_item(2)?.cast_into::<PyString>()?.unbind(),
            publisher_header: settings.get_item(3)?.extract()?,
            signature_header: settings.get_item(4)?.extract()?,
            now_ms: settings.get_item(5)?.extract()?,
            max_event_bytes: settings.get_item(6)?.extract()?,
            no_consent: no_consent(py)?.unbind(),
            partitions: Vec::new(),
            publisher_index: HashMap::new(),
            publishers: Vec::new(),
            writers: HashMap::new(),
            programs: HashMap::new(),
        })
    }

    fn partition(
        &mut self,
        run: &Bound<'_, PyAny>,
        topic: &str,
        partition: i64,
        offset: i64,
    ) -> PyResult<usize> {
        if let Some(found) = self
            .partitions
            .iter()
            .position(|known| known.partition == partition && known.topic == topic)
        {
            return Ok(found);
        }
        let py = run.py();
        let spec = run.call_method1(intern!(py, "kernel_partition"), (topic, partition, offset))?;
        let window = spec.get_item(3)?;
        self.partitions.push(Partition {
            topic: topic.to_owned(),
            partition,
            batch: spec.get_item(0)?.unbind(),
            audit_events: spec.get_item(1)?.cast_into::<PyList>()?.unbind(),
            new_event_ids: spec.get_item(2)?.cast_into::<PyList>()?.unbind(),
            // A window of the Python core (not this extension's) is left to Python.
            window: window.cast_into::<DedupWindow>().ok().map(Bound::unbind),
            partition_count: spec.get_item(4)?.extract()?,
            source: spec.get_item(5)?.unbind(),
            source_header: spec.get_item(6)?.unbind(),
            event_type: spec.get_item(7)?.extract()?,
            next_offset: None,
        });
        Ok(self.partitions.len() - 1)
    }

    fn publisher(&mut self, run: &Bound<'_, PyAny>, publisher_id: &str) -> PyResult<Option<usize>> {
        if let Some(found) = self.publisher_index.get(publisher_id) {
            return Ok(*found);
        }
        let py = run.py();
        let spec = run.call_method1(intern!(py, "kernel_publisher"), (publisher_id,))?;
        let found = if spec.is_none() {
            None
        } else {
            self.publishers.push(Publisher {
                partner: spec.get_item(0)?.unbind(),
                id: PyString::new(py, publisher_id).unbind(),
                signing_key: spec.get_item(1)?.extract()?,
                may_publish: spec.get_item(2)?.extract()?,
            });
            Some(self.publishers.len() - 1)
        };
        self.publisher_index.insert(publisher_id.to_owned(), found);
        Ok(found)
    }

    fn writer(&mut self, run: &Bound<'_, PyAny>, part: usize, schema_id: u32) -> PyResult<Option<&Writer>> {
        if !self.writers.contains_key(&(part, schema_id)) {
            let py = run.py();
            let topic = self.partitions[part].topic.as_str();
            let spec = run.call_method1(intern!(py, "kernel_writer"), (topic, schema_id))?;
            let found = if spec.is_none() {
                None
            } else {
                Some(Writer {
                    writer: spec.get_item(0)?.unbind(),
                    layout: spec.get_item(1)?.cast_into::<Layout>()?.unbind(),
                })
            };
            self.writers.insert((part, schema_id), found);
        }
        Ok(self.writers[&(part, schema_id)].as_ref())
    }

    /// Admission's checks and every route's decision on `message`, changing nothing
    /// (None: the event goes the Python way).
    fn decide<'b>(
        &mut self,
        run: &Bound<'_, PyAny>,
        message: &Bound<'_, PyAny>,
        part: usize,
        value: &'b Bound<'_, PyBytes>,
        offsets: &mut Vec<usize>,
    ) -> PyResult<Option<Decided<'b>>> {
        let py = run.py();
        let raw: &'b [u8] = value.as_bytes();
        if raw.is_empty() || raw.len() > self.max_event_bytes {
            return Ok(None);
        }
        let mut claimed = None;
        let mut signature = None;
        let headers = message.call_method0(intern!(py, "headers"))?;
        if headers.is_none() {
            return Ok(None);
        }
        for header in headers.try_iter()? {
            let header = header?.cast_into::<PyTuple>()?;
            let name = header.get_item(0)?;
            let name = name.cast::<PyString>()?.to_str()?;
            if name == self.publisher_header {
                claimed = Some(header.get_item(1)?);
            } else if name == self.signature_header {
                signature = Some(header.get_item(1)?);
            }
        }
        let (Some(claimed), Some(signature)) = (claimed, signature) else {
            return Ok(None);
        };
        let (Some(claimed), Some(signature)) = (bytes_of(&claimed), bytes_of(&signature)) else {
            return Ok(None);
        };
        let Ok(publisher_id) = std::str::from_utf8(claimed.as_bytes()) else {
            return Ok(None);
        };
        let Some(publisher) = self.publisher(run, publisher_id)? else {
            return Ok(None);
        };
        let record_key = message.call_method0(intern!(py, "key"))?;
        let Some(record_key) = bytes_of(&record_key) else {
            return Ok(None);
        };
        let partition = &self.partitions[part];
        let signer = &self.publishers[publisher];
        if signer.signing_key.len() > blake2b_simd::KEYBYTES
            || !sign::signature_matches(
                &signer.signing_key,
                partition.event_type.as_bytes(),
                record_key.as_bytes(),
                raw,
                signature.as_bytes(),
            )
        {
            return Ok(None);
        }
        if raw.len() < 5 || raw[0] != 0 {
            return Ok(None);
        }
        let schema_id = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
        let Some(writer) = self.writer(run, part, schema_id)? else {
            return Ok(None);
        };
        let layout = writer.layout.bind(py).get();
        if layout.captures != ENVELOPE {
            return Ok(None);
        }
        let mut envelope: Vec<Captured<'b>> = (0..ENVELOPE).map(|_| Captured::None).collect();
        if layout
            .program
            .scan(raw, 5, offsets, &layout.slots, &mut envelope)
            .is_err()
        {
            return Ok(None);
        }
        let (Captured::Str(event_id), Captured::Str(location_id), Captured::Str(payload_publisher)) = (
            &envelope[EVENT_ID],
            &envelope[LOCATION_ID],
            &envelope[PUBLISHER_ID],
        ) else {
            return Ok(None);
        };
        let published_ms = match envelope[PUBLISHED_AT] {
            Captured::None => 0,
            Captured::Int(value) => value,
            Captured::Str(_) => return Ok(None),
        };
        let subject = match envelope[SUBJECT] {
            Captured::None => "",
            Captured::Str(text) => text,
            Captured::Int(_) => return Ok(None),
        };
        let partition = &self.partitions[part];
        if *payload_publisher != publisher_id
            || !self.publishers[publisher].may_publish
            || record_key.as_bytes() != location_id.as_bytes()
            || partition.partition_count <= 0
            || i64::from(murmur2(record_key.as_bytes()) & 0x7FFF_FFFF) % partition.partition_count
                != partition.partition
        {
            return Ok(None);
        }
        let key = (schema_id, publisher);
        if !self.programs.contains_key(&key) {
            let writer = self.writers[&(part, schema_id)]
                .as_ref()
                .map(|found| found.writer.bind(py).clone());
            let spec = run.call_method1(
                intern!(py, "kernel_program"),
                (writer, self.publishers[publisher].partner.bind(py)),
            )?;
            let program = RouteProgram::from_spec(&spec, self.publishers[publisher].id.clone_ref(py))?;
            self.programs.insert(key, program);
        }
        let Some(program) = self.programs.get_mut(&key).and_then(Option::as_mut) else {
            return Ok(None);
        };
        let ingested_ms: i64 = message
            .call_method0(intern!(py, "timestamp"))?
            .get_item(1)?
            .extract()?;
        let Some(decisions) = program.decide(run, value, offsets, subject, self.no_consent.bind(py))? else {
            return Ok(None);
        };
        Ok(Some(Decided {
            part,
            program: key,
            publisher,
            event_id,
            location_id,
            published_ms,
            subject,
            ingested_ms,
            record_key: record_key.clone().unbind(),
            decisions,
        }))
    }

    /// Govern `message` natively if it is the common case (false: left to Python).
    fn take(
        &mut self,
        run: &Bound<'_, PyAny>,
        message: &Bound<'_, PyAny>,
        offsets: &mut Vec<usize>,
    ) -> PyResult<bool> {
        let py = run.py();
        let topic = message.call_method0(intern!(py, "topic"))?;
        let partition = message.call_method0(intern!(py, "partition"))?;
        let offset = message.call_method0(intern!(py, "offset"))?;
        let (Ok(topic), Ok(partition_number), Ok(offset_number)) = (
            topic.cast::<PyString>(),
            partition.extract::<i64>(),
            offset.extract::<i64>(),
        ) else {
            return Ok(false);
        };
        let Ok(topic) = topic.to_str() else {
            return Ok(false);
        };
        let part = self.partition(run, topic, partition_number, offset_number)?;
        let Some(window) = self.partitions[part]
            .window
            .as_ref()
            .map(|found| found.clone_ref(py))
        else {
            return Ok(false);
        };
        let value = message.call_method0(intern!(py, "value"))?;
        let Some(value) = bytes_of(&value) else {
            return Ok(false);
        };
        let decided = match self.decide(run, message, part, value, offsets) {
            Ok(Some(decided)) => decided,
            // Refused, uncommon or failing: the Python path decides (and reports) it.
            Ok(None) | Err(_) => return Ok(false),
        };
        let Ok(mut window) = window.bind(py).try_borrow_mut() else {
            return Ok(false);
        };
        if !window.insert(decided.event_id, self.now_ms) {
            return Ok(false); // a duplicate, which the Python path refuses as such
        }
        drop(window);
        self.write(run, &decided, &partition, &offset, offset_number)?;
        Ok(true)
    }
}

/// Govern `messages` under the batch `run` (an `ecoshare.governance.kernel.KernelRun`):
/// the common case natively, every other event through `run.govern_event`, in order.
#[pyfunction]
pub fn govern_batch(run: &Bound<'_, PyAny>, messages: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = run.py();
    let mut kernel = Kernel::new(run)?;
    let mut offsets = Vec::new();
    for message in messages.try_iter()? {
        let message = message?;
        if !kernel.take(run, &message, &mut offsets)? {
            kernel.flush(run)?;
            run.call_method1(intern!(py, "govern_event"), (&message,))?;
        }
    }
    kernel.flush(run)
}
