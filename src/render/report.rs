//! The pages and pictures of a `report` node, from what it gathered ([`ReportData`]): the
//! report's `index.html` (its layout plot, class table, class figure and a section per
//! class), a page per class with every member, and the layout, gallery and figure PNGs, as
//! strings and bytes. The op reads the tables and the images and writes the files.

use std::fmt::Write;

use image::RgbImage;

use super::{canvas, class_colour, esc, gallery, hex, html, scatter};

/// Members per class in the class figure (`classes.png`).
pub const FIGURE_TILES: usize = 8;

/// Sorts a `table.sort` by the column whose heading is clicked (numbers as numbers, a
/// second click reverses); inline, so the report opens offline.
const SORT_SCRIPT: &str = "<script>document.querySelectorAll('table.sort th').forEach(function(th){th.style.cursor='pointer';th.title='sort';\
th.onclick=function(){var tb=th.closest('table'),i=Array.prototype.indexOf.call(th.parentNode.children,th),rows=Array.prototype.slice.call(tb.rows,1),\
d=th.dataset.d==='1'?-1:1;th.dataset.d=d===1?'1':'0';var v=function(r){var t=r.cells[i].textContent,n=parseFloat(t.replace(/[^0-9eE+.-]/g,''));return isNaN(n)?t:n};\
rows.sort(function(a,b){var x=v(a),y=v(b);return (x<y?-1:x>y?1:0)*d});rows.forEach(function(r){tb.appendChild(r)})}})</script>";

/// What a report shows, gathered from its tables. Members are ordered by class; `ids`,
/// `probability` and each column's values hold one entry per member.
pub struct ReportData {
    pub pipeline: String,
    pub node: String,
    /// The id column's name.
    pub id_column: String,
    /// Galaxies in the classes input.
    pub galaxies: usize,
    /// Galaxies in a class.
    pub members: usize,
    /// The layout plot (`scatter.png`), where the report has a layout.
    pub layout: Option<Layout>,
    pub ids: Vec<String>,
    pub probability: Vec<Option<f64>>,
    /// Every shown catalogue column.
    pub columns: Vec<Column>,
    /// Where `ra` and `dec` are in `columns`, when both are there and numeric.
    pub sky: Option<(usize, usize)>,
    /// Whether the class table has a profile column (some numeric column varies).
    pub profiled: bool,
    /// Whether each class shows a gallery (`gallery/class_N.png`) rather than members' rows.
    pub images: bool,
    /// The seed the members were drawn with.
    pub seed: u64,
    pub classes: Vec<ClassCard>,
}

/// The layout plot as the page describes it: its axes, how many galaxies it shows, and its
/// width on the page.
pub struct Layout {
    pub axes: [String; 2],
    pub galaxies: usize,
    pub width: u32,
}

/// The layout's points, each with its class (−1: none), and the names of its two columns.
pub struct LayoutPoints {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub label: Vec<i32>,
    pub axes: [String; 2],
}

/// A catalogue column's values for each member; `in_table`: not the image column.
pub struct Column {
    pub name: String,
    pub in_table: bool,
    pub values: Values,
}

/// A column's values: numbers (non-finite ones as `None`) or text.
pub enum Values {
    Number(Vec<Option<f64>>),
    Text(Vec<String>),
}

/// One class: its members and what the class table and its section show of it.
pub struct ClassCard {
    pub label: usize,
    /// Its members (indices into the members).
    pub rows: Vec<usize>,
    /// Its members drawn for the gallery, in member order.
    pub pick: Vec<usize>,
    /// From the classes node.
    pub persistence: Option<f64>,
    pub stability: Option<f64>,
    pub mean_probability: Option<f64>,
    /// For each text column in the table: its most common value and that value's share (%).
    pub commonest: Vec<(String, f64)>,
    /// For each numeric column in the table: the class mean.
    pub means: Vec<Option<f64>>,
    /// Each varying numeric column (but `ra`, `dec`): the class mean minus all galaxies', in
    /// their standard deviations, largest first.
    pub profile: Vec<(f64, String)>,
}

/// A gallery image that could not be read.
pub struct Unreadable {
    pub id: String,
    pub path: String,
    pub error: String,
}

