//! A real browser for the tests of `dagrun serve`'s page: Debian's `chromium`, headless with
//! WebGL on SwiftShader (no GPU, no display), driven through Debian's `chromedriver` (W3C
//! WebDriver, JSON over HTTP with [`crate::http`]). [`Browser::start`] skips with a message
//! where they are not installed, and fails instead when `CI` is set (`.ci/run` installs them
//! with scripts/browser-up.sh). Every WebDriver error panics, naming the endpoint and the
//! driver's message; dropping the [`Browser`] ends the session, the browser and the driver,
//! also when a test panics.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http;

/// The key of a W3C element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a WebDriver command may take (a page load, a script, a screenshot).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:PORT`, where chromedriver listens.
    base: String,
    /// Empty until the session is made.
    session: String,
    /// The browser's profile (`--user-data-dir`) and chromedriver's logs; removed after both
    /// processes are gone (fields drop after [`Drop::drop`]).
    dir: tempfile::TempDir,
}

impl Browser {
    /// A headless browser with a fresh profile and an empty page, or `None` (after a message
    /// on stderr) where chromedriver or chromium is not installed. Panics instead of returning
    /// `None` when `CI` is set.
    pub fn start() -> Option<Browser> {
        let driver = find_program(
            "chromedriver",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        // Debian's /usr/bin/chromium is a shell script that sources /etc/chromium.d (adding
        // flags, printing noise) and then execs /usr/lib/chromium/chromium: use that directly.
        let chromium = find_program("/usr/lib/chromium/chromium", &[])
            .or_else(|| find_program("chromium", &["/usr/bin/chromium"]));
        match (driver, chromium) {
            (Some(driver), Some(chromium)) => Some(Browser::launch(&driver, &chromium)),
            (driver, chromium) => {
                let missing: Vec<&str> = [
                    ("chromedriver (Debian's chromium-driver)", driver.is_none()),
                    ("chromium", chromium.is_none()),
                ]
                .into_iter()
                .filter_map(|(name, gone)| gone.then_some(name))
                .collect();
                let missing = missing.join(" and ");
                assert!(std::env::var_os("CI").is_none(), "CI is set but {missing} is not installed: `.ci/run` installs them with scripts/browser-up.sh");
                eprintln!("skipping the browser test: {missing} is not installed (install them with scripts/browser-up.sh)");
                None
            }
        }
    }

    fn launch(driver: &Path, chromium: &Path) -> Browser {
        let mut dir = tempfile::Builder::new()
            .prefix("dagrun-browser-")
            .tempdir()
            .expect("a temporary folder for the browser profile");
        let profile = dir.path().join("profile");
        // The port is free when we look; another process may take it before chromedriver binds
        // it, so a driver that exits at once is started again on another port.
        for attempt in 1..=3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let out = fs::File::create(dir.path().join("chromedriver.out"))
                .expect("chromedriver's output file");
            let err = out.try_clone().expect("chromedriver's output file");
            let child = Command::new(driver)
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    dir.path().join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
            let mut b = Browser {
                driver: child,
                base: format!("http://127.0.0.1:{port}"),
                session: String::new(),
                dir,
            };
            if !b.wait_ready(Duration::from_secs(30)) {
                if attempt < 3 {
                    // Dropping `b` would remove the folder: take it back first.
                    dir = std::mem::replace(
                        &mut b.dir,
                        tempfile::tempdir().expect("a temporary folder"),
                    );
                    continue;
                }
                panic!("chromedriver exited three times at start{}", b.logs());
            }
            b.new_session(chromium, &profile);
            return b;
        }
        unreachable!("the loop returns or panics")
    }

