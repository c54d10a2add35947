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
}

impl Request {
    /// A request with a method and path and nothing else.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            ..Request::default()
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the host.
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>) -> Request {
        self.host = host.into();
        self
    }

    /// Sets the client address.
    #[must_use]
    pub fn with_source_ip(mut self, ip: impl Into<String>) -> Request {
        self.source_ip = Some(ip.into());
        self
    }

    /// Values of a header, matched case-insensitively, in arrival order.
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
    pub fn path_without_query(&self) -> &str {
        let end = self.path.find(['?', '#']).unwrap_or(self.path.len());
        self.path.get(..end).unwrap_or(&self.path)
    }
}
