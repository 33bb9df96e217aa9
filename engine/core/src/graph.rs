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
}
