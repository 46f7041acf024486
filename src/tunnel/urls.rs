//! Public URLs announced on a session channel (serveo, sish, pinggy,
//! localhost.run print them there), as pure functions.

/// Most URLs kept per tunnel.
pub const MAX_URLS: usize = 8;

/// Remove ANSI escape sequences (services colour their banners).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            if !c.is_control() || c == '\t' {
                out.push(c);
            } else {
                out.push(' ');
            }
            continue;
        }
        match chars.peek() {
            // CSI: ESC [ params final-byte(@..~)
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: ESC ] ... BEL or ESC \
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' {
                        chars.next();
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

/// Every `http://` and `https://` URL in `line`, trailing punctuation removed.
pub fn scrape(line: &str) -> Vec<String> {
    let line = strip_ansi(line);
    let mut out = Vec::new();
    let mut rest = line.as_str();
    while let Some(i) = find_scheme(rest) {
        let cand = &rest[i..];
        let end = cand
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '|'))
            .unwrap_or(cand.len());
        let mut url = &cand[..end];
        url = url.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}']);
        let scheme_len = if url.starts_with("https://") { 8 } else { 7 };
        if url.len() > scheme_len {
            out.push(url.to_string());
        }
        rest = &cand[end.max(1)..];
    }
    out
}

fn find_scheme(s: &str) -> Option<usize> {
    let a = s.find("http://");
    let b = s.find("https://");
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The host part of a URL (without port or userinfo), lower-cased.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A URL that looks like a tunnel's public address: no path beyond `/`, no
/// query, and not the service's own site (`server_host`, or its `www.`/
/// `admin.` pages that banners link to).
pub fn is_public_url(url: &str, server_host: &str) -> bool {
    let Some(host) = host_of(url) else {
        return false;
    };
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return false;
    };
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    if !(path.is_empty() || path == "/") || rest.contains('?') {
        return false;
    }
    let server = server_host.to_ascii_lowercase();
    host != server && host != format!("www.{server}") && host != format!("admin.{server}")
}

/// Which tunnel (index into `binds`, the bind addresses requested on this
/// session, in order) an announced URL belongs to. A URL whose first host
/// label is a tunnel's bind name (serveo/sish subdomains) goes to that tunnel;
/// otherwise to the only tunnel, or to the most recently requested one.
pub fn owner(url: &str, binds: &[&str], last_requested: Option<usize>) -> Option<usize> {
    let host = host_of(url)?;
    let label = host.split('.').next().unwrap_or("");
    let named = binds.iter().position(|b| {
        let b = b.to_ascii_lowercase();
        !b.is_empty() && !is_generic_bind(&b) && (label == b || host == b)
    });
    named.or(match binds.len() {
        0 => None,
        1 => Some(0),
        _ => last_requested.filter(|&i| i < binds.len()),
    })
}

/// Bind addresses that name no subdomain.
fn is_generic_bind(b: &str) -> bool {
    matches!(b, "localhost" | "0.0.0.0" | "*" | "::" | "127.0.0.1" | "")
}

/// Add `url` to `urls` unless present, keeping at most [`MAX_URLS`].
pub fn remember(urls: &mut Vec<String>, url: &str) -> bool {
    if urls.iter().any(|u| u == url) {
        return false;
    }
    if urls.len() >= MAX_URLS {
        urls.remove(0);
    }
    urls.push(url.to_string());
    true
}

/// What a newly announced URL does to a tunnel's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Nothing new.
    Same,
    /// The same address in a better form (https after http): kept quietly.
    Better,
    /// A new address: `url_hook` runs.
    Changed,
}

/// Compares `new` with the tunnel's `current` URL. Services print an http
/// and an https form of one address; that is one address, not a change.
pub fn update(current: Option<&str>, new: &str) -> Update {
    let Some(cur) = current else {
        return Update::Changed;
    };
    let key = |u: &str| -> String {
        let rest = u.split_once("://").map_or(u, |(_, r)| r);
        rest.trim_end_matches('/').to_ascii_lowercase()
    };
    if key(cur) != key(new) {
        Update::Changed
    } else if new.starts_with("https://") && !cur.starts_with("https://") {
        Update::Better
    } else {
        Update::Same
    }
}

