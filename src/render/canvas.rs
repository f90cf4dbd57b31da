//! Drawing into an RGB image: blended discs, rectangles, antialiased text in an embedded
//! TrueType face, PNG encoding.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use image::{ImageEncoder, RgbImage};

/// Blend `c` over the pixel at (x, y) with opacity `a` (0..1); outside the image does nothing.
pub fn blend(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3], a: f32) {
    if x < 0 || y < 0 || x >= img.width() as i64 || y >= img.height() as i64 {
        return;
    }
    let p = img.get_pixel_mut(x as u32, y as u32);
    for (v, &w) in p.0.iter_mut().zip(&c) {
        *v = (*v as f32 * (1.0 - a) + w as f32 * a).round() as u8;
    }
}

/// A filled disc of radius `r` pixels centred at (cx, cy).
pub fn disc(img: &mut RgbImage, cx: f32, cy: f32, r: f32, c: [u8; 3], a: f32) {
    let (x0, x1) = ((cx - r).floor() as i64, (cx + r).ceil() as i64);
    let (y0, y1) = ((cy - r).floor() as i64, (cy + r).ceil() as i64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if dx * dx + dy * dy <= r * r {
                blend(img, x, y, c, a);
            }
        }
    }
}

/// A filled rectangle.
pub fn rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
    for yy in y..y + h {
        for xx in x..x + w {
            blend(img, xx, yy, c, 1.0);
        }
    }
}

/// The outline of a rectangle, one pixel wide.
pub fn frame(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
    rect(img, x, y, w, 1, c);
    rect(img, x, y + h - 1, w, 1, c);
    rect(img, x, y, 1, h, c);
    rect(img, x + w - 1, y, 1, h, c);
}

/// A one-pixel line from (x0, y0) to (x1, y1).
pub fn line(img: &mut RgbImage, x0: f32, y0: f32, x1: f32, y1: f32, c: [u8; 3]) {
    let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
    for t in 0..=steps {
        let f = t as f32 / steps as f32;
        blend(
            img,
            (x0 + f * (x1 - x0)).round() as i64,
            (y0 + f * (y1 - y0)).round() as i64,
            c,
            1.0,
        );
    }
}

/// The typeface every picture uses: Hack (a DejaVu-derived sans mono, SIL OFL), embedded
/// in the binary through the `epaint_default_fonts` crate; no system fonts.
fn face() -> &'static FontRef<'static> {
    static FACE: OnceLock<FontRef<'static>> = OnceLock::new();
    FACE.get_or_init(|| {
        FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR)
            .expect("the embedded font parses")
    })
}

/// The glyphs of `s` set at `px` pixels, each with the kerning before it and its advance.
fn set(s: &str, px: f32) -> Vec<(ab_glyph::GlyphId, f32, f32)> {
    let f = face().as_scaled(PxScale::from(px));
    let mut prev = None;
    s.chars()
        .map(|ch| {
            let id = f.glyph_id(ch);
            let kern = prev.map_or(0.0, |p| f.kern(p, id));
            prev = Some(id);
            (id, kern, f.h_advance(id))
        })
        .collect()
}

/// Width in pixels of `s` set at `px` pixels (the font's em size).
pub fn text_width(s: &str, px: f32) -> i64 {
    let mut w = 0.0;
    for (_, kern, advance) in set(s, px) {
        w += kern;
        w += advance;
    }
    w.ceil() as i64
}

/// Height in pixels of a line set at `px` (ascent to descent).
pub fn line_height(px: f32) -> i64 {
    let f = face().as_scaled(PxScale::from(px));
    (f.ascent() - f.descent()).ceil() as i64
}

/// Draw `s` at `px` pixels with its line box's top-left corner at (x, y), antialiased;
/// with `halo`, an outline in that colour first, so it reads over any background.
pub fn text(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    s: &str,
    px: f32,
    c: [u8; 3],
    halo: Option<[u8; 3]>,
) {
    let base = y as f32 + face().as_scaled(PxScale::from(px)).ascent();
    let glyphs = set(s, px);
    let mut draw = |dx: f32, dy: f32, col: [u8; 3]| {
        let mut caret = x as f32 + dx;
        for &(id, kern, advance) in &glyphs {
            caret += kern;
            let g = id.with_scale_and_position(PxScale::from(px), point(caret, base + dy));
            if let Some(o) = face().outline_glyph(g) {
                let b = o.px_bounds();
                o.draw(|gx, gy, cov| {
                    blend(
                        img,
                        b.min.x as i64 + gx as i64,
                        b.min.y as i64 + gy as i64,
                        col,
                        cov.min(1.0),
                    )
                });
            }
            caret += advance;
        }
    };
    if let Some(h) = halo {
        let r = (px / 12.0).max(1.0);
        for (dx, dy) in [
            (-1.0, 0.0),
            (1.0, 0.0),
            (0.0, -1.0),
            (0.0, 1.0),
            (-0.7, -0.7),
            (0.7, 0.7),
            (-0.7, 0.7),
            (0.7, -0.7),
        ] {
            draw(dx * r, dy * r, h);
        }
    }
    draw(0.0, 0.0, c);
}

/// PNG bytes of an image (fixed encoder settings: the same pixels give the same bytes).
pub fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .expect("encoding a PNG into memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_discs_touch_the_expected_pixels() {
        // Text lands inside its line box, ink grows with the size, and is the same twice.
        let ink = |px: f32| {
            let mut img = RgbImage::from_pixel(200, 60, image::Rgb([255, 255, 255]));
            text(&mut img, 10, 5, "Class 12", px, [0, 0, 0], None);
            let (w, h) = (text_width("Class 12", px), line_height(px));
            for (x, y, p) in img.enumerate_pixels() {
                if p.0 != [255, 255, 255] {
                    assert!(
                        (10..=10 + w).contains(&(x as i64)) && (5..=5 + h).contains(&(y as i64)),
                        "ink at ({x}, {y}) outside the box"
                    );
                }
            }
            (img.pixels().filter(|p| p.0[0] < 128).count(), img)
        };
        let (small, a) = ink(12.0);
        let (big, _) = ink(24.0);
        assert!(small > 20 && big > 3 * small, "{small} {big}");
        assert!(a == ink(12.0).1);
        // Hack is monospaced: width grows with the number of characters.
        assert_eq!(text_width("abcd", 20.0), text_width("wxyz", 20.0));
        assert!(text_width("abcdefgh", 20.0) > text_width("abcd", 20.0));
        let mut img = RgbImage::from_pixel(20, 20, image::Rgb([0, 0, 0]));
        disc(&mut img, 10.0, 10.0, 3.0, [255, 0, 0], 1.0);
        let red = img.pixels().filter(|p| p.0 == [255, 0, 0]).count();
        assert!(
            (24..=32).contains(&red),
            "a radius-3 disc covers about 28 pixels, got {red}"
        );
        // Decodes back to the same pixels.
        let back = image::load_from_memory(&png(&img)).unwrap().to_rgb8();
        assert_eq!(back, img);
    }
}
