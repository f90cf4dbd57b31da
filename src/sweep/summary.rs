//! What a sweep found, as data: its axes, each grid point's summary and each class's, and
//! how they are shown. A leaf: the summary's code (`super`) and its page
//! (`crate::render::sweep`) both read it.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::Loc;

/// One parameter swept over a list of values.
#[derive(Clone, Debug)]
pub struct Axis {
    pub node: String,
    pub param: String,
    pub values: Vec<toml::Value>,
    pub loc: Loc,
}

impl Axis {
    pub fn name(&self) -> String {
        format!("{}.{}", self.node, self.param)
    }
}

/// What one grid point found.
#[derive(Clone, Debug, Serialize)]
pub struct PointSummary {
    pub point: usize,
    pub params: Vec<(String, toml::Value)>,
    pub classes: usize,
    pub clustered_fraction: f64,
    pub size_min: u64,
    pub size_median: u64,
    pub size_max: u64,
    /// Classes whose stability is at least 0.5.
    pub stable_classes: usize,
    /// NaN (shown as n/a) where it is not defined: no class, or no neighbouring point.
    pub median_stability: f64,
    /// Planted classes recovered (best-match Jaccard ≥ 0.9), and how many there are.
    pub recovered: Option<(usize, usize)>,
    /// The correlation of the input's and the layout's log local radii, where the layout
    /// the classes come from measured it (`radii = true`, on with densMAP).
    pub radius_correlation: Option<f64>,
    pub seconds: f64,
    pub computed: usize,
    pub cached: usize,
    pub classes_key: String,
    /// The point's report, if the pipeline has one.
    pub report: Option<PathBuf>,
    /// The report's thumbnail size, where its classes have galleries.
    pub thumb: Option<u32>,
}

/// One class of one grid point.
#[derive(Clone, Debug, Serialize)]
pub struct ClassSummary {
    pub point: usize,
    pub class: i32,
    pub size: u64,
    pub stability: f64,
    /// For the most stable classes only: at every grid point, its best-matching class and
    /// their Jaccard index (empty for the others).
    pub across: Vec<(i32, f64)>,
    /// Best-match Jaccard in each neighbouring point, in `neighbours` order.
    pub neighbour_jaccard: Vec<f64>,
}

/// Indices (into `classes`) of the classes with stability ≥ 0.5, most stable first.
pub fn most_stable(classes: &[ClassSummary]) -> Vec<usize> {
    let mut top: Vec<usize> = (0..classes.len())
        .filter(|&i| classes[i].stability >= 0.5)
        .collect();
    top.sort_by(|&a, &b| {
        classes[b]
            .stability
            .total_cmp(&classes[a].stability)
            .then(classes[a].point.cmp(&classes[b].point))
            .then(classes[a].class.cmp(&classes[b].class))
    });
    top
}

/// A stability for people: two decimals, or `n/a` where it is not defined.
pub fn show_stability(s: f64) -> String {
    if s.is_nan() {
        "n/a".to_owned()
    } else {
        format!("{s:.2}")
    }
}

/// A parameter value as it reads on the command line.
pub fn show_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
