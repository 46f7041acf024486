//! Server host keys: OpenSSH `known_hosts` parsing and matching (pure), the
//! `host_key = "SHA256:…"` pin, and learning a new key with an atomic write.

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, HashAlg, PublicKey};
use sha1::Sha1;
use std::fmt;
use std::path::Path;

/// `host` on port 22, `[host]:port` otherwise, as OpenSSH writes it.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    None,
    CertAuthority,
    Revoked,
}

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    pub marker: Marker,
    pub patterns: String,
    pub key: PublicKey,
}

/// Parse a known_hosts file. Lines that cannot be parsed are skipped and
/// described in the second list (OpenSSH skips them too).
pub fn parse(text: &str) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut fields = l.split_whitespace();
        let mut first = fields.next().unwrap_or("");
        let marker = match first {
            "@cert-authority" => Marker::CertAuthority,
            "@revoked" => Marker::Revoked,
            m if m.starts_with('@') => {
                problems.push(format!("line {line}: unknown marker {m}"));
                continue;
            }
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = fields.next().unwrap_or("");
        }
        let (Some(alg), Some(b64)) = (fields.next(), fields.next()) else {
            problems.push(format!(
                "line {line}: expected \"hosts keytype base64-key\""
            ));
            continue;
        };
        match PublicKey::from_openssh(&format!("{alg} {b64}")) {
            Ok(key) => entries.push(Entry {
                line,
                marker,
                patterns: first.to_string(),
                key,
            }),
            Err(e) => problems.push(format!("line {line}: cannot read the {alg} key: {e}")),
        }
    }
    (entries, problems)
}

/// `*` and `?` wildcards as in OpenSSH host patterns (case-insensitive).
fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let s: Vec<char> = s.to_ascii_lowercase().chars().collect();
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// `|1|salt|hash`: HMAC-SHA1 of the host pattern, keyed with the salt.
fn hashed_match(entry: &str, name: &str) -> Option<bool> {
    let rest = entry.strip_prefix("|1|")?;
    let (salt, hash) = rest.split_once('|')?;
    let salt = data_encoding::BASE64.decode(salt.as_bytes()).ok()?;
    let hash = data_encoding::BASE64.decode(hash.as_bytes()).ok()?;
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt).ok()?;
    mac.update(name.as_bytes());
    Some(mac.verify_slice(&hash).is_ok())
}

/// Whether a comma-separated pattern list names `host` on `port`: plain
/// names, `[host]:port`, `|1|` hashed names, wildcards, and `!` negations
/// (a matching negation rules the line out).
pub fn matches_host(patterns: &str, host: &str, port: u16) -> bool {
    let name = host_pattern(host, port);
    let mut hit = false;
    for p in patterns.split(',') {
        if p.is_empty() {
            continue;
        }
        let (negated, p) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p),
        };
        let m = match hashed_match(p, &name) {
            Some(m) => m,
            None => glob(p, &name),
        };
        if m {
            if negated {
                return false;
            }
            hit = true;
        }
    }
    hit
}

/// What the known_hosts file says about the key a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Line of the matching entry.
    Known(usize),
    /// Nothing recorded for this host: learn the key (accept-new).
    Unknown,
    /// The host is known with other keys; `lines` are their line numbers.
    Changed {
        lines: Vec<usize>,
        known: Vec<String>,
    },
    /// The key is marked `@revoked`.
    Revoked(usize),
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Check `key` for `host`:`port` against the entries. Any recorded key for
/// the host that differs from the offered one (whatever its type) counts as
/// a change: the safe reading, since an attacker can offer another key type.
pub fn check(entries: &[Entry], host: &str, port: u16, key: &PublicKey) -> Verdict {
    if let Some(e) = entries
        .iter()
        .find(|e| e.marker == Marker::Revoked && same_key(&e.key, key))
    {
        return Verdict::Revoked(e.line);
    }
    let mine: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.marker == Marker::None && matches_host(&e.patterns, host, port))
        .collect();
    if let Some(e) = mine.iter().find(|e| same_key(&e.key, key)) {
        return Verdict::Known(e.line);
    }
    if mine.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Changed {
            lines: mine.iter().map(|e| e.line).collect(),
            known: mine.iter().map(|e| fingerprint(&e.key)).collect(),
        }
    }
}

