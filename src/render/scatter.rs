//! A 2-D scatter of a layout: every galaxy as a log-scaled density in grey, classes on top
//! in their colours, class numbers placed so that no two overlap (with a leader line where
//! a number had to move off its class), a legend and axis titles.
//!
//! The frame holds the bulk, the central 98% of all points on each axis whatever their
//! class, at one scale; far-off galaxies (to the central 99.9%) sit in compressed bands
//! beyond dashed lines, so a few distant islands neither squeeze the bulk into a corner nor
//! vanish; points further out are ticks on the frame's edge (see [`Axis`]).

use image::{Rgb, RgbImage};

use super::canvas;

/// Where a class number was drawn: its box (left, top, width, height) in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Label {
    pub class: i32,
    pub bx: [i64; 4],
}

/// What was drawn: the picture, the plot area (left, top, width, height) and the labels.
pub struct Drawn {
    pub img: RgbImage,
    pub plot: [i64; 4],
    pub labels: Vec<Label>,
}

/// Draw the points (`x[i]`, `y[i]`) coloured by `label[i]` (−1: no class) into a picture
/// of `width` × `height` display pixels, drawn at `scale` image pixels per display pixel (2:
/// sharp on a high-density screen), with `axes` as the axis titles; with `numbers`, each
/// class's number near its median position. Non-finite coordinates are skipped. Sizes in
/// [`Drawn`] are image pixels.
pub fn scatter(
    x: &[f32],
    y: &[f32],
    label: &[i32],
    size: (u32, u32),
    scale: u32,
    numbers: bool,
    axes: (&str, &str),
) -> Drawn {
    assert!(
        x.len() == y.len() && y.len() == label.len(),
        "one x, y and label per point"
    );
    let pts = Points::of(x, y, label);
    let page = Page::of(size, scale, !pts.classes.is_empty());
    let (k, plot) = (page.k, page.plot);
    let mut img = RgbImage::from_pixel(page.width, page.height, Rgb([255, 255, 255]));
    if pts.finite.is_empty() || plot[2] < 20 * k || plot[3] < 20 * k {
        return Drawn {
            img,
            plot,
            labels: Vec::new(),
        };
    }
    let f = Frame::of(&pts, plot);
    if pts.finite.len() < 5_000 {
        // A small sample is clearer as points than as a coarse density.
        draw_sample(&mut img, &pts, &f, page.kf);
    } else {
        draw_density(&mut img, &pts, &f, k);
    }
    draw_band_lines(&mut img, &f, k);
    draw_edge_ticks(&mut img, &pts, &f, page.kf);
    draw_classes(&mut img, &pts, &f, page.kf);
    draw_border(&mut img, &f, k);
    let labels = if numbers {
        draw_numbers(&mut img, &pts, &f, &page)
    } else {
        Vec::new()
    };
    draw_axis_titles(&mut img, &f, &page, axes);
    if !pts.classes.is_empty() {
        draw_legend(&mut img, &pts, &page);
    }
    Drawn { img, plot, labels }
}

/// The points and who is in which class: the finite points, each class's finite members,
/// and the classes that have any.
struct Points<'a> {
    x: &'a [f32],
    y: &'a [f32],
    label: &'a [i32],
    finite: Vec<usize>,
    members: Vec<Vec<usize>>,
    classes: Vec<usize>,
}

impl<'a> Points<'a> {
    fn of(x: &'a [f32], y: &'a [f32], label: &'a [i32]) -> Self {
        let finite: Vec<usize> = (0..x.len())
            .filter(|&i| x[i].is_finite() && y[i].is_finite())
            .collect();
        let top_label = label.iter().copied().max().unwrap_or(-1);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); (top_label + 1).max(0) as usize];
        for &i in finite.iter().filter(|&&i| label[i] >= 0) {
            members[label[i] as usize].push(i);
        }
        let classes: Vec<usize> = (0..members.len())
            .filter(|&l| !members[l].is_empty())
            .collect();
        Points {
            x,
            y,
            label,
            finite,
            members,
            classes,
        }
    }
}

/// The picture's sizes in image pixels: `k` image pixels per display pixel, the text
/// sizes, the margins (axis titles left and below, the legend on the right) and the plot
/// area inside them (left, top, width, height).
struct Page {
    k: i64,
    kf: f32,
    width: u32,
    height: u32,
    small: f32,
    number: f32,
    legend_w: i64,
    top: i64,
    bottom: i64,
    plot: [i64; 4],
}

