//! HTML pieces: escaping, small inline-SVG bar charts, the page style.

use std::fmt::Write;

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar chart as inline SVG: one bar per value, `labels` under the bars, `tips` on hover.
pub fn bars(
    title: &str,
    values: &[f64],
    labels: &[String],
    tips: &[String],
    fmt: &dyn Fn(f64) -> String,
) -> String {
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

/// A heatmap as inline SVG: `values[r * cols + c]` in the cell of row value `r` and column
/// value `c` (`None`: no grid point there), shaded from light (smallest) to dark blue
/// (largest), each cell with its value.
pub fn heatmap(
    title: &str,
    rows: (&str, &[String]),
    cols: (&str, &[String]),
    values: &[Option<f64>],
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let (cw, ch, left, top) = (70.0, 28.0, 120.0, 44.0);
    let (nr, nc) = (rows.1.len(), cols.1.len());
    let (w, h) = (left + cw * nc as f64 + 10.0, top + ch * nr as f64 + 8.0);
    let got: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = (
        got.iter().copied().fold(f64::INFINITY, f64::min),
        got.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" font-family=\"sans-serif\" font-size=\"11\">\
         <text x=\"4\" y=\"14\" font-size=\"13\" font-weight=\"bold\">{}</text>\
         <text x=\"{:.0}\" y=\"30\" text-anchor=\"middle\" fill=\"#555\">{}</text><text x=\"4\" y=\"{:.0}\" fill=\"#555\">{}</text>",
        esc(title),
        left + cw * nc as f64 / 2.0,
        esc(cols.0),
        top - 2.0,
        esc(rows.0)
    );
    for (c, name) in cols.1.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>",
            left + cw * (c as f64 + 0.5),
            top - 2.0,
            esc(name)
        );
    }
    for (r, name) in rows.1.iter().enumerate() {
        let y = top + ch * r as f64;
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + ch / 2.0 + 4.0,
            esc(name)
        );
        for c in 0..nc {
            let x = left + cw * c as f64;
            match values[r * nc + c].filter(|v| v.is_finite()) {
                Some(v) => {
                    let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
                    let fill = super::hex([mix(241.0, 31.0), mix(245.0, 78.0), mix(251.0, 140.0)]);
                    let ink = if t > 0.55 { "#fff" } else { "#222" };
                    let _ = write!(
                        s,
                        "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{:.0}\" height=\"{:.0}\" fill=\"{fill}\"/><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"{ink}\">{}</text>",
                        cw - 2.0,
                        ch - 2.0,
                        x + cw / 2.0 - 1.0,
                        y + ch / 2.0 + 3.0,
                        esc(&fmt(v))
                    );
                }
                None => {
                    let _ = write!(s, "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{:.0}\" height=\"{:.0}\" fill=\"#fafafa\" stroke=\"#ddd\"/>", cw - 2.0, ch - 2.0);
                }
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// A class profile as inline SVG: one horizontal bar per `(column, z)`, left of the axis
/// where the class mean lies below all galaxies' (blue), right where above (orange), with
/// the value at the bar's end.
pub fn profile(entries: &[(String, f64)]) -> String {
    let (row, label_w, half, pad) = (18.0, 300.0, 160.0, 60.0);
    let max = entries
        .iter()
        .map(|e| e.1.abs())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let (w, h) = (
        label_w + 2.0 * half + 2.0 * pad,
        22.0 + row * entries.len() as f64,
    );
    // A value's text sits beyond its bar: `pad` pixels on each side keep it off the names.
    let axis = label_w + pad + half;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" font-family=\"sans-serif\" font-size=\"11\">\
         <text x=\"{axis:.0}\" y=\"12\" text-anchor=\"middle\" fill=\"#555\">class mean − all galaxies', in standard deviations</text>\
         <line x1=\"{axis:.0}\" y1=\"16\" x2=\"{axis:.0}\" y2=\"{h:.0}\" stroke=\"#888\"/>"
    );
    for (i, (name, z)) in entries.iter().enumerate() {
        let y = 18.0 + row * i as f64;
        let len = z.abs() / max * half;
        let (x, fill, tx, anchor) = if *z < 0.0 {
            (axis - len, "#4a78b5", axis - len - 3.0, "end")
        } else {
            (axis, "#d9822b", axis + len + 3.0, "start")
        };
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{fill}\"/>\
             <text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{z:+.1}</text>",
            label_w - 6.0,
            y + 12.0,
            esc(name),
            y + 2.0,
            row - 4.0,
            y + 12.0
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
