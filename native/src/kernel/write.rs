//! Writing what the kernel decided: the outputs, audit row, event id and counts of an
//! admitted event, and handing the counts kept in Rust over to Python.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyString, PyTuple};

use super::{Decided, Kernel};
use crate::kernel_routes::Decision;
use crate::produce::Produce;

impl Kernel {
    /// The outputs, audit row, event id and counts of an admitted, decided event.
    pub(super) fn write(
        &mut self,
        run: &Bound<'_, PyAny>,
        decided: &Decided<'_>,
        partition_number: &Bound<'_, PyAny>,
        offset_number: &Bound<'_, PyAny>,
        offset: i64,
    ) -> PyResult<()> {
        let py = run.py();
        let partition = &mut self.partitions[decided.part];
        let event_id = PyString::new(py, decided.event_id);
        partition.new_event_ids.bind(py).append(&event_id)?;
        let publisher_id = self.publishers[decided.publisher].id.bind(py);
        let row = PyList::new(
            py,
            [
                offset_number.clone(),
                event_id.clone().into_any(),
                publisher_id.clone().into_any(),
                PyString::new(py, decided.location_id).into_any(),
                PyInt::new(py, decided.published_ms).into_any(),
            ],
        )?;
        let program = self
            .programs
            .get_mut(&decided.program)
            .and_then(Option::as_mut)
            .expect("decided under this program");
        program.commit(
            run,
            &decided.decisions,
            decided.subject,
            decided.published_ms,
            decided.ingested_ms,
            &row,
        )?;
        let mut headers: Option<[Bound<'_, PyAny>; 3]> = None;
        // The record key: admission held it equal to the location id's bytes.
        let record_key = decided.record_key.bind(py);
        for (route, decision) in program.routes.iter().zip(&decided.decisions) {
            let Decision::Delivered { candidate, rendered } = decision else {
                continue;
            };
            let shared = match &headers {
                Some(found) => found,
                None => headers.insert([
                    PyTuple::new(
                        py,
                        [
                            self.event_id_header.bind(py).clone().into_any(),
                            PyBytes::new(py, decided.event_id.as_bytes()).into_any(),
                        ],
                    )?
                    .into_any(),
                    partition.source_header.bind(py).clone(),
                    PyTuple::new(
                        py,
                        [
                            self.offsets_header.bind(py).clone().into_any(),
                            PyBytes::new(py, offset.to_string().as_bytes()).into_any(),
                        ],
                    )?
                    .into_any(),
                ]),
            };
            let record_headers = PyList::new(
                py,
                [
                    shared[0].clone(),
                    shared[1].clone(),
                    shared[2].clone(),
                    route.candidates[*candidate].agreement_header.bind(py).clone(),
                ],
            )?;
            let produced = Produce {
                topic: route.topic.clone_ref(py),
                partition: partition_number.clone().unbind(),
                key: record_key.clone().into_any().unbind(),
                value: PyBytes::new(py, rendered).unbind(),
                headers: record_headers.unbind(),
                source: partition.source.clone_ref(py),
            };
            let produced = Bound::new(py, produced)?;
            self.outputs.bind(py).append(produced)?;
        }
        partition.audit_events.bind(py).append(row)?;
        partition.next_offset = Some(offset + 1);
        Ok(())
    }

    /// Hand what the kernel kept to Python: offsets read and counts.
    pub(super) fn flush(&mut self, run: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = run.py();
        for partition in &mut self.partitions {
            if let Some(next) = partition.next_offset.take() {
                partition
                    .batch
                    .bind(py)
                    .setattr(intern!(py, "next_offset"), next)?;
            }
        }
        for program in self.programs.values_mut().flatten() {
            program.flush(run)?;
        }
        Ok(())
    }
}
