//! The native library in real NGINX (Debian's `nginx` and `libnginx-mod-http-lua`,
//! `scripts/install-nginx.sh`): `native/lua/attestgate.lua` in `access_by_lua_block`, loading
//! `libattestgate.so` through LuaJIT's FFI, in front of an upstream that records what reaches
//! it. Run with `make nginx-test` (feature `e2e`); `ATTESTGATE_LIB` names the library
//! (default: the debug build in the target directory), `NGINX` the binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attestgate_corpus::Runner;
use attestgate_policy::plan::{action_for, Action};
use attestgate_policy::Gate;
use attestgate_testkit::upstream::{Answer, DocumentServer, ReceivedRequest, RecordingUpstream};
use serde_json::Value;

const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const MODULES: &str = "/usr/lib/nginx/modules";
/// The header NGINX sets to its `$request_id` on both the reply and the proxied request, so a
/// test finds the request the upstream received for a reply.
const REQUEST_ID: &str = "x-test-request-id";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn library() -> PathBuf {
    let path = match std::env::var_os("ATTESTGATE_LIB") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root().join("target"), PathBuf::from)
            .join("debug/libattestgate.so"),
    };
    let path = std::fs::canonicalize(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: build it with `cargo build -p attestgate-native` or `make native`",
            path.display()
        )
    });
    path
}

/// Whether this process runs as root (effective uid 0, from /proc/self/status).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// NGINX started as root runs its workers as `nobody`, who cannot read a checkout in a
/// private folder (root's home, mode 700): the Lua module, the library, the Kong plugin.
/// The test NGINX then keeps its workers as root, so the tests pass from any checkout.
fn user_directive() -> &'static str {
    if running_as_root() {
        "user root;\n"
    } else {
        ""
    }
}

fn nginx_binary() -> String {
    std::env::var("NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".to_owned())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `count` distinct free ports. Every listener is held until all are chosen: one dropped at
/// once may be handed out again, and two server blocks on one port make NGINX answer one
/// gate's cases with the other's config.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}

/// A running nginx (master and workers), stopped on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    ports: Vec<u16>,
}

/// One server of the generated config: a gate on its own port.
struct Server {
    name: String,
    config: String,
    /// Directives for the server block.
    extra: String,
}

fn server(name: &str, config: String) -> Server {
    Server {
        name: name.to_owned(),
        config,
        extra: String::new(),
    }
}

/// The start of every test NGINX's config: the Lua modules, two workers, the run directory
/// `dir` for the pid, the log and the temp files, and `http {` opened.
fn preamble(dir: &Path) -> String {
    format!(
        r#"load_module {MODULES}/ndk_http_module.so;
load_module {MODULES}/ngx_http_lua_module.so;
{user}daemon off;
master_process on;
worker_processes 2;
error_log {dir}/error.log notice;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
"#,
        user = user_directive(),
        dir = dir.display(),
    )
}

fn conf(dir: &Path, servers: &[Server], ports: &[u16], upstream: u16) -> String {
    let lib = library();
    let mut init = String::new();
    let mut blocks = String::new();
    for (index, (server, port)) in servers.iter().zip(ports).enumerate() {
        let file = dir.join(format!("gate-{index}.json"));
        std::fs::write(&file, &server.config).unwrap();
        init.push_str(&format!(
            "    attestgate.gates[{}] = attestgate.init_file({:?})\n",
            index + 1,
            file.display().to_string()
        ));
        blocks.push_str(&format!(
            r#"
  # {name}
  server {{
    listen 127.0.0.1:{port};
    {extra}
    location / {{
      access_by_lua_block {{ local attestgate = require "attestgate"; attestgate.access(attestgate.gates[{n}]) }}
      # What the gate decided, for the test to compare (an allowed request's reason too).
      header_filter_by_lua_block {{
        local d = ngx.ctx.attestgate
        if d then ngx.header["x-test-decision"] = (d.allow and "allow" or "deny") .. ";" .. d.reason end
      }}
      add_header {request_id} $request_id always;
      proxy_pass http://recorder;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header {request_id} $request_id;
    }}
  }}
"#,
            name = server.name,
            request_id = REQUEST_ID,
            extra = server.extra,
            n = index + 1,
        ));
    }
    format!(
        r#"{preamble}  # The corpus sends tokens of 100 KiB and 80 extra headers: NGINX must hand them to the gate.
  large_client_header_buffers 8 256k;
  client_body_buffer_size 1m;
  lua_package_path "{lua}/?.lua;;";
  # The gate's counters, added up across workers (attestgate.metrics() prints them).
  lua_shared_dict attestgate_counters 1m;
{remote_dict}
  init_worker_by_lua_block {{ assert(require("attestgate").init_worker()) }}
  init_by_lua_block {{
    local attestgate = require "attestgate"
    attestgate.library = {lib:?}
    attestgate.gates = {{}}
{init}  }}
  upstream recorder {{ server 127.0.0.1:{upstream}; keepalive 16; }}
{blocks}}}
"#,
        preamble = preamble(dir),
        lua = root().join("native/lua").canonicalize().unwrap().display(),
        lib = lib.display().to_string(),
        remote_dict = if servers.iter().any(|s| s.extra.contains(NO_REMOTE_DICT)) {
            ""
        } else {
            "  # Fetched keys and denylists: one fetch for both workers.\n  lua_shared_dict attestgate_remote 1m;"
        },
    )
}

/// In a server's `extra`: leave `lua_shared_dict attestgate_remote` out of the config.
const NO_REMOTE_DICT: &str = "# no lua_shared_dict attestgate_remote";

impl Nginx {
    /// Writes the config and starts nginx; `Err(error log)` when it does not come up.
    fn try_start(name: &str, servers: &[Server], upstream: u16) -> Result<Nginx, String> {
        Nginx::try_start_with(name, servers.len(), |dir, ports| {
            conf(dir, servers, ports, upstream)
        })
    }

