//! The batch kernel's routes: each candidate subscriber's outcome for events of one
//! writer schema from one publisher, as `ecoshare.governance.kernel.KernelRun`
//! describes them, with the decision templates, consents and counts learnt in the batch.

use std::collections::HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFrozenSet, PyList, PyString, PyTuple};

use crate::filter::RowFilter;
use crate::plan::Plan;

/// The consent of one subject under one candidate's plan (valid for the batch).
pub struct Consent {
    allowed: Py<PyAny>,
    ids: Py<PyList>,
    missing: Py<PyAny>,
    /// The audit entry of a delivery under this consent, `[template]` or `[template,
    /// ids]`, shared by the batch's rows (the encoder only reads them).
    entry: Option<Py<PyList>>,
}

/// An agreement in force for a route, compiled for the writer schema.
pub struct Candidate {
    candidate: Py<PyAny>,
    filter: Option<Py<RowFilter>>,
    plan: Py<Plan>,
    frame_header: Vec<u8>,
    pub agreement_header: Py<PyAny>,
    limited: bool,
    personal: bool,
    /// The audit entry of a delivery without personal fields (shared by the rows).
    plain_entry: Option<Py<PyList>>,
    consents: HashMap<String, Consent>,
}

/// One candidate subscriber's route, and what the kernel counted on it since it last
/// handed its counts to Python.
pub struct Route {
    runtime: Py<PyAny>,
    is_static: bool,
    pub topic: Py<PyString>,
    pub candidates: Vec<Candidate>,
    /// The audit entry (`[template]`, shared by the batch's rows) and the reason.
    withheld_template: Option<(Py<PyList>, Py<PyString>)>,
    received: u64,
    delivered: u64,
    withheld: u64,
    ingested: Vec<i64>,
}

/// What one route decided on one event.
pub enum Decision {
    Withheld,
    Delivered { candidate: usize, rendered: Vec<u8> },
}

/// The routes of (writer schema, publisher) in this batch.
pub struct RouteProgram {
    pub routes: Vec<Route>,
    event_type: Py<PyString>,
    publisher_id: Py<PyString>,
    admitted: u64,
    latest: i64,
}

impl RouteProgram {
    /// From `KernelRun.kernel_program`'s answer (None: the routes cannot run natively).
    pub fn from_spec(spec: &Bound<'_, PyAny>, publisher_id: Py<PyString>) -> PyResult<Option<Self>> {
        if spec.is_none() {
            return Ok(None);
        }
        let event_type = spec.get_item(0)?.cast_into::<PyString>()?.unbind();
        let mut routes = Vec::new();
        for route in spec.get_item(1)?.try_iter()? {
            let route = route?;
            let mut candidates = Vec::new();
            for candidate in route.get_item(3)?.try_iter()? {
                let candidate = candidate?;
                let filter = candidate.get_item(1)?;
                candidates.push(Candidate {
                    candidate: candidate.get_item(0)?.unbind(),
                    filter: if filter.is_none() {
                        None
                    } else {
                        Some(filter.cast_into::<RowFilter>()?.unbind())
                    },
                    plan: candidate.get_item(2)?.cast_into::<Plan>()?.unbind(),
                    frame_header: candidate.get_item(3)?.extract()?,
                    agreement_header: candidate.get_item(4)?.unbind(),
                    limited: candidate.get_item(5)?.extract()?,
                    personal: candidate.get_item(6)?.extract()?,
                    plain_entry: None,
                    consents: HashMap::new(),
                });
            }
            routes.push(Route {
                runtime: route.get_item(0)?.unbind(),
                is_static: route.get_item(1)?.extract()?,
                topic: route.get_item(2)?.cast_into::<PyString>()?.unbind(),
                candidates,
                withheld_template: None,
                received: 0,
                delivered: 0,
                withheld: 0,
                ingested: Vec::new(),
            });
        }
        Ok(Some(RouteProgram {
            routes,
            event_type,
            publisher_id,
            admitted: 0,
            latest: 0,
        }))
    }

