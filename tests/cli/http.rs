//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`, for the tests that talk to
//! a server on loopback (`dagrun serve`, and chromedriver for [`crate::browser`]) without an
//! HTTP crate. Plain `http://` only; one request per connection (`Connection: close`); no
//! `Accept-Encoding`, so bodies come back uncompressed. Reads `Content-Length`, chunked and
//! read-to-EOF bodies. [`raw`] writes arbitrary bytes, for malformed and hostile requests.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect, read and write timeout of [`request`].
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`raw`] waits for more bytes before it returns what it has.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest status or header line accepted: a server going wrong cannot make the test eat
/// memory.
const MAX_LINE: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// In the order the server sent them, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the status and body when it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}):\n{}",
                self.status,
                self.text()
            )
        })
    }
}

/// `method url`, with extra `headers` and an optional `body`, [`TIMEOUT`] for each step.
/// `url` is `http://HOST:PORT/path?query` (port 80 when left out). Sends `Host`,
/// `Connection: close` and, with a body, `Content-Length` (unless `headers` has one).
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<Response> {
    request_with_timeout(method, url, headers, body, TIMEOUT)
}

/// [`request`] with another timeout for connecting and for each read and write.
pub fn request_with_timeout(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Response> {
    let (authority, path) = split_url(url)?;
    let stream = connect(authority, timeout)?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
    }
    head.push_str("\r\n");
    let mut w = &stream;
    w.write_all(head.as_bytes())?;
    if let Some(b) = body {
        w.write_all(b)?;
    }
    w.flush()?;
    read_response(&mut BufReader::new(&stream), method)
}

/// `GET url`.
pub fn get(url: &str) -> io::Result<Response> {
    request("GET", url, &[], None)
}

/// `POST url` with `value` as a JSON body.
pub fn post_json(url: &str, value: &serde_json::Value) -> io::Result<Response> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    request(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(&body),
    )
}

/// Writes `bytes` as they are to `addr` (`HOST:PORT`, or a URL whose authority is taken) and
/// returns every byte that comes back until the server closes the connection or sends nothing
/// for [`RAW_TIMEOUT`]. The write side stays open (a server may be waiting for the rest of a
/// request), so put `Connection: close` into a well-formed request or wait the timeout out.
/// A server that closes or resets the connection while the bytes are still being written is
/// not an error: what it answered before is returned.
pub fn raw(addr: &str, bytes: &[u8]) -> io::Result<Vec<u8>> {
    raw_with_timeout(addr, bytes, RAW_TIMEOUT)
}

/// [`raw`] with another quiet-time limit.
pub fn raw_with_timeout(addr: &str, bytes: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let authority = match addr.strip_prefix("http://") {
        Some(rest) => split_url(&format!("http://{rest}"))?.0.to_owned(),
        None => addr.to_owned(),
    };
    let mut stream = connect(&authority, timeout)?;
    match stream.write_all(bytes).and_then(|()| stream.flush()) {
        Ok(()) => {}
        Err(e) if closed(&e) => {}
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if closed(&e)
                    || matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    Ok(out)
}

fn closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// `http://HOST:PORT/path?q` -> (`HOST:PORT`, `/path?q`); a fragment is dropped, and a
/// query without a path goes on `/`.
fn split_url(url: &str) -> io::Result<(&str, String)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not an http:// URL: {url}"),
        )
    })?;
    let rest = rest.split('#').next().unwrap_or(rest);
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no host in URL: {url}"),
        ));
    }
    Ok((authority, path))
}

fn connect(authority: &str, timeout: Duration) -> io::Result<TcpStream> {
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{authority} resolves to no address"),
    );
    for addr in target.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// One CRLF- (or LF-) terminated line without its terminator; EOF before it is an error.
