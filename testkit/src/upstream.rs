//! An upstream that records what it received, for end-to-end tests of real gateways.
//!
//! A header the gate strips or sets is only proven at the far side of the gateway: the
//! Envoy, NGINX and Kong tests point their upstream at a [`RecordingUpstream`] and assert on
//! the requests it saw, each with its target exactly as sent and its headers in order.
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let upstream = attestgate_testkit::upstream::RecordingUpstream::start()?;
//! let mut client = std::net::TcpStream::connect(("127.0.0.1", upstream.port()))?;
//! client.write_all(b"GET /a%2Fb HTTP/1.1\r\nHost: x\r\nX-Device-Id: d1\r\n\r\n")?;
//! let mut reply = [0u8; 12];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"HTTP/1.1 200");
//!
//! let seen = upstream.requests();
//! assert_eq!(seen[0].target, "/a%2Fb");
//! assert_eq!(seen[0].values("x-device-id"), ["d1"]);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The body of every answer: what the echo upstream of the examples answers too, so a test's
/// "reached the upstream" check holds for either.
pub const REPLY_BODY: &str = "{\"upstream\":\"reached\"}\n";

/// One request as the upstream received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// The request target exactly as sent (`/a%2Fb?x=1`).
    pub target: String,
    /// The headers in arrival order, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl ReceivedRequest {
    /// Every value of the header `name` (lower case), in order.
    ///
    /// ```
    /// let request = attestgate_testkit::upstream::ReceivedRequest {
    ///     target: "/".into(),
    ///     headers: vec![("x-a".into(), "1".into()), ("x-a".into(), "2".into())],
    /// };
    /// assert_eq!(request.values("x-a"), ["1", "2"]);
    /// assert!(request.values("x-b").is_empty());
    /// ```
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the header `name` (lower case) arrived at all.
    pub fn has(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }

    /// The headers that arrived with this exact value (a test's forgeries, say).
    ///
    /// ```
    /// let request = attestgate_testkit::upstream::ReceivedRequest {
    ///     target: "/".into(),
    ///     headers: vec![("x_a".into(), "spoofed".into()), ("x-a".into(), "d1".into())],
    /// };
    /// assert_eq!(request.valued("spoofed"), [&("x_a".to_owned(), "spoofed".to_owned())]);
    /// ```
    pub fn valued(&self, value: &str) -> Vec<&(String, String)> {
        self.headers.iter().filter(|(_, v)| v == value).collect()
    }

    /// Every value an application behind a CGI-style gateway reads as the header `name`:
    /// RFC 3875 §4.1.18 names the variable `HTTP_` + the name upper-cased with `-` as `_`,
    /// so `X-Device-Id` and `x_device_id` both arrive as `HTTP_X_DEVICE_ID` (as in WSGI, Rack
    /// and PHP). A gate header is only the gate's if this holds its one value.
    ///
    /// ```
    /// let request = attestgate_testkit::upstream::ReceivedRequest {
    ///     target: "/".into(),
    ///     headers: vec![("x_device_id".into(), "spoofed".into()), ("x-device-id".into(), "d1".into())],
    /// };
    /// assert_eq!(request.cgi_values("X-Device-Id"), ["spoofed", "d1"]);
    /// ```
    pub fn cgi_values(&self, name: &str) -> Vec<&str> {
        let variable = cgi_variable(name);
        self.headers
            .iter()
            .filter(|(n, _)| cgi_variable(n) == variable)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A client's forgeries: `(spelling, "spoofed")` for every [`spellings`] of each name, but
/// for the spellings of `token_header` that the gate reads as the token (any case).
///
/// ```
/// use attestgate_testkit::upstream::spoofed_spellings;
/// let spoofs = spoofed_spellings(&["approov-token"], "approov-token");
/// assert_eq!(spoofs.len(), 4); // x_, X_, title_ and . spellings: not the dashed three
/// assert!(spoofs.iter().all(|(name, value)| !name.contains('-') && value == "spoofed"));
/// ```
pub fn spoofed_spellings(names: &[&str], token_header: &str) -> Vec<(String, String)> {
    names
        .iter()
        .flat_map(|name| spellings(name))
        .filter(|name| !name.eq_ignore_ascii_case(token_header))
        .map(|name| (name, "spoofed".to_owned()))
        .collect()
}

/// The gate-owned headers of the end-to-end tests' usual config (`approov-token`, a
/// `claim_to_headers` target `x-device-id`, the monitor headers) in every spelling but the
/// token header's own: what those tests send to prove none reaches the upstream.
///
/// ```
/// let spoofs = attestgate_testkit::upstream::spoofed_gate_headers();
/// assert_eq!(spoofs.len(), 3 * 7 + 4);
/// ```
pub fn spoofed_gate_headers() -> Vec<(String, String)> {
    spoofed_spellings(
        &[
            "x-device-id",
            "x-attestgate-decision",
            "x-attestgate-reason",
            "approov-token",
        ],
        "approov-token",
    )
}

/// `X-Device-Id` → `HTTP_X_DEVICE_ID` (RFC 3875 §4.1.18).
fn cgi_variable(name: &str) -> String {
    format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// The seven spellings of a header name that issue #26 sent through every host: as given,
/// upper case, title case, and the same three with `_` for `-`, and `.` for `-`. A gate must
/// keep every one of them from the upstream.
///
/// ```
/// let spellings = attestgate_testkit::upstream::spellings("x-device-id");
/// assert_eq!(spellings, ["x-device-id", "X-DEVICE-ID", "X-Device-Id", "x_device_id",
///                        "X_DEVICE_ID", "X_Device_Id", "x.device.id"]);
/// ```
pub fn spellings(name: &str) -> Vec<String> {
    let title = |separator: char| {
        name.split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                })
            })
            .collect::<Vec<_>>()
            .join(&separator.to_string())
    };
    let lower = name.to_ascii_lowercase();
    let underscored = lower.replace('-', "_");
    vec![
        lower.clone(),
        lower.to_ascii_uppercase(),
        title('-'),
        underscored.clone(),
        underscored.to_ascii_uppercase(),
        title('_'),
        lower.replace('-', "."),
    ]
}