impl Page {
    /// For a picture of `width` × `height` display pixels at `scale`; the legend takes room
    /// only `with_legend`.
    fn of((width, height): (u32, u32), scale: u32, with_legend: bool) -> Page {
        let k = scale.max(1) as i64;
        let kf = k as f32;
        let (width, height) = (width * k as u32, height * k as u32);
        let (small, number) = (12.0 * kf, 14.0 * kf);
        let legend_w = if with_legend {
            canvas::text_width("class (galaxies)", small) + 10 * k
        } else {
            0
        };
        let (left, top, bottom) = (
            canvas::line_height(small) + 8 * k,
            10 * k,
            canvas::line_height(small) + 12 * k,
        );
        let plot = [
            left,
            top,
            width as i64 - left - legend_w - 10 * k,
            height as i64 - top - bottom,
        ];
        Page {
            k,
            kf,
            width,
            height,
            small,
            number,
            legend_w,
            top,
            bottom,
            plot,
        }
    }
}

/// The frame inside the plot area: each axis's scale and bands, `s` pixels per unit in
/// the bulk on both axes, the band widths in pixels, and its edges (`ox`, `oy` the left and
/// top, `right`, `low` the right and bottom).
struct Frame {
    sx: Axis,
    sy: Axis,
    bx: [f32; 2],
    by: [f32; 2],
    s: f32,
    ox: f32,
    oy: f32,
    right: f32,
    low: f32,
}

impl Frame {
    /// The frame for the finite points, centred in `plot`.
    fn of(p: &Points, plot: [i64; 4]) -> Frame {
        let sorted = |v: &[f32]| -> Vec<f32> {
            let mut s: Vec<f32> = p.finite.iter().map(|&i| v[i]).collect();
            s.sort_by(f32::total_cmp);
            s
        };
        let (sx, sy) = (Axis::of(&sorted(p.x)), Axis::of(&sorted(p.y)));
        let (pw, ph) = (plot[2] as f32, plot[3] as f32);
        // One scale for the bulk on both axes: distances there mean the same in x and y. A
        // compressed band, where there is one, takes an eighth of the axis.
        let band = |a: &Axis, len: f32| {
            [
                a.lo_band as u8 as f32 * len / 8.0,
                a.hi_band as u8 as f32 * len / 8.0,
            ]
        };
        let (bx, by) = (band(&sx, pw), band(&sy, ph));
        let s = ((pw - bx[0] - bx[1]) / sx.span()).min((ph - by[0] - by[1]) / sy.span());
        let (fw, fh) = (bx[0] + bx[1] + s * sx.span(), by[0] + by[1] + s * sy.span());
        let (ox, oy) = (
            plot[0] as f32 + (pw - fw) / 2.0,
            plot[1] as f32 + (ph - fh) / 2.0,
        );
        let (right, low) = (ox + fw, oy + fh);
        Frame {
            sx,
            sy,
            bx,
            by,
            s,
            ox,
            oy,
            right,
            low,
        }
    }

    /// Point `i`'s position in image pixels (outside the frame when it lies beyond it).
    fn px(&self, p: &Points, i: usize) -> (f32, f32) {
        (
            self.ox + self.sx.map(p.x[i], self.s, self.bx),
            self.low - self.sy.map(p.y[i], self.s, self.by),
        )
    }

    fn inside(&self, (a, b): (f32, f32)) -> bool {
        a >= self.ox && a < self.right && b >= self.oy && b < self.low
    }
}

/// Every finite point inside the frame as a grey disc.
fn draw_sample(img: &mut RgbImage, p: &Points, f: &Frame, kf: f32) {
    for &i in &p.finite {
        let at = f.px(p, i);
        if f.inside(at) {
            canvas::disc(img, at.0, at.1, 2.2 * kf, [150, 150, 150], 0.7);
        }
    }
}

