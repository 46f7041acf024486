//! The router builds use `-Zfmt-debug=none` (.cargo/config.toml), where every
//! `{:?}` prints nothing. This keeps Debug formatting out of the code that can
//! reach a user (everything in src/ outside `#[cfg(test)]` modules): messages
//! quote with `crate::quote::Q` instead. A line that means it says
//! `// debug-fmt: intended`.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `{...:...?}` placeholders in one line (`{:?}`, `{x:?}`, `{:#?}`, `{0:x?}`).
fn debug_placeholders(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        if let Some(stripped) = after.strip_prefix('{') {
            rest = stripped; // `{{` is a literal brace
            continue;
        }
        let Some(close) = after.find(['}', '{']) else {
            break;
        };
        let inner = &after[..close];
        if after[close..].starts_with('}')
            && let Some((_, spec)) = inner.split_once(':')
            && spec.ends_with('?')
        {
            found.push(format!("{{{inner}}}"));
        }
        rest = &after[close..];
    }
    found
}

#[test]
fn placeholder_finder() {
    assert_eq!(
        debug_placeholders(r#"format!("{a:?} {} {:#?} {{x:?}} {0:x?}")"#),
        ["{a:?}", "{:#?}", "{0:x?}"]
    );
    assert!(debug_placeholders(r#"format!("{a} {b:>4} {{}}")"#).is_empty());
}

#[test]
fn no_debug_formatting_outside_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            // Test modules come last in each file; Debug is fine there.
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            // A deliberate use says so on its line.
            if line.trim_start().starts_with("//") || line.contains("// debug-fmt: intended") {
                continue;
            }
            for p in debug_placeholders(line) {
                bad.push(format!("{}:{}: {p}", file.display(), n + 1));
            }
            if line.contains("dbg!(") {
                bad.push(format!("{}:{}: dbg!", file.display(), n + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "Debug formatting prints nothing in the router builds (-Zfmt-debug=none); \
         use Display (crate::quote::Q for quoted strings):\n{}",
        bad.join("\n")
    );
}