/// A loopback HTTP/1.1 server that answers every request 200 with [`REPLY_BODY`] and keeps
/// what it received. It serves each connection on its own thread (keep-alive, bodies by
/// `content-length`) until the test process ends.
#[derive(Debug)]
pub struct RecordingUpstream {
    port: u16,
    seen: Arc<Mutex<Vec<ReceivedRequest>>>,
}

impl RecordingUpstream {
    /// Binds a free port on 127.0.0.1 and starts serving.
    pub fn start() -> io::Result<RecordingUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::Builder::new()
            .name("recording-upstream".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let record = Arc::clone(&record);
                    // A connection that cannot get a thread is dropped: the test sees it.
                    let _ = std::thread::Builder::new().spawn(move || serve(stream, &record));
                }
            })?;
        Ok(RecordingUpstream { port, seen })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.lock().clone()
    }

    /// How many requests were received so far.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The first request that carried the header `name: value` (name in lower case), as a
    /// test tags each of its requests with an id.
    pub fn find(&self, name: &str, value: &str) -> Option<ReceivedRequest> {
        self.lock()
            .iter()
            .find(|r| r.headers.iter().any(|(n, v)| n == name && v == value))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ReceivedRequest>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Requests on one connection until it closes: the head, then a `content-length` body.
fn serve(mut stream: TcpStream, record: &Mutex<Vec<ReceivedRequest>>) {
    // A gateway that holds a connection open and idle must not keep this thread forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
            continue;
        };
        let request = parse_head(buffer.get(..end).unwrap_or_default());
        let length = request
            .values("content-length")
            .first()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let whole = end + 4 + length;
        while buffer.len() < whole {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
        buffer.drain(..whole);
        record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{REPLY_BODY}",
            REPLY_BODY.len()
        );
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn parse_head(head: &[u8]) -> ReceivedRequest {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    ReceivedRequest { target, headers }
}

/// How a [`DocumentServer`] answers one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
    /// Chunked transfer encoding instead of a `content-length`.
    pub chunked: bool,
}

