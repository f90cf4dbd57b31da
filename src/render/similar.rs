//! The gallery page of a `dagrun similar` search: the examples, then each result with its
//! rank, id, score, cutout (where the catalogue has image paths) or a few of its columns,
//! and a link to the Legacy Surveys viewer at its position (where it has `ra`/`dec`).

use std::fmt::Write;

use super::html::{esc, STYLE};

/// One galaxy on the page.
pub struct Card {
    pub id: String,
    pub score: Option<f64>,
    /// The cutout's file name beside the page, or why there is none.
    pub image: Option<Result<String, String>>,
    pub fields: Vec<(String, String)>,
    pub sky: Option<(f64, f64)>,
}

/// The page: `title`, a line describing the query, the examples, counter-examples and the
/// results.
pub fn page(
    title: &str,
    query: &str,
    examples: &[Card],
    counter: &[Card],
    results: &[Card],
) -> String {
    let mut s = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}\
         .cards{{display:flex;flex-wrap:wrap;gap:10px}}.card{{width:176px;font-size:12px;border:1px solid #ddd;padding:6px;border-radius:4px}}\
         .card img{{width:164px;height:164px;image-rendering:auto}}.card table{{font-size:11px}}.miss{{width:164px;height:164px;background:#eee;color:#a00;display:flex;align-items:center;justify-content:center;text-align:center}}</style></head><body>\
         <h1>{t}</h1><p>{q}</p>",
        t = esc(title),
        q = esc(query)
    );
    for (name, cards) in [
        ("Examples", examples),
        ("Counter-examples", counter),
        ("Results", results),
    ] {
        if cards.is_empty() {
            continue;
        }
        let _ = write!(s, "<h2>{name}</h2><div class=\"cards\">");
        for (i, c) in cards.iter().enumerate() {
            s.push_str("<div class=\"card\">");
            match &c.image {
                Some(Ok(file)) => {
                    let _ = write!(s, "<img src=\"{}\" alt=\"{}\">", esc(file), esc(&c.id));
                }
                Some(Err(why)) => {
                    let _ = write!(s, "<div class=\"miss\">{}</div>", esc(why));
                }
                None => {}
            }
            let rank = if name == "Results" {
                format!("#{} ", i + 1)
            } else {
                String::new()
            };
            let _ = write!(s, "<div><b>{rank}{}</b>", esc(&c.id));
            if let Some(v) = c.score {
                let _ = write!(s, " · {v:.4}");
            }
            s.push_str("</div>");
            if let Some((ra, dec)) = c.sky {
                let _ = write!(s, "<div><a href=\"https://www.legacysurvey.org/viewer?ra={ra:.5}&amp;dec={dec:.5}&amp;layer=ls-dr10&amp;zoom=16\">{ra:.4}, {dec:+.4}</a></div>");
            }
            if !c.fields.is_empty() {
                s.push_str("<table>");
                for (k, v) in &c.fields {
                    let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
                }
                s.push_str("</table>");
            }
            s.push_str("</div>");
        }
        s.push_str("</div>");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_and_links() {
        let card = |id: &str, image| Card {
            id: id.into(),
            score: Some(0.5),
            image,
            fields: vec![("class".into(), "<ring>".into())],
            sky: Some((150.1, -2.5)),
        };
        let html = page(
            "t",
            "like `1`",
            &[card("1", None)],
            &[],
            &[
                card("2", Some(Ok("thumbs/1.png".into()))),
                card("3", Some(Err("no file".into()))),
            ],
        );
        assert!(html.contains("&lt;ring&gt;") && !html.contains("<ring>"));
        assert!(
            html.contains("<img src=\"thumbs/1.png\"")
                && html.contains("no file")
                && html.contains("#2 3")
        );
        assert!(html.contains("viewer?ra=150.10000&amp;dec=-2.50000"));
        assert!(!html.contains("Counter-examples"));
    }
}