    /// Polls chromedriver's `/status` until it says ready; `false` if the driver exited.
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let t = Instant::now();
        loop {
            if let Ok(Some(_)) = self.driver.try_wait() {
                return false;
            }
            if let Ok(r) = http::request_with_timeout(
                "GET",
                &format!("{}/status", self.base),
                &[],
                None,
                Duration::from_secs(5),
            ) {
                if serde_json::from_slice::<Value>(&r.body)
                    .is_ok_and(|v| v["value"]["ready"] == true)
                {
                    return true;
                }
            }
            assert!(
                t.elapsed() < timeout,
                "chromedriver is not ready after {timeout:?}{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn new_session(&mut self, chromium: &Path, profile: &Path) {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--use-angle=swiftshader",
                    "--enable-unsafe-swiftshader",
                    "--window-size=1400,900",
                    "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = self
            .call("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("{e}{}", self.logs()));
        self.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in POST /session's answer: {v}"))
            .to_owned();
    }

    /// The tail of chromedriver's log and output, for a panic message.
    fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["chromedriver.out", "chromedriver.log"] {
            let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            s.push_str(&format!(
                "\n----- tail of {name} -----\n{}",
                lines[lines.len().saturating_sub(30)..].join("\n")
            ));
        }
        s
    }

    /// `method` on the driver's `path` (from the root); the answer's `value`, or the error
    /// naming the endpoint and the driver's message.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string());
        let r = http::request_with_timeout(
            method,
            &format!("{}{path}", self.base),
            &[("Content-Type", "application/json")],
            body.as_deref().map(str::as_bytes),
            COMMAND_TIMEOUT,
        )
        .map_err(|e| format!("WebDriver {method} {path}: {e}"))?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
            format!(
                "WebDriver {method} {path}: HTTP {} with no JSON ({e}): {}",
                r.status,
                r.text()
            )
        })?;
        if r.status != 200 {
            let (err, msg) = (
                v["value"]["error"].as_str().unwrap_or("?"),
                v["value"]["message"].as_str().unwrap_or(""),
            );
            return Err(format!(
                "WebDriver {method} {path}: {err} (HTTP {}): {msg}",
                r.status
            ));
        }
        Ok(v["value"].clone())
    }

    /// `method` on the session's `path`; panics on error.
    #[track_caller]
    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_session_call(method, path, body) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    fn try_session_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url` and waits for its `load` event.
    #[track_caller]
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Reloads the page and waits for its `load` event.
    #[track_caller]
    pub fn reload(&self) {
        self.session_call("POST", "/refresh", Some(json!({})));
    }

    /// Runs `js` as a function body in the page (so `return` gives the value) and returns
    /// the value as JSON (DOM elements come back as element references). A thrown error
    /// panics with its message.
    #[track_caller]
    pub fn eval(&self, js: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": [] })),
        )
    }

    /// Runs `js` as a function body whose last argument is the callback that returns the
    /// value: `const done = arguments[arguments.length - 1]; setTimeout(() => done(42), 10)`.
    /// The session's script timeout (chromedriver's default, 30 s) applies.
    #[track_caller]
    pub fn eval_async(&self, js: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/async",
            Some(json!({ "script": js, "args": [] })),
        )
    }

    /// Polls the JavaScript expression `js_condition` every 100 ms until it is truthy and
    /// returns its value. A condition that throws (not ready yet) counts as false. On timeout
    /// panics with the last value (or error) and the start of the page's text.
    #[track_caller]
    pub fn wait_for(&self, js_condition: &str, timeout: Duration) -> Value {
        let script = json!({ "script": format!("return ({js_condition});"), "args": [] });
        let t = Instant::now();
        loop {
            let last = self.try_session_call("POST", "/execute/sync", Some(script.clone()));
            if let Ok(v) = &last {
                if truthy(v) {
                    return v.clone();
                }
            }
            if t.elapsed() > timeout {
                let text = self
                    .try_session_call("POST", "/execute/sync", Some(json!({"script": "return document.body ? document.body.innerText.slice(0, 2000) : '(no body)'", "args": []})))
                    .map_or_else(|e| format!("(cannot read it: {e})"), |v| v.as_str().unwrap_or("").to_owned());
                panic!("`{js_condition}` is still not true after {timeout:?}; last value: {}\n----- the page's text -----\n{text}", last.map_or_else(|e| e, |v| v.to_string()));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The viewport as a PNG (one pixel per CSS pixel: the device pixel ratio is 1).
    #[track_caller]
    pub fn screenshot_png(&self) -> Vec<u8> {
        let v = self.session_call("GET", "/screenshot", None);
        base64_decode(
            v.as_str()
                .unwrap_or_else(|| panic!("GET /screenshot answered no string: {v}")),
        )
    }

    /// The W3C reference of the first element matching `css`; panics when there is none.
    #[track_caller]
    pub fn find(&self, css: &str) -> String {
        let v = self.session_call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("POST /element `{css}` answered no element reference: {v}"))
            .to_owned()
    }

    /// WebDriver's element click: scrolls the element into view and clicks its centre (fails
    /// when another element would get the click).
    #[track_caller]
    pub fn click(&self, css: &str) {
        let el = self.find(css);
        self.session_call("POST", &format!("/element/{el}/click"), Some(json!({})));
    }

    /// A mouse click (move, press button 0, 50 ms, release) at (`x`, `y`) CSS pixels from the
    /// top-left corner of the border box of the element `css`, through the Actions API, so
    /// the page sees real `pointer*`/`mouse*`/`click` events (for a canvas without border or
    /// padding, `offsetX`/`offsetY` are `x`/`y`). The element must be in the viewport (no
    /// scrolling is done). WebDriver measures an element origin's offset from the element's
    /// centre, which this converts to.
    #[track_caller]
    pub fn click_at(&self, css: &str, x: f64, y: f64) {
        let el = self.find(css);
        let rect = self.session_call("GET", &format!("/element/{el}/rect"), None);
        let size = |k: &str| {
            rect[k]
                .as_f64()
                .unwrap_or_else(|| panic!("element `{css}` has no {k} in its rect: {rect}"))
        };
        // chromedriver's centre of an element origin: floor(width / 2), floor(height / 2) from
        // the top-left, and offsets are whole pixels.
        let (dx, dy) = (
            (x - (size("width") / 2.0).floor()).round(),
            (y - (size("height") / 2.0).floor()).round(),
        );
        let actions = json!({"actions": [{
            "type": "pointer",
            "id": "mouse",
            "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: el}, "x": dx as i64, "y": dy as i64},
                {"type": "pointerDown", "button": 0},
                {"type": "pause", "duration": 50},
                {"type": "pointerUp", "button": 0},
            ],
        }]});
        self.session_call("POST", "/actions", Some(actions));
    }

    /// Clears the input `css` and types `text` into it (key events, `input` and `change`).
    #[track_caller]
    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.session_call("POST", &format!("/element/{el}/clear"), Some(json!({})));
        self.session_call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The rendered text of the element `css` (`innerText`-like: hidden text left out).
    #[track_caller]
    pub fn text(&self, css: &str) -> String {
        let el = self.find(css);
        let v = self.session_call("GET", &format!("/element/{el}/text"), None);
        v.as_str()
            .unwrap_or_else(|| panic!("GET /element/text `{css}` answered no string: {v}"))
            .to_owned()
    }

    /// The browser console's errors since the last call (chromedriver hands each log entry
    /// out once): `console.error` calls, uncaught exceptions and rejections, and failed loads
    /// (a 404 included), each as chromedriver words it, e.g. `http://127.0.0.1:4000/app.js
    /// 12:7 Uncaught TypeError: ...`. Other console levels are read and dropped.
    #[track_caller]
    pub fn console_errors(&self) -> Vec<String> {
        let v = self.session_call("POST", "/se/log", Some(json!({ "type": "browser" })));
        let entries = v
            .as_array()
            .unwrap_or_else(|| panic!("POST /se/log answered no list: {v}"));
        entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// The processes that carry this browser's profile on their command line (the browser
    /// and its renderers): no other process can, the profile's folder being new.
    fn browser_pids(&self) -> Vec<String> {
        let flag = format!(
            "--user-data-dir={}",
            self.dir.path().join("profile").display()
        );
        let Ok(procs) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == flag.as_bytes()))
            })
            .collect()
    }
}