fn read_line(r: &mut impl BufRead, what: &str) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)?;
    if n == 0 || line.last() != Some(&b'\n') {
        let kind = if n as u64 == MAX_LINE {
            io::ErrorKind::InvalidData
        } else {
            io::ErrorKind::UnexpectedEof
        };
        return Err(io::Error::new(
            kind,
            format!(
                "connection ended inside the {what}: {:?}",
                String::from_utf8_lossy(&line)
            ),
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|e| {
        invalid(format!(
            "{what} is not UTF-8: {:?}",
            String::from_utf8_lossy(e.as_bytes())
        ))
    })
}

fn read_response(r: &mut impl BufRead, method: &str) -> io::Result<Response> {
    loop {
        let line = read_line(r, "status line")?;
        let mut parts = line.splitn(3, ' ');
        let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let status: u16 = match code.parse() {
            Ok(s) if version.starts_with("HTTP/") && (100..600).contains(&s) => s,
            _ => return Err(invalid(format!("bad status line: {line:?}"))),
        };
        let mut headers = Vec::new();
        loop {
            let h = read_line(r, "headers")?;
            if h.is_empty() {
                break;
            }
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line: {h:?}")))?;
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        // 100 Continue, 103 Early Hints: the real answer follows.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 || status == 101 {
            return Ok(resp);
        }
        let chunked = resp.header("transfer-encoding").is_some_and(|te| {
            te.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("chunked"))
        });
        if chunked {
            resp.body = read_chunked(r)?;
        } else if let Some(len) = resp.header("content-length") {
            let len: u64 = len
                .parse()
                .map_err(|_| invalid(format!("bad Content-Length: {len:?}")))?;
            r.take(len).read_to_end(&mut resp.body)?;
            if (resp.body.len() as u64) < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "body ended after {} of {len} bytes (Content-Length)",
                        resp.body.len()
                    ),
                ));
            }
        } else {
            r.read_to_end(&mut resp.body)?;
        }
        return Ok(resp);
    }
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r, "chunk size")?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(hex, 16)
            .map_err(|_| invalid(format!("bad chunk size line: {line:?}")))?;
        if size == 0 {
            // Trailers, if any, up to the blank line.
            while !read_line(r, "chunked trailers")?.is_empty() {}
            return Ok(body);
        }
        let before = body.len();
        r.take(size).read_to_end(&mut body)?;
        if ((body.len() - before) as u64) < size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("chunk ended after {} of {size} bytes", body.len() - before),
            ));
        }
        if !read_line(r, "chunk end")?.is_empty() {
            return Err(invalid("chunk data longer than its size".to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;
    use std::time::Instant;

    /// A server on loopback that answers each of `answers.len()` connections, in order, with
    /// its canned bytes once the request's head (and `Content-Length` body) is in, and returns
    /// the requests it read.
    fn canned(answers: Vec<Vec<u8>>) -> (String, thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address").to_string();
        let server = thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in answers {
                let (mut s, _) = listener.accept().expect("accept");
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end].lines().find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().expect("length"))
                        });
                        if req.len() >= end + 4 + len.unwrap_or(0) {
                            break;
                        }
                    }
                }
                seen.push(String::from_utf8_lossy(&req).into_owned());
                s.write_all(&answer).expect("answer");
            }
            seen
        });
        (addr, server)
    }

    #[test]
    fn client_reads_chunked_sized_and_to_eof_bodies_and_raw_bytes() {
        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\n{\"a\"\r\n7;ext=1\r\n: [1, 2\r\n2\r\n]}\r\n0\r\nX-Trailer: t\r\n\r\n";
        let answers = vec![
            chunked.to_vec(),
            b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\nX-Two: 2\r\n\r\nhello and more than the length".to_vec(),
            b"HTTP/1.0 404 Not Found\r\n\r\nuntil EOF".to_vec(),
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ];
        let (addr, server) = canned(answers);

        let r = get(&format!("http://{addr}/x?q=1#frag")).expect("chunked GET");
        assert_eq!(
            (r.status, r.header("CONTENT-TYPE")),
            (200, Some("application/json"))
        );
        assert_eq!(r.json(), serde_json::json!({"a": [1, 2]}));

        let r = post_json(
            &format!("http://{addr}/post"),
            &serde_json::json!({"k": "v"}),
        )
        .expect("POST");
        assert_eq!(
            (r.status, r.text().as_str(), r.header("x-two")),
            (201, "hello", Some("2"))
        );
        assert_eq!(r.headers[0], ("content-length".to_owned(), "5".to_owned()));

        let r = request(
            "DELETE",
            &format!("http://{addr}?a=b"),
            &[("X-Test", "yes")],
            None,
        )
        .expect("DELETE");
        assert_eq!(
            (r.status, r.text().as_str(), r.header("content-length")),
            (404, "until EOF", None)
        );

        let back = raw(&format!("http://{addr}/ignored"), b"NONSENSE\r\n\r\n").expect("raw");
        assert!(
            back.starts_with(b"HTTP/1.1 400 "),
            "{}",
            String::from_utf8_lossy(&back)
        );

        let seen = server.join().expect("server thread");
        assert!(
            seen[0].starts_with(&format!(
                "GET /x?q=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n"
            )),
            "{}",
            seen[0]
        );
        assert!(
            !seen[0].to_ascii_lowercase().contains("accept-encoding")
                && !seen[0].contains("Content-Length"),
            "{}",
            seen[0]
        );
        assert!(
            seen[1].starts_with("POST /post HTTP/1.1\r\n")
                && seen[1].contains("Content-Length: 9\r\n")
                && seen[1].ends_with("\r\n\r\n{\"k\":\"v\"}"),
            "{}",
            seen[1]
        );
        assert!(
            seen[2].starts_with("DELETE /?a=b HTTP/1.1\r\n") && seen[2].contains("X-Test: yes\r\n"),
            "{}",
            seen[2]
        );
        assert_eq!(seen[3], "NONSENSE\r\n\r\n");

        assert!(
            get(&format!("http://{addr}/")).is_err(),
            "nothing listens any more"
        );
        assert!(get("https://example.org/").is_err_and(|e| e.kind() == io::ErrorKind::InvalidInput));
    }

    #[test]
    fn raw_returns_what_came_before_a_quiet_connection_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address").to_string();
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.write_all(b"partial").expect("write");
            thread::sleep(Duration::from_millis(1500));
        });
        let t = Instant::now();
        let back = raw_with_timeout(&addr, b"GET / HTTP/1.1\r\n", Duration::from_millis(300))
            .expect("raw");
        assert_eq!(back, b"partial");
        assert!(
            t.elapsed() < Duration::from_millis(1400),
            "{:?}",
            t.elapsed()
        );
        server.join().expect("server thread");
    }
}