/// What drawing the galleries leaves for the page: the class figure's width on the page
/// (where there is one) and the images that could not be read.
#[derive(Default)]
pub struct Galleries {
    pub figure_width: Option<u32>,
    pub unreadable: Vec<Unreadable>,
}

/// The class figure's PNG bytes and its width on the page (it is drawn at 2×).
pub struct Figure {
    pub png: Vec<u8>,
    pub width: u32,
}

impl ReportData {
    /// Positions in `columns` of the table's text columns.
    pub fn texts(&self) -> Vec<usize> {
        self.table_columns(false)
    }

    /// Positions in `columns` of the table's numeric columns.
    pub fn nums(&self) -> Vec<usize> {
        self.table_columns(true)
    }

    fn table_columns(&self, numeric: bool) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&j| self.columns[j].in_table && self.columns[j].is_numeric() == numeric)
            .collect()
    }
}

impl Column {
    pub fn is_numeric(&self) -> bool {
        matches!(self.values, Values::Number(_))
    }

    /// Member `i`'s value as a number (`None` for text).
    pub fn number(&self, i: usize) -> Option<f64> {
        match &self.values {
            Values::Number(v) => v[i],
            Values::Text(_) => None,
        }
    }

    /// Member `i`'s value as a table cell.
    fn cell(&self, i: usize) -> String {
        match &self.values {
            Values::Number(v) => format!("<td>{}</td>", fmt(v[i])),
            Values::Text(t) => format!("<td class=\"t\">{}</td>", esc(&t[i])),
        }
    }
}

/// The layout plot, drawn at 2× `size` with class numbers, as PNG bytes.
pub fn scatter_png(p: &LayoutPoints, size: (u32, u32)) -> Vec<u8> {
    let [x, y] = &p.axes;
    let img = scatter::scatter(&p.x, &p.y, &p.label, size, 2, true, (x, y)).img;
    canvas::png(&img)
}

/// A class's gallery: its tiles of `thumb` pixels in rows of 12, as PNG bytes.
pub fn gallery_png(tiles: &[Result<RgbImage, String>], thumb: u32) -> Vec<u8> {
    canvas::png(&gallery::montage(tiles, thumb, 12, 3))
}

/// A class's row of the class figure: its name, size and persistence beside `tiles`.
pub fn figure_row(card: &ClassCard, tiles: Vec<Result<RgbImage, String>>) -> gallery::FigureRow {
    let l = card.label;
    gallery::FigureRow {
        title: format!("class {l}"),
        lines: vec![
            format!("{} galaxies", card.rows.len()),
            card.persistence
                .map_or(String::new(), |p| format!("persistence {p:.3}")),
        ],
        colour: class_colour(l as i32),
        tiles,
    }
}

/// The class figure: a row per class, tiles of `thumb` pixels drawn at 2×.
pub fn figure_png(rows: &[gallery::FigureRow], thumb: u32) -> Figure {
    let img = gallery::figure(rows, thumb, 2);
    Figure {
        png: canvas::png(&img),
        width: img.width() / 2,
    }
}

/// The report's page (`index.html`): the layout, the class table, every column's class
/// means, the class figure, a section per class and the images that could not be read.
pub fn page(d: &ReportData, g: &Galleries) -> String {
    let mut h = head(d);
    h.push_str(&class_table(d));
    h.push_str(&class_means(d));
    h.push_str(SORT_SCRIPT);
    if let Some(width) = g.figure_width {
        h.push_str(&figure(width));
    }
    for card in &d.classes {
        h.push_str(&class_section(d, card));
    }
    h.push_str(&unreadable(d, &g.unreadable));
    let _ = writeln!(
        h,
        "<p class=\"note\">dagrun {}</p></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// The page's head, its title and summary line, and the layout plot.
fn head(d: &ReportData) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>dagrun report: {0}</title><style>{1}</style></head><body>\
         <h1>Classes found by <code>{0}</code></h1><p>{k} classes; {2} of {n_all} galaxies ({3:.2}%) are in a class. \
         Node <code>{4}</code>.</p>",
        esc(&d.pipeline),
        html::STYLE,
        d.members,
        100.0 * d.members as f64 / d.galaxies.max(1) as f64,
        esc(&d.node),
        k = d.classes.len(),
        n_all = d.galaxies,
    );
    if let Some(layout) = &d.layout {
        let [cx, cy] = &layout.axes;
        let note = format!("{cx} against {cy}, {} galaxies: all of them as a density in grey, classes in colour; the central 98% on each axis at one scale, galaxies far beyond it in compressed bands past the dashed lines, the furthest 0.05% as ticks on the edge", layout.galaxies);
        let _ = write!(
            h,
            "<h2>Layout</h2><img src=\"scatter.png\" alt=\"layout coloured by class\" width=\"{}\"><p class=\"note\">{}. Numbers mark each class's median position.</p>",
            layout.width,
            esc(&note)
        );
    }
    h
}