/// Key algorithms recorded for the host, so that negotiation can prefer them.
pub fn known_algorithms(entries: &[Entry], host: &str, port: u16) -> Vec<Algorithm> {
    let mut out: Vec<Algorithm> = Vec::new();
    for e in entries {
        if e.marker == Marker::None && matches_host(&e.patterns, host, port) {
            let a = e.key.algorithm();
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

fn family(a: &Algorithm) -> String {
    match a {
        Algorithm::Rsa { .. } => "ssh-rsa".to_string(),
        other => other.as_str().to_string(),
    }
}

/// `preferred` with the algorithms of already known keys moved to the front
/// (order otherwise kept), as OpenSSH does: a server with several host keys
/// then presents the one we know.
pub fn prefer_known(preferred: &[Algorithm], known: &[Algorithm]) -> Vec<Algorithm> {
    let fams: Vec<String> = known.iter().map(family).collect();
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = preferred
        .iter()
        .cloned()
        .partition(|a| fams.contains(&family(a)));
    first.extend(rest);
    first
}

/// A host key problem, as shown in status and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Changed {
        host: String,
        offered: String,
        known: Vec<String>,
        lines: Vec<usize>,
        path: String,
    },
    Revoked {
        host: String,
        offered: String,
        line: usize,
        path: String,
    },
    PinMismatch {
        host: String,
        offered: String,
        pinned: String,
    },
    Certificate {
        host: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Changed {
                host,
                offered,
                known,
                lines,
                path,
            } => {
                let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                write!(
                    f,
                    "HOST KEY CHANGED for {host}: the server offers {offered}, but {path} line {} has {}; \
                     refusing to connect (possible man-in-the-middle). If the server was really re-keyed, \
                     remove the old key: ssh-keygen -R '{host}' -f {path}",
                    lines.join(", "),
                    known.join(", ")
                )
            }
            Refusal::Revoked {
                host,
                offered,
                line,
                path,
            } => write!(
                f,
                "host key {offered} of {host} is marked @revoked in {path} line {line}; refusing to connect"
            ),
            Refusal::PinMismatch {
                host,
                offered,
                pinned,
            } => write!(
                f,
                "host key mismatch for {host}: the server offers {offered}, but host_key pins {pinned}; refusing to connect"
            ),
            Refusal::Certificate { host } => write!(
                f,
                "{host} presented a host certificate; roadie checks plain host keys only"
            ),
        }
    }
}

/// Compare a pinned fingerprint (`SHA256:…`, padding optional) with a key.
pub fn pin_matches(pin: &str, key: &PublicKey) -> bool {
    let fp = fingerprint(key);
    pin.trim().trim_end_matches('=') == fp.trim_end_matches('=')
}

/// Read and parse the file; a missing file is an empty one.
pub fn load(path: &Path) -> Result<Vec<Entry>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let (entries, problems) = parse(&text);
            for p in problems {
                log::warn!("{}: {p}", path.display());
            }
            Ok(entries)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The line recorded for a learned key.
pub fn known_hosts_line(host: &str, port: u16, key: &PublicKey) -> Result<String, String> {
    let k = key
        .to_openssh()
        .map_err(|e| format!("cannot encode the host key: {e}"))?;
    // Drop any comment the key carried.
    let mut parts = k.split_whitespace();
    let (alg, b64) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    Ok(format!("{} {alg} {b64}\n", host_pattern(host, port)))
}

