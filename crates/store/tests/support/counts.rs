//! A metrics recorder for a test binary of its own: the increments of one counter, by the
//! value of its label (`outcome`, `path`: its first). Installed once per binary (`metrics::set_global_recorder`), so
//! a test reads differences, or is its binary's only user of the counter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

/// The counts of counter `name`'s outcomes.
#[derive(Clone)]
pub struct Outcomes {
    name: &'static str,
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

impl Outcomes {
    /// Installs a recorder of counter `name` for the whole test binary.
    pub fn install(name: &'static str) -> Outcomes {
        let outcomes = Outcomes {
            name,
            counts: Arc::default(),
        };
        metrics::set_global_recorder(outcomes.clone()).expect("one recorder per test binary");
        outcomes
    }

    /// How often `outcome` was counted so far.
    pub fn count(&self, outcome: &str) -> u64 {
        self.counts
            .lock()
            .unwrap()
            .get(outcome)
            .copied()
            .unwrap_or(0)
    }
}

struct Tally(String, Outcomes);

impl CounterFn for Tally {
    fn increment(&self, value: u64) {
        *self
            .1
            .counts
            .lock()
            .unwrap()
            .entry(self.0.clone())
            .or_default() += value;
    }
    fn absolute(&self, _: u64) {}
}

impl metrics::Recorder for Outcomes {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() != self.name {
            return Counter::noop();
        }
        let outcome = key
            .labels()
            .next()
            .map(|l| l.value().to_owned())
            .unwrap_or_default();
        Counter::from_arc(Arc::new(Tally(outcome, self.clone())))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}
