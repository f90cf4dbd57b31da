//! The report node: class members with their catalogue rows, and an HTML page kept in the
//! cache entry, verified and recomputed like the data.

use polars::prelude::*;

use crate::support::{featured, pca_leaves, Test};

const REPORT: &str = r#"
[nodes.report]
op = "report"
inputs = ["classes", "featured"]
members = 5
"#;

#[test]
fn report_lists_class_members_and_writes_html() {
    let t = Test::new();
    t.pipeline(&format!(
        "[pipeline]\nname = \"rep\"\n{}",
        featured(30_000, 16) + &pca_leaves(30) + REPORT
    ));
    let r = t.run(&["run", "p.toml"]).ok();
    let line = r
        .stderr()
        .lines()
        .find(|l| l.starts_with("report `report`: "))
        .map(str::to_owned)
        .expect("report path printed");
    let html_path = t.path(line.trim_start_matches("report `report`: "));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        html.contains("Classes found by <code>rep</code>"),
        "{}",
        &html[..500.min(html.len())]
    );
    assert!(
        html.contains("rare:"),
        "the planted classes show in the class table"
    );
    // The class table: what matters first, a profile, every column folded away, sortable
    // by an inline script (the report opens offline: no external script or style).
    let table = &html[html.find("<h2>Classes</h2>").unwrap()..];
    let header = &table[..table.find("</tr>").unwrap()];
    assert!(
        header.starts_with(
            "<h2>Classes</h2><table class=\"sort\"><tr><th>class</th><th>size</th><th>persistence</th><th>stability</th><th>mean probability</th><th>planted_class</th><th>profile"
        ),
        "{header}"
    );
    assert!(
        !header.contains("fraction"),
        "vote fractions are folded away: {header}"
    );
    assert!(
        html.contains("<details><summary>Class means of every column")
            && html.contains("<script>")
            && html.contains("table.sort th")
    );
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "no external assets"
    );
    // A planted barred class reads as barred in its profile.
    let barred = table
        .split("<tr>")
        .find(|row| row.contains("rare:clumpy-barred"))
        .expect("the barred class is found");
    assert!(barred.contains("bar_strong_fraction +"), "{barred}");
    // A page per class lists every member, with a viewer link at its position.
    let page0 =
        std::fs::read_to_string(html_path.parent().unwrap().join("classes/class_0.html")).unwrap();
    assert!(html.contains("href=\"classes/class_0.html\""));
    assert!(
        page0.matches("legacysurvey.org/viewer?ra=").count() > 0
            && page0.contains("../index.html#c0"),
        "{}",
        &page0[..400.min(page0.len())]
    );

    t.run(&["export", "p.toml", "report", "--out", "members.parquet"])
        .ok();
    let m = ParquetReader::new(std::fs::File::open(t.path("members.parquet")).unwrap())
        .finish()
        .unwrap();
    assert!(m.height() > 0);
    assert!(
        m.column("label")
            .unwrap()
            .i32()
            .unwrap()
            .into_no_null_iter()
            .all(|l| l >= 0),
        "members only"
    );
    assert!(m.schema().contains("planted_class") && !m.schema().contains("feat_0"));
    let k = m
        .column("label")
        .unwrap()
        .i32()
        .unwrap()
        .into_no_null_iter()
        .max()
        .unwrap()
        + 1;
    assert_eq!(html.matches("<h2 id=\"c").count(), k as usize);
    let size0 = m
        .column("label")
        .unwrap()
        .i32()
        .unwrap()
        .into_no_null_iter()
        .filter(|&l| l == 0)
        .count();
    assert_eq!(
        page0.matches("<tr><td class=\"t\">").count(),
        size0,
        "every member of class 0 on its page"
    );

    // A damaged report page is detected and rebuilt, identically.
    std::fs::write(&html_path, "tampered").unwrap();
    let again = t.run_json(&[]).ok();
    assert!(
        again.stderr().contains("node `report`: cache entry"),
        "{}",
        again.stderr()
    );
    assert_eq!(again.computed(), ["report"]);
    assert_eq!(std::fs::read_to_string(&html_path).unwrap(), html);
}

