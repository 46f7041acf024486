//! The connectivity probe, without I/O: the probe URL, the request bytes,
//! reading an HTTP/1.x answer, and what the answer means.
//!
//! Plain HTTP only: a captive portal can only answer for the Internet where
//! no TLS stands in its way, which is what makes it visible.

use std::fmt;

/// What Android and ChromeOS fetch; answers 204 with no body when online.
pub const DEFAULT_URL: &str = "http://connectivitycheck.gstatic.com/generate_204";
/// Most of an answer roadie reads; a portal's login page may be big, but its
/// head and the start of its body say all there is to say.
pub const MAX_ANSWER: usize = 16 * 1024;
/// A portal's Location is shown to people and logged; keep it to a line.
const MAX_LOCATION: usize = 1024;

/// `http://host[:port]/path`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUrl {
    pub host: String,
    pub port: u16,
    /// Starts with `/`; includes any query.
    pub path: String,
}

impl fmt::Display for ProbeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

impl ProbeUrl {
    /// `host` or `host:port` as the Host header wants it (port 80 left out).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Parse a probe URL; the error says what is wrong, for check-config.
pub fn parse_url(s: &str) -> Result<ProbeUrl, String> {
    if s.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    {
        return Err(
            "must be plain http://: a captive portal can only answer in place of a \
                    site over plain HTTP (HTTPS fails before the portal can say anything)"
                .into(),
        );
    }
    let rest = match s.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("http://") => &s[7..],
        _ => return Err("is not an http:// URL".into()),
    };
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces".into());
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // The fragment is never sent.
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    if authority.contains('@') {
        return Err("must not contain a user name or password".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err("has an unclosed [ in its host".into());
        };
        match after {
            "" => (h, None),
            p => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err("has text after the ] of its host".into()),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("has a bad port \"{p}\" (1-65535)")),
        },
    };
    Ok(ProbeUrl {
        host: host.to_string(),
        port,
        path,
    })
}

/// What counts as "the Internet answered".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// `204 No Content` (the default, and `probe_expect = "204"`).
    NoContent,
    /// `200` with a body containing this text.
    Body(String),
}

impl Expect {
    /// From `[wan] probe_expect`.
    pub fn from_config(v: Option<&str>) -> Expect {
        match v {
            None => Expect::NoContent,
            Some(t) if t.trim() == "204" => Expect::NoContent,
            Some(t) => Expect::Body(t.to_string()),
        }
    }
}

