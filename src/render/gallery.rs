//! Cutout galleries: thumbnails of class members tiled into one image per class.

use std::path::Path;

use image::{imageops, DynamicImage, Rgb, RgbImage};

use super::canvas;

/// Decode the image at `path` (JPEG or PNG, told by its content); the error says which
/// step failed.
pub fn open(path: &Path) -> Result<DynamicImage, String> {
    image::ImageReader::open(path)
        .map_err(|e| format!("cannot open: {e}"))?
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?
        .decode()
        .map_err(|e| format!("cannot decode: {e}"))
}

/// The central square of `img`, its side `fraction` of the shorter side, resized (triangle
/// filter, i.e. bilinear with antialiasing) to `size` pixels; not resampled when it already
/// has that size.
pub fn centre_square(img: &RgbImage, fraction: f64, size: u32) -> Result<RgbImage, String> {
    let short = img.width().min(img.height());
    if short == 0 {
        return Err("empty image".into());
    }
    let side = ((short as f64) * fraction).round().clamp(1.0, short as f64) as u32;
    let (x0, y0) = ((img.width() - side) / 2, (img.height() - side) / 2);
    let sq = imageops::crop_imm(img, x0, y0, side, side).to_image();
    Ok(if side == size {
        sq
    } else {
        imageops::resize(&sq, size, size, imageops::FilterType::Triangle)
    })
}

/// A square thumbnail of the image at `path`: its central square resized to `size` pixels.
pub fn thumbnail(path: &Path, size: u32) -> Result<RgbImage, String> {
    centre_square(&open(path)?.to_rgb8(), 1.0, size)
}

/// Tiles in rows of `cols`, `gap` pixels apart on a white background; a tile that could not
/// be made is drawn as a grey square with a red cross.
pub fn montage(tiles: &[Result<RgbImage, String>], size: u32, cols: usize, gap: u32) -> RgbImage {
    let cols = cols.max(1).min(tiles.len().max(1));
    let rows = tiles.len().div_ceil(cols).max(1);
    let w = cols as u32 * size + (cols as u32 + 1) * gap;
    let h = rows as u32 * size + (rows as u32 + 1) * gap;
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for (i, t) in tiles.iter().enumerate() {
        let x = gap + (i % cols) as u32 * (size + gap);
        let y = gap + (i / cols) as u32 * (size + gap);
        match t {
            Ok(t) => imageops::replace(&mut img, t, x as i64, y as i64),
            Err(_) => missing(&mut img, x as i64, y as i64, size as i64),
        }
    }
    img
}

/// A tile that could not be made: a grey square with a red cross.
fn missing(img: &mut RgbImage, x: i64, y: i64, size: i64) {
    canvas::rect(img, x, y, size, size, [90, 90, 90]);
    for d in 0..size {
        for o in -1..=1 {
            canvas::blend(img, x + d + o, y + d, [220, 40, 40], 1.0);
            canvas::blend(img, x + size - 1 - d + o, y + d, [220, 40, 40], 1.0);
        }
    }
}

/// One row of a class figure: a title and a few lines of text beside the class's tiles.
pub struct FigureRow {
    pub title: String,
    pub lines: Vec<String>,
    pub colour: [u8; 3],
    pub tiles: Vec<Result<RgbImage, String>>,
}

