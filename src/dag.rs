//! The node graph as an arena: nodes are indices (`NodeId`), edges point from an input to
//! the nodes that consume it. Orders are deterministic (ties broken by file order).

pub type NodeId = usize;

/// Kahn's algorithm; ties go to the lowest id. On a cycle, returns the ids along one cycle
/// (first id repeated at the end).
pub fn topo_order(inputs: &[Vec<NodeId>]) -> Result<Vec<NodeId>, Vec<NodeId>> {
    let n = inputs.len();
    let mut indeg: Vec<usize> = inputs.iter().map(Vec::len).collect();
    let mut consumers: Vec<Vec<NodeId>> = vec![Vec::new(); n];
    for (v, ins) in inputs.iter().enumerate() {
        for &u in ins {
            consumers[u].push(v);
        }
    }
    let mut ready: std::collections::BTreeSet<NodeId> = (0..n).filter(|&v| indeg[v] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(v) = ready.pop_first() {
        order.push(v);
        for &w in &consumers[v] {
            indeg[w] -= 1;
            if indeg[w] == 0 {
                ready.insert(w);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk inputs from a node left on a cycle until one repeats.
    let stuck: Vec<bool> = (0..n).map(|v| indeg[v] > 0).collect();
    let mut path = vec![(0..n).find(|&v| stuck[v]).expect("a node on a cycle")];
    loop {
        let v = *path.last().expect("non-empty");
        let u = *inputs[v]
            .iter()
            .find(|&&u| stuck[u])
            .expect("a stuck node has a stuck input");
        if let Some(pos) = path.iter().position(|&x| x == u) {
            // In data-flow order, starting from the cycle's first node in the file.
            let mut cycle: Vec<NodeId> = path[pos..].to_vec();
            cycle.reverse();
            let start = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, &v)| v)
                .map_or(0, |(i, _)| i);
            cycle.rotate_left(start);
            cycle.push(cycle[0]);
            return Err(cycle);
        }
        path.push(u);
    }
}

/// `targets` and everything they depend on.
pub fn ancestors(inputs: &[Vec<NodeId>], targets: &[NodeId]) -> Vec<bool> {
    let mut seen = vec![false; inputs.len()];
    let mut stack: Vec<NodeId> = targets.to_vec();
    while let Some(v) = stack.pop() {
        if !std::mem::replace(&mut seen[v], true) {
            stack.extend(&inputs[v]);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_breaks_ties_by_id() {
        // 0 -> 2, 1 -> 2, 2 -> 3
        let inputs = vec![vec![], vec![], vec![0, 1], vec![2]];
        assert_eq!(topo_order(&inputs).unwrap(), [0, 1, 2, 3]);
        let inputs = vec![vec![1], vec![], vec![]];
        assert_eq!(topo_order(&inputs).unwrap(), [1, 0, 2]);
    }

    #[test]
    fn finds_a_cycle() {
        // 0 -> 1 -> 2 -> 1, 3 alone
        let inputs = vec![vec![], vec![0, 2], vec![1], vec![]];
        let cycle = topo_order(&inputs).unwrap_err();
        assert_eq!(cycle.first(), cycle.last());
        assert!(cycle.contains(&1) && cycle.contains(&2) && !cycle.contains(&0));
        assert_eq!(topo_order(&[vec![0]]).unwrap_err(), [0, 0]);
    }

    #[test]
    fn ancestors_of_targets() {
        let inputs = vec![vec![], vec![0], vec![1], vec![0]];
        assert_eq!(ancestors(&inputs, &[2]), [true, true, true, false]);
    }
}
