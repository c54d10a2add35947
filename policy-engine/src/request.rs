//! The request facts a host hands to the gate.

/// One HTTP request as the gate sees it. Hosts fill it from whatever they have; the CLI from
/// its flags.
///
/// ```
/// use attestgate_policy::Request;
/// let request = Request::new("POST", "/v1/login?x=1")
///     .with_host("api.example.com")
///     .with_header("Authorization", "Bearer abc")
///     .with_source_ip("203.0.113.7");
/// assert_eq!(request.header_values("authorization").next(), Some("Bearer abc"));
/// assert_eq!(request.path_without_query(), "/v1/login");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Path with any query string, as received (`:path`).
    pub path: String,
    /// Host or `:authority`.
    pub host: String,
    /// Headers in arrival order; names in any case.
    pub headers: Vec<(String, String)>,
    /// Client address, without port.
    pub source_ip: Option<String>,
    /// The complete body, when the host buffered it (for a signed `content-digest`).
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A request with a method and path and nothing else.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// let request = Request::new("GET", "/v1/shapes");
    /// assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/v1/shapes"));
    /// assert!(request.headers.is_empty() && request.body.is_none());
    /// ```
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            ..Request::default()
        }
    }

    /// Adds a header; a repeated name adds another field line.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// let request = Request::new("GET", "/").with_header("Accept", "a").with_header("accept", "b");
    /// assert_eq!(request.header_values("ACCEPT").collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the host.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// assert_eq!(Request::new("GET", "/").with_host("api.example.com").host, "api.example.com");
    /// ```
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>) -> Request {
        self.host = host.into();
        self
    }

    /// Sets the complete request body.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// assert_eq!(Request::new("POST", "/").with_body("{}").body.as_deref(), Some(&b"{}"[..]));
    /// ```
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(body.into());
        self
    }

    /// Sets the client address.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// let request = Request::new("GET", "/").with_source_ip("203.0.113.7");
    /// assert_eq!(request.source_ip.as_deref(), Some("203.0.113.7"));
    /// ```
    #[must_use]
    pub fn with_source_ip(mut self, ip: impl Into<String>) -> Request {
        self.source_ip = Some(ip.into());
        self
    }

    /// Values of a header, matched case-insensitively, in arrival order.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// let request = Request::new("GET", "/").with_header("Approov-Token", "t1");
    /// assert_eq!(request.header_values("approov-token").next(), Some("t1"));
    /// assert_eq!(request.header_values("authorization").next(), None);
    /// ```
    pub fn header_values<'a: 'n, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + 'n {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query string or fragment.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// assert_eq!(Request::new("GET", "/v1/a?b=1#c").path_without_query(), "/v1/a");
    /// assert_eq!(Request::new("GET", "/v1/a#c").path_without_query(), "/v1/a");
    /// ```
    pub fn path_without_query(&self) -> &str {
        let end = self.path.find(['?', '#']).unwrap_or(self.path.len());
        self.path.get(..end).unwrap_or(&self.path)
    }

    /// The path as an upstream following RFC 3986 would resolve it: query dropped,
    /// percent-encoded unreserved characters decoded (`%62` → `b`; `%2F` stays), repeated
    /// slashes merged and `.`/`..` segments removed (RFC 3986 §6.2.2, §5.2.4). Without this,
    /// `/health/../admin` would match a `/health` bypass rule while the upstream serves
    /// `/admin`. Route rules match every reading of [`Request::path_readings`], of which this
    /// is one.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// let path = |p: &str| Request::new("GET", p).normalized_path();
    /// assert_eq!(path("/beta/../admin?x=1"), "/admin");
    /// assert_eq!(path("//%62eta/./x"), "/beta/x");
    /// assert_eq!(path("/a%2Fb"), "/a%2Fb");
    /// ```
    pub fn normalized_path(&self) -> String {
        read_path(self.path_without_query(), Convention::RFC3986)
    }

    /// [`Request::normalized_path`] with the query as received: what a host that must forward
    /// a path of its own making (the Worker: `fetch()` resolves paths itself) sends upstream,
    /// one of the readings the gate decided on.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// assert_eq!(Request::new("GET", "/beta/a/../b?x=../y").normalized_target(), "/beta/b?x=../y");
    /// assert_eq!(Request::new("GET", "/%62eta#f").normalized_target(), "/beta");
    /// ```
    pub fn normalized_target(&self) -> String {
        let mut target = self.normalized_path();
        let query = self
            .path
            .split_once('#')
            .map_or(self.path.as_str(), |(before, _)| before)
            .split_once('?')
            .map(|(_, query)| query);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        target
    }

    /// Whether the path (without its query) holds a control character: raw, percent-encoded
    /// (`%00`, `%0a`, `%7f`) or encoded twice (`%2500`). No upstream has a use for one, and
    /// servers disagree on where a NUL ends a path, so such a path is refused (`path_invalid`).
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// let control = |p: &str| Request::new("GET", p).path_has_control_character();
    /// assert!(control("/beta/..%00/admin") && control("/a%250A") && control("/a\tb"));
    /// assert!(!control("/beta/x?nul=%00") && !control("/caf%C3%A9") && !control("/100%25"));
    /// ```
    pub fn path_has_control_character(&self) -> bool {
        let path = self.path_without_query();
        if path.chars().any(char::is_control) {
            return true;
        }
        if !path.contains('%') {
            return false;
        }
        let once = percent_decode(path.as_bytes());
        once.iter().any(|&b| b < 0x20 || b == 0x7f)
            || percent_decode(&once).iter().any(|&b| b < 0x20 || b == 0x7f)
    }

    /// Every way a common upstream may read the path: with or without `%2F`/`%5C` decoded to
    /// separators, `\` taken as `/` (IIS, some Java and Node servers), `;` segment parameters
    /// dropped (Tomcat, Spring: `/a/..;/b` is `/b`) and repeated slashes merged, dot segments
    /// (encoded or not) resolved in each; repeated slashes kept only where a `..` segment
    /// follows them; and all of that again with `%25` decoded to `%` first (an upstream that
    /// decodes twice). Distinct readings only, the RFC 3986 one first. A
    /// path that holds none of `%`, `\`, `;`, `//` or a dot segment has one reading.
    ///
    /// ```
    /// use attestgate_policy::Request;
    /// let readings = |p: &str| Request::new("GET", p).path_readings();
    /// assert_eq!(readings("/beta/x"), ["/beta/x"]);
    /// assert!(readings("/beta%2F..%2Fadmin").contains(&"/admin".to_owned()));
    /// assert!(readings("/beta/..;/admin").contains(&"/admin".to_owned()));
    /// assert!(readings("/beta\\..\\admin").contains(&"/admin".to_owned()));
    /// assert!(readings("/beta/%252e%252e/admin").contains(&"/admin".to_owned()));
    /// ```
    pub fn path_readings(&self) -> Vec<String> {
        let path = self.path_without_query();
        let plain = !path.contains(['%', '\\', ';'])
            && !path.contains("//")
            && !path.split('/').any(|s| s == "." || s == "..");
        if plain {
            return vec![read_path(path, Convention::RFC3986)];
        }
        let mut readings: Vec<String> = Vec::with_capacity(4);
        // An upstream that decodes once more (servlet stacks, a proxy chained behind the
        // gateway) reads `%252e` as `%2e`, that is `.`.
        let decoded_twice = decode_percent_signs(path);
        for text in std::iter::once(path).chain(decoded_twice.as_deref()) {
            for convention in Convention::all() {
                let reading = read_path(text, convention);
                if !readings.contains(&reading) {
                    readings.push(reading);
                }
            }
        }
        readings
    }
}