/// Append a learned key: the whole file is rewritten to a temporary file and
/// renamed over the old one, so a power cut leaves the old or the new file.
pub fn learn(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<(), String> {
    use std::io::Write;
    let what = |e: std::io::Error| format!("cannot record the host key in {}: {e}", path.display());
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(what(e)),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&known_hosts_line(host, port, key)?);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(what)?;
    }
    let tmp = path.with_extension(format!("roadie-tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";
    const K3: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(k: &str) -> PublicKey {
        PublicKey::from_openssh(k).unwrap()
    }

    #[test]
    fn host_patterns() {
        assert_eq!(host_pattern("serveo.net", 22), "serveo.net");
        assert_eq!(host_pattern("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }

    #[test]
    fn pattern_matching() {
        // |1| entry from russh's own tests: "example.com" hashed.
        let hashed = "|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak=";
        let table: &[(&str, &str, u16, bool)] = &[
            ("serveo.net", "serveo.net", 22, true),
            ("serveo.net", "serveo.net", 2222, false),
            ("[serveo.net]:2222", "serveo.net", 2222, true),
            ("[serveo.net]:2222", "serveo.net", 22, false),
            ("a.example,serveo.net,10.0.0.1", "serveo.net", 22, true),
            ("SERVEO.net", "serveo.net", 22, true),
            ("*.serveo.net", "eu.serveo.net", 22, true),
            ("*.serveo.net", "serveo.net", 22, false),
            ("10.0.0.?", "10.0.0.7", 22, true),
            ("10.0.0.?", "10.0.0.17", 22, false),
            ("*", "anything", 22, true),
            ("[*]:2222", "x.example", 2222, true),
            ("*.example,!bad.example", "bad.example", 22, false),
            ("*.example,!bad.example", "good.example", 22, true),
            ("!bad.example", "good.example", 22, false),
            (hashed, "example.com", 22, true),
            (hashed, "example.org", 22, false),
            ("|1|notbase64|x", "example.com", 22, false),
            ("", "x", 22, false),
        ];
        for &(pats, host, port, want) in table {
            assert_eq!(
                matches_host(pats, host, port),
                want,
                "{pats} vs {host}:{port}"
            );
        }
    }

    #[test]
    fn parsing_skips_comments_and_reports_bad_lines() {
        let text = format!(
            "# comment\n\n[h]:2222 {K1}\n@revoked * {K3}\n@cert-authority *.example {K2}\nbroken\n\
             h ssh-ed25519 notakey\n@weird h {K1}\nh,i {K2} trailing comment\n"
        );
        let (entries, problems) = parse(&text);
        let lines: Vec<(usize, Marker, &str)> = entries
            .iter()
            .map(|e| (e.line, e.marker, e.patterns.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (3, Marker::None, "[h]:2222"),
                (4, Marker::Revoked, "*"),
                (5, Marker::CertAuthority, "*.example"),
                (9, Marker::None, "h,i"),
            ]
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("line 6"));
        assert!(problems[1].starts_with("line 7"));
        assert!(problems[2].contains("unknown marker"));
    }

    #[test]
    fn verdicts() {
        let text = format!("[srv]:2222 {K1}\nother {K2}\n@revoked * {K3}\n[srv]:2222 {K2}\n");
        let (entries, _) = parse(&text);
        assert_eq!(check(&entries, "srv", 2222, &key(K1)), Verdict::Known(1));
        assert_eq!(check(&entries, "srv", 2222, &key(K2)), Verdict::Known(4));
        assert_eq!(check(&entries, "new", 22, &key(K1)), Verdict::Unknown);
        assert_eq!(check(&entries, "srv", 22, &key(K1)), Verdict::Unknown);
        assert_eq!(check(&entries, "srv", 2222, &key(K3)), Verdict::Revoked(3));
        assert_eq!(check(&entries, "new", 22, &key(K3)), Verdict::Revoked(3));
        match check(&entries, "other", 22, &key(K1)) {
            Verdict::Changed { lines, known } => {
                assert_eq!(lines, vec![2]);
                assert_eq!(known, vec![fingerprint(&key(K2))]);
            }
            v => panic!("{v:?}"),
        }
        // A CA line is not a host key.
        let (entries, _) = parse(&format!("@cert-authority srv {K1}\n"));
        assert_eq!(check(&entries, "srv", 22, &key(K2)), Verdict::Unknown);
        assert_eq!(check(&[], "srv", 22, &key(K2)), Verdict::Unknown);
    }

    #[test]
    fn pins_compare_fingerprints() {
        let k = key(K1);
        let fp = fingerprint(&k);
        assert!(fp.starts_with("SHA256:"), "{fp}");
        assert!(pin_matches(&fp, &k));
        assert!(pin_matches(&format!("{fp}="), &k));
        assert!(pin_matches(&format!(" {fp} "), &k));
        assert!(!pin_matches(&fp, &key(K2)));
        assert!(!pin_matches("SHA256:", &k));
    }

    #[test]
    fn known_algorithms_come_first() {
        use russh::keys::EcdsaCurve;
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCXI43Nrf7wbVlGMROxvLBpWOdF8FdX4izyrZFYY4q53frLbXNdzSCIRWUaFZIj2HB3hGmbXBss+yvZSwCa8hwDuvyX8PeNVceppU2DbiuxOBGfbWciRro5XF/fwsdfjSpT9j4oqnmj7GgYu+Ib9siI8H8vza5tIZITAhullNubtqL2mwthAjIH85R2NSu0k3hScesI/ryqw9+37Db7tylKbkvPQpe6u4JMzvvRpd06luStJ7jnFQlyIsgcHQvM+9mwwyfvMKjRHp0SbljF5P/eoByWs4zNgD1LxRbhd9fy2lhujdAf24GcxZ5i4Yo2BbZgx0cJBWz0Cyxj+oI2y5vF";
        let (entries, problems) = parse(&format!("h {rsa}\nh {K1}\n"));
        assert!(problems.is_empty(), "{problems:?}");
        let known = known_algorithms(&entries, "h", 22);
        assert_eq!(known.len(), 2);
        let pref = [
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa { hash: None },
        ];
        let only_rsa = known_algorithms(&parse(&format!("h {rsa}\n")).0, "h", 22);
        let got = prefer_known(&pref, &only_rsa);
        assert_eq!(
            got,
            vec![
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512)
                },
                Algorithm::Rsa { hash: None },
                Algorithm::Ed25519,
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP256
                },
            ]
        );
        assert_eq!(prefer_known(&pref, &[]), pref.to_vec());
    }

    #[test]
    fn learning_appends_atomically_and_is_then_known() {
        let dir = std::env::temp_dir().join(format!("roadie-kh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/known_hosts");
        learn(&path, "127.0.0.1", 2222, &key(K1)).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, first.trim_end()).unwrap(); // no final newline
        learn(&path, "srv", 22, &key(K2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.starts_with("[127.0.0.1]:2222 ssh-ed25519 AAAA"),
            "{text}"
        );
        let entries = load(&path).unwrap();
        assert_eq!(
            check(&entries, "127.0.0.1", 2222, &key(K1)),
            Verdict::Known(1)
        );
        assert_eq!(check(&entries, "srv", 22, &key(K2)), Verdict::Known(2));
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("sub")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
        assert!(load(&dir.join("missing")).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refusals_say_what_to_do() {
        let r = Refusal::Changed {
            host: "[h]:2222".into(),
            offered: "SHA256:new".into(),
            known: vec!["SHA256:old".into()],
            lines: vec![3],
            path: "/etc/roadie/known_hosts".into(),
        };
        let s = r.to_string();
        assert!(s.contains("HOST KEY CHANGED"), "{s}");
        assert!(s.contains("line 3 has SHA256:old"), "{s}");
        assert!(
            s.contains("ssh-keygen -R '[h]:2222' -f /etc/roadie/known_hosts"),
            "{s}"
        );
        let p = Refusal::PinMismatch {
            host: "h".into(),
            offered: "SHA256:a".into(),
            pinned: "SHA256:b".into(),
        };
        assert!(p.to_string().contains("host_key pins SHA256:b"));
    }
}