/// A catalogue of three tight blobs plus scattered galaxies, each with a PNG cutout (one
/// missing, one corrupt), for reports with galleries.
fn image_catalogue(t: &Test) {
    let mut rng = dagrun::numeric::rng::Rng::new(3, 0);
    let mut csv = String::from("id_str,x,y,smooth_fraction,file_loc\n");
    std::fs::create_dir_all(t.path("data/cutouts")).unwrap();
    for i in 0..400 {
        let (cx, cy, colour) = match i % 4 {
            0 => (0.0, 0.0, [200u8, 60, 60]),
            1 => (10.0, 0.0, [60, 200, 60]),
            2 => (0.0, 10.0, [60, 60, 200]),
            _ => (
                rng.range(-5.0, 15.0),
                rng.range(-5.0, 15.0),
                [128, 128, 128],
            ),
        };
        let s = if i % 4 == 3 { 0.0 } else { 0.3 };
        let (x, y) = (cx + s * rng.normal(), cy + s * rng.normal());
        let file = format!("cutouts/g{i}.png");
        csv.push_str(&format!("g{i},{x},{y},{:.3},{file}\n", rng.uniform()));
        match i {
            0 => {} // missing
            4 => std::fs::write(t.path(&format!("data/{file}")), b"not a png").unwrap(),
            _ => image::RgbImage::from_pixel(40, 30, image::Rgb(colour))
                .save(t.path(&format!("data/{file}")))
                .unwrap(),
        }
    }
    t.write("data/catalog.csv", &csv);
}

/// The image catalogue's classes: HDBSCAN on the positions, EOM selection.
const GALLERY_CLASSES: &str = r#"[pipeline]
name = "gal"
id = "id_str"
[nodes.catalog]
op = "read"
path = "data/catalog.csv"
[nodes.tree]
op = "cluster"
input = "catalog"
columns = ["x", "y"]
min_samples = 5
min_cluster_size = 20
[nodes.classes]
op = "select-eom"
input = "tree"
"#;

#[test]
fn report_draws_scatter_and_galleries_and_lists_unreadable_images() {
    let t = Test::new();
    image_catalogue(&t);
    t.pipeline(&format!(
        r#"{GALLERY_CLASSES}
[nodes.layout]
op = "reduce"
method = "pca"
input = "catalog"
columns = ["x", "y"]
n_components = 2
[nodes.report]
op = "report"
inputs = ["classes", "catalog", "layout"]
members = 200
thumb = 24
"#
    ));
    let r = t.run(&["run", "p.toml"]).ok();
    assert!(
        r.stderr().contains("2 gallery images could not be read"),
        "{}",
        r.stderr()
    );
    let line = r
        .stderr()
        .lines()
        .find(|l| l.starts_with("report `report`: "))
        .map(str::to_owned)
        .expect("report path printed");
    let html_path = t.path(line.trim_start_matches("report `report`: "));
    let dir = html_path.parent().unwrap();
    let html = std::fs::read_to_string(&html_path).unwrap();
    // Every image the page shows is there and decodes.
    let srcs: Vec<&str> = html
        .split("<img src=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(
        srcs.len(),
        5,
        "a scatter, the class figure and three galleries: {srcs:?}"
    );
    for s in &srcs {
        let img = image::open(dir.join(s)).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(img.width() > 20 && img.height() > 20);
    }
    // The class figure: a row per class, drawn at 2x (tiles of 2 x 24 px, 6 px apart), and
    // the layout plot at twice the size the page shows it.
    let fig = image::open(dir.join("classes.png")).unwrap();
    assert_eq!(fig.height(), 3 * (48 + 6) + 6, "three rows");
    assert!(fig.width() > 8 * (48 + 6), "eight members a row");
    let scatter = image::open(dir.join("scatter.png")).unwrap();
    assert!(
        html.contains(&format!(
            "<img src=\"scatter.png\" alt=\"layout coloured by class\" width=\"{}\"",
            scatter.width() / 2
        )),
        "shown at half its pixels"
    );
    // The blobs are three classes; each gallery shows its members' cutouts in their colour.
    assert_eq!(html.matches("<h2 id=\"c").count(), 3);
    let mut seen = std::collections::BTreeSet::new();
    for s in srcs.iter().filter(|s| s.starts_with("gallery/")) {
        let img = image::open(dir.join(s)).unwrap().to_rgb8();
        let c = *img.get_pixel(3 + 12, 3 + 12);
        seen.insert(c.0);
    }
    assert!(
        seen.len() >= 2,
        "galleries show the classes' own cutouts: {seen:?}"
    );
    // Both bad images are listed by id and path, with the reason.
    assert!(
        html.contains("Images that could not be read (2)"),
        "failures listed"
    );
    assert!(html.contains("cutouts/g0.png") && html.contains("cutouts/g4.png"));
    assert!(html.contains("cannot open") && html.contains("cannot decode"));

    // The same inputs give the same bytes in a fresh cache.
    let again = t
        .command(&["run", "p.toml"])
        .env("DAGRUN_CACHE", t.path("cache2"))
        .output()
        .unwrap();
    assert!(again.status.success());
    let other = t.path("cache2").join(dir.strip_prefix(t.cache()).unwrap());
    for s in srcs.iter().chain(["index.html"].iter()) {
        assert_eq!(
            std::fs::read(dir.join(s)).unwrap(),
            std::fs::read(other.join(s)).unwrap(),
            "{s} differs"
        );
    }
}

