//! Drawing into an RGB image: blended discs, rectangles, bitmap text, PNG encoding.

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
        blend(img, (x0 + f * (x1 - x0)).round() as i64, (y0 + f * (y1 - y0)).round() as i64, c, 1.0);
    }
}

/// Width in pixels of `s` drawn at `scale`.
pub fn text_width(s: &str, scale: u32) -> i64 {
    s.chars().count() as i64 * 8 * scale as i64
}

/// Draw ASCII text with its top-left corner at (x, y), each font pixel `scale` pixels wide;
/// with `halo`, a one-pixel outline in that colour first, so it reads over any background.
pub fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, scale: u32, c: [u8; 3], halo: Option<[u8; 3]>) {
    let sc = scale as i64;
    let mut draw = |ox: i64, oy: i64, col: [u8; 3]| {
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for bit in 0..8 {
                    if bits >> bit & 1 == 1 {
                        let px = x + ox + (k as i64 * 8 + bit) * sc;
                        let py = y + oy + row as i64 * sc;
                        rect(img, px, py, sc, sc, col);
                    }
                }
            }
        }
    };
    if let Some(h) = halo {
        for (dx, dy) in [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)] {
            draw(dx, dy, h);
        }
    }
    draw(0, 0, c);
}

/// PNG bytes of an image (fixed encoder settings: the same pixels give the same bytes).
pub fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(&mut out, image::codecs::png::CompressionType::Fast, image::codecs::png::FilterType::Adaptive)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .expect("encoding a PNG into memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_discs_touch_the_expected_pixels() {
        let mut img = RgbImage::from_pixel(40, 20, image::Rgb([255, 255, 255]));
        text(&mut img, 0, 0, "I", 1, [0, 0, 0], None);
        let dark = img.pixels().filter(|p| p.0 == [0, 0, 0]).count();
        let lit = font8x8::legacy::BASIC_LEGACY[b'I' as usize].iter().map(|b| b.count_ones() as usize).sum::<usize>();
        assert_eq!(dark, lit);
        assert_eq!(text_width("abc", 2), 48);
        let mut img = RgbImage::from_pixel(20, 20, image::Rgb([0, 0, 0]));
        disc(&mut img, 10.0, 10.0, 3.0, [255, 0, 0], 1.0);
        let red = img.pixels().filter(|p| p.0 == [255, 0, 0]).count();
        assert!((24..=32).contains(&red), "a radius-3 disc covers about 28 pixels, got {red}");
        // Decodes back to the same pixels.
        let back = image::load_from_memory(&png(&img)).unwrap().to_rgb8();
        assert_eq!(back, img);
    }
}
