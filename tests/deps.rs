//! The guard behind scripts/install-deps: every external program that the
//! tests, the doubles, scripts/ and bench/ call must either be installed by
//! scripts/install-deps or be part of Debian's base system (a package of
//! Priority "required", what `debootstrap --variant=minbase` installs), so a
//! fresh Debian 12 machine runs them all (scripts/fresh-check proves it).
//!
//! What counts as a call: in shell scripts, the command word of every simple
//! command (after `exec`, `sudo`, `timeout N`, `ip netns exec NS`, …); in Rust
//! and Python, every one-word string literal that names a program on this
//! machine; everywhere, `have("X")`, `command -v X` and `Command::new("X")`,
//! even when X is not installed here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The rustup toolchain's own programs: not Debian packages, and what the
/// README assumes a machine has (rustup, cargo).
const TOOLCHAIN: &[&str] = &["cargo", "rustup", "rustc", "rustfmt", "cargo-clippy"];

/// Shell words after which a command word follows.
const KEYWORDS: &[&str] = &[
    "if", "then", "elif", "else", "fi", "while", "until", "do", "done", "esac", "function", "!",
    "{", "}", "[[", "]]",
];

/// Shell builtins: the command is the shell's own, its words are arguments.
const BUILTINS: &[&str] = &[
    "return", "exit", "set", "unset", "shift", "trap", "wait", "eval", "source", ".", "cd", "read",
    "mapfile", "break", "continue", "true", "false", ":", "printf", "echo", "[", "test", "kill",
    "umask", "type", "let", "pushd", "popd", "getopts", "alias", "in",
];

/// Words after which the next word is the program run (prefix commands).
fn is_prefix(word: &str) -> bool {
    matches!(
        word,
        "exec"
            | "command"
            | "builtin"
            | "sudo"
            | "env"
            | "nohup"
            | "setsid"
            | "time"
            | "timeout"
            | "nice"
            | "stdbuf"
    )
}

fn is_program_word(w: &str) -> bool {
    !w.is_empty()
        && w.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/')
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.+-/".contains(c))
        && !w.ends_with('/')
}

/// Removes a shell comment: `#` at the start of a word, outside quotes.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            '#' if !single && !double && (prev.is_whitespace() || i == 0) => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// The programs a shell script runs: the command word of each simple command.
fn shell_commands(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut heredoc: Option<(String, bool)> = None;
    for raw in text.lines() {
        if let Some((end, dash)) = &heredoc {
            let l = if *dash { raw.trim_start() } else { raw };
            if l == end {
                heredoc = None;
            }
            continue;
        }
        let line = strip_comment(raw);
        if let Some(pos) = line.find("<<") {
            let rest = line[pos + 2..].trim_start_matches('<');
            if !line[pos..].starts_with("<<<") {
                let dash = rest.starts_with('-');
                let rest = rest.trim_start_matches('-').trim_start();
                let word: String = rest
                    .trim_start_matches(['\'', '"'])
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !word.is_empty() {
                    heredoc = Some((word, dash));
                }
            }
        }
        // Split into simple commands; quotes are removed, not honoured (a
        // separator inside a quoted string costs at most a false word, which
        // must then resolve to a program to count).
        let mut cleaned = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                ';' | '|' | '&' | '(' | ')' | '`' | '{' | '}' => cleaned.push('\n'),
                '$' if chars.peek() == Some(&'(') => {
                    chars.next();
                    if chars.peek() == Some(&'(') {
                        // $(( arithmetic )): no commands inside.
                        let mut depth = 1;
                        for c in chars.by_ref() {
                            match c {
                                '(' => depth += 1,
                                ')' if depth == 1 => break,
                                ')' => depth -= 1,
                                _ => {}
                            }
                        }
                    }
                    cleaned.push('\n');
                }
                '"' | '\'' => {}
                _ => cleaned.push(c),
            }
        }
        for segment in cleaned.lines() {
            let words: Vec<&str> = segment.split_whitespace().collect();
            let mut i = 0;
            while i < words.len() {
                let w = words[i];
                if w.contains('=') && !w.starts_with('=') && !w.starts_with('-') {
                    i += 1; // VAR=value before the command
                } else if matches!(
                    w,
                    "for" | "case" | "select" | "local" | "export" | "readonly" | "declare"
                ) {
                    i = words.len();
                } else if KEYWORDS.contains(&w) {
                    i += 1;
                } else if BUILTINS.contains(&w) {
                    break;
                } else if is_prefix(w) {
                    i += 1;
                    while i < words.len()
                        && (words[i].starts_with('-')
                            || words[i].parse::<f64>().is_ok()
                            || words[i].contains('='))
                    {
                        i += 1;
                    }
                } else {
                    if is_program_word(w) {
                        found.insert(w.to_string());
                    }
                    // `ip netns exec NS PROG` runs PROG.
                    let netns_exec = (w == "ip")
                        .then(|| {
                            words
                                .windows(3)
                                .position(|x| x[0] == "netns" && x[1] == "exec")
                        })
                        .flatten();
                    if let Some(prog) = netns_exec.and_then(|p| words.get(p + 3))
                        && is_program_word(prog)
                    {
                        found.insert(prog.to_string());
                    }
                    break;
                }
            }
        }
    }
    found
}

