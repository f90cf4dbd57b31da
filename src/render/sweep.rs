//! The page of a `dagrun sweep` (`index.html` beside its `summary.parquet`): what each
//! grid point found (bars and heatmaps over the axes, a table of the points), the most
//! stable classes and where each is found across the grid.

use std::fmt::Write;
use std::path::Path;

use super::html::{bars, esc, heatmap, STYLE};
use super::{class_colour, hex};
use crate::sweep::summary::{
    most_stable, show_stability, show_value, Axis, ClassSummary, PointSummary,
};

/// The sweep's summary page (`index.html` beside `summary.parquet`): `at[i]` is point
/// `i`'s index into each axis's values; `dir` is where it will be written (for links to
/// the points' reports).
pub fn page(
    pipeline: &str,
    axes: &[Axis],
    at: &[Vec<usize>],
    points: &[PointSummary],
    classes: &[ClassSummary],
    classes_node: &str,
    dir: &Path,
) -> String {
    let links = Links {
        root: dir.parent().and_then(Path::parent),
    };
    // Each point's parameters, as a bar's tooltip and beside its classes.
    let tips: Vec<String> = points
        .iter()
        .map(|p| {
            p.params
                .iter()
                .map(|(k, v)| format!("{k}={}", show_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let mut h = intro(pipeline, axes, points.len(), classes_node);
    h.push_str(&bar_charts(points, &tips));
    if axes.len() >= 2 {
        h.push_str(&heatmaps(axes, at, points));
    }
    h.push_str(&points_table(axes, points, &links));
    h.push_str(&stable_classes(classes, &tips));
    h.push_str(&followed_classes(classes, points, &tips, &links));
    let _ = writeln!(
        h,
        "<p class=\"note\">dagrun {}</p></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// Links from the sweep's page to files in the same cache (`root`: the cache's `v1`).
struct Links<'a> {
    root: Option<&'a Path>,
}

impl Links<'_> {
    /// `p` relative to the page, when it lies in the cache.
    fn to(&self, p: &Path) -> Option<String> {
        self.root
            .and_then(|r| p.strip_prefix(r).ok())
            .map(|rest| format!("../../{}", rest.display()))
    }
}

/// The page's head and its first lines: the pipeline, the grid and the classes node.
fn intro(pipeline: &str, axes: &[Axis], n_points: usize, classes_node: &str) -> String {
    let mut h = format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>dagrun sweep: {0}</title><style>{STYLE}</style></head><body>", esc(pipeline));
    let grid: Vec<String> = axes
        .iter()
        .map(|a| {
            format!(
                "<code>{}</code> ∈ {{{}}}",
                esc(&a.name()),
                a.values
                    .iter()
                    .map(|v| esc(&show_value(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    let _ = write!(
        h,
        "<h1>Sweep of <code>{}</code></h1><p>{} grid points: {}. Classes are the labels of node <code>{}</code>.</p>",
        esc(pipeline),
        n_points,
        grid.join(" × "),
        esc(classes_node)
    );
    h
}

/// Bars over the grid points: classes, galaxies in a class and, with a truth, planted
/// classes recovered; `tips` are the points' parameters.
fn bar_charts(points: &[PointSummary], tips: &[String]) -> String {
    let labels: Vec<String> = points.iter().map(|p| p.point.to_string()).collect();
    let mut h = String::from("<div>");
    h.push_str(&bars(
        "Classes per grid point",
        &points.iter().map(|p| p.classes as f64).collect::<Vec<_>>(),
        &labels,
        tips,
        &|v| format!("{v:.0}"),
    ));
    h.push_str(&bars(
        "Galaxies in a class (%)",
        &points
            .iter()
            .map(|p| 100.0 * p.clustered_fraction)
            .collect::<Vec<_>>(),
        &labels,
        tips,
        &|v| format!("{v:.1}"),
    ));
    if points.iter().all(|p| p.recovered.is_some()) {
        h.push_str(&bars(
            "Planted classes recovered",
            &points
                .iter()
                .map(|p| p.recovered.map_or(0.0, |r| r.0 as f64))
                .collect::<Vec<_>>(),
            &labels,
            tips,
            &|v| format!("{v:.0}"),
        ));
    }
    h.push_str("</div><p class=\"note\">Bars are numbered by grid point; the table below gives each point's parameters. Hover a bar for them.</p>");
    h
}

/// A measure shown in the heatmaps: its title, its value at a point, and how it is shown.
type Measure<'a> = (
    &'a str,
    Box<dyn Fn(&PointSummary) -> f64 + 'a>,
    &'a dyn Fn(f64) -> String,
);

/// A heatmap per pair of axes and measure (the mean over the other axes).
fn heatmaps(axes: &[Axis], at: &[Vec<usize>], points: &[PointSummary]) -> String {
    let mut measures: Vec<Measure> = vec![
        (
            "classes",
            Box::new(|p: &PointSummary| p.classes as f64),
            &|v| format!("{v:.0}"),
        ),
        (
            "galaxies in a class (%)",
            Box::new(|p: &PointSummary| 100.0 * p.clustered_fraction),
            &|v| format!("{v:.2}"),
        ),
    ];
    if points.iter().all(|p| p.recovered.is_some()) {
        measures.push((
            "planted classes recovered",
            Box::new(|p: &PointSummary| p.recovered.map_or(0.0, |r| r.0 as f64)),
            &|v| format!("{v:.1}"),
        ));
    }
    // With more than two axes, the heatmaps come in groups, one per pair of axes, each
    // under a heading that names the pair; a title alone would not fit above its map.
    let grouped = axes.len() > 2;
    let mut h = String::from("<h2>Across the grid</h2><div>");
    for (i, ai) in axes.iter().enumerate() {
        for (j, aj) in axes.iter().enumerate().skip(i + 1) {
            if grouped {
                let _ = write!(
                    h,
                    "<h3>{} &times; {} <small>(each cell: the mean over the other axes)</small></h3>",
                    esc(&ai.name()),
                    esc(&aj.name())
                );
            }
            let names = |a: &Axis| a.values.iter().map(show_value).collect::<Vec<_>>();
            let (rn, cn) = (names(ai), names(aj));
            for (title, f, show) in &measures {
                let mut sum = vec![(0.0, 0usize); rn.len() * cn.len()];
                for (p, ix) in points.iter().zip(at) {
                    let cell = &mut sum[ix[i] * cn.len() + ix[j]];
                    cell.0 += f(p);
                    cell.1 += 1;
                }
                let values: Vec<Option<f64>> = sum
                    .iter()
                    .map(|&(s, n)| (n > 0).then(|| s / n as f64))
                    .collect();
                h.push_str(&heatmap(
                    title,
                    (&ai.name(), &rn),
                    (&aj.name(), &cn),
                    &values,
                    *show,
                ));
            }
        }
    }
    h.push_str("</div>");
    h
}

/// The table of grid points: parameters, what each found, its time and cache use, a link
/// to its report; then what stability means.
fn points_table(axes: &[Axis], points: &[PointSummary], links: &Links) -> String {
    let mut h = String::from("<h2>Grid points</h2><table><tr><th>point</th>");
    for a in axes {
        let _ = write!(h, "<th>{}</th>", esc(&a.name()));
    }
    h.push_str("<th>classes</th><th>in a class</th><th>size min / median / max</th><th>stable classes</th><th>median stability</th>");
    let truth = points.iter().all(|p| p.recovered.is_some());
    if truth {
        h.push_str("<th>planted recovered</th>");
    }
    let radii = points.iter().any(|p| p.radius_correlation.is_some());
    if radii {
        h.push_str("<th title=\"correlation of the input's and the layout's log local radii\">radius corr.</th>");
    }
    h.push_str("<th>seconds</th><th>computed / cached nodes</th><th>report</th></tr>");
    for p in points {
        h.push_str(&point_row(p, radii, links));
    }
    h.push_str("</table>");
    h.push_str(
        "<p class=\"note\">Stability of a class: the mean, over the neighbouring grid points (one step along one axis), of its \
         best-match Jaccard index there. 1 means the same galaxies form a class in every neighbouring setting; a stable class is one \
         with stability ≥ 0.5.</p>",
    );
    h
}

/// A grid point's row of the table; `radii`: the table has a radius correlation column.
fn point_row(p: &PointSummary, radii: bool, links: &Links) -> String {
    let mut h = format!("<tr><td>{}</td>", p.point);
    for (_, v) in &p.params {
        let _ = write!(h, "<td>{}</td>", esc(&show_value(v)));
    }
    let _ = write!(
        h,
        "<td>{}</td><td>{:.2}%</td><td>{} / {} / {}</td><td>{}</td><td>{}</td>",
        p.classes,
        100.0 * p.clustered_fraction,
        p.size_min,
        p.size_median,
        p.size_max,
        p.stable_classes,
        show_stability(p.median_stability)
    );
    if let Some((r, n)) = p.recovered {
        let _ = write!(h, "<td>{r} of {n}</td>");
    }
    if radii {
        let r = p
            .radius_correlation
            .map_or_else(|| "–".to_owned(), |r| format!("{r:.3}"));
        let _ = write!(h, "<td>{r}</td>");
    }
    let report = p.report.as_deref().and_then(|r| links.to(r)).map_or_else(
        || "–".to_owned(),
        |l| format!("<a href=\"{}\">report</a>", esc(&l)),
    );
    let _ = write!(
        h,
        "<td>{:.1}</td><td>{} / {}</td><td class=\"t\">{report}</td></tr>",
        p.seconds, p.computed, p.cached
    );
    h
}

/// The most stable classes (up to 40): where each is, its size, stability and best-match
/// Jaccard index in each neighbouring point.
fn stable_classes(classes: &[ClassSummary], tips: &[String]) -> String {
    let top: Vec<&ClassSummary> = most_stable(classes)
        .into_iter()
        .take(40)
        .map(|i| &classes[i])
        .collect();
    let mut h = String::from("<h2>Most stable classes</h2>");
    if top.is_empty() {
        h.push_str("<p>No class has stability ≥ 0.5.</p>");
        return h;
    }
    h.push_str("<table><tr><th>point</th><th>parameters</th><th>class</th><th>size</th><th>stability</th><th>best-match Jaccard in each neighbour</th></tr>");
    for c in top {
        let nj: Vec<String> = c
            .neighbour_jaccard
            .iter()
            .map(|j| format!("{j:.2}"))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"t\">{}</td><td><span class=\"sw\" style=\"background:{}\"></span>{}</td><td>{}</td><td>{:.3}</td><td class=\"t\">{}</td></tr>",
            c.point,
            esc(&tips[c.point]),
            hex(class_colour(c.class)),
            c.class,
            c.size,
            c.stability,
            nj.join(", ")
        );
    }
    h.push_str("</table>");
    h
}

/// The most stable classes followed across the grid: at each point, the class that best
/// matches it, its Jaccard index, and its first cutouts where the report has galleries;
/// empty when no class was followed.
fn followed_classes(
    classes: &[ClassSummary],
    points: &[PointSummary],
    tips: &[String],
    links: &Links,
) -> String {
    let followed: Vec<&ClassSummary> = classes.iter().filter(|c| !c.across.is_empty()).collect();
    let mut h = String::new();
    if followed.is_empty() {
        return h;
    }
    h.push_str("<h2>The most stable classes across the grid</h2><p class=\"note\">Each class, then at every grid point the class with the most galaxies in common (best-match Jaccard index), with its first members where the point's report has images.</p>");
    for c in followed {
        let _ = write!(
            h,
            "<h3><span class=\"sw\" style=\"background:{}\"></span>Class {} of point {} ({} galaxies, stability {:.3})</h3><div style=\"display:flex;flex-wrap:wrap;gap:8px\">",
            hex(class_colour(c.class)),
            c.class,
            c.point,
            c.size,
            c.stability
        );
        for (q, &(m, j)) in c.across.iter().enumerate() {
            h.push_str(&best_match(q, m, j, &points[q], &tips[q], links));
        }
        h.push_str("</div>");
    }
    h
}

/// Point `q`'s best match `m` (−1: none) with Jaccard index `j`, and the first four tiles
/// of its gallery where `p`'s report has one; `tip`: the point's parameters.
fn best_match(q: usize, m: i32, j: f64, p: &PointSummary, tip: &str, links: &Links) -> String {
    let mut h = format!(
        "<div style=\"font-size:12px\"><div title=\"{}\">point {q}: ",
        esc(tip)
    );
    if m < 0 {
        h.push_str("no match</div>");
    } else {
        let _ = write!(h, "class {m}, J = {j:.2}</div>");
        let gallery = p
            .report
            .as_deref()
            .and_then(Path::parent)
            .map(|d| d.join(format!("gallery/class_{m}.png")));
        if let (Some(t), Some(l)) = (p.thumb, gallery.as_deref().and_then(|g| links.to(g))) {
            // The first four tiles of the class's gallery (tiles of `t` px, 3 px apart).
            let _ = write!(
                h,
                "<div style=\"width:{}px;height:{}px;overflow:hidden\"><img src=\"{}\" alt=\"class {m} at point {q}\" style=\"max-width:none\"></div>",
                3 + 4 * (t + 3),
                t + 6,
                esc(&l)
            );
        }
    }
    h.push_str("</div>");
    h
}