#[test]
fn gallery_images_enter_the_report_key_by_content() {
    let t = Test::new();
    image_catalogue(&t);
    let pipeline = |image_dir: &str| {
        format!(
            r#"{GALLERY_CLASSES}
[nodes.report]
op = "report"
inputs = ["classes", "catalog"]
members = 3
thumb = 16
{image_dir}
"#
        )
    };
    t.pipeline(&pipeline(""));
    let r = t.run(&["run", "p.toml"]).ok();
    let line = r
        .stderr()
        .lines()
        .find(|l| l.starts_with("report `report`: "))
        .map(str::to_owned)
        .expect("report path printed");
    let html =
        std::fs::read_to_string(t.path(line.trim_start_matches("report `report`: "))).unwrap();
    // The galleries' ids, from the page.
    let shown: Vec<String> = html
        .split("; ids: ")
        .skip(1)
        .flat_map(|s| {
            s[..s.find('<').unwrap()]
                .split(", ")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        shown.len(),
        9,
        "three classes, three members each: {shown:?}"
    );
    let unshown = (5..400)
        .map(|i| format!("g{i}"))
        .find(|g| !shown.contains(g))
        .unwrap();
    let remake = |id: &str, colour: [u8; 3]| {
        image::RgbImage::from_pixel(40, 30, image::Rgb(colour))
            .save(t.path(&format!("data/cutouts/{id}.png")))
            .unwrap()
    };

    // A cutout no gallery shows: nothing to redraw.
    remake(&unshown, [1, 2, 3]);
    assert!(t.run_json(&[]).ok().computed().is_empty());
    // A shown cutout re-made in place: the report is redrawn.
    remake(&shown[4], [250, 250, 0]);
    assert_eq!(t.run_json(&[]).ok().computed(), ["report"]);
    // The same bytes elsewhere, `image_dir` pointed there: reused.
    let copy = t.path("moved/cutouts");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(t.path("data/cutouts")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    t.pipeline(&pipeline("image_dir = \"moved\""));
    assert!(t.run_json(&[]).ok().computed().is_empty());
}

#[test]
fn report_layout_must_be_two_dimensional() {
    let t = Test::new();
    t.pipeline(&format!("[pipeline]\nname = \"rep\"\n{}{}[nodes.report]\nop = \"report\"\ninputs = [\"classes\", \"featured\", \"pca\"]\n", featured(2000, 8), pca_leaves(10)));
    let r = t.run(&["run", "p.toml"]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains("node `report`") && r.stderr().contains("n_components = 2"),
        "{}",
        r.stderr()
    );
}
