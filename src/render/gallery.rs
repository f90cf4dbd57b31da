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
    Ok(if side == size { sq } else { imageops::resize(&sq, size, size, imageops::FilterType::Triangle) })
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
            Err(_) => {
                canvas::rect(&mut img, x as i64, y as i64, size as i64, size as i64, [90, 90, 90]);
                for d in 0..size as i64 {
                    for o in -1..=1 {
                        canvas::blend(&mut img, x as i64 + d + o, y as i64 + d, [220, 40, 40], 1.0);
                        canvas::blend(&mut img, x as i64 + size as i64 - 1 - d + o, y as i64 + d, [220, 40, 40], 1.0);
                    }
                }
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
        let img = RgbImage::from_fn(60, 40, |x, _| if (10..50).contains(&x) { Rgb([0, 200, 0]) } else { Rgb([255, 0, 0]) });
        let p = dir.path().join("a.png");
        img.save(&p).unwrap();
        let t = thumbnail(&p, 8).unwrap();
        assert_eq!(t.dimensions(), (8, 8));
        assert!(t.pixels().all(|q| q.0 == [0, 200, 0]), "{:?}", t.pixels().next());
        let missing = thumbnail(&dir.path().join("nope.jpg"), 8).unwrap_err();
        assert!(missing.contains("cannot open"), "{missing}");
        std::fs::write(dir.path().join("bad.jpg"), b"not a jpeg").unwrap();
        assert!(thumbnail(&dir.path().join("bad.jpg"), 8).is_err());
        let m = montage(&[Ok(t.clone()), Err(missing), Ok(t)], 8, 2, 1);
        assert_eq!(m.dimensions(), (2 * 8 + 3, 2 * 8 + 3));
        assert_eq!(m.get_pixel(1, 1).0, [0, 200, 0]);
        assert_eq!(m.get_pixel(10, 5).0, [90, 90, 90], "a missing image is a grey tile");
        assert_eq!(m.get_pixel(10 + 3, 1 + 3).0, [220, 40, 40], "with a red cross");
        assert_eq!(m.get_pixel(1, 10).0, [0, 200, 0]);
    }
}