impl Drop for Browser {
    /// Ends the session (chromedriver closes the browser), kills whatever of the browser is
    /// left (a hung driver), then the driver. Never panics: it may run while a test unwinds.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = http::request_with_timeout("DELETE", &url, &[], None, Duration::from_secs(10));
            let t = Instant::now();
            while !self.browser_pids().is_empty() && t.elapsed() < Duration::from_secs(3) {
                thread::sleep(Duration::from_millis(50));
            }
        }
        let pids = self.browser_pids();
        if !pids.is_empty() {
            // The shell's kill: the only way to signal a process we did not spawn without libc.
            let _ = Command::new("sh")
                .args(["-c", "kill -KILL \"$@\"", "sh"])
                .args(&pids)
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// JavaScript's truthiness of a JSON value (`NaN` arrives as `null`).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The first of `name` on PATH (or `name` itself when it is a path) and `extra` that is an
/// executable file.
fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let on_path: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
            .unwrap_or_default()
    };
    on_path
        .into_iter()
        .chain(extra.iter().map(PathBuf::from))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Standard or URL-safe base64, padding and line breaks allowed.
fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b'\r' | b'\n' | b' ' => continue,
            _ => panic!("not base64: byte {c:#04x} in {:?}", &s[..s.len().min(80)]),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// A 301 x 201 canvas cleared to red by WebGL (odd sizes: the centre is not a whole
    /// pixel), a button, an input, and a log of the canvas's mouse events.
    const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>webgl</title><link rel="icon" href="data:,"></head>
