//! The small HTTP/1.1 server side shared by `demo-site` and `--metrics`:
//! binding a listener, parsing a request (httparse) and building a response.
//! No threads here; callers own their sockets.

use std::net::{SocketAddr, TcpListener};

/// Longest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request body `parse` buffers; a larger one gets 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// A complete request: its head and how much of the buffer it used.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, e.g. `/page/2/`.
    pub path: String,
    /// Whether the connection ends after the response.
    pub close: bool,
    /// Bytes of the buffer this request took, head and body.
    pub used: usize,
    /// The `Host` header, as sent.
    pub host: Option<String>,
    /// The `Cookie` header, as sent.
    pub cookie: Option<String>,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// The `Origin` header, as sent.
    pub origin: Option<String>,
    /// The `X-Forwarded-Host` header (a proxy's public name), as sent.
    pub forwarded_host: Option<String>,
    /// Where the body lies in the buffer (empty without `Content-Length`).
    pub body: std::ops::Range<usize>,
}

/// What the buffered bytes hold so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet: read more.
    Partial,
    /// Unusable: answer with this status and close.
    Bad(u16),
    /// One whole request, body included (so the next one starts after it).
    Complete(Request),
}

/// Parses the first request in `buf`. A body (by `Content-Length`) must be
/// buffered whole, so a keep-alive POST does not leave its body to be read as
/// the next request. A chunked body is not read: the connection closes after
/// the response instead.
#[cfg(test)]
pub fn parse(buf: &[u8]) -> Parsed {
    parse_limited(buf, MAX_BODY)
}

/// `parse`, with a body larger than `max_body` bytes refused with 413.
pub fn parse_limited(buf: &[u8], max_body: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
        _ => return Parsed::Bad(400),
    };
    let raw = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let header = |name: &str| raw(name).map(|v| v.to_ascii_lowercase());
    let body = match header("content-length").map(|v| v.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) if n <= max_body => n,
        Some(Ok(_)) => return Parsed::Bad(413),
        Some(Err(_)) => return Parsed::Bad(400),
    };
    if buf.len() < head + body {
        return Parsed::Partial;
    }
    let connection = header("connection");
    let close = header("transfer-encoding").is_some()
        || match (req.version, connection.as_deref()) {
            (_, Some(v)) if v.contains("close") => true,
            (Some(0), Some(v)) => !v.contains("keep-alive"),
            (Some(0), None) => true,
            _ => false,
        };
    Parsed::Complete(Request {
        method: req.method.unwrap_or("GET").to_string(),
        path: req.path.unwrap_or("/").to_string(),
        close,
        used: head + body,
        host: raw("host"),
        cookie: raw("cookie"),
        authorization: raw("authorization"),
        origin: raw("origin"),
        forwarded_host: raw("x-forwarded-host"),
        body: head..head + body,
    })
}

/// Reads one request (and its body, at most `max_body` bytes) from `conn`
/// within `time`, for servers that answer one request per connection
/// (`--metrics`, the dashboard). `Err(Some(status))`: unusable, answer
/// with it and close; `Err(None)`: the client went away or was too slow.
pub fn read_one(
    conn: &mut std::net::TcpStream,
    time: std::time::Duration,
    max_body: usize,
) -> Result<(Request, Vec<u8>), Option<u16>> {
    use std::io::Read as _;
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_millis(250)));
    let _ = conn.set_write_timeout(Some(time));
    let deadline = std::time::Instant::now() + time;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        match parse_limited(&buf, max_body) {
            Parsed::Complete(req) => return Ok((req, buf)),
            Parsed::Bad(status) => return Err(Some(status)),
            Parsed::Partial if std::time::Instant::now() >= deadline => return Err(None),
            Parsed::Partial => match conn.read(&mut chunk) {
                Ok(0) => return Err(None),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Err(None),
            },
        }
    }
}

/// One complete response in one buffer, so it leaves in one write.
pub fn response(status: u16, ctype: &str, body: &[u8], head: bool, close: bool) -> Vec<u8> {
    response_with(status, ctype, &[], body, head, close)
}

/// `response` with extra header lines (`Set-Cookie`, `Location`, ...).
pub fn response_with(
    status: u16,
    ctype: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    head: bool,
    close: bool,
) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        302 => "Found",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nServer: qpipe\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head {
        out.extend_from_slice(body);
    }
    out
}

/// Binds `addr` with a deep backlog (port 0 picks a free port).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_is_complete_http() {
        let r = String::from_utf8(response(404, "text/html", b"<p>x</p>", false, true)).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 8\r\nServer: qpipe\r\nConnection: close\r\n\r\n<p>x</p>"
        );
        let head = response(200, "text/html", b"abc", true, false);
        assert!(String::from_utf8(head)
            .unwrap()
            .ends_with("Content-Length: 3\r\nServer: qpipe\r\n\r\n"));
    }

    #[test]
    fn a_body_is_part_of_its_request() {
        let post = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse(&post[..post.len() - 1]), Parsed::Partial);
        let mut two = post.to_vec();
        two.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            parse(&two),
            Parsed::Complete(Request {
                method: "POST".into(),
                path: "/x".into(),
                close: false,
                used: post.len(),
                host: None,
                cookie: None,
                authorization: None,
                origin: None,
                forwarded_host: None,
                body: post.len() - 5..post.len(),
            })
        );
        let Parsed::Complete(next) = parse(&two[post.len()..]) else {
            panic!("the GET after the body should parse");
        };
        assert_eq!((next.method.as_str(), next.path.as_str()), ("GET", "/"));
    }

    #[test]
    fn bad_lengths_and_versions() {
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Parsed::Bad(400)
        );
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(parse(big.as_bytes()), Parsed::Bad(413));
        let small = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(parse_limited(small, 10), Parsed::Bad(413));
        assert_eq!(parse(b"\x00garbage\r\n\r\n"), Parsed::Bad(400));
        let close = |raw: &[u8]| match parse(raw) {
            Parsed::Complete(r) => r.close,
            other => panic!("{other:?}"),
        };
        assert!(close(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(!close(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        assert!(!close(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(close(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(close(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }
}