/// One-word string literals that start a list or an argument vector
/// (`["dnsmasq", …]`, `vec!["udhcpc".to_string(), …]`, Python's
/// `sh("perf", …)`): where Rust and Python code names the program it runs.
/// The harness's `.ip(&[…])` takes `ip`'s arguments, not a program.
fn literals(text: &str, quotes: &[char]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for opener in ["[", "sh(", "Popen(", "run("] {
        for (i, _) in text.match_indices(opener) {
            let before = &text[..i];
            if let Some(call) = before.rfind('(')
                && before[..call].ends_with("ip")
                && !before[call..].contains(')')
            {
                continue;
            }
            let rest = text[i + opener.len()..].trim_start();
            let Some(q) = rest.chars().next().filter(|c| quotes.contains(c)) else {
                continue;
            };
            if let Some(end) = rest[1..].find(q) {
                let inside = &rest[1..1 + end];
                if is_program_word(inside) {
                    found.insert(inside.to_string());
                }
            }
        }
    }
    found
}

/// `have("X")`, `Command::new("X")`, `command -v X`: calls that name their
/// program on purpose, counted even when it is not installed here.
fn explicit(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for pat in ["have(\"", "Command::new(\"", "command -v "] {
        for (i, _) in text.match_indices(pat) {
            let rest = &text[i + pat.len()..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "_.+-/".contains(*c))
                .collect();
            if is_program_word(&word) {
                found.insert(word);
            }
        }
    }
    found
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "__pycache__" || name == "golden" {
            continue;
        }
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every program called, with the first file that calls it.
fn calls() -> BTreeMap<String, (String, bool)> {
    let mut all = Vec::new();
    for d in ["scripts", "tests", "bench"] {
        files(&Path::new(REPO).join(d), &mut all);
    }
    let mut out: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for path in all {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(REPO)
            .unwrap_or(&path)
            .display()
            .to_string();
        if rel == "tests/deps.rs" {
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let shell =
            ext.is_empty() && text.starts_with("#!") && !text.starts_with("#!/usr/bin/env python");
        let mut add = |set: BTreeSet<String>, explicit: bool| {
            for p in set {
                let e = out.entry(p).or_insert((rel.clone(), explicit));
                e.1 |= explicit;
            }
        };
        add(explicit(&text), true);
        match ext {
            // Rust's ' also starts lifetimes and chars: only "…" there.
            "rs" => add(literals(&text, &['"']), false),
            "py" => add(literals(&text, &['"', '\'']), false),
            _ if shell => add(shell_commands(&text), false),
            _ => {}
        }
    }
    out
}

/// Where a program is on this machine: in Debian's own directories (what a
/// fresh machine has), and also on PATH for the calls named on purpose.
fn resolve(program: &str, explicit: bool) -> Option<PathBuf> {
    if program.starts_with('/') {
        let system = ["/usr/", "/bin/", "/sbin/"]
            .iter()
            .any(|d| program.starts_with(d));
        return (system && Path::new(program).is_file()).then(|| PathBuf::from(program));
    }
    if program.contains('/') {
        return None; // relative: the project's own scripts
    }
    let path = if explicit {
        std::env::var("PATH").unwrap_or_default()
    } else {
        String::new()
    };
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file() && fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o111 != 0))
}

/// The Debian package that owns a file (merged /usr: dpkg may know it by
/// either name), or None.
fn owner(path: &Path) -> Option<String> {
    let s = path.display().to_string();
    let mut names = vec![s.clone()];
    if let Ok(real) = fs::canonicalize(path) {
        names.push(real.display().to_string());
    }
    for n in names.clone() {
        if let Some(rest) = n.strip_prefix("/usr") {
            names.push(rest.to_string());
        } else {
            names.push(format!("/usr{n}"));
        }
    }
    for n in names {
        let out = Command::new("dpkg-query").args(["-S", &n]).output().ok()?;
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(line) = text.lines().find(|l| !l.starts_with("diversion ")) else {
                continue;
            };
            let pkg = line.split(':').next()?.split(',').next()?.trim();
            return Some(pkg.to_string());
        }
    }
    None
}

