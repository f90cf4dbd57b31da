//! A point's neighbour list during NN-descent: the `k` smallest `(d², index)` offers.

/// Whether `v` holds `j`: compares 16 at a time without branching, which vectorises (the
/// check every offer that gets past a list's largest distance pays).
#[inline]
pub(super) fn holds(v: &[u32], j: u32) -> bool {
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        if c.iter().fold(false, |m, &x| m | (x == j)) {
            return true;
        }
    }
    chunks.remainder().contains(&j)
}

/// A point's current neighbours: the `k` smallest `(d², index)` offered, as a max-heap.
#[derive(Clone)]
pub(super) struct Heap {
    pub(super) d: Vec<f32>,
    pub(super) idx: Vec<u32>,
    /// Inserted since the point's last round of joins.
    pub(super) new: Vec<bool>,
    k: usize,
}

impl Heap {
    pub(super) fn new(k: usize) -> Self {
        Heap { d: Vec::with_capacity(k), idx: Vec::with_capacity(k), new: Vec::with_capacity(k), k }
    }

    #[inline]
    fn greater(&self, a: usize, b: usize) -> bool {
        (self.d[a], self.idx[a]) > (self.d[b], self.idx[b])
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.d.swap(a, b);
        self.idx.swap(a, b);
        self.new.swap(a, b);
    }

    /// Offer `(d, j)`; true if it entered.
    pub(super) fn push(&mut self, d: f32, j: u32) -> bool {
        if self.d.len() == self.k && (d, j) >= (self.d[0], self.idx[0]) {
            return false;
        }
        if holds(&self.idx, j) {
            return false;
        }
        if self.d.len() < self.k {
            self.d.push(d);
            self.idx.push(j);
            self.new.push(true);
            let mut i = self.d.len() - 1;
            while i > 0 {
                let p = (i - 1) / 2;
                if !self.greater(i, p) {
                    break;
                }
                self.swap(i, p);
                i = p;
            }
        } else {
            self.d[0] = d;
            self.idx[0] = j;
            self.new[0] = true;
            let n = self.d.len();
            let mut i = 0;
            loop {
                let (l, r) = (2 * i + 1, 2 * i + 2);
                let mut m = i;
                if l < n && self.greater(l, m) {
                    m = l;
                }
                if r < n && self.greater(r, m) {
                    m = r;
                }
                if m == i {
                    break;
                }
                self.swap(i, m);
                i = m;
            }
        }
        true
    }
}
