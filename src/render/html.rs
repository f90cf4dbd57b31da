//! HTML pieces: escaping, small inline-SVG bar charts, and the sweep summary page.

use std::fmt::Write;
use std::path::Path;

use crate::sweep::{show_value, Axis, ClassSummary, PointSummary};

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A bar chart as inline SVG: one bar per value, `labels` under the bars, `tips` on hover.
pub fn bars(title: &str, values: &[f64], labels: &[String], tips: &[String], fmt: &dyn Fn(f64) -> String) -> String {
    let (bw, gap, h, top, bottom, left) = (34.0, 10.0, 150.0, 28.0, 22.0, 8.0);
    let w = left * 2.0 + values.len() as f64 * (bw + gap);
    let max = values.iter().copied().fold(0.0f64, f64::max).max(1e-12);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{:.0}\" font-family=\"sans-serif\" font-size=\"11\">\
         <text x=\"{left}\" y=\"14\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        h + top + bottom,
        esc(title)
    );
    for (i, &v) in values.iter().enumerate() {
        let x = left + i as f64 * (bw + gap);
        let bh = (v / max * h).max(0.5);
        let y = top + h - bh;
        let _ = write!(
            s,
            "<g><title>{}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw}\" height=\"{bh:.1}\" fill=\"#4a78b5\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text></g>",
            esc(&tips[i]),
            x + bw / 2.0,
            y - 3.0,
            esc(&fmt(v)),
            x + bw / 2.0,
            top + h + 15.0,
            esc(&labels[i])
        );
    }
    s.push_str("</svg>");
    s
}

pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}\
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}\
th{background:#f2f2f2}td.t{text-align:left}h2{margin-top:1.6em}.note{color:#555;font-size:13px}\
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;vertical-align:middle;margin-right:4px}\
img{image-rendering:auto;max-width:100%}";

/// The sweep's summary page. `dir` is where it will be written (for links to reports).
pub fn sweep_html(pipeline: &str, axes: &[Axis], points: &[PointSummary], classes: &[ClassSummary], classes_node: &str, dir: &Path) -> String {
    let root = dir.parent().and_then(Path::parent);
    let link = |p: &Path| -> Option<String> { root.and_then(|r| p.strip_prefix(r).ok()).map(|rest| format!("../../{}", rest.display())) };
    let mut h = format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>dagrun sweep: {0}</title><style>{STYLE}</style></head><body>", esc(pipeline));
    let grid: Vec<String> =
        axes.iter().map(|a| format!("<code>{}</code> ∈ {{{}}}", esc(&a.name()), a.values.iter().map(|v| esc(&show_value(v))).collect::<Vec<_>>().join(", "))).collect();
    let _ = write!(
        h,
        "<h1>Sweep of <code>{}</code></h1><p>{} grid points: {}. Classes are the labels of node <code>{}</code>.</p>",
        esc(pipeline),
        points.len(),
        grid.join(" × "),
        esc(classes_node)
    );
    let labels: Vec<String> = points.iter().map(|p| p.point.to_string()).collect();
    let tips: Vec<String> =
        points.iter().map(|p| p.params.iter().map(|(k, v)| format!("{k}={}", show_value(v))).collect::<Vec<_>>().join(", ")).collect();
    h.push_str("<div>");
    h.push_str(&bars("Classes per grid point", &points.iter().map(|p| p.classes as f64).collect::<Vec<_>>(), &labels, &tips, &|v| format!("{v:.0}")));
    h.push_str(&bars(
        "Galaxies in a class (%)",
        &points.iter().map(|p| 100.0 * p.clustered_fraction).collect::<Vec<_>>(),
        &labels,
        &tips,
        &|v| format!("{v:.1}"),
    ));
    if points.iter().all(|p| p.recovered.is_some()) {
        h.push_str(&bars(
            "Planted classes recovered",
            &points.iter().map(|p| p.recovered.map_or(0.0, |r| r.0 as f64)).collect::<Vec<_>>(),
            &labels,
            &tips,
            &|v| format!("{v:.0}"),
        ));
    }
    h.push_str("</div><p class=\"note\">Bars are numbered by grid point; the table below gives each point's parameters. Hover a bar for them.</p>");
    // Summary table.
    h.push_str("<h2>Grid points</h2><table><tr><th>point</th>");
    for a in axes {
        let _ = write!(h, "<th>{}</th>", esc(&a.name()));
    }
    h.push_str("<th>classes</th><th>in a class</th><th>size min / median / max</th><th>stable classes</th><th>median stability</th>");
    let truth = points.iter().all(|p| p.recovered.is_some());
    if truth {
        h.push_str("<th>planted recovered</th>");
    }
    h.push_str("<th>seconds</th><th>computed / cached nodes</th><th>report</th></tr>");
    for p in points {
        let _ = write!(h, "<tr><td>{}</td>", p.point);
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
            crate::sweep::show_stability(p.median_stability)
        );
        if let Some((r, n)) = p.recovered {
            let _ = write!(h, "<td>{r} of {n}</td>");
        }
        let report = p.report.as_deref().and_then(link).map_or_else(|| "–".to_owned(), |l| format!("<a href=\"{}\">report</a>", esc(&l)));
        let _ = write!(h, "<td>{:.1}</td><td>{} / {}</td><td class=\"t\">{report}</td></tr>", p.seconds, p.computed, p.cached);
    }
    h.push_str("</table>");
    h.push_str(
        "<p class=\"note\">Stability of a class: the mean, over the neighbouring grid points (one step along one axis), of its \
         best-match Jaccard index there. 1 means the same galaxies form a class in every neighbouring setting; a stable class is one \
         with stability ≥ 0.5.</p>",
    );
    // The most stable classes.
    let mut top: Vec<&ClassSummary> = classes.iter().filter(|c| c.stability >= 0.5).collect();
    top.sort_by(|a, b| b.stability.total_cmp(&a.stability).then(a.point.cmp(&b.point)).then(a.class.cmp(&b.class)));
    top.truncate(40);
    let _ = write!(h, "<h2>Most stable classes</h2>");
    if top.is_empty() {
        h.push_str("<p>No class has stability ≥ 0.5.</p>");
    } else {
        h.push_str("<table><tr><th>point</th><th>parameters</th><th>class</th><th>size</th><th>stability</th><th>best-match Jaccard in each neighbour</th></tr>");
        for c in top {
            let nj: Vec<String> = c.neighbour_jaccard.iter().map(|j| format!("{j:.2}")).collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"t\">{}</td><td><span class=\"sw\" style=\"background:{}\"></span>{}</td><td>{}</td><td>{:.3}</td><td class=\"t\">{}</td></tr>",
                c.point,
                esc(&tips[c.point]),
                super::hex(super::class_colour(c.class)),
                c.class,
                c.size,
                c.stability,
                nj.join(", ")
            );
        }
        h.push_str("</table>");
    }
    let _ = writeln!(h, "<p class=\"note\">dagrun {}</p></body></html>", env!("CARGO_PKG_VERSION"));
    h
}