/// A figure like the paper's Fig. 1: a row per class, a letter (A, B, …) and the row's text
/// on the left, then its tiles, at `scale` image pixels per display pixel: tiles should be
/// `size · scale` pixels (others are resized to that).
pub fn figure(rows: &[FigureRow], size: u32, scale: u32) -> RgbImage {
    let k = scale.max(1) as i64;
    let (big, small) = (22.0 * k as f32, 12.0 * k as f32);
    let letter = |i: usize| {
        if i < 26 {
            ((b'A' + i as u8) as char).to_string()
        } else {
            format!("{}", i + 1)
        }
    };
    let text_w = rows
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            let head =
                canvas::text_width(&letter(i), big) + 8 * k + canvas::text_width(&r.title, small);
            std::iter::once(head).chain(r.lines.iter().map(|l| canvas::text_width(l, small)))
        })
        .max()
        .unwrap_or(0);
    let (gap, tile) = (3 * k, size as i64 * k);
    let left = 6 * k + text_w + 12 * k;
    let cols = rows.iter().map(|r| r.tiles.len()).max().unwrap_or(0) as i64;
    let (w, h) = (
        left + cols * (tile + gap) + gap,
        rows.len() as i64 * (tile + gap) + gap,
    );
    let mut img = RgbImage::from_pixel(w.max(1) as u32, h.max(1) as u32, Rgb([255, 255, 255]));
    for (i, r) in rows.iter().enumerate() {
        let y = gap + i as i64 * (tile + gap);
        canvas::rect(&mut img, 0, y, 3 * k, tile, r.colour);
        canvas::text(&mut img, 6 * k, y, &letter(i), big, [0, 0, 0], None);
        let lh = canvas::line_height(small);
        let tx = 6 * k + canvas::text_width(&letter(i), big) + 8 * k;
        canvas::text(
            &mut img,
            tx,
            y + canvas::line_height(big) - lh,
            &r.title,
            small,
            [30, 30, 30],
            None,
        );
        for (j, line) in r.lines.iter().enumerate() {
            canvas::text(
                &mut img,
                6 * k,
                y + canvas::line_height(big) + 2 * k + j as i64 * lh,
                line,
                small,
                [80, 80, 80],
                None,
            );
        }
        for (j, t) in r.tiles.iter().enumerate() {
            let x = left + j as i64 * (tile + gap);
            match t {
                Ok(t) if t.width() as i64 == tile && t.height() as i64 == tile => {
                    imageops::replace(&mut img, t, x, y)
                }
                Ok(t) => imageops::replace(
                    &mut img,
                    &imageops::resize(t, tile as u32, tile as u32, imageops::FilterType::Triangle),
                    x,
                    y,
                ),
                Err(_) => missing(&mut img, x, y, tile),
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_crop_the_centre_and_montage_places_tiles() {
        let dir = tempfile::tempdir().unwrap();
        // 60 x 40: red left and right bands of 10 px (cropped away), green centre.
        let img = RgbImage::from_fn(60, 40, |x, _| {
            if (10..50).contains(&x) {
                Rgb([0, 200, 0])
            } else {
                Rgb([255, 0, 0])
            }
        });
        let p = dir.path().join("a.png");
        img.save(&p).unwrap();
        let t = thumbnail(&p, 8).unwrap();
        assert_eq!(t.dimensions(), (8, 8));
        assert!(
            t.pixels().all(|q| q.0 == [0, 200, 0]),
            "{:?}",
            t.pixels().next()
        );
        let missing = thumbnail(&dir.path().join("nope.jpg"), 8).unwrap_err();
        assert!(missing.contains("cannot open"), "{missing}");
        std::fs::write(dir.path().join("bad.jpg"), b"not a jpeg").unwrap();
        assert!(thumbnail(&dir.path().join("bad.jpg"), 8).is_err());
        let m = montage(&[Ok(t.clone()), Err(missing), Ok(t)], 8, 2, 1);
        assert_eq!(m.dimensions(), (2 * 8 + 3, 2 * 8 + 3));
        assert_eq!(m.get_pixel(1, 1).0, [0, 200, 0]);
        assert_eq!(
            m.get_pixel(10, 5).0,
            [90, 90, 90],
            "a missing image is a grey tile"
        );
        assert_eq!(
            m.get_pixel(10 + 3, 1 + 3).0,
            [220, 40, 40],
            "with a red cross"
        );
        assert_eq!(m.get_pixel(1, 10).0, [0, 200, 0]);
    }
}
