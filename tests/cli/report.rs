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
    t.pipeline(&format!("[pipeline]\nname = \"rep\"\n{}", featured(30_000, 16) + &pca_leaves(30) + REPORT));
    let r = t.run(&["run", "p.toml"]).ok();
    let line = r.stderr().lines().find(|l| l.starts_with("report `report`: ")).map(str::to_owned).expect("report path printed");
    let html_path = t.path(line.trim_start_matches("report `report`: "));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("Classes found by <code>rep</code>"), "{}", &html[..500.min(html.len())]);
    assert!(html.contains("rare:"), "the planted classes show in the class table");

    t.run(&["export", "p.toml", "report", "--out", "members.parquet"]).ok();
    let m = ParquetReader::new(std::fs::File::open(t.path("members.parquet")).unwrap()).finish().unwrap();
    assert!(m.height() > 0);
    assert!(m.column("label").unwrap().i32().unwrap().into_no_null_iter().all(|l| l >= 0), "members only");
    assert!(m.schema().contains("planted_class") && !m.schema().contains("feat_0"));
    let k = m.column("label").unwrap().i32().unwrap().into_no_null_iter().max().unwrap() + 1;
    assert_eq!(html.matches("<h2>Class ").count(), k as usize);

    // A damaged report page is detected and rebuilt, identically.
    std::fs::write(&html_path, "tampered").unwrap();
    let again = t.run_json(&[]).ok();
    assert!(again.stderr().contains("node `report`: cache entry"), "{}", again.stderr());
    assert_eq!(again.computed(), ["report"]);
    assert_eq!(std::fs::read_to_string(&html_path).unwrap(), html);
}