/// The density of all galaxies, log-scaled grey, in square cells sized so that an average
/// cell holds a few galaxies (2 px at survey scale, up to 8 px for small samples).
fn draw_density(img: &mut RgbImage, p: &Points, f: &Frame, k: i64) {
    let (ox, oy, right, low) = (f.ox, f.oy, f.right, f.low);
    let cell = ((3.0 * (right - ox) * (low - oy) / p.finite.len() as f32)
        .sqrt()
        .round() as i64)
        .clamp(2, 8 * k);
    let (cw, chh) = (
        ((right - ox) / cell as f32).ceil() as usize,
        ((low - oy) / cell as f32).ceil() as usize,
    );
    let (cw, chh) = (cw.max(1), chh.max(1));
    let mut count = vec![0u32; cw * chh];
    for &i in &p.finite {
        let at = f.px(p, i);
        if f.inside(at) {
            let (cx, cy) = (
                ((at.0 - ox) / cell as f32) as usize,
                ((at.1 - oy) / cell as f32) as usize,
            );
            count[cy.min(chh - 1) * cw + cx.min(cw - 1)] += 1;
        }
    }
    let peak = (count.iter().copied().max().unwrap_or(1).max(1) as f32 + 1.0).ln();
    for cy in 0..chh {
        for cx in 0..cw {
            let c = count[cy * cw + cx];
            if c > 0 {
                let g = (235.0 - 175.0 * ((c as f32 + 1.0).ln() / peak)) as u8;
                let (x0p, y0p) = (ox as i64 + cell * cx as i64, oy as i64 + cell * cy as i64);
                let (w, h) = ((right as i64 - x0p).min(cell), (low as i64 - y0p).min(cell));
                canvas::rect(img, x0p, y0p, w, h, [g, g, g]);
            }
        }
    }
}

/// Where each compressed band begins: a dashed line across the frame.
fn draw_band_lines(img: &mut RgbImage, f: &Frame, k: i64) {
    for (on, vertical, at) in [
        (f.sx.lo_band, true, f.ox + f.bx[0]),
        (f.sx.hi_band, true, f.right - f.bx[1]),
        (f.sy.lo_band, false, f.low - f.by[0]),
        (f.sy.hi_band, false, f.oy + f.by[1]),
    ] {
        if on {
            dashed(img, f, k, vertical, at);
        }
    }
}

/// A dashed line across the frame, `vertical` at x = `at` or horizontal at y = `at`.
fn dashed(img: &mut RgbImage, f: &Frame, k: i64, vertical: bool, at: f32) {
    let (from, to) = if vertical {
        (f.oy as i64, f.low as i64)
    } else {
        (f.ox as i64, f.right as i64)
    };
    for t in (from..to).filter(|t| (t - from) / (4 * k) % 2 == 0) {
        for o in 0..k {
            let (a, b) = if vertical {
                (at as i64 + o, t)
            } else {
                (t, at as i64 + o)
            };
            canvas::blend(img, a, b, [150, 150, 150], 1.0);
        }
    }
}

/// Galaxies beyond the frame: ticks on its edge, in their class's colour.
fn draw_edge_ticks(img: &mut RgbImage, p: &Points, f: &Frame, kf: f32) {
    for &i in &p.finite {
        let (a, b) = f.px(p, i);
        if !f.inside((a, b)) {
            let (ca, cb) = (a.clamp(f.ox, f.right - 1.0), b.clamp(f.oy, f.low - 1.0));
            canvas::disc(
                img,
                ca,
                cb,
                1.5 * kf,
                if p.label[i] >= 0 {
                    super::class_colour(p.label[i])
                } else {
                    [120, 120, 120]
                },
                0.6,
            );
        }
    }
}

/// The classes' members on top, in their colours (smaller discs for many galaxies).
fn draw_classes(img: &mut RgbImage, p: &Points, f: &Frame, kf: f32) {
    let many = p.finite.len() > 20_000;
    for &l in &p.classes {
        let c = super::class_colour(l as i32);
        for &i in &p.members[l] {
            let at = f.px(p, i);
            if f.inside(at) {
                canvas::disc(img, at.0, at.1, kf * if many { 1.6 } else { 2.2 }, c, 0.85);
            }
        }
    }
}

/// The frame's border, `k` pixels wide, just outside it.
fn draw_border(img: &mut RgbImage, f: &Frame, k: i64) {
    for t in 1..=k {
        canvas::frame(
            img,
            f.ox as i64 - t,
            f.oy as i64 - t,
            (f.right - f.ox) as i64 + 2 * t,
            (f.low - f.oy) as i64 + 2 * t,
            [120, 120, 120],
        );
    }
}