/// Splits a byte stream into lines; keeps at most `max` bytes of an
/// unfinished line (a server that never sends a newline cannot grow it).
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    pub const MAX: usize = 4096;

    /// Feed bytes; returns the complete lines (lossy UTF-8, without `\r\n`).
    pub fn push(&mut self, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in data {
            if b == b'\n' || b == b'\r' {
                if !self.buf.is_empty() {
                    out.push(String::from_utf8_lossy(&self.buf).into_owned());
                    self.buf.clear();
                }
            } else if self.buf.len() < Self::MAX {
                self.buf.push(b);
            } else {
                out.push(String::from_utf8_lossy(&self.buf).into_owned());
                self.buf.clear();
                self.buf.push(b);
            }
        }
        out
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            return None;
        }
        let s = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_urls_from_service_banners() {
        let table: &[(&str, &[&str])] = &[
            ("", &[]),
            ("no url here", &[]),
            (
                "Forwarding HTTP traffic from https://ui-julio.serveo.net",
                &["https://ui-julio.serveo.net"],
            ),
            (
                "\u{1b}[32mForwarding HTTP traffic from \u{1b}[0mhttps://abc.serveo.net\u{1b}[0m\r",
                &["https://abc.serveo.net"],
            ),
            (
                "abc123.lhr.life tunneled with tls termination, https://abc123.lhr.life",
                &["https://abc123.lhr.life"],
            ),
            (
                "http://rnxyz-1-2-3-4.a.free.pinggy.link\thttps://rnxyz-1-2-3-4.a.free.pinggy.link",
                &[
                    "http://rnxyz-1-2-3-4.a.free.pinggy.link",
                    "https://rnxyz-1-2-3-4.a.free.pinggy.link",
                ],
            ),
            ("see (https://x.example/docs).", &["https://x.example/docs"]),
            ("\"https://q.example/\",", &["https://q.example/"]),
            ("http:// nothing", &[]),
            ("https://", &[]),
            (
                "twice: http://a.example and http://a.example",
                &["http://a.example", "http://a.example"],
            ),
        ];
        for (line, want) in table {
            assert_eq!(scrape(line), *want, "{line:?}");
        }
    }

    #[test]
    fn public_urls_are_bare_and_not_the_services_own_pages() {
        let table: &[(&str, &str, bool)] = &[
            ("https://ui-test.example/", "127.0.0.1", true),
            ("https://abc.serveo.net", "serveo.net", true),
            ("https://serveo.net", "serveo.net", false),
            ("https://localhost.run/docs/", "localhost.run", false),
            ("https://admin.localhost.run/", "localhost.run", false),
            ("https://www.Serveo.net/", "serveo.net", false),
            ("https://abc.lhr.life", "localhost.run", true),
            ("https://twitter.com/localhost_run", "localhost.run", false),
            ("http://x.example/?a=1", "h", false),
            ("http://x.example:8080", "h", true),
            ("https://", "h", false),
        ];
        for &(url, server, want) in table {
            assert_eq!(is_public_url(url, server), want, "{url} via {server}");
        }
    }

    #[test]
    fn host_of_urls() {
        assert_eq!(
            host_of("https://A.Example:443/x").as_deref(),
            Some("a.example")
        );
        assert_eq!(host_of("http://u@h.example").as_deref(), Some("h.example"));
        assert_eq!(host_of("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(host_of("nonsense"), None);
        assert_eq!(host_of("http:///path"), None);
    }

    #[test]
    fn urls_go_to_the_tunnel_they_name() {
        let binds = ["ui_julio", "api", "localhost"];
        type Case<'a> = (&'a str, &'a [&'a str], Option<usize>, Option<usize>);
        let table: &[Case] = &[
            ("https://api.serveo.net", &binds, None, Some(1)),
            ("https://ui_julio.serveo.net", &binds, Some(1), Some(0)),
            ("https://random.serveo.net", &binds, Some(2), Some(2)),
            ("https://random.serveo.net", &binds, None, None),
            ("https://random.serveo.net", &["localhost"], None, Some(0)),
            (
                "https://localhost.example",
                &["localhost", "x"],
                Some(1),
                Some(1),
            ),
            ("https://x.example", &[], Some(0), None),
            ("https://x.example", &["a", "b"], Some(5), None),
        ];
        for &(url, binds, last, want) in table {
            assert_eq!(owner(url, binds, last), want, "{url} {binds:?} {last:?}");
        }
    }

    #[test]
    fn url_updates() {
        use Update::*;
        let table: &[(Option<&str>, &str, Update)] = &[
            (None, "https://a.example", Changed),
            (Some("https://a.example"), "https://a.example", Same),
            (Some("https://a.example"), "https://a.example/", Same),
            (Some("https://a.example"), "http://a.example", Same),
            (Some("http://a.example"), "https://a.example", Better),
            (Some("https://A.example"), "https://a.example", Same),
            (Some("https://a.example"), "https://b.example", Changed),
            (
                Some("tcp://t.example:4000"),
                "tcp://t.example:4001",
                Changed,
            ),
        ];
        for (cur, new, want) in table {
            assert_eq!(update(*cur, new), *want, "{cur:?} -> {new}");
        }
    }

    #[test]
    fn remember_dedupes_and_caps() {
        let mut v = Vec::new();
        assert!(remember(&mut v, "https://a"));
        assert!(!remember(&mut v, "https://a"));
        for i in 0..20 {
            remember(&mut v, &format!("https://h{i}"));
        }
        assert_eq!(v.len(), MAX_URLS);
        assert_eq!(v.last().map(String::as_str), Some("https://h19"));
    }

    #[test]
    fn lines_survive_chunking_and_bound_memory() {
        let mut l = Lines::default();
        assert!(l.push(b"Forwarding from htt").is_empty());
        assert_eq!(
            l.push(b"ps://a.example\r\nnext"),
            vec!["Forwarding from https://a.example"]
        );
        assert_eq!(l.finish().as_deref(), Some("next"));
        assert_eq!(l.finish(), None);
        let long = vec![b'x'; Lines::MAX * 2 + 10];
        let out = l.push(&long);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|s| s.len() == Lines::MAX));
        assert_eq!(l.finish().map(|s| s.len()), Some(10));
        assert_eq!(l.push(b"\xff\xfeok\n"), vec!["\u{fffd}\u{fffd}ok"]);
    }

    #[test]
    fn strip_ansi_handles_osc_and_controls() {
        assert_eq!(strip_ansi("\u{1b}]0;title\u{7}hi"), "hi");
        assert_eq!(strip_ansi("a\u{1b}[1;32mb\u{1b}[0mc"), "abc");
        assert_eq!(strip_ansi("a\u{0}b"), "a b");
        assert_eq!(strip_ansi("trailing\u{1b}"), "trailing");
    }
}
