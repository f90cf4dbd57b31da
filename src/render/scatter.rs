//! A 2-D scatter of a layout coloured by class, class numbers written at their medians.

use image::{Rgb, RgbImage};

use super::canvas;

/// Draw the points (`x[i]`, `y[i]`) coloured by `label[i]` (−1, noise, in light grey, drawn
/// first) into a `width` × `height` image; with `numbers`, each class's number at its
/// median position. Non-finite coordinates are skipped.
pub fn scatter(x: &[f32], y: &[f32], label: &[i32], width: u32, height: u32, numbers: bool) -> RgbImage {
    assert!(x.len() == y.len() && y.len() == label.len(), "one x, y and label per point");
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let finite: Vec<usize> = (0..x.len()).filter(|&i| x[i].is_finite() && y[i].is_finite()).collect();
    if finite.is_empty() {
        return img;
    }
    // The frame holds every class member and the central 99% of the rest, so that a few
    // stray unclustered points do not shrink the picture to a dot.
    let quantiles = |v: &dyn Fn(usize) -> f32| -> (f32, f32) {
        let mut s: Vec<f32> = finite.iter().filter(|&&i| label[i] < 0).map(|&i| v(i)).collect();
        s.sort_by(f32::total_cmp);
        let mut lo = s.get(s.len() / 200).copied().unwrap_or(f32::INFINITY);
        let mut hi = s.get(s.len().saturating_sub(1 + s.len() / 200)).copied().unwrap_or(f32::NEG_INFINITY);
        for &i in finite.iter().filter(|&&i| label[i] >= 0) {
            lo = lo.min(v(i));
            hi = hi.max(v(i));
        }
        let pad = 0.02 * (hi - lo);
        (lo - pad, hi + pad)
    };
    let (x0, x1) = quantiles(&|i| x[i]);
    let (y0, y1) = quantiles(&|i| y[i]);
    let m = 12.0;
    let (w, h) = (width as f32 - 2.0 * m, height as f32 - 2.0 * m);
    // One scale for both axes: distances in the picture mean the same in x and y.
    let s = (w / (x1 - x0).max(1e-6)).min(h / (y1 - y0).max(1e-6));
    let (ox, oy) = (m + (w - s * (x1 - x0)) / 2.0, m + (h - s * (y1 - y0)) / 2.0);
    let px = |i: usize| (ox + s * (x[i] - x0), height as f32 - (oy + s * (y[i] - y0)));
    canvas::frame(&mut img, 0, 0, width as i64, height as i64, [120, 120, 120]);
    let many = finite.len() > 20_000;
    let inside = |i: usize| (x0..=x1).contains(&x[i]) && (y0..=y1).contains(&y[i]);
    for &i in finite.iter().filter(|&&i| label[i] < 0 && inside(i)) {
        let (a, b) = px(i);
        canvas::disc(&mut img, a, b, if many { 0.8 } else { 1.5 }, super::class_colour(-1), 0.35);
    }
    let k = label.iter().copied().max().unwrap_or(-1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); (k + 1).max(0) as usize];
    for &i in finite.iter().filter(|&&i| label[i] >= 0) {
        members[label[i] as usize].push(i);
    }
    for (l, rows) in members.iter().enumerate() {
        let c = super::class_colour(l as i32);
        for &i in rows {
            let (a, b) = px(i);
            canvas::disc(&mut img, a, b, if many { 1.8 } else { 2.2 }, c, 0.8);
        }
    }
    // Class numbers at each class's median position.
    for (l, rows) in members.iter().enumerate().filter(|(_, r)| numbers && !r.is_empty()) {
        let med = |v: &dyn Fn(usize) -> f32| {
            let mut s: Vec<f32> = rows.iter().map(|&i| v(i)).collect();
            s.sort_by(f32::total_cmp);
            s[s.len() / 2]
        };
        let (a, b) = (med(&|i| px(i).0), med(&|i| px(i).1));
        let t = l.to_string();
        canvas::text(&mut img, a as i64 - canvas::text_width(&t, 2) / 2, b as i64 - 8, &t, 2, [0, 0, 0], Some([255, 255, 255]));
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_land_where_their_points_are() {
        // Class 0 on the left, class 1 on the right, noise in between; y all zero but one.
        let x = [0.0, 0.1, 5.0, 9.9, 10.0, f32::NAN];
        let y = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let l = [0, 0, -1, 1, 1, 1];
        let img = scatter(&x, &y, &l, 200, 100, false);
        let (c0, c1) = (crate::render::class_colour(0), crate::render::class_colour(1));
        // Points are blended: look for pixels near each class colour.
        let near = |p: &Rgb<u8>, c: [u8; 3]| (0..3).all(|i| (p.0[i] as i32 - c[i] as i32).abs() < 70);
        let left0 = img.enumerate_pixels().filter(|(px, _, p)| *px < 60 && near(p, c0)).count();
        let right1 = img.enumerate_pixels().filter(|(px, _, p)| *px > 140 && near(p, c1)).count();
        let left1 = img.enumerate_pixels().filter(|(px, _, p)| *px < 60 && near(p, c1) && !near(p, c0)).count();
        assert!(left0 > 0 && right1 > 0, "{left0} {right1}");
        assert_eq!(left1, 0);
        // Deterministic.
        assert_eq!(img, scatter(&x, &y, &l, 200, 100, false));
        assert_ne!(img, scatter(&x, &y, &l, 200, 100, true), "numbers are drawn");
    }
}