/// Class numbers near their medians, none overlapping another or leaving the frame (with a
/// leader line where one had to move off its class); returns where each was drawn.
fn draw_numbers(img: &mut RgbImage, p: &Points, f: &Frame, page: &Page) -> Vec<Label> {
    let (k, number) = (page.k, page.number);
    let area = [
        f.ox as i64,
        f.oy as i64,
        (f.right - f.ox) as i64,
        (f.low - f.oy) as i64,
    ];
    let mut labels: Vec<Label> = Vec::new();
    for &l in &p.classes {
        let med = |v: &dyn Fn(usize) -> f32| {
            let mut s: Vec<f32> = p.members[l].iter().map(|&i| v(i)).collect();
            s.sort_by(f32::total_cmp);
            s[s.len() / 2]
        };
        let (a, b) = (
            med(&|i| f.px(p, i).0).clamp(f.ox, f.right - 1.0),
            med(&|i| f.px(p, i).1).clamp(f.oy, f.low - 1.0),
        );
        let t = l.to_string();
        let (w, h) = (
            canvas::text_width(&t, number) + 6 * k,
            canvas::line_height(number) + 2 * k,
        );
        if let Some(bx) = place(a as i64, b as i64, w, h, area, &labels, k) {
            let (cx, cy) = (bx[0] + bx[2] / 2, bx[1] + bx[3] / 2);
            if (cx - a as i64).abs() > w || (cy - b as i64).abs() > 3 * h / 2 {
                for o in 0..k {
                    let (from, to) = ((a + o as f32, b), (cx as f32 + o as f32, cy as f32));
                    canvas::line(img, from.0, from.1, to.0, to.1, [60, 60, 60]);
                }
            }
            draw_number(img, bx, l, &t, page);
            labels.push(Label {
                class: l as i32,
                bx,
            });
        }
    }
    labels
}

/// Class `l`'s number `t` in a white box `bx` framed in its colour.
fn draw_number(img: &mut RgbImage, bx: [i64; 4], l: usize, t: &str, page: &Page) {
    let k = page.k;
    canvas::rect(img, bx[0], bx[1], bx[2], bx[3], [255, 255, 255]);
    for o in 0..k {
        canvas::frame(
            img,
            bx[0] + o,
            bx[1] + o,
            bx[2] - 2 * o,
            bx[3] - 2 * o,
            super::class_colour(l as i32),
        );
    }
    canvas::text(
        img,
        bx[0] + 3 * k,
        bx[1] + k,
        t,
        page.number,
        [0, 0, 0],
        None,
    );
}

/// The axis titles: `x` below the frame, `y` on its left reading bottom to top.
fn draw_axis_titles(img: &mut RgbImage, f: &Frame, page: &Page, (ax, ay): (&str, &str)) {
    let (k, small) = (page.k, page.small);
    let grey = [40, 40, 40];
    canvas::text(
        img,
        (f.ox + f.right) as i64 / 2 - canvas::text_width(ax, small) / 2,
        page.height as i64 - page.bottom + 6 * k,
        ax,
        small,
        grey,
        None,
    );
    // The y title reads bottom to top: drawn on its side, then turned.
    let (tw, th) = (canvas::text_width(ay, small), canvas::line_height(small));
    let mut side = RgbImage::from_pixel(tw.max(1) as u32, th.max(1) as u32, Rgb([255, 255, 255]));
    canvas::text(&mut side, 0, 0, ay, small, grey, None);
    let turned = image::imageops::rotate270(&side);
    image::imageops::replace(img, &turned, 4 * k, (f.oy + f.low) as i64 / 2 - tw / 2);
}

/// The legend right of the frame: each class's colour and size, then the galaxies in no
/// class; "+N more" where the rows do not fit.
fn draw_legend(img: &mut RgbImage, p: &Points, page: &Page) {
    let (k, small, top) = (page.k, page.small, page.top);
    let lx = page.width as i64 - page.legend_w;
    let row = canvas::line_height(small) + 2 * k;
    let rows = ((page.height as i64 - top - 2 * row) / row).max(1) as usize;
    canvas::text(img, lx, top, "class (galaxies)", small, [40, 40, 40], None);
    let noise = p.finite.len() - p.classes.iter().map(|&l| p.members[l].len()).sum::<usize>();
    let mut entries: Vec<(i32, String)> = p
        .classes
        .iter()
        .map(|&l| (l as i32, format!("{l} ({})", p.members[l].len())))
        .collect();
    entries.push((-1, format!("none ({noise})")));
    if entries.len() > rows {
        let more = entries.len() - rows + 1;
        entries.truncate(rows - 1);
        entries.push((-2, format!("+{more} more")));
    }
    for (r, (l, t)) in entries.iter().enumerate() {
        let yy = top + row + 4 * k + row * r as i64;
        if *l >= -1 {
            let sw = row - 4 * k;
            let colour = if *l >= 0 {
                super::class_colour(*l)
            } else {
                [170, 170, 170]
            };
            canvas::rect(img, lx, yy + 2 * k, sw, sw, colour);
        }
        canvas::text(img, lx + row + 2 * k, yy, t, small, [30, 30, 30], None);
    }
}

