//! Pictures for people: PNG scatter plots and cutout galleries drawn into RGB buffers, and
//! the HTML around them. Pure: data in, bytes out; the same input gives the same bytes (no
//! clock, no system fonts: text is set in an embedded TrueType face).

pub mod canvas;
pub mod gallery;
pub mod html;
pub mod report;
pub mod scatter;
pub mod similar;
pub mod sweep;

pub use html::esc;

/// The colour of class `label` (−1, noise, is grey): hues spread by the golden angle, two
/// lightness levels, so neighbouring labels differ.
pub fn class_colour(label: i32) -> [u8; 3] {
    if label < 0 {
        return [190, 190, 190];
    }
    let h = (label as f64 * 0.618_033_988_75).fract();
    let l = if label % 2 == 0 { 0.45 } else { 0.33 };
    hsl(h, 0.8, l)
}

/// HSL (all in 0..1) to 8-bit RGB.
fn hsl(h: f64, s: f64, l: f64) -> [u8; 3] {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h * 6.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let q = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [q(r), q(g), q(b)]
}

/// `#rrggbb` of a colour.
pub fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_differ_and_noise_is_grey() {
        assert_eq!(class_colour(-1), [190, 190, 190]);
        for a in 0..40 {
            for b in a + 1..(a + 4).min(40) {
                let (x, y) = (class_colour(a), class_colour(b));
                let d: i32 = (0..3).map(|i| (x[i] as i32 - y[i] as i32).abs()).sum();
                assert!(d > 40, "classes {a} and {b} look alike: {x:?} {y:?}");
            }
        }
        assert_eq!(hex([255, 0, 16]), "#ff0010");
    }
}