/// The GET roadie sends.
pub fn request(url: &ProbeUrl) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: roadie/{}\r\nAccept: */*\r\n\
         Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority(),
        crate::VERSION
    )
    .into_bytes()
}

/// An HTTP answer's head and (the start of) its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub content_length: Option<usize>,
    pub body: Vec<u8>,
}

/// Where the head ends (index after the blank line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
}

/// Parse what was read so far. `Ok(None)`: not a whole head yet.
pub fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let Some(end) = head_end(buf) else {
        if buf.len() >= MAX_ANSWER {
            return Err(format!("no end of the HTTP head in {MAX_ANSWER} bytes"));
        }
        if !buf.is_empty() && !b"HTTP/".starts_with(&buf[..buf.len().min(5)]) {
            return Err("the answer is not HTTP".into());
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.lines();
    let first = lines.next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err("the answer is not HTTP/1.x".into());
    }
    let status = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| "the answer has no valid status code".to_string())?;
    let mut location = None;
    let mut content_length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("location") {
            location = Some(clean_location(value));
        } else if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = value.parse::<usize>().ok();
        }
    }
    let mut body = buf[end..].to_vec();
    if let Some(n) = content_length {
        body.truncate(n);
    }
    Ok(Some(Answer {
        status,
        location,
        content_length,
        body,
    }))
}

/// True once `buf` holds a whole answer (no need to wait for the close).
pub fn complete(buf: &[u8]) -> bool {
    match parse_answer(buf) {
        Ok(Some(a)) => {
            let bodyless = a.status == 204 || a.status == 304 || a.status < 200;
            bodyless || a.content_length.is_some_and(|n| a.body.len() >= n)
        }
        Ok(None) => false,
        Err(_) => true,
    }
}

/// A Location value safe to show on one line.
fn clean_location(v: &str) -> String {
    v.chars()
        .filter(|c| !c.is_control())
        .take(MAX_LOCATION)
        .collect()
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The expected answer: the Internet is there.
    Open,
    /// Something answered in the Internet's place: a login page.
    Portal { url: String },
    /// Nothing (useful) answered: no Internet, but no portal either.
    NoAnswer(String),
}

impl Outcome {
    /// For status: `open`, `portal`, `no answer`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Portal { .. } => "portal",
            Outcome::NoAnswer(_) => "no answer",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Open => f.write_str("open"),
            Outcome::Portal { url } => write!(f, "captive portal at {url}"),
            Outcome::NoAnswer(why) => write!(f, "no answer: {why}"),
        }
    }
}

/// `probe_url = "off"` turns the probe off.
pub const OFF: &str = "off";

/// Judge the bytes read for `url` (all of them, up to [`MAX_ANSWER`]).
pub fn classify(url: &ProbeUrl, expect: &Expect, buf: &[u8]) -> Outcome {
    let answer = match parse_answer(buf) {
        Ok(Some(a)) => a,
        Ok(None) if buf.is_empty() => return Outcome::NoAnswer("closed without answering".into()),
        Ok(None) => return Outcome::NoAnswer("the answer was cut short".into()),
        Err(e) => return Outcome::NoAnswer(e),
    };
    let open = match expect {
        Expect::NoContent => answer.status == 204,
        // Chunked bodies are searched as they came; the expected text is
        // short and sits inside one chunk.
        Expect::Body(text) => answer.status == 200 && contains(&answer.body, text.as_bytes()),
    };
    if open {
        return Outcome::Open;
    }
    // Portals answer with a redirect, a page of their own (2xx) or 511.
    // Anything else (a proxy's 403, a 404 or 5xx) says nothing about a
    // login page, and holding the tunnels on it could hold them forever.
    if !(200..400).contains(&answer.status) && answer.status != 511 {
        return Outcome::NoAnswer(format!(
            "answered HTTP {}, which is neither the expected answer nor a login page",
            answer.status
        ));
    }
    let url = match answer.location.as_deref() {
        Some(l) if !l.is_empty() && (300..400).contains(&answer.status) => resolve(url, l),
        _ => url.to_string(),
    };
    Outcome::Portal { url }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A Location made absolute against the probe URL.
fn resolve(base: &ProbeUrl, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("http://{rest}")
    } else if location.starts_with('/') {
        format!("http://{}{location}", base.authority())
    } else {
        let dir = &base.path[..base.path.rfind('/').map_or(0, |i| i + 1)];
        format!("http://{}{dir}{location}", base.authority())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ProbeUrl {
        parse_url(s).unwrap()
    }

    #[test]
    fn probe_urls() {
        let ok = [
            (
                DEFAULT_URL,
                "connectivitycheck.gstatic.com",
                80,
                "/generate_204",
            ),
            ("http://10.0.0.1:8080/x?y=1", "10.0.0.1", 8080, "/x?y=1"),
            ("HTTP://Example.org", "Example.org", 80, "/"),
            ("http://example.org?q", "example.org", 80, "/?q"),
            ("http://example.org/a#frag", "example.org", 80, "/a"),
            ("http://[fe80::1]:81/p", "fe80::1", 81, "/p"),
            ("http://[::1]/", "::1", 80, "/"),
        ];
        for (s, host, port, path) in ok {
            let u = parse_url(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(
                (u.host.as_str(), u.port, u.path.as_str()),
                (host, port, path),
                "{s}"
            );
        }
        let bad = [
            ("https://example.org/", "plain http://"),
            ("HTTPS://example.org/", "plain http://"),
            ("ftp://example.org/", "not an http:// URL"),
            ("example.org", "not an http:// URL"),
            ("http://", "no host"),
            ("http:///x", "no host"),
            ("http://:80/", "no host"),
            ("http://a b/", "spaces"),
            ("http://h:0/", "bad port"),
            ("http://h:65536/", "bad port"),
            ("http://h:x/", "bad port"),
            ("http://u:p@h/", "user name"),
            ("http://[::1/", "unclosed"),
            ("http://[::1]x/", "after the ]"),
            ("httpé://x/", "not an http:// URL"),
            ("http:/éé", "not an http:// URL"),
        ];
        for (s, want) in bad {
            let e = parse_url(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
        assert_eq!(url("http://h:8080/a").to_string(), "http://h:8080/a");
        assert_eq!(url("http://h:80/a").to_string(), "http://h/a");
        assert_eq!(url("http://[::1]:81/").authority(), "[::1]:81");
    }

    #[test]
    fn expectations() {
        assert_eq!(Expect::from_config(None), Expect::NoContent);
        assert_eq!(Expect::from_config(Some("204")), Expect::NoContent);
        assert_eq!(
            Expect::from_config(Some("success")),
            Expect::Body("success".into())
        );
    }

    #[test]
    fn the_request() {
        let r = String::from_utf8(request(&url("http://10.0.0.1:8080/gen?x"))).unwrap();
        assert!(
            r.starts_with("GET /gen?x HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n"),
            "{r}"
        );
        assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"), "{r}");
        let r = String::from_utf8(request(&url(DEFAULT_URL))).unwrap();
        assert!(
            r.contains("\r\nHost: connectivitycheck.gstatic.com\r\n"),
            "{r}"
        );
    }

    #[test]
    fn answers_parse() {
        let a = parse_answer(b"HTTP/1.1 302 Found\r\nlocation:  http://portal/login \r\nContent-Length: 3\r\n\r\nabcdef")
            .unwrap()
            .unwrap();
        assert_eq!(a.status, 302);
        assert_eq!(a.location.as_deref(), Some("http://portal/login"));
        assert_eq!(a.content_length, Some(3));
        assert_eq!(a.body, b"abc");
        // Bare LF line ends.
        let a = parse_answer(b"HTTP/1.0 204 No Content\n\n")
            .unwrap()
            .unwrap();
        assert_eq!(a.status, 204);
        // Not yet a whole head.
        assert_eq!(parse_answer(b"HTTP/1.1 200 OK\r\nX: y\r\n"), Ok(None));
        assert_eq!(parse_answer(b"HTT"), Ok(None));
        assert_eq!(parse_answer(b""), Ok(None));
        // Garbage.
        for bad in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                parse_answer(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_answer(&vec![b'H'; MAX_ANSWER]).is_err());
        // A Location with control characters is cleaned, and capped.
        let long = format!(
            "HTTP/1.1 302 x\r\nLocation: http://p/\x1b[31m{}\r\n\r\n",
            "a".repeat(5000)
        );
        let a = parse_answer(long.as_bytes()).unwrap().unwrap();
        let l = a.location.unwrap();
        assert!(
            !l.contains('\x1b') && l.len() == MAX_LOCATION,
            "{}",
            l.len()
        );
    }

    #[test]
    fn whole_answers() {
        assert!(complete(b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok"));
        assert!(
            !complete(b"HTTP/1.1 200 OK\r\n\r\nok"),
            "no length: read to the close"
        );
        assert!(!complete(b"HTTP/1.1 302 Found\r\n"));
        assert!(complete(b"garbage\r\n\r\n"));
    }

    #[test]
    fn classification() {
        let u = url("http://check.example/generate_204");
        let body = Expect::Body("success".into());
        let none = Expect::NoContent;
        let portal = |s: &str| Outcome::Portal { url: s.into() };
        let cases: Vec<(&str, &Expect, &[u8], Outcome)> = vec![
            (
                "204 as expected",
                &none,
                b"HTTP/1.1 204 No Content\r\n\r\n",
                Outcome::Open,
            ),
            (
                "302 to the portal",
                &none,
                b"HTTP/1.1 302 Found\r\nLocation: http://portal.example/login?r=1\r\n\r\n",
                portal("http://portal.example/login?r=1"),
            ),
            (
                "relative Location",
                &none,
                b"HTTP/1.1 307 x\r\nLocation: /login\r\n\r\n",
                portal("http://check.example/login"),
            ),
            (
                "Location relative to the path",
                &none,
                b"HTTP/1.1 303 x\r\nLocation: login\r\n\r\n",
                portal("http://check.example/login"),
            ),
            (
                "scheme-relative Location",
                &none,
                b"HTTP/1.1 301 x\r\nLocation: //portal/x\r\n\r\n",
                portal("http://portal/x"),
            ),
            (
                "https Location kept",
                &none,
                b"HTTP/1.1 302 x\r\nLocation: https://portal/x\r\n\r\n",
                portal("https://portal/x"),
            ),
            (
                "redirect without Location",
                &none,
                b"HTTP/1.1 302 Found\r\n\r\n",
                portal("http://check.example/generate_204"),
            ),
            (
                "200 login page instead of 204",
                &none,
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlogin",
                portal("http://check.example/generate_204"),
            ),
            (
                "Location on a 200 is no redirect",
                &none,
                b"HTTP/1.1 200 OK\r\nLocation: http://x/\r\n\r\n",
                portal("http://check.example/generate_204"),
            ),
            (
                "511 network authentication required",
                &none,
                b"HTTP/1.1 511 x\r\n\r\n",
                portal("http://check.example/generate_204"),
            ),
            (
                "body as expected",
                &body,
                b"HTTP/1.1 200 OK\r\n\r\nsuccess\n",
                Outcome::Open,
            ),
            (
                "body cut by Content-Length",
                &body,
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nsuccess\n",
                portal("http://check.example/generate_204"),
            ),
            (
                "other body",
                &body,
                b"HTTP/1.1 200 OK\r\n\r\n<html>Welcome to the hotel</html>",
                portal("http://check.example/generate_204"),
            ),
            (
                "the text, but not 200",
                &body,
                b"HTTP/1.1 404 Not Found\r\n\r\nsuccess",
                Outcome::NoAnswer(
                    "answered HTTP 404, which is neither the expected answer nor a login page"
                        .into(),
                ),
            ),
            (
                "a proxy that forbids the check is no portal",
                &none,
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
                Outcome::NoAnswer(
                    "answered HTTP 403, which is neither the expected answer nor a login page"
                        .into(),
                ),
            ),
            (
                "a server error is no portal",
                &none,
                b"HTTP/1.1 502 Bad Gateway\r\n\r\n",
                Outcome::NoAnswer(
                    "answered HTTP 502, which is neither the expected answer nor a login page"
                        .into(),
                ),
            ),
            (
                "204 when a body was expected",
                &body,
                b"HTTP/1.1 204 No Content\r\n\r\n",
                portal("http://check.example/generate_204"),
            ),
            (
                "closed at once",
                &none,
                b"",
                Outcome::NoAnswer("closed without answering".into()),
            ),
            (
                "cut short",
                &none,
                b"HTTP/1.1 204",
                Outcome::NoAnswer("the answer was cut short".into()),
            ),
            (
                "not HTTP",
                &none,
                b"SSH-2.0-x\r\n\r\n",
                Outcome::NoAnswer("the answer is not HTTP/1.x".into()),
            ),
        ];
        for (name, expect, bytes, want) in cases {
            assert_eq!(classify(&u, expect, bytes), want, "{name}");
        }
        assert_eq!(Outcome::Open.word(), "open");
        assert_eq!(
            portal("http://p/").to_string(),
            "captive portal at http://p/"
        );
        assert_eq!(Outcome::NoAnswer("x".into()).word(), "no answer");
    }
}