/// One axis of the frame. The bulk (the central 98% of all galaxies) is drawn at one
/// scale; where galaxies lie far beyond it on a side (further than a quarter of the bulk's
/// span), they are drawn in a compressed band at that end, out to the extreme galaxy (or
/// the central 99.9% where a lone stray lies far beyond), so a few distant islands (often
/// the rarest classes) neither squeeze the bulk into a corner nor vanish; galaxies beyond
/// are ticks on the edge.
struct Axis {
    lo: f32,
    lo_bulk: f32,
    hi_bulk: f32,
    hi: f32,
    lo_band: bool,
    hi_band: bool,
}

impl Axis {
    /// From every galaxy's coordinate, sorted.
    fn of(v: &[f32]) -> Axis {
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        let (lo_bulk, hi_bulk) = (q(0.01), q(0.99));
        // The ends: the extremes, unless a lone stray lies far beyond the last 0.05%.
        let end = |far: f32, near: f32, bulk: f32| {
            if (bulk - far).abs() > 3.0 * (bulk - near).abs() {
                near
            } else {
                far
            }
        };
        let (lo, hi) = (
            end(q(0.0), q(0.0005), lo_bulk),
            end(q(1.0), q(0.9995), hi_bulk),
        );
        let span = (hi_bulk - lo_bulk).max(1e-6);
        let (lo_band, hi_band) = (lo_bulk - lo > span / 4.0, hi - hi_bulk > span / 4.0);
        let pad = 0.03 * span;
        let (lo_bulk, hi_bulk) = (
            if lo_band { lo_bulk } else { lo - pad },
            if hi_band { hi_bulk } else { hi + pad },
        );
        let pad_band = |d: f32| d + 0.08 * d.max(1e-6);
        Axis {
            lo: lo_bulk - pad_band(lo_bulk - lo) * lo_band as u8 as f32,
            lo_bulk,
            hi_bulk,
            hi: hi_bulk + pad_band(hi - hi_bulk) * hi_band as u8 as f32,
            lo_band,
            hi_band,
        }
    }

    fn span(&self) -> f32 {
        (self.hi_bulk - self.lo_bulk).max(1e-6)
    }

    /// Pixels from the frame's low edge: `band` pixels at each end, `s` pixels per unit in
    /// the bulk. Values beyond [`lo`, `hi`] map outside the frame.
    fn map(&self, v: f32, s: f32, band: [f32; 2]) -> f32 {
        if v < self.lo_bulk && self.lo_band {
            band[0] * (v - self.lo) / (self.lo_bulk - self.lo)
        } else if v > self.hi_bulk && self.hi_band {
            band[0] + s * self.span() + band[1] * (v - self.hi_bulk) / (self.hi - self.hi_bulk)
        } else {
            band[0] + s * (v - self.lo_bulk)
        }
    }
}