    /// Starts nginx on `count` free ports with the config `make(dir, ports)` writes.
    fn try_start_with(
        name: &str,
        count: usize,
        make: impl FnOnce(&Path, &[u16]) -> String,
    ) -> Result<Nginx, String> {
        let dir = std::env::temp_dir().join(format!(
            "attestgate-nginx-{name}-{}-{}",
            std::process::id(),
            unix_now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ports = free_ports(count);
        std::fs::write(dir.join("nginx.conf"), make(&dir, &ports)).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut nginx = Nginx { child, dir, ports };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = nginx.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(format!(
                    "nginx exited ({status}):\n{stderr}\n{}",
                    nginx.log()
                ));
            }
            let up = nginx
                .ports
                .iter()
                .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok());
            if up && nginx.workers().len() == 2 {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                return Err(format!("nginx did not come up in 20 s:\n{}", nginx.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start(name: &str, servers: &[Server], upstream: u16) -> Nginx {
        Nginx::try_start(name, servers, upstream).unwrap_or_else(|log| panic!("{log}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The worker processes: children of the master.
    fn workers(&self) -> Vec<u32> {
        let master = self.child.id();
        let mut workers = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: the comm may hold spaces, so read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(master) {
                workers.push(pid);
            }
        }
        workers.sort_unstable();
        workers
    }

    /// Each worker's resident memory, KiB.
    fn worker_rss(&self) -> Vec<(u32, u64)> {
        self.workers()
            .into_iter()
            .map(|pid| {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let kib = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                (pid, kib)
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let workers = self.workers();
        let master = self.child.id().to_string();
        // SIGQUIT: a graceful stop; the workers exit with the master.
        let _ = Command::new("kill").args(["-QUIT", &master]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in workers {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// A reply: status, lower-cased headers, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A keep-alive HTTP/1.1 client connection.
struct Conn {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Writes the request byte for byte (names and values as given) and reads one reply.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        authority: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Option<Reply> {
        let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            text.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).ok()?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> Option<Reply> {
        let mut chunk = [0u8; 16384];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .and_then(|s| s.parse().ok())?;
                let headers: BTreeMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                // nginx's replies here all carry a content-length (no chunked bodies).
                let length: usize = headers.get("content-length")?.parse().ok()?;
                if self.buffer.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&self.buffer[end + 4..end + 4 + length])
                        .into_owned();
                    self.buffer.drain(..end + 4 + length);
                    return Some(Reply {
                        status,
                        headers,
                        body,
                    });
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// What a runner saw of one decision.
#[derive(Debug, PartialEq, Eq)]
struct Seen1 {
    allow: bool,
    status: u16,
    reason: String,
}

/// The shared corpus through real NGINX: every gate on its own server, every case as a raw
/// HTTP/1.1 request. Each decision (status, reason) must equal the native core's, and what
/// reached the upstream must be exactly what the core's plan says: allowed requests with the
/// planned headers removed and set, denied ones never.
#[test]
fn the_corpus_decides_the_same_in_nginx_as_natively() {
    let corpus = attestgate_corpus::load(&attestgate_corpus::cases_dir()).unwrap();
    let mut materialized = corpus.materialize(unix_now()).unwrap();
    // NGINX's clock moves while the cases run: leave out the few cases whose outcome would
    // change within a minute (named on stderr).
    let dropped = materialized.retain_stable(60).unwrap();
    // A gate this host refuses at load (it needs what the native library lacks) would stop
    // NGINX from starting: it is left out here, and its refusal is shown by the library's own
    // tests (src/tests.rs) and by `a_bad_config_refuses_to_start`.
    let refused: Vec<String> = materialized
        .gates
        .iter()
        .filter_map(|gate| {
            Some(format!(
                "{}: {}",
                gate.name,
                gate.refused.get(&Runner::Nginx)?
            ))
        })
        .collect();
    materialized
        .gates
        .retain(|gate| !gate.refused.contains_key(&Runner::Nginx));
    for note in &refused {
        eprintln!("refused at load here, not run: {note}");
    }
    let recorder = RecordingUpstream::start().unwrap();
    let servers: Vec<Server> = materialized
        .gates
        .iter()
        .map(|gate| Server {
            name: gate.name.clone(),
            config: gate.config.to_string(),
            extra: String::new(),
        })
        .collect();
    let nginx = Nginx::start("corpus", &servers, recorder.port());
    // Each gate's load line says how its policy runs: every corpus policy as a compiled plan.
    let log = nginx.log();
    let mut summaries = 0;
    for gate in &materialized.gates {
        let native = Gate::from_json(&gate.config.to_string()).unwrap();
        if let Some(summary) = native.policy_summary() {
            assert!(
                summary.contains("compiled to a plan"),
                "{}: {summary}",
                gate.name
            );
            assert!(
                log.contains(&format!("attestgate: {summary}")),
                "`{summary}` not logged:\n{log}"
            );
            summaries += 1;
        }
    }
    assert!(summaries > 0, "no corpus gate has a policy");
    let (mut failures, mut ran, mut not_here, mut allowed, mut nginx_own) =
        (Vec::new(), 0, 0, 0, 0);
    for (gate, port) in materialized.gates.iter().zip(&nginx.ports) {
        let native = Gate::from_json(&gate.config.to_string()).unwrap();
        for case in &gate.cases {
            let Some(expect) = gate.expect_for(case, Runner::Nginx) else {
                not_here += 1;
                continue;
            };
            ran += 1;
            let label = format!("{}/{}", gate.name, case.name);
            let request = &case.request;
            // A connection per case: NGINX closes one after some of its own refusals.
            let reply = match Conn::open(*port).send(
                &request.method,
                &request.path,
                &request.authority,
                &request.headers,
                b"",
            ) {
                Some(reply) => reply,
                None => {
                    failures.push(format!("{label}: no reply"));
                    continue;
                }
            };
            if expect.reason.is_empty() {
                // NGINX answers itself before the gate runs (the case's override says why):
                // no decision, nothing upstream.
                let id = reply.header(REQUEST_ID).unwrap_or_default();
                if reply.status != expect.status
                    || reply.header("x-test-decision").is_some()
                    || recorder.find(REQUEST_ID, id).is_some()
                {
                    failures.push(format!(
                        "{label}: expected NGINX's own {}, got {reply:?}",
                        expect.status
                    ));
                }
                nginx_own += 1;
                continue;
            }
            let gate_request = request.to_request();
            let decision = native.check(&gate_request, materialized.now);
            let want = Seen1 {
                allow: decision.allow,
                status: decision.status,
                reason: decision.reason.as_str().to_owned(),
            };
            // The reason: the gate's (x-test-decision, from ngx.ctx), and on a denial also
            // the reply's header and JSON body, which must agree.
            let told = reply.header("x-test-decision").unwrap_or("none;");
            let (verdict, reason) = told.split_once(';').unwrap_or(("none", ""));
            let seen = Seen1 {
                allow: verdict == "allow",
                status: reply.status,
                reason: reason.to_owned(),
            };
            if seen != want {
                failures.push(format!(
                    "{label}: native {want:?}, nginx {seen:?} {reply:?}"
                ));
                continue;
            }
            let meets = expect.allow == seen.allow
                && expect.status == seen.status
                && expect.reason == seen.reason;
            if !meets {
                failures.push(format!(
                    "{label}: the case expects {expect:?}, nginx {seen:?}"
                ));
            }
            let id = reply.header(REQUEST_ID).unwrap_or_default();
            let upstream = recorder.find(REQUEST_ID, id);
            match (action_for(&native, &decision, &gate_request), upstream) {
                (Action::Respond { body, .. }, None) => {
                    let json: Value = serde_json::from_str(&reply.body).unwrap_or_default();
                    if reply.body != body
                        || json["error"] != want.reason.as_str()
                        || reply.header("x-attestgate-reason") != Some(want.reason.as_str())
                        || reply.header("content-type") != Some("application/json")
                    {
                        failures.push(format!(
                            "{label}: denial reply {reply:?}, native body {body}"
                        ));
                    }
                }
                (Action::Continue { remove, set }, Some(ReceivedRequest { target, headers })) => {
                    allowed += 1;
                    if target != request.path {
                        failures.push(format!(
                            "{label}: upstream got {target}, sent {}",
                            request.path
                        ));
                    }
                    for name in &remove {
                        let kept = set.iter().any(|(n, _)| n == name);
                        if !kept && headers.iter().any(|(n, _)| n == name) {
                            failures.push(format!("{label}: {name} reached the upstream"));
                        }
                    }
                    for (name, value) in &set {
                        let copies: Vec<&String> = headers
                            .iter()
                            .filter(|(n, _)| n == name)
                            .map(|(_, v)| v)
                            .collect();
                        if copies != [value] {
                            failures.push(format!(
                                "{label}: upstream got {name}: {copies:?}, the gate set {value:?}"
                            ));
                        }
                    }
                }
                (action, upstream) => failures.push(format!(
                    "{label}: planned {action:?}, upstream saw {upstream:?}"
                )),
            }
        }
    }
    // remote/remote_only fetches from a port where nothing listens: lua-nginx-module logs
    // the cosocket's refused connect at [error] itself (lua_socket_log_errors), in the timer.
    let log: String = nginx
        .log()
        .lines()
        .filter(|l| !(l.contains("connect() failed") && l.contains("context: ngx.timer")))
        .map(|l| format!("{l}\n"))
        .collect();
    drop(nginx);
    assert!(
        !log.contains("[error]") && !log.contains("[alert]") && !log.contains("[crit]"),
        "errors in nginx's log:\n{log}"
    );
    assert!(
        failures.is_empty(),
        "{} difference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran >= 200, "only {ran} cases ran in nginx");
    println!(
        "{ran} corpus cases decided alike in nginx and natively ({allowed} allowed reached the \
         upstream as planned; {nginx_own} answered by NGINX itself as the case says; {not_here} not for nginx; {} left out as unstable within 60 s: {dropped:?})",
        dropped.len()
    );
}

fn token(claims: &Value) -> String {
    attestgate_testkit::SigningKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn h(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// The token and every client-sent copy of the gate's own headers never reach the upstream,
/// in any letter case or number of copies; the verified claim headers do, once. Monitor mode
/// forwards a denial with the decision headers; `forward: true` keeps the token.
#[test]
fn the_token_and_spoofed_gate_headers_never_reach_the_upstream() {
    let recorder = RecordingUpstream::start().unwrap();
    let base = format!(
        r#""keys":{{"approov_secret":"{SECRET}"}},
           "claim_to_headers":[{{"claim":"did","header":"X-Device-Id"}},{{"claim":"sub","header":"X-App-User"}}]"#
    );
    let servers = [
        server("enforce", format!("{{{base}}}")),
        server("monitor", format!(r#"{{{base},"mode":"monitor"}}"#)),
        server("forward", format!(r#"{{{base},"forward":true}}"#)),
    ];
    let nginx = Nginx::start("headers", &servers, recorder.port());
    let (enforce, monitor, forward) = (nginx.ports[0], nginx.ports[1], nginx.ports[2]);
    let now = unix_now();
    let good = token(&serde_json::json!({"exp": now + 300, "did": "dev-1", "sub": "user-1"}));
    let expired = token(&serde_json::json!({"exp": now - 600, "did": "dev-1"}));
    let spoofs = |token_name: &str, token: &str| {
        vec![
            h("X-Device-Id", "attacker"),
            h("x-device-id", "attacker-2"),
            h("X-APP-USER", "root"),
            h("X-Attestgate-Decision", "allow"),
            h("x-attestgate-reason", "allowed"),
            h("x-attestgate-reason", "allowed-2"),
            h(token_name, token),
            h("x-unrelated", "kept"),
        ]
    };
    let send = |port: u16, headers: &[(String, String)]| {
        let reply = Conn::open(port)
            .send("GET", "/v1/shapes?x=1", "api.example.com", headers, b"")
            .expect("a reply");
        let id = reply.header(REQUEST_ID).unwrap_or_default().to_owned();
        (reply, recorder.find(REQUEST_ID, &id))
    };

    // Allowed: the claims replace every spoofed copy; the token and the decision headers go.
    for token_name in ["approov-token", "Approov-Token", "APPROOV-TOKEN"] {
        let (reply, upstream) = send(enforce, &spoofs(token_name, &good));
        assert_eq!(reply.status, 200, "{reply:?}");
        let upstream = upstream.expect("the allowed request reached the upstream");
        assert_eq!(upstream.values("x-device-id"), ["dev-1"], "{upstream:?}");
        assert_eq!(upstream.values("x-app-user"), ["user-1"], "{upstream:?}");
        assert!(upstream.values("approov-token").is_empty(), "{upstream:?}");
        assert!(
            upstream.values("x-attestgate-decision").is_empty(),
            "{upstream:?}"
        );
        assert!(
            upstream.values("x-attestgate-reason").is_empty(),
            "{upstream:?}"
        );
        assert_eq!(upstream.values("x-unrelated"), ["kept"]);
    }
    // A claim the token lacks: its header is removed, not left with the client's value.
    let no_sub = token(&serde_json::json!({"exp": now + 300, "did": "dev-2"}));
    let (_, upstream) = send(enforce, &spoofs("approov-token", &no_sub));
    let upstream = upstream.unwrap();
    assert_eq!(upstream.values("x-device-id"), ["dev-2"]);
    assert!(upstream.values("x-app-user").is_empty(), "{upstream:?}");

    // Denied: nothing reaches the upstream.
    let before = recorder.count();
    let (reply, upstream) = send(enforce, &spoofs("approov-token", &expired));
    assert_eq!(
        (reply.status, reply.header("x-attestgate-reason")),
        (401, Some("token_expired"))
    );
    assert!(upstream.is_none());
    let mut twice = spoofs("approov-token", &good);
    twice.push(h("approov-token", &good));
    let (reply, upstream) = send(enforce, &twice);
    assert_eq!(
        (reply.status, reply.header("x-attestgate-reason")),
        (401, Some("token_malformed"))
    );
    assert!(upstream.is_none());
    assert_eq!(
        recorder.count(),
        before,
        "a denied request reached the upstream"
    );

    // Monitor: the denial goes on, with the gate's decision headers instead of the client's.
    let (reply, upstream) = send(monitor, &spoofs("approov-token", &expired));
    assert_eq!(reply.status, 200, "{reply:?}");
    let upstream = upstream.unwrap();
    assert_eq!(
        upstream.values("x-attestgate-decision"),
        ["deny"],
        "{upstream:?}"
    );
    assert_eq!(
        upstream.values("x-attestgate-reason"),
        ["token_expired"],
        "{upstream:?}"
    );
    assert!(upstream.values("approov-token").is_empty());
    assert!(upstream.values("x-device-id").is_empty(), "{upstream:?}");

    // forward: true keeps the token, and still strips the spoofed claim headers.
    let (_, upstream) = send(forward, &spoofs("approov-token", &good));
    let upstream = upstream.unwrap();
    assert_eq!(
        upstream.values("approov-token"),
        std::slice::from_ref(&good)
    );
    assert_eq!(upstream.values("x-device-id"), ["dev-1"]);
    let log = nginx.log();
    assert!(!log.contains("[error]"), "{log}");
}

/// Issue #26, item 0: with `underscores_in_headers on` (as Kong's template sets it), NGINX
/// hands the gate `x_device_id` beside `x-device-id`, and `$http_x_device_id`, CGI, WSGI, Rack
/// and PHP read either as the gate's header. No spelling of a gate-owned header reaches the
/// upstream: allowed, monitored or forwarded.
#[test]
fn no_spelling_of_a_gate_header_reaches_the_upstream() {
    use attestgate_testkit::upstream::spoofed_gate_headers;

    let recorder = RecordingUpstream::start().unwrap();
    let base = format!(
        r#""keys":{{"approov_secret":"{SECRET}"}},
           "claim_to_headers":[{{"claim":"did","header":"x-device-id"}}]"#
    );
    let underscores = |name: &str, config: String| Server {
        extra: "underscores_in_headers on;".to_owned(),
        ..server(name, config)
    };
    let servers = [
        underscores("enforce", format!("{{{base}}}")),
        underscores("monitor", format!(r#"{{{base},"mode":"monitor"}}"#)),
        underscores("forward", format!(r#"{{{base},"forward":true}}"#)),
    ];
    let nginx = Nginx::start("spellings", &servers, recorder.port());
    let now = unix_now();
    let good = token(&serde_json::json!({"exp": now + 300, "did": "dev-1"}));
    let spoofs = spoofed_gate_headers();
    let send = |port: u16, token: Option<&str>| {
        let mut headers = spoofs.clone();
        headers.extend(token.map(|t| h("approov-token", t)));
        let reply = Conn::open(port)
            .send("GET", "/v1/shapes", "api.example.com", &headers, b"")
            .expect("a reply");
        let id = reply.header(REQUEST_ID).unwrap_or_default().to_owned();
        (reply, recorder.find(REQUEST_ID, &id))
    };
    let no_spoof_arrived = |upstream: &attestgate_testkit::upstream::ReceivedRequest| {
        let spoofed = upstream.valued("spoofed");
        assert!(
            spoofed.is_empty(),
            "{spoofed:?} reached the upstream: {upstream:?}"
        );
    };
    // The test means something only if NGINX forwards underscored names at all.
    let (reply, upstream) = send(nginx.ports[0], Some(&good));
    assert_eq!(reply.status, 200, "{reply:?}");
    let upstream = upstream.expect("allowed");
    no_spoof_arrived(&upstream);
    assert_eq!(
        upstream.cgi_values("x-device-id"),
        ["dev-1"],
        "{upstream:?}"
    );
    assert!(
        upstream.cgi_values("approov-token").is_empty(),
        "{upstream:?}"
    );
    assert!(
        upstream.cgi_values("x-attestgate-decision").is_empty(),
        "{upstream:?}"
    );

    let (reply, upstream) = send(nginx.ports[1], None);
    assert_eq!(reply.status, 200, "{reply:?}");
    let upstream = upstream.expect("monitored");
    no_spoof_arrived(&upstream);
    assert_eq!(
        upstream.cgi_values("x-attestgate-decision"),
        ["deny"],
        "{upstream:?}"
    );
    assert_eq!(
        upstream.cgi_values("x-attestgate-reason"),
        ["token_missing"],
        "{upstream:?}"
    );
    assert!(
        upstream.cgi_values("x-device-id").is_empty(),
        "{upstream:?}"
    );

    let (reply, upstream) = send(nginx.ports[2], Some(&good));
    assert_eq!(reply.status, 200, "{reply:?}");
    let upstream = upstream.expect("forwarded");
    no_spoof_arrived(&upstream);
    assert_eq!(
        upstream.cgi_values("approov-token"),
        [good.as_str()],
        "{upstream:?}"
    );
    assert_eq!(
        upstream.cgi_values("x-device-id"),
        ["dev-1"],
        "{upstream:?}"
    );

    // And NGINX does forward an underscored header the gate does not own.
    let reply = Conn::open(nginx.ports[0])
        .send(
            "GET",
            "/v1/shapes",
            "api.example.com",
            &[h("approov-token", &good), h("x_app_flavour", "kept")],
            b"",
        )
        .expect("a reply");
    let upstream = recorder
        .find(REQUEST_ID, reply.header(REQUEST_ID).unwrap_or_default())
        .expect("allowed");
    assert_eq!(upstream.values("x_app_flavour"), ["kept"], "{upstream:?}");
    let log = nginx.log();
    assert!(!log.contains("[error]"), "{log}");
}

/// The decision's counters are NGINX's to add up: every worker counts into the shared dict,
/// and `attestgate.metrics()` prints the totals, as Envoy's `/stats` does (and in Prometheus'
/// format), under the filter's names.
#[test]
fn every_decision_is_counted_across_workers_under_the_filters_names() {
    let recorder = RecordingUpstream::start().unwrap();
    let base = format!(
        r#""keys":{{"approov_secret":"{SECRET}"}},
           "claim_to_headers":[{{"claim":"did","header":"X-Device-Id"}}]"#
    );
    let metrics = r#"location = /attestgate-metrics {
      content_by_lua_block { require("attestgate").metrics() }
    }"#;
    let servers = [
        Server {
            extra: metrics.to_owned(),
            ..server("enforce", format!("{{{base}}}"))
        },
        server("monitor", format!(r#"{{{base},"mode":"monitor"}}"#)),
    ];
    let nginx = Nginx::start("counters", &servers, recorder.port());
    let (enforce, monitor) = (nginx.ports[0], nginx.ports[1]);
    let now = unix_now();
    let good = token(&serde_json::json!({"exp": now + 300, "did": "dev-1"}));
    let expired = token(&serde_json::json!({"exp": now - 600, "did": "dev-1"}));
    let send = |port: u16, headers: &[(String, String)]| {
        // A new connection each time: NGINX hands them to either worker.
        Conn::open(port)
            .send("GET", "/v1/shapes", "api.example.com", headers, b"")
            .expect("a reply")
            .status
    };
    for _ in 0..5 {
        assert_eq!(send(enforce, &[h("approov-token", &good)]), 200);
    }
    for _ in 0..3 {
        assert_eq!(send(enforce, &[]), 401);
    }
    assert_eq!(send(enforce, &[h("approov-token", &expired)]), 401);
    for _ in 0..2 {
        assert_eq!(send(monitor, &[]), 200);
    }

    let read = |query: &str| {
        let reply = Conn::open(enforce)
            .send(
                "GET",
                &format!("/attestgate-metrics{query}"),
                "localhost",
                &[],
                b"",
            )
            .expect("a reply");
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body
    };
    let text = read("");
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .map_or(0, |v| v.parse().unwrap())
    };
    assert_eq!(value("attestgate.allowed"), 5, "{text}");
    assert_eq!(value("attestgate.denied"), 4, "{text}");
    assert_eq!(value("attestgate.denied.token_missing"), 3, "{text}");
    assert_eq!(value("attestgate.denied.token_expired"), 1, "{text}");
    assert_eq!(value("attestgate.monitored_denied"), 2, "{text}");
    assert_eq!(
        value("attestgate.monitored_denied.token_missing"),
        2,
        "{text}"
    );
    // Each token is verified once per worker at most (two tokens, two workers); every request
    // carrying one is a miss or a hit, and an exact repeat within the second (the whole
    // decision cached) is a hit even without a token.
    let (hits, misses) = (
        value("attestgate.cache.hits"),
        value("attestgate.cache.misses"),
    );
    assert!((2..=4).contains(&misses), "{text}");
    assert!((6..=11).contains(&(hits + misses)), "{text}");
    assert_eq!(value("attestgate.errors"), 0, "{text}");
    // Nothing but counter lines, sorted.
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split(": ").next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);

    let prometheus = read("?format=prometheus");
    assert!(
        prometheus.contains(
            "# TYPE attestgate_denied_token_missing counter\nattestgate_denied_token_missing 3\n"
        ),
        "{prometheus}"
    );
    assert!(
        prometheus.contains("\nattestgate_allowed 5\n"),
        "{prometheus}"
    );
}

/// A config the gate refuses stops NGINX from starting (an error in `init_by_lua_block`
/// aborts start-up), with one clear line in the error log naming the problem.
#[test]
fn a_bad_config_refuses_to_start() {
    let recorder = RecordingUpstream::start().unwrap();
    for (config, says) in [
        (
            format!(r#"{{"keys":{{"approov_secret":"{SECRET}"}},"moode":"monitor"}}"#),
            "moode",
        ),
        ("{not json".to_owned(), "config"),
        (
            format!(
                r#"{{"keys":{{"approov_secret":"{SECRET}"}},"rules":[{{"path_prefix":"/","rate_limit":{{"requests":1,"per_seconds":1}}}}]}}"#
            ),
            "unsupported `rules[0].rate_limit`",
        ),
        (
            // Fetched keys over a cosocket: the upstream must be host:port.
            r#"{"keys":{"remote":{"upstream":"keys","authority":"keys.example.com","path":"/jwks.json"}}}"#.to_owned(),
            "`keys.remote.upstream` must be host:port",
        ),
        (
            r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="},"denylist":{"remote":{"upstream":"127.0.0.1:99999","authority":"l","path":"/d.json"}}}"#.to_owned(),
            "`denylist.remote.upstream` must be host:port",
        ),
    ] {
        let servers = [
            server(
                "good",
                format!(r#"{{"keys":{{"approov_secret":"{SECRET}"}}}}"#),
            ),
            server("bad", config),
        ];
        let started = Instant::now();
        let log = match Nginx::try_start("bad-config", &servers, recorder.port()) {
            Ok(nginx) => panic!("nginx started with a bad config:\n{}", nginx.log()),
            Err(log) => log,
        };
        let line = log
            .lines()
            .find(|l| l.contains("attestgate: refusing to start"))
            .unwrap_or_else(|| panic!("no clear line in:\n{log}"));
        // What NGINX really does: the Lua error is logged at [error] (with a traceback) and
        // the master exits with status 1; no worker starts.
        assert!(
            line.contains("[error]") && line.contains("init_by_lua error"),
            "{line}"
        );
        assert!(log.contains("nginx exited (exit status: 1)"), "{log}");
        assert!(
            line.contains("gate-1.json") && line.contains(says),
            "{line}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        println!("refused: {line}");
    }
}

/// A short load run: several keep-alive connections, a few thousand requests mixing good,
/// expired, forged and missing tokens; every answer must be right, and the workers' memory
/// flat (VmRSS before and after, printed).
#[test]
fn a_short_load_run_keeps_every_answer_right_and_memory_flat() {
    let recorder = RecordingUpstream::start().unwrap();
    let servers = [server(
        "load",
        format!(
            r#"{{"keys":{{"approov_secret":"{SECRET}"}},"claim_to_headers":[{{"claim":"did","header":"X-Device-Id"}}]}}"#
        ),
    )];
    let nginx = Nginx::start("load", &servers, recorder.port());
    let port = nginx.ports[0];
    let now = unix_now();
    // 64 devices' tokens, and for each one an expired and a forged one.
    let good: Vec<String> = (0..64)
        .map(|i| token(&serde_json::json!({"exp": now + 900, "did": format!("dev-{i}")})))
        .collect();
    let expired: Vec<String> = (0..64)
        .map(|i| token(&serde_json::json!({"exp": now - 900, "did": format!("dev-{i}")})))
        .collect();
    let forged: Vec<String> = good
        .iter()
        .map(|t| {
            let (head, sig) = t.rsplit_once('.').unwrap();
            let flipped = if sig.starts_with('A') { "B" } else { "A" };
            format!("{head}.{flipped}{}", &sig[1..])
        })
        .collect();
    let cases = Arc::new((good, expired, forged));
    let run = |requests: usize, connections: usize| -> Vec<String> {
        let mut threads = Vec::new();
        for c in 0..connections {
            let cases = Arc::clone(&cases);
            threads.push(std::thread::spawn(move || {
                let mut problems = Vec::new();
                let mut conn = Conn::open(port);
                for i in 0..requests / connections {
                    let n = i * connections + c;
                    let device = n % 64;
                    let (headers, want): (Vec<(String, String)>, (u16, &str)) = match n % 4 {
                        0 | 1 => (
                            vec![
                                h("approov-token", &cases.0[device]),
                                h("x-device-id", "spoof"),
                            ],
                            (200, "allowed"),
                        ),
                        2 => (
                            vec![h("approov-token", &cases.1[device])],
                            (401, "token_expired"),
                        ),
                        _ if n % 8 == 3 => (
                            vec![h("approov-token", &cases.2[device])],
                            (401, "signature_invalid"),
                        ),
                        _ => (vec![], (401, "token_missing")),
                    };
                    let Some(reply) =
                        conn.send("GET", "/v1/shapes", "api.example.com", &headers, b"")
                    else {
                        problems.push(format!("request {n}: no reply"));
                        conn = Conn::open(port);
                        continue;
                    };
                    let reason = reply
                        .header("x-test-decision")
                        .and_then(|d| d.split_once(';'))
                        .map(|(_, r)| r);
                    let reached = reply.body.contains("\"upstream\":\"reached\"");
                    if (reply.status, reason) != (want.0, Some(want.1))
                        || reached != (want.0 == 200)
                    {
                        problems.push(format!("request {n}: want {want:?}, got {reply:?}"));
                    }
                    if reply.header("connection") == Some("close") {
                        conn = Conn::open(port);
                    }
                }
                problems
            }));
        }
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    };
    // Warm up on 8 connections (the kernel spreads them over both workers): every worker
    // loads its caches and Lua state, twice over.
    for _ in 0..2 {
        let problems = run(1600, 8);
        assert!(problems.is_empty(), "{problems:?}");
    }
    let before = nginx.worker_rss();
    let upstream_before = recorder.count();
    let started = Instant::now();
    let total = 10_000;
    let problems = run(total, 8);
    let elapsed = started.elapsed();
    let after = nginx.worker_rss();
    let reached = recorder.count() - upstream_before;
    println!(
        "load: {total} requests on 8 connections in {:.2} s ({:.0}/s), {reached} reached the upstream",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!("worker VmRSS before (pid, KiB): {before:?}");
    println!("worker VmRSS after  (pid, KiB): {after:?}");
    assert!(
        problems.is_empty(),
        "{} wrong answers: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
    assert_eq!(
        reached,
        total / 2,
        "exactly the good-token half reaches the upstream"
    );
    assert_eq!(before.len(), 2);
    let pids = |v: &[(u32, u64)]| v.iter().map(|(p, _)| *p).collect::<Vec<_>>();
    assert_eq!(
        pids(&before),
        pids(&after),
        "a worker died and was replaced"
    );
    for ((pid, was), (_, is)) in before.iter().zip(&after) {
        assert!(
            *is <= was + 2 * 1024,
            "worker {pid} grew from {was} KiB to {is} KiB over {total} requests"
        );
    }
    let log = nginx.log();
    assert!(
        !log.contains("[error]") && !log.contains("[alert]"),
        "{log}"
    );
}

/// Install-key request signatures over the body in real NGINX: the module asks the library
/// whether the body is needed, reads it (`ngx.req.read_body`, from memory or from the file
/// NGINX buffered it to, chunked or not) and decides on it.
#[test]
fn a_signed_body_is_read_and_decided_on() {
    use attestgate_policy::signature::SignOptions;
    use attestgate_testkit::{InstallSigner, SigningKey};

    let components = ["@method", "@target-uri", "authorization", "content-digest"];
    let config = serde_json::json!({
        "keys": {"approov_secret": SECRET},
        "rules": [{"name": "pay", "path_prefix": "/v1/pay",
                   "signature": {"mode": "required", "components": components, "max_body_bytes": 4096}}],
    })
    .to_string();
    let recorder = RecordingUpstream::start().unwrap();
    let mut on_file = server("file", config.clone());
    // A body over 64 bytes goes to a temporary file: the module must read it from there.
    on_file.extra = "client_body_buffer_size 64;".to_owned();
    let nginx = Nginx::start(
        "signed-body",
        &[server("memory", config), on_file],
        recorder.port(),
    );
    let install = InstallSigner::from_slice(&[9; 32]).unwrap();
    let now = unix_now();
    let claims = serde_json::json!({"exp": now + 300, "did": "d1", "ipk": install.ipk()});
    let token = SigningKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap();
    let signed = |path: &str, body: &[u8]| -> Vec<(String, String)> {
        let request = attestgate_policy::Request::new("POST", path)
            .with_host("api.example.com")
            .with_header("approov-token", token.as_str())
            .with_header("authorization", "Bearer session-1")
            .with_body(body.to_vec());
        let signed = install
            .sign_request(request, &SignOptions::new(components, now))
            .unwrap();
        signed
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    };
    let small = br#"{"to":"alice","amount":100}"#.to_vec();
    let large: Vec<u8> = format!(r#"{{"to":"alice","memo":"{}"}}"#, "x".repeat(1000)).into_bytes();
    let huge = vec![b'x'; 5000];
    for port in nginx.ports.clone() {
        for body in [&small, &large] {
            let headers = signed("/v1/pay?to=alice", body);
            let reply = Conn::open(port)
                .send(
                    "POST",
                    "/v1/pay?to=alice",
                    "api.example.com",
                    &headers,
                    body,
                )
                .unwrap();
            assert_eq!(reply.status, 200, "{port} {} bytes: {reply:?}", body.len());
            assert_eq!(reply.header("x-test-decision"), Some("allow;allowed"));
            // The body changed on the way: the digest no longer matches.
            let mut changed = body.clone();
            changed[2] ^= 1;
            let reply = Conn::open(port)
                .send(
                    "POST",
                    "/v1/pay?to=alice",
                    "api.example.com",
                    &headers,
                    &changed,
                )
                .unwrap();
            assert_eq!(
                (reply.status, reply.header("x-attestgate-reason")),
                (401, Some("request_signature_invalid")),
                "{reply:?}"
            );
        }
        // Chunked: NGINX reads it whole, the gate decides on it.
        let headers = signed("/v1/pay?to=alice", &small);
        let mut raw = String::from("POST /v1/pay?to=alice HTTP/1.1\r\nHost: api.example.com\r\n");
        for (name, value) in &headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str(&format!(
            "transfer-encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            small.len(),
            String::from_utf8_lossy(&small)
        ));
        let mut conn = Conn::open(port);
        conn.stream.write_all(raw.as_bytes()).unwrap();
        let reply = conn.read_reply().unwrap();
        assert_eq!(reply.status, 200, "chunked: {reply:?}");
        // Over the route's max_body_bytes: body_too_large, the body never read past the cap.
        let headers = signed("/v1/pay?to=alice", &huge);
        let reply = Conn::open(port)
            .send(
                "POST",
                "/v1/pay?to=alice",
                "api.example.com",
                &headers,
                &huge,
            )
            .unwrap();
        assert_eq!(
            (reply.status, reply.header("x-attestgate-reason")),
            (413, Some("body_too_large")),
            "{reply:?}"
        );
    }
    let log = nginx.log();
    assert!(!log.contains("[error]"), "{log}");
}

/// lua-resty-core's header table looks every key up as a header name (its `__index`), so a
/// client's header named `1` made `headers[1]` look like a list: the module then saw no
/// header at all (no token: `token_missing`; and a spoofed claim header not stripped under a
/// bypass or monitor rule). The module reads the table raw.
#[test]
fn a_header_named_1_hides_no_header_from_the_gate() {
    let recorder = RecordingUpstream::start().unwrap();
    let servers = [server(
        "header-1",
        format!(
            r#"{{"keys":{{"approov_secret":"{SECRET}"}},"claim_to_headers":[{{"claim":"did","header":"X-Device-Id"}}]}}"#
        ),
    )];
    let nginx = Nginx::start("header-1", &servers, recorder.port());
    let now = unix_now();
    let good = token(&serde_json::json!({"exp": now + 300, "did": "dev-1"}));
    let expired = token(&serde_json::json!({"exp": now - 600, "did": "dev-1"}));
    for name in ["1", "2"] {
        let headers = [
            h(name, "one"),
            h("x-device-id", "attacker"),
            h("approov-token", &good),
        ];
        let reply = Conn::open(nginx.ports[0])
            .send("GET", "/v1/shapes", "api.example.com", &headers, b"")
            .unwrap();
        assert_eq!(reply.status, 200, "header {name}: {reply:?}");
        let id = reply.header(REQUEST_ID).unwrap_or_default().to_owned();
        let upstream = recorder.find(REQUEST_ID, &id).unwrap();
        assert_eq!(upstream.values("x-device-id"), ["dev-1"], "{upstream:?}");
        assert!(upstream.values("approov-token").is_empty(), "{upstream:?}");
        assert_eq!(upstream.values(name), ["one"], "{upstream:?}");
        let headers = [h(name, "one"), h("approov-token", &expired)];
        let reply = Conn::open(nginx.ports[0])
            .send("GET", "/v1/shapes", "api.example.com", &headers, b"")
            .unwrap();
        assert_eq!(
            (reply.status, reply.header("x-attestgate-reason")),
            (401, Some("token_expired")),
            "header {name}: {reply:?}"
        );
    }
}

/// A JSON string as a Lua string literal.
fn lua_string(text: &str) -> String {
    let mut out = String::from("\"");
    for byte in text.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            other => out.push_str(&format!("\\{other:03}")),
        }
    }
    out.push('"');
    out
}

/// A JSON value as a Lua table constructor (null is `ngx.null`): a plugin config as the
/// Admin API decodes it.
fn lua_value(value: &Value) -> String {
    match value {
        Value::Null => "ngx.null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_value).collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
    }
}

/// `max_headers 2000;` when this NGINX has the directive (Debian's 1.22 build does, default
/// 1000, and answers 400 itself above it; OpenResty, which Kong runs, has no such limit): the
/// test must reach Kong's own cap of 1000 in `kong.request.get_headers`.
fn max_headers_directive() -> &'static str {
    let binary = std::fs::read(nginx_binary()).unwrap_or_default();
    if binary.windows(11).any(|w| w == b"max_headers") {
        "max_headers 2000;"
    } else {
        ""
    }
}

/// NGINX under the Kong stand-in (`native/kong/spec/kong_standin.lua`): Kong's template's
/// `underscores_in_headers on` and 8k `client_body_buffer_size`, the plugin's schema through
/// the metaschema at start-up (an error stops NGINX), `configs` through the Admin API's
/// validation (`{unchecked = ...}`: stored without it), `configure` in init_worker, and one
/// location per config (`/` the first, `/c2`, `/c3`, ... the others) in front of the recorder.
fn kong_nginx(name: &str, configs: &[Value], upstream: u16) -> Result<Nginx, String> {
    let kong = root().join("native/kong").canonicalize().unwrap();
    let spec = kong.join("spec");
    let lua = root().join("native/lua").canonicalize().unwrap();
    let configs_lua: Vec<String> = configs.iter().map(lua_value).collect();
    let mut locations = String::new();
    for n in 1..=configs.len() {
        let path = if n == 1 {
            "/".to_owned()
        } else {
            format!("/c{n}")
        };
        locations.push_str(&format!(
            r#"
    location {path} {{
      access_by_lua_block {{ require("kong_standin").access({n}) }}
      header_filter_by_lua_block {{ require("kong_standin").report_headers() }}
      add_header {REQUEST_ID} $request_id always;
      proxy_pass http://recorder;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header {REQUEST_ID} $request_id;
    }}"#
        ));
    }
    Nginx::try_start_with(name, 1, |dir, ports| {
        format!(
            r#"{preamble}  # As Kong's nginx template sets them.
  underscores_in_headers on;
  client_body_buffer_size 8k;
  large_client_header_buffers 8 256k;
  {max_headers}
  lua_package_path "{lua}/?.lua;{spec}/?.lua;;";
  lua_shared_dict attestgate_counters 1m;
  lua_shared_dict prometheus_metrics 1m;
  init_by_lua_block {{
    require("kong_standin").install({kong:?}, {lib:?}, {{ {configs} }})
  }}
  init_worker_by_lua_block {{ require("kong_standin").init_worker(true) }}
  upstream recorder {{ server 127.0.0.1:{upstream}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port};
    location = /kong-spec {{
      content_by_lua_block {{
        local ok, report = pcall(dofile({spec_file:?}).run, {SECRET:?})
        report = ok and report or ("not ok - the spec raised: " .. tostring(report))
        ngx.header["Content-Length"] = #report
        ngx.print(report)
      }}
    }}
    location = /kong-rebuild {{
      content_by_lua_block {{
        require("kong_standin").rebuild()
        ngx.header["Content-Length"] = 8
        ngx.print("rebuilt\n")
      }}
    }}
    location = /kong-metrics {{
      content_by_lua_block {{ require("kong_standin").metrics() }}
    }}{locations}
  }}
}}
"#,
            preamble = preamble(dir),
            max_headers = max_headers_directive(),
            lua = lua.display(),
            spec = spec.display(),
            kong = kong.display().to_string(),
            lib = library().display().to_string(),
            configs = configs_lua.join(", "),
            port = ports[0],
            spec_file = spec.join("handler_spec.lua").display().to_string(),
        )
    })
}

/// The Kong (>= 3.11) plugin, `native/kong/attestgate/{handler,schema}.lua`, in real NGINX
/// with the real Lua module and library, under a stand-in for Kong's runtime that does what
/// Kong's source says it does (`native/kong/spec/kong_standin.lua`): the schema through
/// Kong's metaschema rules, configs through Kong's validation and read back with Kong's own
/// keys added, rebuilds through `configure`, `kong.response.exit` yielding, Kong's
/// `get_headers` / `get_raw_body` shapes, `underscores_in_headers on`. This is NOT a running
/// Kong.
#[test]
fn the_kong_plugin_against_a_pdk_stand_in() {
    use attestgate_policy::signature::SignOptions;
    use attestgate_testkit::{InstallSigner, SigningKey};

    let recorder = RecordingUpstream::start().unwrap();
    let components = ["@method", "@target-uri", "authorization", "content-digest"];
    let main = serde_json::json!({
        "keys": {"approov_secret": SECRET},
        "claim_to_headers": [{"claim": "did", "header": "X-Device-Id"}],
        "rules": [{"name": "pay", "path_prefix": "/v1/pay",
                   "signature": {"mode": "required", "components": components,
                                 "max_body_bytes": 16384}}],
    });
    // Stored as a data plane may hold what its library refuses (the Admin API would not).
    let refused = serde_json::json!({"unchecked": {"keys": {"approov_secret": "short"}}});
    let monitor = serde_json::json!({"keys": {"approov_secret": SECRET}, "mode": "monitor"});
    let nginx = kong_nginx("kong", &[main, refused, monitor], recorder.port())
        .unwrap_or_else(|log| panic!("NGINX under the Kong stand-in did not start:\n{log}"));
    let port = nginx.ports[0];

    // The schema and config handling, inside NGINX.
    let reply = Conn::open(port)
        .send("GET", "/kong-spec", "localhost", &[], b"")
        .unwrap();
    println!("{}", reply.body);
    assert_eq!(reply.status, 200, "{reply:?}\n{}", nginx.log());
    let lines: Vec<&str> = reply.body.lines().collect();
    assert!(lines.len() >= 14, "{}", reply.body);
    assert!(
        lines.iter().all(|l| l.starts_with("ok - ")),
        "{}\n{}",
        reply.body,
        nginx.log()
    );

    let now = unix_now();
    let good = token(&serde_json::json!({"exp": now + 300, "did": "dev-1"}));
    let expired = token(&serde_json::json!({"exp": now - 600, "did": "dev-1"}));
    let send = |conn: &mut Conn, path: &str, headers: &[(String, String)], body: &[u8]| {
        let method = if body.is_empty() { "GET" } else { "POST" };
        let reply = conn
            .send(method, path, "api.example.com", headers, body)
            .expect("a reply");
        let id = reply.header(REQUEST_ID).unwrap_or_default().to_owned();
        (reply, recorder.find(REQUEST_ID, &id))
    };
    let serialized = |reply: &Reply| reply.header("x-test-serialized").unwrap_or("").to_owned();
    // What Kong's log plugins write under `attestgate` (kong.log.set_serialize_value), as JSON.
    let record = |reply: &Reply| -> Value {
        let text = serialized(reply);
        let json = text
            .strip_prefix("attestgate=")
            .unwrap_or_else(|| panic!("no serialized `attestgate`: {reply:?}"));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    };
    let record_fields = |record: &Value| -> Vec<String> {
        let mut keys: Vec<String> = record.as_object().unwrap().keys().cloned().collect();
        keys.sort_unstable();
        keys
    };
    let mut all_fields: Vec<String> = attestgate_policy::record::DecisionRecord::<&str>::FIELDS
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
    all_fields.sort_unstable();

    // Allowed: the token and the spoofed claim header cleared, the claim set; a header named
    // `1` hides nothing; the decision for Kong's log plugins; counted through Prometheus.
    let (reply, upstream) = send(
        &mut Conn::open(port),
        "/v1/shapes?a=1",
        &[
            h("1", "one"),
            h("X-Device-Id", "attacker"),
            h("approov-token", &good),
        ],
        b"",
    );
    assert_eq!(reply.status, 200, "{reply:?}\n{}", nginx.log());
    let upstream = upstream.expect("the allowed request reached the upstream");
    assert_eq!(upstream.values("x-device-id"), ["dev-1"], "{upstream:?}");
    assert!(upstream.values("approov-token").is_empty(), "{upstream:?}");
    assert_eq!(upstream.target, "/v1/shapes?a=1");
    // The core's whole decision record, every field (absent ones null), for Kong's log plugins.
    let allowed = record(&reply);
    assert_eq!(record_fields(&allowed), all_fields, "{allowed}");
    assert_eq!(
        allowed,
        serde_json::json!({"verdict": "allow", "allowed": true, "mode": "enforce", "status": 200,
            "reason": "allowed", "policy_reasons": [], "policy_reasons_dropped": 0, "rule": null,
            "device": "dev-1", "platform": null, "app_version": null, "cache": "miss"}),
        "{reply:?}"
    );
    // As the report reads it.
    let typed: attestgate_policy::record::DecisionRecord<String> =
        serde_json::from_value(allowed).unwrap();
    assert_eq!(typed.device.as_deref(), Some("dev-1"));
    assert!(
        reply
            .header("x-test-counted")
            .unwrap_or("")
            .contains("attestgate.allowed"),
        "{reply:?}"
    );

    // Issue #26: Kong runs `underscores_in_headers on`; no spelling of a gate header gets
    // through (a later plugin's kong.request.get_header folds `_` and `-` as well).
    let mut spoofs = attestgate_testkit::upstream::spoofed_spellings(
        &["x-device-id", "x-attestgate-decision", "approov-token"],
        "approov-token",
    );
    spoofs.push(h("approov-token", &good));
    let (reply, upstream) = send(&mut Conn::open(port), "/v1/shapes", &spoofs, b"");
    assert_eq!(reply.status, 200, "{reply:?}\n{}", nginx.log());
    let upstream = upstream.expect("the allowed request reached the upstream");
    let spoofed = upstream.valued("spoofed");
    assert!(
        spoofed.is_empty(),
        "{spoofed:?} reached the upstream: {upstream:?}"
    );
    assert_eq!(
        upstream.cgi_values("x-device-id"),
        ["dev-1"],
        "{upstream:?}"
    );
    assert!(
        upstream.cgi_values("approov-token").is_empty(),
        "{upstream:?}"
    );

    // Denied: kong.response.exit ends the handler; the JSON denial, nothing upstream.
    let (reply, upstream) = send(
        &mut Conn::open(port),
        "/v1/shapes",
        &[h("approov-token", &expired)],
        b"",
    );
    assert_eq!(
        (reply.status, reply.header("x-attestgate-reason")),
        (401, Some("token_expired")),
        "{reply:?}"
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(
        reply.body.contains(r#""error":"token_expired""#),
        "{reply:?}"
    );
    assert!(upstream.is_none());
    let denied = record(&reply);
    assert_eq!(
        (
            &denied["verdict"],
            &denied["allowed"],
            &denied["status"],
            &denied["reason"]
        ),
        (
            &"deny".into(),
            &false.into(),
            &401.into(),
            &"token_expired".into()
        ),
        "{denied}"
    );
    assert_eq!(
        denied["device"],
        Value::Null,
        "an expired token's device is not trusted"
    );

    // Monitor: the denial goes on with the decision headers.
    let (reply, upstream) = send(&mut Conn::open(port), "/c3/x", &[], b"");
    assert_eq!(reply.status, 200, "{reply:?}");
    let upstream = upstream.unwrap();
    assert_eq!(upstream.values("x-attestgate-decision"), ["deny"]);
    assert_eq!(upstream.values("x-attestgate-reason"), ["token_missing"]);
    let monitored = record(&reply);
    assert_eq!(
        (
            &monitored["verdict"],
            &monitored["allowed"],
            &monitored["mode"],
            &monitored["reason"]
        ),
        (
            &"deny".into(),
            &true.into(),
            &"monitor".into(),
            &"token_missing".into()
        ),
        "{monitored}"
    );

    // More than Kong's 1000 header fields: get_headers truncates, the plugin refuses.
    let mut many = vec![h("approov-token", &good)];
    many.extend((0..1000).map(|i| h(&format!("x-filler-{i}"), "v")));
    let (reply, upstream) = send(&mut Conn::open(port), "/v1/shapes", &many, b"");
    assert_eq!(
        (reply.status, reply.header("x-attestgate-reason")),
        (500, Some("internal_error")),
        "{reply:?}"
    );
    assert!(upstream.is_none());

    // A config the library refuses: every request 500 config_invalid.
    let (reply, upstream) = send(
        &mut Conn::open(port),
        "/c2/x",
        &[h("approov-token", &good)],
        b"",
    );
    assert_eq!(
        (reply.status, reply.header("x-attestgate-reason")),
        (500, Some("config_invalid")),
        "{reply:?}"
    );
    assert!(upstream.is_none());
    // A refusal the gate did not decide: the record's fields, nothing verified.
    let refused = record(&reply);
    assert_eq!(record_fields(&refused), all_fields, "{refused}");
    assert_eq!(
        (
            &refused["verdict"],
            &refused["allowed"],
            &refused["status"],
            &refused["reason"]
        ),
        (
            &"deny".into(),
            &false.into(),
            &500.into(),
            &"config_invalid".into()
        ),
        "{refused}"
    );
    assert_eq!(
        (&refused["device"], &refused["policy_reasons"]),
        (&Value::Null, &serde_json::json!([]))
    );

    // Signed bodies: one over client_body_buffer_size (8k) is in a file, which Kong's
    // get_raw_body() does not read; the plugin reads it, bounded by max_body_bytes.
    let install = InstallSigner::from_slice(&[9; 32]).unwrap();
    let claims = serde_json::json!({"exp": now + 300, "did": "d1", "ipk": install.ipk()});
    let signed_token = SigningKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap();
    let signed = |body: &[u8]| -> Vec<(String, String)> {
        let request = attestgate_policy::Request::new("POST", "/v1/pay")
            .with_host("api.example.com")
            .with_header("approov-token", signed_token.as_str())
            .with_header("authorization", "Bearer session-1")
            .with_body(body.to_vec());
        install
            .sign_request(request, &SignOptions::new(components, now))
            .unwrap()
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    };
    for size in [100, 12_000] {
        let body = vec![b'a'; size];
        let (reply, upstream) = send(&mut Conn::open(port), "/v1/pay", &signed(&body), &body);
        assert_eq!(
            reply.status,
            200,
            "{size} bytes: {reply:?}\n{}",
            nginx.log()
        );
        assert!(upstream.is_some());
        let mut changed = body.clone();
        changed[size - 1] = b'b';
        let (reply, _) = send(&mut Conn::open(port), "/v1/pay", &signed(&body), &changed);
        assert_eq!(
            (reply.status, reply.header("x-attestgate-reason")),
            (401, Some("request_signature_invalid")),
            "{size} bytes: {reply:?}"
        );
    }
    let huge = vec![b'a'; 40_000];
    let (reply, upstream) = send(&mut Conn::open(port), "/v1/pay", &signed(&huge), &huge);
    assert_eq!(
        (reply.status, reply.header("x-attestgate-reason")),
        (413, Some("body_too_large")),
        "{reply:?}"
    );
    assert!(upstream.is_none());

    // A rebuild of Kong's plugin list hands over new config tables: the gate, and its
    // decision cache, stay (one connection: one worker).
    let fresh = token(&serde_json::json!({"exp": now + 300, "did": "dev-rebuild"}));
    let mut conn = Conn::open(port);
    let counted = |conn: &mut Conn| {
        let (reply, _) = send(conn, "/v1/shapes", &[h("approov-token", &fresh)], b"");
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.header("x-test-counted").unwrap_or("").to_owned()
    };
    assert!(counted(&mut conn).contains("attestgate.cache.misses"));
    assert!(counted(&mut conn).contains("attestgate.cache.hits"));
    let reply = conn
        .send("GET", "/kong-rebuild", "localhost", &[], b"")
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let after = counted(&mut conn);
    assert!(
        after.contains("attestgate.cache.hits"),
        "the rebuild lost the gate's cache: {after}"
    );

    // The counters, as Kong's Prometheus plugin would export them.
    let metrics = Conn::open(port)
        .send("GET", "/kong-metrics", "localhost", &[], b"")
        .unwrap()
        .body;
    for line in [
        r#"kong_attestgate_total{counter="attestgate.denied.token_expired"} 1"#,
        r#"kong_attestgate_total{counter="attestgate.denied.config_invalid"} 1"#,
        r#"kong_attestgate_total{counter="attestgate.monitored_denied.token_missing"} 1"#,
        r#"kong_attestgate_total{counter="attestgate.errors"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    assert!(metrics.contains(r#"kong_attestgate_total{counter="attestgate.allowed"}"#));
}

/// Fetched keys in the Kong (>= 3.11) plugin under the stand-in: the gates the plugin builds in
/// `configure` are fetched for by the Lua module's timer (started in the plugin's
/// `init_worker`), the first JWKS is taken, a rotated one replaces it, and a refused answer keeps
/// the last good keys. Without `attestgate_remote` in Kong's `nginx_http_lua_shared_dict`, the
/// one worker fetches for itself.
#[test]
fn fetched_keys_rotate_in_the_kong_plugin_under_the_stand_in() {
    let recorder = RecordingUpstream::start().unwrap();
    let keys = DocumentServer::start().unwrap();
    keys.answer("/jwks.json", Answer::ok(test_jwks("es256")));
    let config = serde_json::json!({
        "keys": {"remote": {"upstream": format!("127.0.0.1:{}", keys.port()),
                            "authority": "keys.test", "path": "/jwks.json",
                            "refresh_seconds": 1, "timeout_ms": 1000}},
    });
    let nginx = kong_nginx("kong-remote", &[config], recorder.port())
        .unwrap_or_else(|log| panic!("NGINX under the Kong stand-in did not start:\n{log}"));
    let port = nginx.ports[0];
    let claims = serde_json::json!({"did": "d1", "exp": unix_now() + 600});
    let (old, new) = (
        mint_with("es256", &claims),
        mint_with("es256_other", &claims),
    );
    let reason = |token: &str| {
        let reply = get(port, token);
        (
            reply.status,
            reply.header("x-attestgate-reason").map(str::to_owned),
        )
    };

    eventually(
        10,
        "the first JWKS is fetched under the Kong stand-in",
        || reason(&old).0 == 200,
    );
    assert_eq!(reason(&new), (401, Some("signature_invalid".to_owned())));

    keys.answer("/jwks.json", Answer::ok(test_jwks("es256_other")));
    eventually(10, "the rotated JWKS is taken", || reason(&new).0 == 200);
    assert_eq!(reason(&old), (401, Some("signature_invalid".to_owned())));

    keys.answer(
        "/jwks.json",
        Answer::ok("<html>502 Bad Gateway</html>".to_owned()),
    );
    let served = keys.served("/jwks.json");
    eventually(10, "two refused fetches", || {
        keys.served("/jwks.json") >= served + 2
    });
    assert_eq!(reason(&new).0, 200, "the last good keys were dropped");
    let log = nginx.log();
    assert!(
        !log.contains("[alert]") && !log.contains("[crit]"),
        "alerts in nginx's log:\n{log}"
    );
}

// Fetched keys and denylists ------------------------------------------------------------------

fn test_jwks(key: &str) -> String {
    std::fs::read_to_string(root().join(format!("policy-engine/tests/data/keys/{key}.pub.json")))
        .unwrap()
}

fn mint_with(key: &str, claims: &Value) -> String {
    let path = root().join(format!("policy-engine/tests/data/keys/{key}.json"));
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    attestgate_testkit::SigningKey::from_jwk(&jwk)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

/// Polls until `f` holds, for up to `seconds`.
fn eventually(seconds: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !f() {
        assert!(Instant::now() < deadline, "not within {seconds} s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const METRICS: &str = r#"location = /attestgate-metrics {
      content_by_lua_block { require("attestgate").metrics() }
    }"#;

/// A counter's value, from attestgate.metrics().
fn counter(port: u16, name: &str) -> u64 {
    let reply = Conn::open(port)
        .send("GET", "/attestgate-metrics", "localhost", &[], b"")
        .expect("a reply");
    reply
        .body
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .map_or(0, |v| v.parse().unwrap())
}

/// A new connection each time: NGINX hands them to either worker.
fn get(port: u16, token: &str) -> Reply {
    Conn::open(port)
        .send(
            "GET",
            "/v1/shapes",
            "api.example.com",
            &[h("approov-token", token)],
            b"",
        )
        .expect("a reply")
}

/// A fetched JWKS in real NGINX, rotated while requests flow: 503 keys_unavailable before
/// the first good fetch, then the served key; after a rotation the new key, and once it
/// verifies the old one never again, in either worker; a garbage, oversized or 500 answer
/// and the key server going down keep the last good keys and count `fetch_failed`.
#[test]
fn fetched_keys_rotate_in_nginx_and_the_last_good_ones_survive_bad_answers() {
    let recorder = RecordingUpstream::start().unwrap();
    let mut keys = DocumentServer::start().unwrap();
    keys.answer(
        "/jwks.json",
        Answer {
            status: 500,
            body: test_jwks("es256"),
            chunked: false,
        },
    );
    let config = serde_json::json!({
        "keys": {"remote": {"upstream": format!("127.0.0.1:{}", keys.port()),
                            "authority": "keys.test", "path": "/jwks.json",
                            "refresh_seconds": 1, "timeout_ms": 1000, "max_bytes": 2048}},
        "claim_to_headers": [{"claim": "did", "header": "x-device-id"}],
    });
    let servers = [Server {
        extra: METRICS.to_owned(),
        ..server("remote-keys", config.to_string())
    }];
    let nginx = Nginx::start("remote-keys", &servers, recorder.port());
    let port = nginx.ports[0];
    let claims = serde_json::json!({"did": "d1", "exp": unix_now() + 600});
    let (old, new) = (
        mint_with("es256", &claims),
        mint_with("es256_other", &claims),
    );

    // The key server answers 500: no keys yet.
    eventually(10, "a failed first fetch", || {
        counter(port, "attestgate.jwks.fetch_failed") >= 1
    });
    let reply = get(port, &old);
    assert_eq!(
        (reply.status, reply.header("x-attestgate-reason")),
        (503, Some("keys_unavailable")),
        "{reply:?}"
    );
    assert_eq!(counter(port, "attestgate.jwks.fetched"), 0);

    keys.answer("/jwks.json", Answer::ok(test_jwks("es256")));
    eventually(10, "the first JWKS is fetched", || {
        get(port, &old).status == 200
    });
    for _ in 0..6 {
        assert_eq!(get(port, &old).status, 200);
        let reply = get(port, &new);
        assert_eq!(
            (reply.status, reply.header("x-attestgate-reason")),
            (401, Some("signature_invalid")),
            "{reply:?}"
        );
    }
    // One fetch a second serves both workers (a claim through the shared dict).
    let before = keys.served("/jwks.json");
    std::thread::sleep(Duration::from_secs(3));
    let fetches = keys.served("/jwks.json") - before;
    assert!((1..=4).contains(&fetches), "{fetches} fetches in 3 s");

    // Rotate (this time chunked): the new key verifies; once it does, the old one never again.
    keys.answer(
        "/jwks.json",
        Answer {
            chunked: true,
            ..Answer::ok(test_jwks("es256_other"))
        },
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the new key never verified");
        let (a, b) = (get(port, &old), get(port, &new));
        assert!(matches!(a.status, 200 | 401) && matches!(b.status, 200 | 401));
        if b.status == 200 {
            break;
        }
    }
    let check_rotated = || {
        for _ in 0..8 {
            assert_eq!(get(port, &old).status, 401);
            assert_eq!(get(port, &new).status, 200);
        }
    };
    check_rotated();

    // Garbage, an oversized JWKS (the old keys padded past max_bytes), a 500: each a failed
    // fetch that keeps the keys.
    let padded = format!("{}{}", test_jwks("es256"), " ".repeat(2048));
    for bad in [
        Answer::ok("<html>502 Bad Gateway</html>".to_owned()),
        Answer::ok(padded.clone()),
        Answer {
            chunked: true,
            ..Answer::ok(padded)
        },
        Answer::ok(r#"{"keys":[]}"#.to_owned()),
        Answer {
            status: 500,
            ..Answer::ok(test_jwks("es256"))
        },
    ] {
        let failed = counter(port, "attestgate.jwks.fetch_failed");
        keys.answer("/jwks.json", bad);
        eventually(10, "a failed fetch", || {
            counter(port, "attestgate.jwks.fetch_failed") > failed
        });
        check_rotated();
    }

    // The key server goes away: fetches fail, the last good keys stay.
    keys.answer("/jwks.json", Answer::ok(test_jwks("es256_other")));
    std::thread::sleep(Duration::from_millis(1500));
    let failed = counter(port, "attestgate.jwks.fetch_failed");
    keys.shut_down();
    eventually(10, "a fetch fails", || {
        counter(port, "attestgate.jwks.fetch_failed") > failed
    });
    check_rotated();
    assert!(counter(port, "attestgate.jwks.fetched") >= 2);
    assert_eq!(counter(port, "attestgate.errors"), 0);
    let log = nginx.log();
    assert!(
        log.contains("fetch failed, keeping the last good one"),
        "{log}"
    );
}

fn oct_jwks(keys: &[(&str, &str)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, secret)| {
            let k = secret
                .trim_end_matches('=')
                .replace('+', "-")
                .replace('/', "_");
            serde_json::json!({"kty": "oct", "alg": "HS256", "kid": kid, "k": k})
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

fn oct_token(kid: &str, secret: &str, did: &str) -> String {
    let claims = serde_json::json!({"did": did, "exp": unix_now() + 600});
    attestgate_testkit::SigningKey::hs256_from_base64_secret(secret)
        .unwrap()
        .with_kid(Some(kid.to_owned()))
        .sign(claims.as_object().unwrap())
        .unwrap()
}

const OTHER_SECRET: &str = "b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXMh";

/// A fetched denylist in real NGINX (with the JWKS from the same server): a listed device is
/// refused `device_denied`, an update takes effect, a garbled list keeps the last good one.
/// And an unknown `kid` pulls the next JWKS fetch forward once per refresh interval, not per
/// request.
#[test]
fn a_fetched_denylist_and_an_unknown_kid_in_nginx() {
    let recorder = RecordingUpstream::start().unwrap();
    let keys = DocumentServer::start().unwrap();
    keys.answer("/jwks.json", Answer::ok(oct_jwks(&[("k1", SECRET)])));
    keys.answer(
        "/deny.json",
        Answer::ok(r#"{"devices":["lost"]}"#.to_owned()),
    );
    let at = format!("127.0.0.1:{}", keys.port());
    let config = serde_json::json!({
        "keys": {"remote": {"upstream": at, "authority": "keys.test", "path": "/jwks.json",
                            "refresh_seconds": 600}},
        "denylist": {"remote": {"upstream": at, "authority": "lists.test", "path": "/deny.json",
                                "refresh_seconds": 1}},
    });
    let servers = [Server {
        extra: METRICS.to_owned(),
        ..server("remote-lists", config.to_string())
    }];
    let nginx = Nginx::start("remote-lists", &servers, recorder.port());
    let port = nginx.ports[0];
    let (lost, good) = (
        oct_token("k1", SECRET, "lost"),
        oct_token("k1", SECRET, "good"),
    );
    eventually(10, "both documents are fetched", || {
        get(port, &lost).header("x-attestgate-reason") == Some("device_denied")
    });
    for _ in 0..4 {
        let reply = get(port, &lost);
        assert_eq!(
            (reply.status, reply.header("x-attestgate-reason")),
            (403, Some("device_denied"))
        );
        assert_eq!(get(port, &good).status, 200);
    }
    keys.answer(
        "/deny.json",
        Answer::ok(r#"{"devices":["good"]}"#.to_owned()),
    );
    eventually(10, "the new list", || get(port, &good).status == 403);
    for _ in 0..4 {
        assert_eq!(get(port, &lost).status, 200);
        assert_eq!(get(port, &good).status, 403);
    }
    for bad in [r#"{"devices":[1]}"#, "[]", "not json"] {
        let failed = counter(port, "attestgate.denylist.fetch_failed");
        keys.answer("/deny.json", Answer::ok(bad.to_owned()));
        eventually(10, "a failed fetch", || {
            counter(port, "attestgate.denylist.fetch_failed") > failed
        });
        assert_eq!(get(port, &good).status, 403);
        assert_eq!(get(port, &lost).status, 200);
    }
    assert!(counter(port, "attestgate.denylist.fetched") >= 2);

    // The JWKS refreshes every 600 s; a token with a kid it does not hold pulls the next fetch
    // forward, once per interval: the rotated key verifies without waiting 10 minutes, and a
    // flood of unknown kids does not make NGINX fetch in a loop.
    let fetched = keys.served("/jwks.json");
    keys.answer(
        "/jwks.json",
        Answer::ok(oct_jwks(&[("k1", SECRET), ("k2", OTHER_SECRET)])),
    );
    let rotated = oct_token("k2", OTHER_SECRET, "d2");
    let reply = get(port, &rotated);
    assert_eq!(reply.header("x-attestgate-reason"), Some("key_not_found"));
    eventually(5, "the early fetch", || get(port, &rotated).status == 200);
    for i in 0..20 {
        let forged = oct_token(&format!("forged-{i}"), OTHER_SECRET, "d3");
        assert_eq!(
            get(port, &forged).header("x-attestgate-reason"),
            Some("key_not_found")
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(keys.served("/jwks.json"), fetched + 1);
}

/// Without `lua_shared_dict attestgate_remote`, each worker fetches for itself: the keys are
/// still fetched and rotated in every worker, and the key server sees each worker's fetches.
#[test]
fn without_the_shared_dict_each_worker_fetches_for_itself() {
    let recorder = RecordingUpstream::start().unwrap();
    let keys = DocumentServer::start().unwrap();
    keys.answer("/jwks.json", Answer::ok(test_jwks("es256")));
    let config = serde_json::json!({
        "keys": {"remote": {"upstream": format!("127.0.0.1:{}", keys.port()),
                            "authority": "keys.test", "path": "/jwks.json",
                            "refresh_seconds": 1}},
    });
    let servers = [Server {
        extra: format!("{NO_REMOTE_DICT}\n    {METRICS}"),
        ..server("remote-per-worker", config.to_string())
    }];
    let nginx = Nginx::start("remote-per-worker", &servers, recorder.port());
    let port = nginx.ports[0];
    let claims = serde_json::json!({"did": "d1", "exp": unix_now() + 600});
    let (old, new) = (
        mint_with("es256", &claims),
        mint_with("es256_other", &claims),
    );
    eventually(10, "the JWKS is fetched", || get(port, &old).status == 200);
    let before = keys.served("/jwks.json");
    std::thread::sleep(Duration::from_secs(3));
    let fetches = keys.served("/jwks.json") - before;
    // Two workers, a fetch a second each.
    assert!((4..=8).contains(&fetches), "{fetches} fetches in 3 s");
    keys.answer("/jwks.json", Answer::ok(test_jwks("es256_other")));
    std::thread::sleep(Duration::from_secs(3));
    for _ in 0..10 {
        assert_eq!(get(port, &old).status, 401);
        assert_eq!(get(port, &new).status, 200);
    }
}

// The decision record in NGINX's access log ------------------------------------------------

/// A policy that denies with two reasons for an old app on a rooted device.
const TWO_REASON_POLICY: &str = r#"package attestgate
import rego.v1
reasons contains "old_app" if input.token.claims.att.app.version == "1.0"
reasons contains "rooted" if input.token.claims.att.device.rooted
decision := {"allow": count(reasons) == 0, "reasons": sort([r | some r in reasons])}"#;

/// Waits (bounded) until the access log `file` has `count` lines: NGINX writes a request's
/// line in its log phase, after the reply went out.
fn access_lines(file: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue #29: the core's decision record as NGINX variables in `log_format`. The documented
/// include files (native/nginx/attestgate_vars.conf in the server, attestgate_log_format.conf
/// in http) are used as they are: each `$attestgate_<field>` in an `escape=json` line is the
/// record's text field, and the `attestgate_json` line (the one `attestgate report` reads)
/// parses as `{"time": RFC 3339, "attestgate": the record as a JSON string, ...}`, for an
/// allowed request, an enforced denial, a monitored policy denial with its reasons, and a
/// forged token whose device id never reaches the log.
#[test]
fn the_decision_record_is_in_nginxs_access_log() {
    use attestgate_policy::record::DecisionRecord;

    let recorder = RecordingUpstream::start().unwrap();
    let nginx_dir = root().join("native/nginx").canonicalize().unwrap();
    let vars = nginx_dir.join("attestgate_vars.conf");
    // The include file declares exactly the record's variables.
    let declared: Vec<String> = std::fs::read_to_string(&vars)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("set $"))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = vec!["attestgate_record".to_owned()];
    expected.extend(
        DecisionRecord::<&str>::FIELDS
            .iter()
            .map(|f| format!("attestgate_{f}")),
    );
    assert_eq!(declared, expected);

    let dir = std::env::temp_dir().join(format!("attestgate-access-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (fields_log, json_log) = (dir.join("fields.log"), dir.join("attestgate.log"));
    // One escape=json line of every variable, keyed by the field's name.
    let fields: Vec<String> = DecisionRecord::<&str>::FIELDS
        .iter()
        .map(|f| format!(r#""{f}":"$attestgate_{f}""#))
        .collect();
    let http = format!(
        "  include {format};\n  log_format attestgate_fields escape=json '{{\"uri\":\"$uri\",{fields}}}';\n",
        format = nginx_dir.join("attestgate_log_format.conf").display(),
        fields = fields.join(","),
    );
    let logs = format!(
        "include {vars};\n    access_log {fields} attestgate_fields;\n    access_log {json} attestgate_json;",
        vars = vars.display(),
        fields = fields_log.display(),
        json = json_log.display(),
    );
    // `record_fields` loads here: every field is a variable anyway.
    let base =
        format!(r#""keys":{{"approov_secret":"{SECRET}"}},"record_fields":["device","platform"]"#);
    let servers = [
        Server {
            extra: logs.clone(),
            ..server("enforce", format!("{{{base}}}"))
        },
        Server {
            extra: logs,
            ..server(
                "monitor",
                format!(
                    r#"{{{base},"mode":"monitor","policy":{{"modules":{{"p.rego":{}}}}}}}"#,
                    serde_json::to_string(TWO_REASON_POLICY).unwrap()
                ),
            )
        },
    ];
    let upstream = recorder.port();
    let nginx = Nginx::try_start_with("access-log", servers.len(), |dir, ports| {
        conf(dir, &servers, ports, upstream).replacen("http {\n", &format!("http {{\n{http}"), 1)
    })
    .unwrap_or_else(|log| panic!("{log}"));
    let (enforce, monitor) = (nginx.ports[0], nginx.ports[1]);
    let now = unix_now();
    let good = token(&serde_json::json!({"exp": now + 300, "did": "dev-good",
        "att": {"device": {"platform": "ios"}, "app": {"version": "2.4.1"}}}));
    let expired = token(&serde_json::json!({"exp": now - 600, "did": "dev-expired"}));
    let old_rooted = token(&serde_json::json!({"exp": now + 300, "did": "dev-rooted",
        "att": {"device": {"platform": "android", "rooted": true}, "app": {"version": "1.0"}}}));
    let forged = attestgate_testkit::SigningKey::hs256_from_base64_secret(
        "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItb3Q=",
    )
    .unwrap()
    .sign(
        serde_json::json!({"exp": now + 300, "did": "dev-forged"})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    let send = |port: u16, path: &str, headers: &[(String, String)]| {
        Conn::open(port)
            .send("GET", path, "api.example.com", headers, b"")
            .expect("a reply")
            .status
    };
    assert_eq!(
        send(enforce, "/t/allowed", &[h("approov-token", &good)]),
        200
    );
    assert_eq!(
        send(enforce, "/t/expired", &[h("approov-token", &expired)]),
        401
    );
    assert_eq!(
        send(
            enforce,
            "/t/forged",
            &[h("approov-token", &forged), h("x-device-id", "dev-spoofed")]
        ),
        401
    );
    assert_eq!(
        send(monitor, "/t/monitored", &[h("approov-token", &old_rooted)]),
        200
    );
    // A path with a quote and a backslash cannot break the line.
    assert_eq!(send(enforce, "/t/%22q%5C", &[]), 401);

    let by_uri = |lines: &[String], key: &str| -> BTreeMap<String, Value> {
        lines
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                (v[key].as_str().unwrap().to_owned(), v)
            })
            .collect()
    };
    let field_lines = by_uri(&access_lines(&fields_log, 5), "uri");
    let json_lines = by_uri(&access_lines(&json_log, 5), "path");
    assert_eq!(field_lines.len(), 5, "{field_lines:?}\n{}", nginx.log());
    assert_eq!(json_lines.len(), 5, "{json_lines:?}");

    // The contract line: "time" RFC 3339, "attestgate" the record (a JSON string here).
    let record_of = |path: &str| -> DecisionRecord<String> {
        let line = &json_lines[path];
        let time = line["time"].as_str().unwrap();
        assert!(
            time.len() == 25 && time.as_bytes()[10] == b'T' && time[19..].starts_with(['+', '-']),
            "not RFC 3339: {time}"
        );
        assert_eq!(line["method"], "GET");
        serde_json::from_str(line["attestgate"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let allowed = record_of("/t/allowed");
    assert_eq!(
        (
            allowed.verdict.as_str(),
            allowed.allowed,
            allowed.reason.as_str()
        ),
        ("allow", true, "allowed")
    );
    assert_eq!(allowed.device.as_deref(), Some("dev-good"));
    assert_eq!(
        (allowed.platform.as_deref(), allowed.app_version.as_deref()),
        (Some("ios"), Some("2.4.1"))
    );
    assert_eq!(allowed.cache.as_deref(), Some("miss"));
    assert_eq!(json_lines["/t/allowed"]["status"], 200);
    let expired_record = record_of("/t/expired");
    assert_eq!(
        (
            expired_record.verdict.as_str(),
            expired_record.allowed,
            expired_record.status,
            expired_record.reason.as_str(),
            expired_record.mode.as_str()
        ),
        ("deny", false, 401, "token_expired", "enforce")
    );
    assert_eq!(
        expired_record.device, None,
        "an expired token's claims are not trusted"
    );
    assert_eq!(json_lines["/t/expired"]["status"], 401);
    let forged_record = record_of("/t/forged");
    assert_eq!(forged_record.reason, "signature_invalid");
    assert_eq!(forged_record.device, None);
    let monitored = record_of("/t/monitored");
    assert_eq!(
        (
            monitored.verdict.as_str(),
            monitored.allowed,
            monitored.mode.as_str(),
            monitored.reason.as_str()
        ),
        ("deny", true, "monitor", "policy_denied")
    );
    assert_eq!(monitored.policy_reasons, ["old_app", "rooted"]);
    assert_eq!(
        (
            monitored.device.as_deref(),
            monitored.platform.as_deref(),
            monitored.app_version.as_deref()
        ),
        (Some("dev-rooted"), Some("android"), Some("1.0"))
    );
    assert!(monitored.would_deny());
    assert_eq!(record_of("/t/\"q\\").reason, "token_missing");

    // Each variable is the record's text field, for every request.
    for (path, line) in &field_lines {
        let record = record_of(path);
        for (name, value) in record.text_fields() {
            assert_eq!(line[name], value.as_str(), "{path}: ${name}\n{line}");
        }
    }
    assert_eq!(
        field_lines["/t/monitored"]["policy_reasons"],
        "old_app,rooted"
    );
    assert_eq!(field_lines["/t/monitored"]["verdict"], "deny");
    assert_eq!(field_lines["/t/monitored"]["allowed"], "true");
    assert_eq!(field_lines["/t/expired"]["status"], "401");
    assert_eq!(field_lines["/t/allowed"]["device"], "dev-good");
    // The forged token's device id, and the client's spoofed one, appear nowhere.
    for file in [&fields_log, &json_log] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("dev-forged") && !text.contains("dev-spoofed"),
            "{text}"
        );
    }
    let log = nginx.log();
    assert!(!log.contains("[error]"), "{log}");
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}