impl Answer {
    /// A 200 with this body and a `content-length`.
    ///
    /// ```
    /// let answer = attestgate_testkit::upstream::Answer::ok("{}");
    /// assert_eq!((answer.status, answer.chunked), (200, false));
    /// ```
    pub fn ok(body: impl Into<String>) -> Answer {
        Answer {
            status: 200,
            body: body.into(),
            chunked: false,
        }
    }
}

/// A loopback HTTP/1.1 server for the documents a gateway fetches (a JWKS, a denylist): it
/// answers each path as told (404 for others), counts the requests per path, and can go down,
/// after which connections are refused. The end-to-end tests of fetched keys use it in Envoy
/// and NGINX.
///
/// ```
/// use std::io::{Read, Write};
/// use attestgate_testkit::upstream::{Answer, DocumentServer};
///
/// let server = DocumentServer::start()?;
/// server.answer("/jwks.json", Answer::ok(r#"{"keys":[]}"#));
/// let mut client = std::net::TcpStream::connect(("127.0.0.1", server.port()))?;
/// client.write_all(b"GET /jwks.json HTTP/1.1\r\nHost: keys\r\n\r\n")?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with(r#"{"keys":[]}"#));
/// assert_eq!(server.served("/jwks.json"), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct DocumentServer {
    port: u16,
    answers: Arc<Mutex<BTreeMap<String, Answer>>>,
    delays: Arc<Mutex<BTreeMap<String, Duration>>>,
    served: Arc<Mutex<BTreeMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DocumentServer {
    /// Listens on a free loopback port, answering 404 until told otherwise.
    pub fn start() -> io::Result<DocumentServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let answers: Arc<Mutex<BTreeMap<String, Answer>>> = Arc::default();
        let delays: Arc<Mutex<BTreeMap<String, Duration>>> = Arc::default();
        let served: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (a, d, n, halt) = (
            Arc::clone(&answers),
            Arc::clone(&delays),
            Arc::clone(&served),
            Arc::clone(&stop),
        );
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = answer_one(stream, &a, &d, &n);
            }
        });
        Ok(DocumentServer {
            port,
            answers,
            delays,
            served,
            stop,
            thread: Some(thread),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on, answers `path` with `answer`.
    pub fn answer(&self, path: &str, answer: Answer) {
        self.answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), answer);
    }

    /// From now on, answers `path` only after `by` (a slow key server; it answers one request
    /// at a time, so others wait too).
    pub fn delay(&self, path: &str, by: Duration) {
        self.delays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), by);
    }

    /// How many requests for `path` it has had.
    pub fn served(&self, path: &str) -> usize {
        self.served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Stops listening: connections are refused from now on.
    pub fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DocumentServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Reads one request's head and answers it as told, counting its path.
fn answer_one(
    mut stream: TcpStream,
    answers: &Mutex<BTreeMap<String, Answer>>,
    delays: &Mutex<BTreeMap<String, Duration>>,
    served: &Mutex<BTreeMap<String, usize>>,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(k) => request.extend_from_slice(chunk.get(..k).unwrap_or_default()),
        }
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("").to_owned();
    *served
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(path.clone())
        .or_default() += 1;
    let delay = delays
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&path)
        .copied();
    if let Some(delay) = delay {
        std::thread::sleep(delay);
    }
    let answer = answers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&path)
        .cloned()
        .unwrap_or(Answer {
            status: 404,
            body: "not here".to_owned(),
            chunked: false,
        });
    let head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\nconnection: close\r\n",
        answer.status
    );
    let reply = if answer.chunked {
        let mut body = String::new();
        for piece in answer.body.as_bytes().chunks(7) {
            body.push_str(&format!("{:x}\r\n", piece.len()));
            body.push_str(&String::from_utf8_lossy(piece));
            body.push_str("\r\n");
        }
        format!("{head}transfer-encoding: chunked\r\n\r\n{body}0\r\n\r\n")
    } else {
        format!(
            "{head}content-length: {}\r\n\r\n{}",
            answer.body.len(),
            answer.body
        )
    };
    stream.write_all(reply.as_bytes())
}