/// RFC 9110 token characters; what a header name may contain.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// No control characters: a claim must never split or smuggle a header.
pub(crate) fn is_header_value(value: &str) -> bool {
    value.len() <= 8 * 1024 && !value.chars().any(|c| c.is_control())
}

/// One upstream convention for reading a path; each flag is a way some server differs from
/// RFC 3986.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Convention {
    /// `%2F` and `%5C` decoded before the path is split into segments.
    decode_slashes: bool,
    /// `\` is a separator.
    backslash: bool,
    /// `;` starts a segment parameter, dropped.
    strip_params: bool,
    /// Repeated slashes count as one.
    merge_slashes: bool,
}

impl Convention {
    const RFC3986: Convention = Convention {
        decode_slashes: false,
        backslash: false,
        strip_params: false,
        merge_slashes: true,
    };

    /// Every combination of the flags, RFC 3986 (with merged slashes, as Envoy's
    /// `merge_slashes` does) first.
    fn all() -> impl Iterator<Item = Convention> {
        (0..16_u8).map(|i| Convention {
            decode_slashes: i & 1 != 0,
            backslash: i & 2 != 0,
            strip_params: i & 4 != 0,
            merge_slashes: i & 8 == 0,
        })
    }
}

/// Reads a path (without its query) under one convention: separators found, parameters
/// dropped, unreserved escapes decoded, then dot segments resolved (RFC 3986 §5.2.4).
fn read_path(path: &str, convention: Convention) -> String {
    let mut text = std::borrow::Cow::Borrowed(path);
    if convention.decode_slashes && text.contains('%') {
        text = decode_slashes(&text).into();
    }
    if convention.backslash && text.contains('\\') {
        text = text.replace('\\', "/").into();
    }
    let mut segments: Vec<String> = Vec::new();
    let body = text.strip_prefix('/').unwrap_or(&text);
    let mut parts = body.split('/').peekable();
    let mut trailing_slash = false;
    let mut saw_parent = false;
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let part = if convention.strip_params {
            part.split(';').next().unwrap_or_default()
        } else {
            part
        };
        let segment = decode_unreserved(part);
        match segment.as_str() {
            "." => trailing_slash = last,
            ".." => {
                saw_parent = true;
                segments.pop();
                trailing_slash = last;
            }
            "" if convention.merge_slashes || last => trailing_slash = last,
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    if !saw_parent {
        // Without `..`, an empty segment changes no resource an upstream resolves
        // (`//beta/x` is `/beta/x` or nothing); with them it does (`/x//../health` is
        // `/x/health` to an upstream that does not merge slashes).
        segments.retain(|segment| !segment.is_empty());
    }
    let mut path = String::with_capacity(text.len() + 1);
    for segment in &segments {
        path.push('/');
        path.push_str(segment);
    }
    if trailing_slash || path.is_empty() {
        path.push('/');
    }
    path
}

/// `%25` → `%`, everything else kept; `None` when the path holds no `%25`.
fn decode_percent_signs(path: &str) -> Option<String> {
    path.contains("%25").then(|| path.replace("%25", "%"))
}

/// Every `%XX` escape decoded to its byte; anything else kept.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        // Two hex digits; `from_str_radix` alone would take `%+1` as an escape.
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) if b == b'%' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `%2F` → `/` and `%5C` → `\` (either case of hex digit); everything else kept.
fn decode_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let escape = rest.get(at..at + 3).unwrap_or_default();
        if escape.eq_ignore_ascii_case("%2f") {
            out.push('/');
            rest = rest.get(at + 3..).unwrap_or_default();
        } else if escape.eq_ignore_ascii_case("%5c") {
            out.push('\\');
            rest = rest.get(at + 3..).unwrap_or_default();
        } else {
            out.push('%');
            rest = rest.get(at + 1..).unwrap_or_default();
        }
    }
    out.push_str(rest);
    out
}

/// Decodes `%XX` only where XX is an unreserved character; everything else is kept as is.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        let decoded = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(c) if b == b'%' && (c.is_ascii_alphanumeric() || b"-._~".contains(&c)) => {
                out.push(char::from(c));
                i += 3;
            }
            _ => {
                // Not a decodable escape: copy one whole character.
                let ch = path
                    .get(i..)
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or('\u{fffd}');
                out.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str) -> String {
        Request::new("GET", path).normalized_path()
    }

    #[test]
    fn dot_segments_and_slashes() {
        assert_eq!(norm("/"), "/");
        assert_eq!(norm(""), "/");
        assert_eq!(norm("/health"), "/health");
        assert_eq!(norm("/health/"), "/health/");
        assert_eq!(norm("/health/.."), "/");
        assert_eq!(norm("/health/../admin"), "/admin");
        assert_eq!(norm("/../../etc"), "/etc");
        assert_eq!(norm("//login"), "/login");
        assert_eq!(norm("/login/."), "/login/");
        assert_eq!(norm("/a/./b//c/"), "/a/b/c/");
    }

    fn readings(path: &str) -> Vec<String> {
        Request::new("GET", path).path_readings()
    }

    #[test]
    fn readings_cover_each_upstream_convention() {
        assert_eq!(readings("/beta/x?y=../z"), ["/beta/x"]);
        assert_eq!(readings("//beta//x"), ["/beta/x"]);
        assert_eq!(
            readings("/beta%2F..%2Fadmin"),
            ["/beta%2F..%2Fadmin", "/admin"]
        );
        assert_eq!(readings("/beta/..%2fadmin"), ["/beta/..%2fadmin", "/admin"]);
        assert_eq!(
            readings("/beta%5C..%5Cadmin"),
            ["/beta%5C..%5Cadmin", "/beta\\..\\admin", "/admin"]
        );
        assert_eq!(readings("/beta\\..\\admin"), ["/beta\\..\\admin", "/admin"]);
        assert_eq!(readings("/beta/..;/admin"), ["/beta/..;/admin", "/admin"]);
        assert_eq!(
            readings("/health;jsessionid=1"),
            ["/health;jsessionid=1", "/health"]
        );
        assert_eq!(readings("/x//../health"), ["/health", "/x/health"]);
        assert_eq!(readings("/%2e%2e/%2E/admin"), ["/admin"]);
        assert_eq!(readings(""), ["/"]);
    }

    #[test]
    fn a_second_decoding_is_a_reading_too() {
        assert_eq!(
            readings("/beta/%252e%252e/admin"),
            ["/beta/%252e%252e/admin", "/admin"]
        );
        assert_eq!(readings("/beta/%252E/x"), ["/beta/%252E/x", "/beta/x"]);
        assert!(readings("/beta%252F..%252Fadmin").contains(&"/admin".to_owned()));
        // `%25` alone decodes to a `%` that starts no escape: the same resource.
        assert_eq!(readings("/100%25"), ["/100%25", "/100%"]);
    }

    #[test]
    fn control_characters_raw_encoded_or_encoded_twice() {
        let control = |p: &str| Request::new("GET", p).path_has_control_character();
        for path in [
            "/a\0b", "/a%00", "/a%0d%0a", "/a%7F", "/a%2500", "/a%251f", "/\u{85}",
        ] {
            assert!(control(path), "{path:?}");
        }
        for path in [
            "/a", "/a%20b", "/a%2520", "/a?x=%00", "/%zz%0", "/a%25", "/a%+1",
        ] {
            assert!(!control(path), "{path:?}");
        }
    }

    #[test]
    fn only_unreserved_escapes_are_decoded() {
        assert_eq!(norm("/%62eta/x"), "/beta/x");
        assert_eq!(norm("/%2e%2e/admin"), "/admin");
        assert_eq!(norm("/a%2Fb"), "/a%2Fb");
        assert_eq!(norm("/caf%C3%A9"), "/caf%C3%A9");
        assert_eq!(norm("/bad%zz%"), "/bad%zz%");
        assert_eq!(norm("/ünï"), "/ünï");
    }
}