    /// Every route's decision on a scanned event, changing nothing but caches; None
    /// when the event must go the Python way (a rate-limited agreement chosen).
    pub fn decide(
        &mut self,
        run: &Bound<'_, PyAny>,
        body: &Bound<'_, PyBytes>,
        offsets: &[usize],
        subject: &str,
        no_consent: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Vec<Decision>>> {
        let py = run.py();
        let publisher_id = self.publisher_id.bind(py);
        let mut decisions = Vec::with_capacity(self.routes.len());
        for route in &mut self.routes {
            if route.is_static {
                decisions.push(Decision::Withheld);
                continue;
            }
            let mut chosen = None;
            for (index, candidate) in route.candidates.iter().enumerate() {
                let passes = match &candidate.filter {
                    None => true,
                    Some(filter) => filter.bind(py).get().passes(body, offsets)?,
                };
                if passes {
                    chosen = Some(index);
                    break;
                }
            }
            let Some(index) = chosen else {
                decisions.push(Decision::Withheld);
                continue;
            };
            let candidate = &mut route.candidates[index];
            if candidate.limited {
                return Ok(None);
            }
            let allowed = if candidate.personal {
                match candidate.consents.get(subject) {
                    Some(consent) => consent.allowed.bind(py).clone(),
                    None => {
                        let answer = run.call_method1(
                            intern!(py, "kernel_consent"),
                            (
                                route.runtime.bind(py),
                                candidate.candidate.bind(py),
                                if subject.is_empty() { None } else { Some(subject) },
                                publisher_id,
                            ),
                        )?;
                        let allowed = answer.get_item(0)?;
                        candidate.consents.insert(
                            subject.to_owned(),
                            Consent {
                                allowed: allowed.clone().unbind(),
                                ids: answer.get_item(1)?.cast_into::<PyList>()?.unbind(),
                                missing: answer.get_item(2)?.unbind(),
                                entry: None,
                            },
                        );
                        allowed
                    }
                }
            } else {
                no_consent.clone()
            };
            let mut rendered = Vec::with_capacity(candidate.frame_header.len() + body.as_bytes().len());
            rendered.extend_from_slice(&candidate.frame_header);
            candidate
                .plan
                .bind(py)
                .get()
                .render_into(py, body, offsets, &allowed, &mut rendered)?;
            decisions.push(Decision::Delivered {
                candidate: index,
                rendered,
            });
        }
        Ok(Some(decisions))
    }

    /// Count the decisions of an admitted event; its audit entries appended to `row`.
    pub fn commit(
        &mut self,
        run: &Bound<'_, PyAny>,
        decisions: &[Decision],
        subject: &str,
        published_ms: i64,
        ingested_ms: i64,
        row: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let py = run.py();
        for (route, decision) in self.routes.iter_mut().zip(decisions) {
            route.received += 1;
            match decision {
                Decision::Withheld => {
                    if route.withheld_template.is_none() {
                        let answer = run.call_method1(
                            intern!(py, "kernel_withheld"),
                            (route.runtime.bind(py), route.is_static),
                        )?;
                        let template: usize = answer.get_item(0)?.extract()?;
                        route.withheld_template = Some((
                            PyList::new(py, [template])?.unbind(),
                            answer.get_item(1)?.cast_into::<PyString>()?.unbind(),
                        ));
                    }
                    if let Some((entry, _)) = &route.withheld_template {
                        row.append(entry.bind(py))?;
                    }
                    route.withheld += 1;
                }
                Decision::Delivered { candidate, .. } => {
                    let runtime = route.runtime.bind(py);
                    let candidate = &mut route.candidates[*candidate];
                    let chosen = candidate.candidate.bind(py);
                    let entry = if candidate.personal {
                        let consent = candidate
                            .consents
                            .get_mut(subject)
                            .expect("decided with this subject's consent");
                        let (missing, ids) = (consent.missing.bind(py), consent.ids.bind(py));
                        cached(py, &mut consent.entry, || {
                            delivered_entry(run, runtime, chosen, missing, ids)
                        })?
                    } else {
                        cached(py, &mut candidate.plain_entry, || {
                            delivered_entry(run, runtime, chosen, &PyTuple::empty(py), &PyList::empty(py))
                        })?
                    };
                    row.append(entry)?;
                    route.delivered += 1;
                    route.ingested.push(ingested_ms);
                }
            }
        }
        self.admitted += 1;
        self.latest = self.latest.max(published_ms);
        Ok(())
    }

    /// Hand the counts kept since the last time to the route runtimes and batch counts.
    pub fn flush(&mut self, run: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = run.py();
        for route in &mut self.routes {
            if route.received == 0 {
                continue;
            }
            let reason = route
                .withheld_template
                .as_ref()
                .map(|found| found.1.bind(py).clone());
            run.call_method1(
                intern!(py, "kernel_route_counts"),
                (
                    route.runtime.bind(py),
                    route.received,
                    route.delivered,
                    PyList::new(py, &route.ingested)?,
                    reason,
                    route.withheld,
                ),
            )?;
            route.received = 0;
            route.delivered = 0;
            route.withheld = 0;
            route.ingested.clear();
        }
        if self.admitted > 0 {
            run.call_method1(
                intern!(py, "kernel_admitted"),
                (
                    self.publisher_id.bind(py),
                    self.event_type.bind(py),
                    self.admitted,
                    self.latest,
                ),
            )?;
            self.admitted = 0;
            self.latest = 0;
        }
        Ok(())
    }
}

/// The list in `slot`, made by `make` the first time (the batch's rows share it).
fn cached<'py>(
    py: Python<'py>,
    slot: &mut Option<Py<PyList>>,
    make: impl FnOnce() -> PyResult<Bound<'py, PyList>>,
) -> PyResult<Bound<'py, PyList>> {
    if let Some(found) = slot {
        return Ok(found.bind(py).clone());
    }
    let made = make()?;
    *slot = Some(made.clone().unbind());
    Ok(made)
}

/// The audit entry of a delivery: `[template]`, or `[template, consent ids]` when the
/// delivery's personal fields were given under consents.
fn delivered_entry<'py>(
    run: &Bound<'py, PyAny>,
    runtime: &Bound<'py, PyAny>,
    candidate: &Bound<'py, PyAny>,
    missing: &Bound<'py, PyAny>,
    ids: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyList>> {
    let py = run.py();
    let template: usize = run
        .call_method1(intern!(py, "kernel_delivered"), (runtime, candidate, missing))?
        .extract()?;
    let entry = PyList::new(py, [template])?;
    if !ids.is_empty() {
        entry.append(ids.get_slice(0, ids.len()))?;
    }
    Ok(entry)
}

/// The empty frozenset rendering takes as the consented fields of a plan without
/// personal fields.
pub fn no_consent(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    Ok(PyFrozenSet::empty(py)?.into_any())
}
