//! Closures over a graph given as an edge function: every closure forge computes (a plan's
//! build closure, a store path's runtime closure, what an export ships) is this one walk.

use std::collections::BTreeSet;

/// Every node reachable from `roots` (the roots included) by following `edges`. Iterative, so
/// deep graphs cannot overflow the stack; each node's edges are asked for once.
pub fn closure<N, I>(
    roots: impl IntoIterator<Item = N>,
    mut edges: impl FnMut(&N) -> I,
) -> BTreeSet<N>
where
    N: Ord + Clone,
    I: IntoIterator<Item = N>,
{
    let mut seen = BTreeSet::new();
    let mut stack: Vec<N> = roots.into_iter().collect();
    while let Some(x) = stack.pop() {
        if seen.contains(&x) {
            continue;
        }
        stack.extend(edges(&x).into_iter().filter(|y| !seen.contains(y)));
        seen.insert(x);
    }
    seen
}

/// The nodes reachable from `roots` by one or more edges, in the order they are first reached
/// (depth first, each node's edges in the order `edges` gives them); a root is listed only when
/// an edge reaches it. The order is stable, so it can decide search paths (RUNPATH, `PATH`).
pub fn reachable<N, I>(roots: impl IntoIterator<Item = N>, mut edges: impl FnMut(&N) -> I) -> Vec<N>
where
    N: Ord + Clone,
    I: IntoIterator<Item = N>,
{
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut stack: Vec<N> = roots.into_iter().collect();
    while let Some(x) = stack.pop() {
        for y in edges(&x) {
            if seen.insert(y.clone()) {
                out.push(y.clone());
                stack.push(y);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_follows_edges_once_and_includes_roots() {
        // 0 → 1 → 2 → 0 (a cycle), 3 → 2, 4 alone.
        let edges = |n: &u32| match n {
            0 => vec![1],
            1 => vec![2],
            2 => vec![0],
            3 => vec![2],
            _ => vec![],
        };
        let mut asked = Vec::new();
        let c = closure([3], |n| {
            asked.push(*n);
            edges(n)
        });
        assert_eq!(c.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        asked.sort_unstable();
        assert_eq!(asked, vec![0, 1, 2, 3]);
        assert_eq!(closure([4, 4], edges).len(), 1);
        assert!(closure(Vec::<u32>::new(), edges).is_empty());
    }

    #[test]
    fn reachable_lists_nodes_in_discovery_order_without_unreached_roots() {
        // 5 → [2, 1], 2 → [3], 1 → [3, 4]: depth first from the last edge pushed.
        let edges = |n: &u32| match n {
            5 => vec![2, 1],
            2 => vec![3],
            1 => vec![3, 4],
            _ => vec![],
        };
        assert_eq!(reachable([5], edges), vec![2, 1, 3, 4]);
        assert_eq!(reachable([1, 2], edges), vec![3, 4]);
        // A root reached from another root is listed.
        assert_eq!(reachable([2, 5], edges), vec![2, 1, 3, 4]);
    }
}
