//! HTML pieces: escaping, small inline-SVG bar charts, the page style.

use std::fmt::Write;

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
