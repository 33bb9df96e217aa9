//! A small threaded HTTP/1.1 server on 127.0.0.1 for the download tests: serves bytes by path,
//! honours `Range: bytes=N-` with 206, and can be told to misbehave, one fault per request.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the next request to a path gets instead of a plain answer.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// This status, no body.
    Status(u16),
    /// The headers promise everything; only this many body bytes are sent, then the connection
    /// is closed.
    CutAfter(usize),
    /// This many body bytes, then silence for the duration, then the connection is closed.
    Stall(usize, Duration),
    /// 200 and the whole body, whatever the request's range.
    IgnoreRange,
    /// 206, but the whole body with a `Content-Range` from byte 0.
    WrongRange,
    /// 200 without `Content-Length`, the body repeated until the client hangs up.
    Endless,
}

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) path: String,
    pub(crate) range: Option<String>,
}

#[derive(Default)]
struct Route {
    body: Vec<u8>,
    faults: VecDeque<Fault>,
    /// Stream the body in chunks of this size with this pause between them.
    slow: Option<(usize, Duration)>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    log: Vec<Request>,
}

/// The server; it runs until the test process ends.
pub(crate) struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = handle(conn, &state);
                });
            }
        });
        Self { port, state }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn serve(&self, path: &str, body: &[u8]) {
        let mut s = self.state.lock().unwrap();
        s.routes.entry(path.to_owned()).or_default().body = body.to_vec();
    }

    /// Queues a fault for the next request to `path` that has none queued before it.
    pub(crate) fn fault(&self, path: &str, fault: Fault) {
        let mut s = self.state.lock().unwrap();
        s.routes
            .get_mut(path)
            .expect("serve the path first")
            .faults
            .push_back(fault);
    }

    pub(crate) fn slow(&self, path: &str, slow: Option<(usize, Duration)>) {
        let mut s = self.state.lock().unwrap();
        s.routes.get_mut(path).expect("serve the path first").slow = slow;
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    pub(crate) fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }
}

fn handle(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_owned());
        }
    }
    let (body, fault, slow) = {
        let mut s = state.lock().unwrap();
        s.log.push(Request {
            path: path.clone(),
            range: range.clone(),
        });
        match s.routes.get_mut(&path) {
            Some(r) => (Some(r.body.clone()), r.faults.pop_front(), r.slow),
            None => (None, None, None),
        }
    };
    let mut out = conn;
    let Some(body) = body else {
        return respond(&mut out, "404 Not Found", &[], b"");
    };
    if let Some(Fault::Status(code)) = fault {
        return respond(&mut out, &format!("{code} Injected"), &[], b"");
    }
    if let Some(Fault::Endless) = fault {
        out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
        loop {
            out.write_all(&body)?;
        }
    }
    let total = body.len();
    let start = match (&fault, range.as_deref()) {
        (Some(Fault::IgnoreRange), _) | (_, None) => None,
        (_, Some(r)) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok()),
    };
    let (status, headers, payload) = match (start, &fault) {
        (Some(_), Some(Fault::WrongRange)) => (
            "206 Partial Content",
            vec![format!("Content-Range: bytes 0-{}/{total}", total - 1)],
            &body[..],
        ),
        (Some(n), _) if n >= total => {
            let h = vec![format!("Content-Range: bytes */{total}")];
            return respond(&mut out, "416 Range Not Satisfiable", &h, b"");
        }
        (Some(n), _) => (
            "206 Partial Content",
            vec![format!("Content-Range: bytes {n}-{}/{total}", total - 1)],
            &body[n..],
        ),
        (None, _) => ("200 OK", vec![], &body[..]),
    };
    let head = head(status, &headers, payload.len());
    out.write_all(head.as_bytes())?;
    match fault {
        Some(Fault::CutAfter(n)) => {
            out.write_all(&payload[..n.min(payload.len())])?;
            out.flush()?;
            let _ = out.shutdown(Shutdown::Both);
        }
        Some(Fault::Stall(n, pause)) => {
            out.write_all(&payload[..n.min(payload.len())])?;
            out.flush()?;
            std::thread::sleep(pause);
            let _ = out.shutdown(Shutdown::Both);
        }
        _ => {
            match slow {
                Some((chunk, pause)) => {
                    for c in payload.chunks(chunk) {
                        out.write_all(c)?;
                        out.flush()?;
                        std::thread::sleep(pause);
                    }
                }
                None => out.write_all(payload)?,
            }
            out.flush()?;
            let _ = out.shutdown(Shutdown::Write);
        }
    }
    Ok(())
}

fn head(status: &str, headers: &[String], len: usize) -> String {
    let mut h = format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n");
    for x in headers {
        h.push_str(x);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    headers: &[String],
    body: &[u8],
) -> std::io::Result<()> {
    out.write_all(head(status, headers, body.len()).as_bytes())?;
    out.write_all(body)?;
    out.flush()?;
    let _ = out.shutdown(Shutdown::Write);
    Ok(())
}
