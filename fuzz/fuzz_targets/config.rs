//! Arbitrary text through the config parser and validator: errors, never panics,
//! and every error names a position inside the text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = roadie::config::parse(text, std::path::Path::new("fuzz.toml")) {
        let lines = text.split('\n').count();
        for d in &e.diags {
            assert!(d.line >= 1 && d.line <= lines.max(1), "{d}");
            assert!(d.column >= 1, "{d}");
            assert!(!d.message.is_empty());
        }
    }
});
