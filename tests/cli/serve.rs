//! `dagrun serve` end to end, over real sockets on the loopback: the API answers as the CLI
//! does (`similar --json`, `labels export`), labels survive restarts and `kill -9`, hostile
//! requests get a 4xx and change nothing, many clients at once get no error, and the page
//! itself, in headless Chromium with WebGL on SwiftShader, draws the classes, finds similar
//! galaxies on a click and labels them. Every test serves the quickstart pipeline from one
//! cache computed once for the binary; each has its own label log.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::http;

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/quickstart.toml")
}

/// The cache every serve test shares: the quickstart pipeline computed once.
fn cache() -> &'static Path {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let out = Command::new(env!("CARGO_BIN_EXE_dagrun"))
                .arg(quickstart())
                .env("DAGRUN_CACHE", dir.path())
                .output()
                .expect("spawn dagrun");
            assert!(
                out.status.success(),
                "quickstart failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            dir
        })
        .path()
}

/// A running `dagrun serve` on a free port; killed when dropped.
struct Server {
    child: Child,
    url: String,
    /// `127.0.0.1:PORT`
    addr: String,
}

impl Server {
    fn start(labels: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagrun"));
        cmd.arg("serve")
            .arg(quickstart())
            .args(["--port", "0", "--labels"])
            .arg(labels)
            .args(extra)
            .env("DAGRUN_CACHE", cache())
            .env_remove("DAGRUN_TOKEN");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dagrun serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_default();
        let url = line.trim().to_owned();
        if !url.starts_with("http://") {
            let _ = child.kill();
            let out = child.wait_with_output().expect("serve output");
            panic!(
                "dagrun serve printed no URL ({url:?}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let addr = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .expect("authority")
            .to_owned();
        Server { child, url, addr }
    }

    /// `http://ADDR/PATH` (PATH starts with `/`).
    fn at(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn get(&self, path: &str) -> http::Response {
        http::get(&self.at(path)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn post(&self, path: &str, body: &Value) -> http::Response {
        http::post_json(&self.at(path), body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// SIGTERM, and wait for it to exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dagrun serve did not stop on SIGTERM within 20 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/api/points`, parsed: x, y, class, ids.
struct Points {
    class: Vec<i32>,
    ids: Vec<String>,
    x: Vec<f32>,
}

fn points(s: &Server) -> Points {
    let r = s.get("/api/points");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let b = &r.body;
    assert_eq!(&b[..8], b"DGRNPTS1");
    let n = u64::from_le_bytes(b[8..16].try_into().unwrap()) as usize;
    let f32s = |at: usize| -> Vec<f32> {
        b[at..at + 4 * n]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let x = f32s(16);
    let class = b[16 + 8 * n..16 + 12 * n]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let ids: Vec<String> = serde_json::from_slice(&b[16 + 12 * n..]).expect("ids as JSON");
    assert_eq!(ids.len(), n);
    Points { class, ids, x }
}

/// `dagrun similar` on the quickstart pipeline, as JSON.
fn cli_similar(ids: &[&str], not: &[&str], k: u32) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagrun"));
    cmd.arg("similar")
        .arg(quickstart())
        .args(["--node", "featured", "-k", &k.to_string(), "--json"])
        .env("DAGRUN_CACHE", cache());
    for i in ids {
        cmd.args(["--id", i]);
    }
    for i in not {
        cmd.args(["--not", i]);
    }
    let out = cmd.output().expect("spawn dagrun similar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `dagrun labels export` of `log` to a CSV, its lines.
fn cli_export(log: &Path, dir: &Path) -> Vec<String> {
    let out_csv = dir.join("export.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_dagrun"))
        .args(["labels", "export"])
        .arg(quickstart())
        .arg("--labels")
        .arg(log)
        .arg("--out")
        .arg(&out_csv)
        .args(["--columns", "planted_class"])
        .env("DAGRUN_CACHE", cache())
        .output()
        .expect("spawn dagrun labels export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&out_csv)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn serve_answers_as_the_cli_does_and_keeps_labels_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("labels.jsonl");
    let s = Server::start(&log, &[]);
    let info = s.get("/api/info").json();
    assert_eq!(info["pipeline"], "quickstart");
    // The log is a gc root: the cache records it with the entries it is given against.
    let log_abs = std::fs::canonicalize(&log).unwrap();
    let roots: Vec<Value> = std::fs::read_dir(cache().join("v1/roots"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    let root = roots
        .iter()
        .find(|r| r["log"].as_str() == log_abs.to_str())
        .unwrap_or_else(|| panic!("no root for the log in {roots:?}"));
    assert!(root["keys"].as_array().unwrap().len() >= 5, "{root}");
    assert_eq!(
        (
            info["classes"].as_str(),
            info["layout"].as_str(),
            info["features"].as_str()
        ),
        (Some("classes"), Some("display"), Some("featured"))
    );
    let p = points(&s);
    assert_eq!(info["n"].as_u64(), Some(p.ids.len() as u64));
    assert!(p.x.iter().all(|v| v.is_finite()));
    // The class table agrees with the points' classes.
    let classes = s.get("/api/classes").json();
    let list = classes["classes"].as_array().unwrap();
    assert!(
        list.len() >= 5,
        "quickstart finds its planted classes: {classes}"
    );
    for c in list {
        let l = c["label"].as_i64().unwrap() as i32;
        assert_eq!(
            c["size"].as_u64().unwrap() as usize,
            p.class.iter().filter(|&&k| k == l).count(),
            "class {l}"
        );
        assert!(
            c["persistence"].as_f64().is_some() && c["stability"].as_f64().is_some(),
            "{c}"
        );
    }
    assert_eq!(
        classes["clustered"].as_u64().unwrap() as usize,
        p.class.iter().filter(|&&k| k >= 0).count()
    );
    assert!(list.iter().any(|c| c["truth"]["value"]
        .as_str()
        .is_some_and(|v| v.starts_with("rare:"))
        && c["truth"]["share"].as_f64().unwrap() > 0.8));

    // A galaxy, and the same search as `dagrun similar --json`.
    let member = p.class.iter().position(|&c| c >= 0).unwrap();
    let id = p.ids[member].clone();
    let g = s.get(&format!("/api/galaxy/{id}")).json();
    assert_eq!(g["row"].as_u64(), Some(member as u64));
    assert_eq!(g["class"].as_i64(), Some(i64::from(p.class[member])));
    assert!(
        g["columns"]["planted_class"].is_string() && g["columns"].get("feat_0").is_none(),
        "{g}"
    );
    assert!(g["sky"]["viewer"]
        .as_str()
        .is_some_and(|v| v.contains("ra=")));
    let api = s.get(&format!("/api/similar?id={id}&k=20")).json();
    assert_eq!(api, cli_similar(&[&id], &[], 20));
    assert_eq!(api["results"].as_array().unwrap().len(), 20);
    // Re-ranking against counter-examples: the classifier, as `similar --not`.
    let (a, b) = (&p.ids[member + 1], &p.ids[p.ids.len() - 1]);
    let api = s
        .get(&format!("/api/similar?id={id}&id={a}&not={b}&k=15"))
        .json();
    assert_eq!(api, cli_similar(&[&id, a], &[b], 15));

    // Labels: written before the answer, folded, exported, kept across a restart.
    let r = s.post(
        "/api/labels",
        &json!({"action": "add", "label": "ring", "ids": [id, a]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["seq"], 1);
    assert!(
        std::fs::read_to_string(&log).unwrap().contains("\"ring\""),
        "in the log once answered"
    );
    s.post(
        "/api/labels",
        &json!({"action": "add", "label": "one arm", "ids": [b]}),
    );
    s.post(
        "/api/labels",
        &json!({"action": "remove", "label": "ring", "ids": [a]}),
    );
    let want = json!({"labels": [{"id": id, "label": "ring"}, {"id": b, "label": "one arm"}], "names": [{"label": "one arm", "count": 1}, {"label": "ring", "count": 1}]});
    assert_eq!(s.get("/api/labels").json(), want);
    assert_eq!(
        s.get(&format!("/api/galaxy/{id}")).json()["labels"],
        json!(["ring"])
    );
    let csv = s.get("/api/export?format=csv&columns=planted_class").text();
    assert_eq!(csv.lines().next(), Some("id,label,planted_class"));
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let parquet = s.get("/api/export?format=parquet");
    assert_eq!(&parquet.body[..4], b"PAR1");
    s.stop();
    let s = Server::start(&log, &[]);
    assert_eq!(
        s.get("/api/labels").json(),
        want,
        "labels survive a restart"
    );
    let exported = cli_export(&log, dir.path());
    assert_eq!(exported.len(), 3, "{exported:?}");
    assert!(
        exported
            .iter()
            .any(|l| l.starts_with(&format!("{id},ring,"))),
        "{exported:?}"
    );
    assert!(
        exported
            .iter()
            .any(|l| l.starts_with(&format!("{b},one arm,"))),
        "{exported:?}"
    );
}

#[test]
fn hostile_requests_get_a_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("labels.jsonl");
    let s = Server::start(&log, &[]);
    let p = points(&s);
    let id = p.ids[0].clone();
    let expect = |path: &str, status: u16| {
        let r = s.get(path);
        assert_eq!(r.status, status, "GET {path}: {}", r.text());
        let e = r.json();
        let msg = e["error"]
            .as_str()
            .unwrap_or_else(|| panic!("GET {path}: no error message: {e}"));
        assert!(!msg.is_empty() && !msg.contains('\n'), "one line: {msg:?}");
    };
    for path in [
        "/api/galaxy/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/cutout/..%2F..%2Fetc%2Fpasswd",
        "/api/cutout/%2Fetc%2Fpasswd",
        "/api/galaxy/no-such-galaxy",
        "/api/similar?id=..%2F..%2Fetc%2Fpasswd",
        "/../../etc/passwd",
        "/api/../../etc/passwd",
    ] {
        expect(path, 404);
    }
    expect(&format!("/api/cutout/{id}"), 404); // the quickstart sample has no images
    for path in [
        format!("/api/similar?id={id}&k=abc"),
        format!("/api/similar?id={id}&k=0"),
        format!("/api/similar?id={id}&k=99999999999999999999"),
        format!("/api/similar?id={id}&k=-3"),
        format!("/api/similar?id={id}&kk=3"),
        format!("/api/similar?id={id}&not={id}"),
        "/api/similar".into(),
        "/api/similar?id=%zz".into(),
        "/api/export?format=..%2Fetc".into(),
        "/api/export?path=/etc/passwd".into(),
    ] {
        expect(&path, 400);
    }
    let post = |body: &[u8], headers: &[(&str, &str)]| {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(headers);
        http::request("POST", &s.at("/api/labels"), &h, Some(body)).expect("POST")
    };
    for (body, status) in [
        (b"not json".to_vec(), 400),
        (b"{\"action\":\"add\",\"label\":\"x\"}".to_vec(), 400),
        (
            br#"{"action":"explode","label":"x","ids":["0"]}"#.to_vec(),
            400,
        ),
        (
            format!(r#"{{"action":"add","label":"","ids":["{id}"]}}"#).into_bytes(),
            400,
        ),
        (
            format!(r#"{{"action":"add","label":"a\nb","ids":["{id}"]}}"#).into_bytes(),
            400,
        ),
        (
            format!(r#"{{"action":"add","label":"x","ids":["{id}"],"path":"/etc/passwd"}}"#)
                .into_bytes(),
            400,
        ),
        (br#"{"action":"add","label":"x","ids":[]}"#.to_vec(), 400),
        (
            format!(r#"{{"action":"add","label":"x","ids":["{id}", "../../etc/passwd"]}}"#)
                .into_bytes(),
            404,
        ),
    ] {
        let r = post(&body, &[]);
        assert_eq!(
            r.status,
            status,
            "body {:?}: {}",
            String::from_utf8_lossy(&body[..body.len().min(80)]),
            r.text()
        );
    }
    // A body over the limit: refused before it is read (the server may close while it is sent).
    let huge = format!("POST /api/labels HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", s.addr, 17 << 20);
    let mut bytes = huge.into_bytes();
    bytes.extend(std::iter::repeat_n(b' ', 17 << 20));
    let answer = String::from_utf8_lossy(
        &http::raw_with_timeout(&s.addr, &bytes, Duration::from_secs(10)).unwrap(),
    )
    .into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    // Another site's page may not post labels, nor may a request for another host name.
    let good = format!(r#"{{"action":"add","label":"x","ids":["{id}"]}}"#);
    assert_eq!(
        post(good.as_bytes(), &[("Origin", "http://evil.example")]).status,
        403
    );
    let r = http::raw_with_timeout(
        &s.addr,
        b"GET /api/info HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        String::from_utf8_lossy(&r).starts_with("HTTP/1.1 403"),
        "DNS rebinding: {}",
        String::from_utf8_lossy(&r)
    );
    // Malformed HTTP, and a client that goes away mid-request: the server carries on.
    let garbage = http::raw_with_timeout(
        &s.addr,
        b"\x00\x01GARBAGE / HTTP/9\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(
        garbage.is_empty() || String::from_utf8_lossy(&garbage).starts_with("HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&garbage)
    );
    let _ = http::raw_with_timeout(
        &s.addr,
        b"POST /api/labels HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"act",
        Duration::from_millis(200),
    );
    assert!(
        !log.exists() || std::fs::read_to_string(&log).unwrap().is_empty(),
        "nothing written: {:?}",
        std::fs::read_to_string(&log)
    );
    assert_eq!(s.get("/api/info").status, 200, "still serving");
    assert_eq!(
        post(
            good.as_bytes(),
            &[("Origin", &format!("http://{}", s.addr))]
        )
        .status,
        200,
        "this page's own POST passes"
    );
}

#[test]
fn a_token_guards_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("labels.jsonl"), &["--token", "s3cret"]);
    assert!(s.url.ends_with("/?token=s3cret"), "{}", s.url);
    assert_eq!(s.get("/api/info").status, 401);
    assert_eq!(s.get("/").status, 401);
    assert_eq!(s.get("/api/info?token=wrong").status, 401);
    assert_eq!(
        http::request(
            "GET",
            &s.at("/api/info"),
            &[("X-Dagrun-Token", "s3cre")],
            None
        )
        .unwrap()
        .status,
        401
    );
    assert_eq!(
        http::request(
            "GET",
            &s.at("/api/info"),
            &[("X-Dagrun-Token", "s3cret")],
            None
        )
        .unwrap()
        .status,
        200
    );
    // Opening the printed URL sets a cookie the page's later requests carry.
    let page = s.get("/?token=s3cret");
    assert_eq!(page.status, 200);
    let cookie = page
        .header("set-cookie")
        .expect("a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("s3cret") && page.header("set-cookie").unwrap().contains("HttpOnly"));
    assert_eq!(
        http::request("GET", &s.at("/api/classes"), &[("Cookie", &cookie)], None)
            .unwrap()
            .status,
        200
    );
    let r = http::request(
        "POST",
        &s.at("/api/labels"),
        &[("Content-Type", "application/json")],
        Some(br#"{"action":"add","label":"x","ids":["0"]}"#),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert!(
        !dir.path().join("labels.jsonl").exists()
            || std::fs::read_to_string(dir.path().join("labels.jsonl"))
                .unwrap()
                .is_empty()
    );
}

#[test]
fn kill_9_during_label_writes_loses_no_answered_label() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("labels.jsonl");
    let s = Server::start(&log, &[]);
    let ids = points(&s).ids;
    let url = s.at("/api/labels");
    let writer = std::thread::spawn(move || {
        let mut answered = Vec::new();
        for i in 0.. {
            let body =
                json!({"action": "add", "label": format!("l{i}"), "ids": [ids[i % ids.len()]]});
            match http::post_json(&url, &body) {
                Ok(r) if r.status == 200 => answered.push(format!("l{i}")),
                Ok(r) => panic!("label {i}: {} {}", r.status, r.text()),
                Err(_) => break,
            }
        }
        answered
    });
    std::thread::sleep(Duration::from_millis(1500));
    let pid = s.child.id();
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let answered = writer.join().unwrap();
    assert!(
        answered.len() > 5,
        "some labels were written before the kill ({})",
        answered.len()
    );
    let entries = dagrun::labels::read(&log)
        .expect("the log parses after kill -9")
        .entries;
    let logged: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
    for l in &answered {
        assert_eq!(
            logged.iter().filter(|&&x| x == l).count(),
            1,
            "answered label {l} is in the log exactly once"
        );
    }
    drop(s);
    // A restart reads the same log and goes on appending.
    let s = Server::start(&log, &[]);
    assert_eq!(
        s.get("/api/labels").json()["names"]
            .as_array()
            .unwrap()
            .len(),
        logged.len().min(points(&s).ids.len())
    );
}

#[test]
fn fifty_clients_at_once_get_no_error_and_every_label_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("labels.jsonl");
    let s = Server::start(&log, &[]);
    let ids = std::sync::Arc::new(points(&s).ids);
    let until = Instant::now() + Duration::from_secs(4);
    let clients: Vec<_> = (0..50)
        .map(|c| {
            let (ids, base) = (ids.clone(), s.at(""));
            std::thread::spawn(move || {
                let (mut posted, mut searched, mut i) = (Vec::new(), 0usize, 0usize);
                while Instant::now() < until {
                    let id = &ids[(c * 997 + i * 31) % ids.len()];
                    if i % 2 == 0 {
                        let r = http::get(&format!("{base}/api/similar?id={id}&k=10"))
                            .expect("similar");
                        assert_eq!(r.status, 200, "{}", r.text());
                        assert_eq!(r.json()["results"].as_array().unwrap().len(), 10);
                        searched += 1;
                    } else {
                        let label = format!("c{c}-{i}");
                        let r = http::post_json(
                            &format!("{base}/api/labels"),
                            &json!({"action": "add", "label": label, "ids": [id]}),
                        )
                        .expect("label");
                        assert_eq!(r.status, 200, "{}", r.text());
                        posted.push(label);
                    }
                    i += 1;
                }
                (posted, searched)
            })
        })
        .collect();
    // Meanwhile, clients that drop the connection mid-response.
    for _ in 0..20 {
        let _ = http::raw_with_timeout(
            &s.addr,
            b"GET /api/points HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            Duration::from_millis(1),
        );
    }
    let mut posted = Vec::new();
    let mut searched = 0;
    for c in clients {
        let (p, n) = c.join().expect("a client failed");
        posted.extend(p);
        searched += n;
    }
    assert!(
        searched >= 50 && posted.len() >= 50,
        "{searched} searches, {} labels",
        posted.len()
    );
    let entries = dagrun::labels::read(&log).unwrap().entries;
    assert_eq!(entries.len(), posted.len(), "one line per answered label");
    let mut logged: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
    logged.sort_unstable();
    posted.sort_unstable();
    assert_eq!(
        logged,
        posted.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(s.get("/api/info").status, 200);
}

/// Pixels of the screenshot within a few levels of `rgb`.
fn pixels_like(img: &image::RgbaImage, rgb: [u8; 3]) -> usize {
    img.pixels()
        .filter(|p| (0..3).all(|c| (i32::from(p[c]) - i32::from(rgb[c])).abs() <= 6))
        .count()
}

fn hex(s: &str) -> [u8; 3] {
    let v = u32::from_str_radix(s.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

#[test]
fn the_page_draws_the_classes_finds_similar_galaxies_on_a_click_and_labels_them() {
    let Some(b) = Browser::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("labels.jsonl");
    let s = Server::start(&log, &[]);
    b.goto(&s.url);
    b.wait_for(
        "window.dagrun && window.dagrun.ready",
        Duration::from_secs(120),
    );
    assert_eq!(
        b.eval("return window.dagrun.n").as_u64(),
        s.get("/api/info").json()["n"].as_u64()
    );
    // Class colours on the canvas.
    let shot = image::load_from_memory(&b.screenshot_png())
        .expect("a PNG")
        .to_rgba8();
    std::fs::write(dir.path().join("page.png"), b.screenshot_png()).unwrap();
    let classes = s.get("/api/classes").json();
    let coloured: Vec<(String, usize)> = classes["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["colour"].as_str().unwrap().to_owned(),
                pixels_like(&shot, hex(c["colour"].as_str().unwrap())),
            )
        })
        .collect();
    let shown = coloured.iter().filter(|(_, n)| *n >= 10).count();
    assert!(
        10 * shown >= 9 * coloured.len(),
        "nine in ten classes' colours are on screen: {coloured:?}"
    );
    assert!(
        pixels_like(&shot, [190, 190, 190]) > 2000,
        "unclassified galaxies in grey"
    );

    // Click a class member that stands alone on screen: its similar galaxies, as the CLI's.
    let p = points(&s);
    let all = b.eval(
        "return Array.from({length: window.dagrun.n}, (_, r) => window.dagrun.screenPosition(r))",
    );
    let pos: Vec<(f64, f64)> = all
        .as_array()
        .expect("positions")
        .iter()
        .map(|v| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap()))
        .collect();
    assert_eq!(pos.len(), p.ids.len());
    let rect = b.eval("return window.dagrun.canvasRect()");
    let (w, h) = (
        rect["width"].as_f64().unwrap(),
        rect["height"].as_f64().unwrap(),
    );
    // The class member inside the canvas whose nearest neighbour on screen is farthest.
    let inside =
        |r: usize| pos[r].0 > 20.0 && pos[r].1 > 20.0 && pos[r].0 < w - 20.0 && pos[r].1 < h - 20.0;
    let gap = |r: usize| {
        pos.iter()
            .enumerate()
            .filter(|&(o, _)| o != r)
            .map(|(_, &(a, b))| (a - pos[r].0).hypot(b - pos[r].1))
            .fold(f64::INFINITY, f64::min)
    };
    let alone = (0..p.ids.len())
        .filter(|&r| p.class[r] >= 0 && inside(r))
        .max_by(|&a, &b| gap(a).total_cmp(&gap(b)))
        .expect("a class member on screen");
    b.type_into("#k", "12");
    let (cx, cy) = (pos[alone].0.round(), pos[alone].1.round());
    b.click_at("#plot", cx, cy);
    b.wait_for(
        "window.dagrun.similar && window.dagrun.busy === 0",
        Duration::from_secs(60),
    );
    // The galaxy the page picked is the one under the pointer (or, in a crowd, a neighbour).
    let picked = b
        .eval("return window.dagrun.similar.query[0]")
        .as_str()
        .expect("a query id")
        .to_owned();
    let row = p.ids.iter().position(|i| *i == picked).expect("a known id");
    assert!(
        (pos[row].0 - cx).hypot(pos[row].1 - cy) <= 6.0,
        "picked {picked} at {:?}, clicked at ({cx}, {cy})",
        pos[row]
    );
    let shown_ids = b.eval("return window.dagrun.similar.results");
    let cli: Vec<Value> = cli_similar(&[&picked], &[], 12)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(
        shown_ids,
        Value::Array(cli.clone()),
        "the page shows the CLI's similar galaxies"
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('#gallery .card').length")
            .as_u64(),
        Some(12)
    );

    b.type_into("#label-name", "lonely");
    b.click("#label-add");
    b.wait_for(
        "document.querySelector('#labels [data-label=\"lonely\"]') !== null",
        Duration::from_secs(30),
    );
    let logged = dagrun::labels::read(&log).unwrap().fold();
    assert_eq!(logged.len(), 12, "the gallery's 12 galaxies are labelled");
    for r in &cli {
        assert_eq!(logged.get(r.as_str().unwrap()), Some("lonely"));
    }
    s.stop();
    let s = Server::start(&log, &[]);
    b.goto(&s.url);
    b.wait_for(
        "window.dagrun && window.dagrun.ready && window.dagrun.labels",
        Duration::from_secs(120),
    );
    let count = b.wait_for(
        "(document.querySelector('#labels [data-label=\"lonely\"] .count') || {}).textContent",
        Duration::from_secs(30),
    );
    assert_eq!(count.as_str().map(str::trim), Some("12"));
    let exported = cli_export(&log, dir.path());
    assert_eq!(
        exported.iter().filter(|l| l.contains(",lonely,")).count(),
        12,
        "{exported:?}"
    );
    let errors: Vec<String> = b
        .console_errors()
        .into_iter()
        .filter(|e| !e.contains("favicon"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// A catalogue of three blobs in a 4-column representation with string ids, sky positions
/// and a PNG cutout per galaxy (g0's missing, g4's not an image), and a pipeline over it
/// with a report: what `serve` shows for a catalogue with images.
fn image_pipeline(t: &crate::support::Test) {
    let mut rng = dagrun::numeric::rng::Rng::new(5, 0);
    let mut csv = String::from("gid,ra,dec,feat_0,feat_1,feat_2,feat_3,file_loc\n");
    std::fs::create_dir_all(t.path("data/cutouts")).unwrap();
    for i in 0..300 {
        let f: Vec<f64> = (0..4)
            .map(|j| if j == i % 3 { 5.0 } else { 0.0 } + 0.2 * rng.normal())
            .collect();
        let file = format!("cutouts/g{i}.png");
        csv.push_str(&format!(
            "g{i},{:.5},{:.5},{},{},{},{},{file}\n",
            150.0 + 0.01 * i as f64,
            2.0,
            f[0],
            f[1],
            f[2],
            f[3]
        ));
        match i {
            0 => {}
            4 => std::fs::write(t.path(&format!("data/{file}")), b"not an image").unwrap(),
            _ => image::RgbImage::from_pixel(24, 24, image::Rgb([(i % 256) as u8, 90, 40]))
                .save(t.path(&format!("data/{file}")))
                .unwrap(),
        }
    }
    t.write("data/catalog.csv", &csv);
    t.pipeline(
        r#"[pipeline]
name = "img"
id = "gid"
[nodes.catalog]
op = "read"
path = "data/catalog.csv"
[nodes.layout]
op = "reduce"
method = "pca"
input = "catalog"
n_components = 2
prefix = "display_"
[nodes.tree]
op = "cluster"
input = "layout"
columns = "display_*"
min_samples = 5
min_cluster_size = 20
[nodes.classes]
op = "select-eom"
input = "tree"
[nodes.report]
op = "report"
inputs = ["classes", "catalog", "layout"]
"#,
    );
}

#[test]
fn serve_shows_cutouts_by_galaxy_id_only() {
    let t = crate::support::Test::new();
    image_pipeline(&t);
    let mut cmd = t.command(&["serve", "p.toml", "--port", "0"]);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let s = Server {
        child,
        url: line.trim().to_owned(),
        addr: line
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
    };
    assert!(s.url.starts_with("http://127.0.0.1:"), "{}", s.url);
    let info = s.get("/api/info").json();
    assert_eq!(
        (
            info["has_images"].as_bool(),
            info["has_sky"].as_bool(),
            info["id"].as_str()
        ),
        (Some(true), Some(true), Some("gid"))
    );
    assert!(
        info["labels_file"]
            .as_str()
            .unwrap()
            .ends_with("p.labels.jsonl"),
        "beside the pipeline: {info}"
    );
    let g = s.get("/api/galaxy/g7").json();
    assert_eq!(g["cutout"], "/api/cutout/g7");
    let img = s.get("/api/cutout/g7");
    assert_eq!(
        (img.status, img.header("content-type")),
        (200, Some("image/png"))
    );
    assert_eq!(
        img.body,
        std::fs::read(t.path("data/cutouts/g7.png")).unwrap(),
        "the file's bytes"
    );
    assert_eq!(s.get("/api/cutout/g0").status, 404, "missing file");
    assert_eq!(s.get("/api/cutout/g4").status, 404, "not an image");
    assert_eq!(
        s.get("/api/cutout/cutouts%2Fg7.png").status,
        404,
        "by id, never by path"
    );
    let api = s.get("/api/similar?id=g7&k=5").json();
    let cli = t
        .run(&[
            "similar", "p.toml", "--node", "catalog", "--id", "g7", "-k", "5", "--json",
        ])
        .ok()
        .json();
    assert_eq!(api, cli);
}

#[test]
fn the_labels_op_reads_the_log_and_its_key_follows_the_log() {
    use dagrun::labels::{Action, Entry, Writer};
    let t = crate::support::Test::new();
    t.pipeline(&format!(
        "{}[nodes.all]\nop = \"labels\"\npath = \"l.jsonl\"\n[nodes.rows]\nop = \"labels\"\npath = \"l.jsonl\"\ninput = \"featured\"\n",
        crate::support::featured(2000, 8)
    ));
    let missing = t.run_json(&[]);
    assert_eq!(missing.code(), 2);
    assert!(
        missing.stderr().contains("no label log") && missing.stderr().contains("l.jsonl"),
        "{}",
        missing.stderr()
    );
    let (mut w, _) = Writer::open(&t.path("l.jsonl")).unwrap();
    let ids: Vec<String> = {
        t.run(&["export", "p.toml", "featured", "--out", "f.csv"])
            .ok();
        std::fs::read_to_string(t.path("f.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .take(5)
            .map(|l| l.split(',').next().unwrap().to_owned())
            .collect()
    };
    let add = |w: &mut Writer, label: &str, ids: &[String]| {
        w.append(Entry {
            time: "t".into(),
            action: Action::Add,
            label: label.into(),
            ids: ids.to_vec(),
        })
        .unwrap()
    };
    add(&mut w, "ring", &ids[..3]);
    add(&mut w, "bar", &ids[2..4]);
    let first = t.run_json(&[]).ok();
    assert_eq!(first.computed(), ["all", "rows"]);
    t.run(&["export", "p.toml", "rows", "--out", "rows.csv"])
        .ok();
    let rows = std::fs::read_to_string(t.path("rows.csv")).unwrap();
    assert_eq!(rows.lines().count(), 5, "4 labelled galaxies: {rows}");
    assert!(
        rows.lines().next().unwrap().ends_with(",label")
            && rows.contains(",bar")
            && rows.contains(",ring")
    );
    t.run(&["export", "p.toml", "all", "--out", "all.csv"]).ok();
    let all = std::fs::read_to_string(t.path("all.csv")).unwrap();
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        vec![
            "id,label".to_owned(),
            format!("{},ring", ids[0]),
            format!("{},ring", ids[1]),
            format!("{},bar", ids[2]),
            format!("{},bar", ids[3])
        ]
    );
    assert!(
        t.run_json(&[]).ok().computed().is_empty(),
        "an unchanged log is a hit"
    );
    add(&mut w, "ring", &ids[4..5]);
    assert_eq!(
        t.run_json(&[]).ok().computed(),
        ["all", "rows"],
        "a new label recomputes what reads the log"
    );
    // A damaged line is refused before anything runs, naming the file and line.
    std::fs::write(
        t.path("l.jsonl"),
        format!(
            "{}\nnot json\n",
            std::fs::read_to_string(t.path("l.jsonl"))
                .unwrap()
                .lines()
                .next()
                .unwrap()
        ),
    )
    .unwrap();
    let bad = t.run_json(&[]);
    assert_eq!(bad.code(), 2);
    assert!(bad.stderr().contains("l.jsonl` line 2"), "{}", bad.stderr());
}