/// A `w` × `h` box near (`a`, `b`) inside `area` that overlaps none of `taken` and leaves
/// the point itself uncovered (a compact class stays visible beside its number): the first
/// free one on rings of growing radius around the point (sixteen directions each).
fn place(
    a: i64,
    b: i64,
    w: i64,
    h: i64,
    area: [i64; 4],
    taken: &[Label],
    k: i64,
) -> Option<[i64; 4]> {
    let fits = |bx: [i64; 4]| {
        bx[0] >= area[0]
            && bx[1] >= area[1]
            && bx[0] + bx[2] <= area[0] + area[2]
            && bx[1] + bx[3] <= area[1] + area[3]
            && taken.iter().all(|t| {
                bx[0] >= t.bx[0] + t.bx[2]
                    || t.bx[0] >= bx[0] + bx[2]
                    || bx[1] >= t.bx[1] + t.bx[3]
                    || t.bx[1] >= bx[1] + bx[3]
            })
    };
    let reach = area[2].max(area[3]);
    let covers = |bx: [i64; 4]| {
        a >= bx[0] - 2 * k
            && a < bx[0] + bx[2] + 2 * k
            && b >= bx[1] - 2 * k
            && b < bx[1] + bx[3] + 2 * k
    };
    let mut r = h / 2 + 4 * k;
    while r <= reach {
        for j in 0..16 {
            let t = j as f64 / 16.0 * std::f64::consts::TAU;
            let (cx, cy) = (
                a + (r as f64 * t.cos()).round() as i64,
                b + (r as f64 * t.sin()).round() as i64,
            );
            let bx = [cx - w / 2, cy - h / 2, w, h];
            if fits(bx) && !covers(bx) {
                return Some(bx);
            }
        }
        r += 6 * k;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::rng::Rng;

    #[test]
    fn classes_land_where_their_points_are() {
        // Class 0 on the left, class 1 on the right, noise in between.
        let mut x = vec![0.0, 0.1, 5.0, 9.9, 10.0, f32::NAN];
        let mut y = vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let mut l = vec![0, 0, -1, 1, 1, 1];
        for i in 0..400 {
            x.push((i % 20) as f32 * 0.5);
            y.push((i / 20) as f32 * 0.5);
            l.push(-1);
        }
        let d = scatter(&x, &y, &l, (400, 200), 1, false, ("x", "y"));
        let (c0, c1) = (
            crate::render::class_colour(0),
            crate::render::class_colour(1),
        );
        let near =
            |p: &Rgb<u8>, c: [u8; 3]| (0..3).all(|i| (p.0[i] as i32 - c[i] as i32).abs() < 60);
        let mid = (d.plot[0] + d.plot[2] / 2) as u32;
        let left0 = d
            .img
            .enumerate_pixels()
            .filter(|(px, _, p)| *px < mid && near(p, c0))
            .count();
        let right1 = d
            .img
            .enumerate_pixels()
            .filter(|(px, _, p)| *px > mid && near(p, c1))
            .count();
        assert!(left0 > 0 && right1 > 0, "{left0} {right1}");
        // Deterministic, and numbers are drawn when asked.
        assert!(
            d.img == scatter(&x, &y, &l, (400, 200), 1, false, ("x", "y")).img,
            "the same picture twice"
        );
        let with = scatter(&x, &y, &l, (400, 200), 2, true, ("x", "y"));
        assert!(
            with.img != d.img && with.labels.len() == 2,
            "numbers are drawn"
        );
    }

    #[test]
    fn the_bulk_fills_the_frame_despite_far_outliers() {
        let mut r = Rng::new(1, 0);
        let n = 20_000;
        let mut x: Vec<f32> = (0..n).map(|_| r.normal() as f32).collect();
        let mut y: Vec<f32> = (0..n).map(|_| 0.7 * r.normal() as f32).collect();
        let mut l = vec![-1; n];
        // A class member far away, and a few stray galaxies.
        x[0] = 400.0;
        l[0] = 0;
        x[1] = -300.0;
        y[2] = 250.0;
        let d = scatter(&x, &y, &l, (900, 700), 2, true, ("umap_0", "umap_1"));
        // The darkest cells (the densest galaxies) spread over most of the plot.
        let [pl, pt, pw, ph] = d.plot;
        let dark: Vec<(u32, u32)> = d
            .img
            .enumerate_pixels()
            .filter(|(a, b, p)| {
                *a as i64 > pl
                    && (*a as i64) < pl + pw
                    && (*b as i64) > pt
                    && (*b as i64) < pt + ph
                    && p.0[0] < 200
                    && p.0 == [p.0[0]; 3]
            })
            .map(|(a, b, _)| (a, b))
            .collect();
        let span = |v: Vec<u32>| v.iter().max().unwrap() - v.iter().min().unwrap();
        let (sx, sy) = (
            span(dark.iter().map(|p| p.0).collect()),
            span(dark.iter().map(|p| p.1).collect()),
        );
        assert!(
            sx as f64 > 0.6 * pw as f64 || sy as f64 > 0.6 * ph as f64,
            "galaxies span {sx} x {sy} of {pw} x {ph}"
        );
        assert!(
            sx as f64 > 0.4 * pw as f64 && sy as f64 > 0.4 * ph as f64,
            "galaxies span {sx} x {sy} of {pw} x {ph}"
        );
    }

    #[test]
    fn far_islands_sit_in_bands_and_the_bulk_fills_the_rest() {
        // A round bulk and two compact classes far off to the right and below, as UMAP lays
        // out rare classes: 0.5% of the galaxies each.
        let mut r = Rng::new(3, 0);
        let (mut x, mut y, mut l) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..20_000 {
            let (a, b) = (r.normal() as f32, r.normal() as f32);
            match i % 200 {
                0 => (x.push(30.0 + 0.1 * a), y.push(0.1 * b), l.push(0)),
                1 => (x.push(0.1 * a), y.push(-25.0 + 0.1 * b), l.push(1)),
                _ => (x.push(a), y.push(b), l.push(-1)),
            };
        }
        let d = scatter(&x, &y, &l, (900, 700), 2, true, ("a", "b"));
        let [pl, pt, pw, ph] = d.plot;
        let grey: Vec<(u32, u32)> = d
            .img
            .enumerate_pixels()
            .filter(|(a, b, p)| {
                *a as i64 > pl
                    && (*b as i64) > pt
                    && (*b as i64) < pt + ph
                    && p.0[0] < 200
                    && p.0 == [p.0[0]; 3]
            })
            .map(|(a, b, _)| (a, b))
            .collect();
        let span = |v: Vec<u32>| v.iter().max().unwrap() - v.iter().min().unwrap();
        let (gx, gy) = (
            span(
                grey.iter()
                    .map(|p| p.0)
                    .filter(|&a| (a as i64) < pl + pw)
                    .collect(),
            ),
            span(grey.iter().map(|p| p.1).collect()),
        );
        assert!(
            gx as f64 > 0.6 * ph as f64 && gy as f64 > 0.6 * ph as f64,
            "the bulk spans {gx} x {gy} of a {pw} x {ph} plot"
        );
        // Both islands are drawn inside the frame, in their colours, and numbered.
        for c in [0, 1] {
            let col = crate::render::class_colour(c);
            let near = |p: &Rgb<u8>| (0..3).all(|i| (p.0[i] as i32 - col[i] as i32).abs() < 40);
            let n = d
                .img
                .enumerate_pixels()
                .filter(|(a, b, p)| {
                    (*a as i64) < pl + pw
                        && (*b as i64) < pt + ph
                        && near(p)
                        && !d.labels.iter().any(|lb| {
                            (*a as i64) >= lb.bx[0]
                                && (*a as i64) < lb.bx[0] + lb.bx[2]
                                && (*b as i64) >= lb.bx[1]
                                && (*b as i64) < lb.bx[1] + lb.bx[3]
                        })
                })
                .count();
            assert!(
                n > 50,
                "class {c}: {n} pixels in its colour inside the plot"
            );
        }
        assert_eq!(d.labels.len(), 2);
    }

    #[test]
    fn class_numbers_never_overlap() {
        // 40 classes crowded into one spot, and the rest of the galaxies around them.
        let mut r = Rng::new(2, 0);
        let (mut x, mut y, mut l) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..4000 {
            x.push(r.normal() as f32 * 5.0);
            y.push(r.normal() as f32 * 5.0);
            l.push(if i < 400 { i % 40 } else { -1 });
            if i < 400 {
                *x.last_mut().unwrap() *= 0.02;
                *y.last_mut().unwrap() *= 0.02;
            }
        }
        let d = scatter(&x, &y, &l, (900, 700), 2, true, ("a", "b"));
        assert_eq!(d.labels.len(), 40, "every class labelled");
        let [pl, pt, pw, ph] = d.plot;
        for (i, a) in d.labels.iter().enumerate() {
            assert!(
                a.bx[0] >= pl
                    && a.bx[1] >= pt
                    && a.bx[0] + a.bx[2] <= pl + pw
                    && a.bx[1] + a.bx[3] <= pt + ph,
                "label {} inside the plot",
                a.class
            );
            for b in &d.labels[i + 1..] {
                let apart = a.bx[0] >= b.bx[0] + b.bx[2]
                    || b.bx[0] >= a.bx[0] + a.bx[2]
                    || a.bx[1] >= b.bx[1] + b.bx[3]
                    || b.bx[1] >= a.bx[1] + a.bx[3];
                assert!(apart, "labels {} and {} overlap", a.class, b.class);
            }
        }
    }
}