fn priority(pkg: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Priority}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// scripts/install-deps --list: (programs, Debian packages).
fn install_deps() -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(Path::new(REPO).join("scripts/install-deps"))
        .arg("--list")
        .output()
        .expect("run scripts/install-deps --list");
    assert!(out.status.success(), "scripts/install-deps --list failed");
    let (mut programs, mut debs) = (BTreeSet::new(), BTreeSet::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols.len() >= 3, "install-deps table line: {line}");
        programs.insert(cols[1].to_string());
        if let Some(d) = cols[2].strip_prefix("deb:") {
            debs.insert(d.to_string());
        }
    }
    (programs, debs)
}

#[test]
fn every_program_called_is_installed_by_install_deps() {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        common_skip("dpkg-query is not here: not a Debian machine");
        return;
    }
    let (programs, debs) = install_deps();
    let mut missing = Vec::new();
    let mut seen = 0;
    for (program, (file, explicit)) in calls() {
        let name = program.rsplit('/').next().unwrap_or(&program).to_string();
        if programs.contains(&name) || TOOLCHAIN.contains(&name.as_str()) || name == "roadie" {
            continue;
        }
        let Some(path) = resolve(&program, explicit) else {
            if explicit {
                missing.push(format!(
                    "{program} (called in {file}; not installed here either)"
                ));
            }
            continue;
        };
        seen += 1;
        match owner(&path) {
            Some(pkg) if debs.contains(&pkg) || priority(&pkg) == "required" => {}
            Some(pkg) => missing.push(format!(
                "{program} (called in {file}; Debian package {pkg}, priority {})",
                priority(&pkg)
            )),
            None if path.starts_with(Path::new(REPO)) => {}
            None => missing.push(format!(
                "{program} (called in {file}; {} belongs to no Debian package)",
                path.display()
            )),
        }
    }
    assert!(seen > 10, "found only {seen} programs: the scan is broken");
    assert!(
        missing.is_empty(),
        "called by the tests or scripts but not installed by scripts/install-deps \
         (add a line to its table):\n  {}",
        missing.join("\n  ")
    );
}

fn common_skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but the guard cannot run: {reason}");
    }
    println!("SKIP: {reason}");
}

#[test]
fn shell_scanner_finds_command_words() {
    let cases: &[(&str, &[&str])] = &[
        ("ip netns add x", &["ip"]),
        (
            "  exec qemu-mipsel-static ./roadie --version",
            &["qemu-mipsel-static"],
        ),
        ("a=$(sha256sum f | cut -d' ' -f1)", &["sha256sum", "cut"]),
        (
            "FOO=1 BAR=2 curl -fsS url # wget here is a comment",
            &["curl"],
        ),
        (
            "if ! command -v perf >/dev/null; then apt-get install x; fi",
            &["perf", "apt-get"],
        ),
        (
            "ip netns exec \"$NS\" dnsmasq --no-ping",
            &["ip", "dnsmasq"],
        ),
        ("timeout 5 ssh host", &["ssh"]),
        ("for t in lab cross; do install -d x; done", &["install"]),
        (
            "python3 - <<'PY'\nimport re\nPY\nshellcheck x",
            &["python3", "shellcheck"],
        ),
        ("case $x in mipsel-*) echo qemu ;; esac", &[]),
        (
            "local size gz; x=$((size / 1024)); echo \"$(xz -9c f)\"",
            &["xz"],
        ),
        ("test -x f && kill -0 1 || stat f", &["stat"]),
        ("[ -n \"${ZIG:-}\" ] || zig version", &["zig"]),
    ];
    for (text, want) in cases {
        let got = shell_commands(text);
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{text}");
    }
}

#[test]
fn literal_and_explicit_scanners() {
    let rs = r#"Command::new("ip").args(["netns", "exec"]); let x = ["two words"]; have("iperf3");
        let v = vec![
            "dnsmasq".to_string(), "--x".into()]; ns.ip(&["route", "add"]);
        lab.ip(&up, &["link", "set"]); f("idle")"#;
    let lit = literals(rs, &['"']);
    let want: BTreeSet<String> = ["netns", "dnsmasq"].iter().map(|s| s.to_string()).collect();
    assert_eq!(lit, want);
    let exp = explicit(rs);
    assert_eq!(
        exp,
        ["ip", "iperf3"].iter().map(|s| s.to_string()).collect(),
        "{exp:?}"
    );
    let py = "sh('perf', \"record\")";
    assert!(literals(py, &['"', '\'']).contains("perf"));
    assert!(explicit("command -v cargo-fuzz >/dev/null").contains("cargo-fuzz"));
}
