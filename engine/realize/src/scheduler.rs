//! Which node builds next: dependencies first, longest critical path first, within the job
//! budget; a failure skips everything above it.

use std::collections::{BTreeSet, HashMap};

use forge_core::StoreName;
use forge_plan::Plan;
use petgraph::graph::NodeIndex;

/// The state of one realization's queue, by node index.
#[derive(Debug)]
pub(crate) struct Scheduler {
    /// Critical-path priority of every node.
    prio: Vec<f64>,
    /// Nodes this run builds.
    pending: BTreeSet<usize>,
    /// How many of each pending node's dependencies are still to build.
    waiting: HashMap<usize, usize>,
    /// Nodes whose dependencies are all valid.
    ready: Vec<usize>,
    /// Nodes that failed or were skipped.
    failed: BTreeSet<usize>,
}

impl Scheduler {
    /// A queue for building `to_build`, the other nodes of `plan` being valid.
    pub(crate) fn new(
        plan: &Plan,
        to_build: &[usize],
        estimate: &dyn Fn(NodeIndex) -> f64,
    ) -> Self {
        let pending: BTreeSet<usize> = to_build.iter().copied().collect();
        let waiting: HashMap<usize, usize> = to_build
            .iter()
            .map(|&i| {
                let deps = plan
                    .graph
                    .deps(NodeIndex::new(i))
                    .iter()
                    .filter(|(d, _)| pending.contains(&d.index()))
                    .count();
                (i, deps)
            })
            .collect();
        let ready = to_build
            .iter()
            .copied()
            .filter(|i| waiting[i] == 0)
            .collect();
        Self {
            prio: priorities(plan, estimate),
            pending,
            waiting,
            ready,
            failed: BTreeSet::new(),
        }
    }

    /// The ready node with the longest critical path above it (ties broken by name, so runs are
    /// deterministic), taken off the queue.
    pub(crate) fn next(&mut self, names: &[StoreName]) -> Option<usize> {
        // Highest priority last, so `pop` takes it.
        let prio = &self.prio;
        self.ready.sort_by(|a, b| {
            prio[*a]
                .total_cmp(&prio[*b])
                .then_with(|| names[*b].cmp(&names[*a]))
        });
        self.ready.pop()
    }

    /// Node `i` became valid: its dependents whose dependencies are now all valid become ready.
    pub(crate) fn done(&mut self, plan: &Plan, i: usize) {
        for d in plan.graph.dependents(NodeIndex::new(i)) {
            if let Some(w) = self.waiting.get_mut(&d.index()) {
                *w -= 1;
                if *w == 0 && !self.failed.contains(&d.index()) {
                    self.ready.push(d.index());
                }
            }
        }
    }

    /// Node `i` failed: everything above it that has not run is skipped. Returns those nodes,
    /// nearest first.
    pub(crate) fn failed(&mut self, plan: &Plan, i: usize) -> Vec<usize> {
        self.failed.insert(i);
        let (pending, failed) = (&self.pending, &self.failed);
        let above: Vec<usize> = forge_core::graph::reachable([NodeIndex::new(i)], |x| {
            plan.graph
                .dependents(*x)
                .into_iter()
                .filter(|d| pending.contains(&d.index()) && !failed.contains(&d.index()))
        })
        .into_iter()
        .map(NodeIndex::index)
        .collect();
        self.failed.extend(above.iter().copied());
        let failed = &self.failed;
        self.ready.retain(|r| !failed.contains(r));
        above
    }
}

/// Critical-path priority of each node: its own estimated duration plus the longest chain of
/// dependents above it.
pub(crate) fn priorities(plan: &Plan, estimate: &dyn Fn(NodeIndex) -> f64) -> Vec<f64> {
    let g = &plan.graph;
    let n = g.len();
    let mut prio = vec![0.0; n];
    // Nodes are stored dependencies first; walk from the top down.
    for i in (0..n).rev() {
        let idx = NodeIndex::new(i);
        let above = g
            .dependents(idx)
            .iter()
            .map(|d| prio[d.index()])
            .fold(0.0, f64::max);
        prio[i] = estimate(idx) + above;
    }
    prio
}