<body style="margin:0">
<canvas id="c" width="301" height="201" style="display:block; margin:17px 0 0 23px"></canvas>
<button id="b">press me</button> <span id="out"></span> <input id="in">
<script>
const canvas = document.getElementById('c');
const gl = canvas.getContext('webgl');
gl.clearColor(1, 0, 0, 1);
gl.clear(gl.COLOR_BUFFER_BIT);
window.drawn = true;
window.events = [];
for (const t of ['mousedown', 'mouseup', 'click']) canvas.addEventListener(t, e => events.push([t, e.offsetX, e.offsetY, e.button]));
let n = 0;
document.getElementById('b').addEventListener('click', () => { document.getElementById('out').textContent = 'clicked ' + (++n); });
console.log('not an error');
console.error('deliberate console error');
setTimeout(() => { throw new Error('deliberate uncaught error'); }, 0);
</script></body></html>"#;

    /// Serves [`PAGE`] at every path from a thread, for the rest of the process.
    fn serve_page() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}/", listener.local_addr().expect("local address"));
        thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(n @ 1..) => req.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", PAGE.len());
                let _ = s
                    .write_all(head.as_bytes())
                    .and_then(|()| s.write_all(PAGE.as_bytes()));
            }
        });
        url
    }

    fn panic_message(r: std::thread::Result<()>) -> String {
        let e = r.expect_err("it should have panicked");
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("aGVsbG8="), b"hello");
        assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
        assert_eq!(base64_decode("aGk\n"), b"hi");
        assert_eq!(base64_decode("-_8="), [0xfb, 0xff]);
        assert_eq!(base64_decode(""), b"");
    }

    #[test]
    fn browser_draws_webgl() {
        let t = Instant::now();
        let Some(b) = Browser::start() else { return };
        eprintln!("browser session started in {:?}", t.elapsed());
        let url = serve_page();
        b.goto(&url);
        assert_eq!(
            b.eval("return !!document.createElement('canvas').getContext('webgl')"),
            true,
            "WebGL is available"
        );
        assert_eq!(
            b.wait_for("window.drawn && document.title", Duration::from_secs(10)),
            "webgl"
        );
        assert_eq!(
            b.eval("return [innerWidth, devicePixelRatio]"),
            json!([1400, 1])
        );

        b.click("#b");
        assert_eq!(b.text("#out"), "clicked 1");

        // Clicks land where asked, also on the first and last pixels of the odd-sized canvas
        // (an offset from a centre of 150.5, 100.5 would miss them by one).
        for (x, y) in [(10.0, 10.0), (290.0, 190.0), (0.0, 0.0), (300.0, 200.0)] {
            b.eval("window.events = []");
            b.click_at("#c", x, y);
            let events = b.wait_for("events.length >= 3 && events", Duration::from_secs(10));
            let events = events.as_array().expect("a list of events");
            let kinds: Vec<&str> = events.iter().map(|e| e[0].as_str().unwrap_or("")).collect();
            assert_eq!(kinds, ["mousedown", "mouseup", "click"], "{events:?}");
            for e in events {
                let (ex, ey) = (
                    e[1].as_f64().expect("offsetX"),
                    e[2].as_f64().expect("offsetY"),
                );
                assert!(
                    (ex - x).abs() <= 2.0 && (ey - y).abs() <= 2.0,
                    "clicked at ({x}, {y}), the page saw {e}"
                );
                assert_eq!(e[3], 0, "button 0: {e}");
            }
        }

        b.type_into("#in", "first");
        b.type_into("#in", "héllo wörld");
        assert_eq!(
            b.eval("return document.getElementById('in').value"),
            "héllo wörld",
            "type_into clears first"
        );

        assert_eq!(
            b.eval_async(
                "const done = arguments[arguments.length - 1]; setTimeout(() => done(6 * 7), 20)"
            ),
            42
        );

        let errors = b.console_errors();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("deliberate console error")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("Uncaught Error: deliberate uncaught error")),
            "{errors:?}"
        );
        assert!(
            !errors.iter().any(|e| e.contains("not an error")),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            b.console_errors().is_empty(),
            "each entry is handed out once"
        );

        let png = b.screenshot_png();
        let img = image::load_from_memory(&png)
            .expect("the screenshot is a PNG")
            .to_rgba8();
        assert_eq!(img.width(), 1400, "one pixel per CSS pixel");
        let red = |x: u32, y: u32| {
            let p = img.get_pixel(x, y);
            p[0] > 200 && p[1] < 50 && p[2] < 50
        };
        let n_red = (0..img.height())
            .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| red(x, y))
            .count();
        assert!(
            n_red >= 301 * 201 * 9 / 10,
            "{n_red} red pixels, the canvas has {}",
            301 * 201
        );
        assert!(
            red(23, 17)
                && red(23 + 300, 17 + 200)
                && !red(22, 17)
                && !red(23, 16)
                && !red(23 + 301, 17),
            "the canvas is at (23, 17), 301 x 201"
        );

        // Failures say what failed and show the page.
        let msg = panic_message(catch_unwind(AssertUnwindSafe(|| {
            b.wait_for("window.never", Duration::from_millis(300));
        })));
        assert!(
            msg.contains("`window.never` is still not true") && msg.contains("press me clicked 1"),
            "{msg}"
        );
        let msg = panic_message(catch_unwind(AssertUnwindSafe(|| {
            b.text("#nothing");
        })));
        assert!(
            msg.contains("POST /session/")
                && msg.contains("/element: no such element")
                && msg.contains("#nothing"),
            "{msg}"
        );
        let msg = panic_message(catch_unwind(AssertUnwindSafe(|| {
            b.eval("throw new Error('bad script')");
        })));
        assert!(
            msg.contains("/execute/sync: javascript error") && msg.contains("bad script"),
            "{msg}"
        );

        b.reload();
        assert_eq!(
            b.wait_for(
                "window.drawn && document.getElementById('out').textContent === ''",
                Duration::from_secs(10)
            ),
            true
        );

        let profile = b.dir.path().join("profile");
        let pids = b.browser_pids();
        assert!(
            !pids.is_empty(),
            "the browser runs with its profile {}",
            profile.display()
        );
        drop(b);
        let alive: Vec<&String> = pids
            .iter()
            .filter(|p| fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| !c.is_empty()))
            .collect();
        assert!(
            alive.is_empty(),
            "browser processes left after drop: {alive:?}"
        );
        assert!(!profile.exists(), "the profile is removed");
    }
}