/// The class table: what matters first (size, persistence, stability, probability, the
/// catalogue's text columns such as a truth, and a profile: the columns whose class mean
/// lies furthest from all galaxies'). It sorts by a click on a heading.
fn class_table(d: &ReportData) -> String {
    let texts = d.texts();
    let mut h = String::from("<h2>Classes</h2><table class=\"sort\"><tr><th>class</th><th>size</th><th>persistence</th><th>stability</th><th>mean probability</th>");
    for &j in &texts {
        let _ = write!(h, "<th>{}</th>", esc(&d.columns[j].name));
    }
    if d.profiled {
        h.push_str("<th>profile (class mean − all galaxies', in their standard deviations)</th>");
    }
    h.push_str("</tr>");
    for card in &d.classes {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            swatch(card.label),
            card.rows.len(),
            fmt(card.persistence),
            fmt(card.stability),
            fmt(card.mean_probability)
        );
        for (top, share) in &card.commonest {
            let _ = write!(h, "<td class=\"t\">{} ({:.0}%)</td>", esc(top), share);
        }
        if d.profiled {
            let shown: Vec<String> = card
                .profile
                .iter()
                .take(3)
                .map(|(v, c)| format!("{} {:+.1}", esc(c), v))
                .collect();
            let _ = write!(h, "<td class=\"t\">{}</td>", shown.join("<br>"));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h
}

/// Every numeric column's class means, folded below the class table; empty without
/// numeric columns.
fn class_means(d: &ReportData) -> String {
    let nums = d.nums();
    let mut h = String::new();
    if nums.is_empty() {
        return h;
    }
    let _ = write!(h, "<details><summary>Class means of every column ({})</summary><table class=\"sort\"><tr><th>class</th>", nums.len());
    for &j in &nums {
        let _ = write!(h, "<th>{}</th>", esc(&d.columns[j].name));
    }
    h.push_str("</tr>");
    for card in &d.classes {
        let _ = write!(h, "<tr><td>{}</td>", swatch(card.label));
        for &m in &card.means {
            let _ = write!(h, "<td>{}</td>", fmt(m));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></details>");
    h
}

/// The class figure (`classes.png`), shown `width` pixels wide.
fn figure(width: u32) -> String {
    format!(
        "<h2>Class figure</h2><img src=\"classes.png\" alt=\"a row of members per class\" width=\"{width}\"><p class=\"note\">A row per class: its size, persistence and {FIGURE_TILES} members chosen at random (the first of each class's gallery below); for a paper or a talk.</p>",
    )
}

/// A class's section: its heading, then its gallery when there are images, otherwise its
/// profile and the catalogue rows of its drawn members.
fn class_section(d: &ReportData, card: &ClassCard) -> String {
    let l = card.label;
    let mut h = format!(
        "<h2 id=\"c{l}\"><span class=\"sw\" style=\"background:{}\"></span>Class {l} — {} galaxies <a class=\"note\" href=\"classes/class_{l}.html\">every member</a></h2>",
        hex(class_colour(l as i32)),
        card.rows.len()
    );
    let pick = &card.pick;
    if d.images {
        let _ = write!(
            h,
            "<img src=\"gallery/class_{l}.png\" alt=\"class {l}: {} random members\"><p class=\"note\">{} of {} members, chosen at random (seed {}); ids: {}</p>",
            pick.len(),
            pick.len(),
            card.rows.len(),
            d.seed,
            pick.iter().map(|&i| esc(&d.ids[i])).collect::<Vec<_>>().join(", ")
        );
        return h;
    }
    if !card.profile.is_empty() {
        let top: Vec<(String, f64)> = card
            .profile
            .iter()
            .take(8)
            .map(|(v, c)| (c.to_string(), *v))
            .collect();
        h.push_str(&html::profile(&top));
    }
    let _ = write!(h, "<details><summary>{} of its members, chosen at random</summary><table><tr><th>{}</th><th>probability</th>", pick.len(), esc(&d.id_column));
    for c in &d.columns {
        let _ = write!(h, "<th>{}</th>", esc(&c.name));
    }
    h.push_str("</tr>");
    for &i in pick {
        let _ = write!(
            h,
            "<tr><td class=\"t\">{}</td><td>{}</td>",
            esc(&d.ids[i]),
            fmt(d.probability[i])
        );
        for c in &d.columns {
            h.push_str(&c.cell(i));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></details>");
    h
}

/// The gallery images that could not be read, by id, path and error; empty when all were.
fn unreadable(d: &ReportData, failures: &[Unreadable]) -> String {
    let mut h = String::new();
    if failures.is_empty() {
        return h;
    }
    let _ = write!(h, "<h2>Images that could not be read ({})</h2><table><tr><th>{}</th><th>path</th><th>error</th></tr>", failures.len(), esc(&d.id_column));
    for f in failures {
        let _ = write!(
            h,
            "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>",
            esc(&f.id),
            esc(&f.path),
            esc(&f.error)
        );
    }
    h.push_str("</table>");
    h
}

/// A class's own page (`classes/class_N.html`): every member's id, probability, position
/// (a Legacy Surveys viewer link where `ra`/`dec` exist) and text columns.
pub fn class_page(d: &ReportData, card: &ClassCard) -> String {
    let l = card.label;
    let texts = d.texts();
    let mut p = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Class {l}</title><style>{}</style></head><body><p><a href=\"../index.html#c{l}\">report</a></p>\
         <h1><span class=\"sw\" style=\"background:{}\"></span>Class {l}: all {} members</h1><table class=\"sort\"><tr><th>{}</th><th>probability</th>",
        html::STYLE,
        hex(class_colour(l as i32)),
        card.rows.len(),
        esc(&d.id_column)
    );
    if d.sky.is_some() {
        p.push_str("<th>ra</th><th>dec</th><th>viewer</th>");
    }
    for &j in &texts {
        let _ = write!(p, "<th>{}</th>", esc(&d.columns[j].name));
    }
    p.push_str("</tr>");
    for &i in &card.rows {
        let _ = write!(
            p,
            "<tr><td class=\"t\">{}</td><td>{}</td>",
            esc(&d.ids[i]),
            fmt(d.probability[i])
        );
        if let Some((a, b)) = d.sky {
            p.push_str(&sky_cells(d.columns[a].number(i), d.columns[b].number(i)));
        }
        for &j in &texts {
            p.push_str(&d.columns[j].cell(i));
        }
        p.push_str("</tr>");
    }
    p.push_str("</table>");
    p.push_str(SORT_SCRIPT);
    p.push_str("</body></html>\n");
    p
}

/// A member's position and a link to it in the Legacy Surveys viewer; dashes without one.
fn sky_cells(ra: Option<f64>, dec: Option<f64>) -> String {
    match (ra, dec) {
        (Some(ra), Some(dec)) => format!(
            "<td>{ra:.5}</td><td>{dec:.5}</td><td><a href=\"https://www.legacysurvey.org/viewer?ra={ra:.5}&amp;dec={dec:.5}&amp;layer=ls-dr10&amp;zoom=16\">view</a></td>"
        ),
        _ => "<td>–</td><td>–</td><td></td>".to_owned(),
    }
}

/// A class's colour swatch and number, linked to its section.
fn swatch(l: usize) -> String {
    format!(
        "<a href=\"#c{l}\"><span class=\"sw\" style=\"background:{}\"></span>{l}</a>",
        hex(class_colour(l as i32))
    )
}

/// A number to three decimals; a dash for none.
fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.3}"))
}
