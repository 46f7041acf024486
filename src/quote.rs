//! Quoting for messages people read.
//!
//! The router builds use `-Zfmt-debug=none` (it saves about 200 KB), and with
//! it every `{:?}` prints nothing. So no message a user can see may use Debug
//! formatting; `Q(s)` displays a string quoted and escaped the way `{:?}`
//! would, through Display. tests/no_debug_fmt.rs keeps `{:?}` out of src/.

use std::fmt::{self, Write};

/// Displays `s` in double quotes, escaped like Rust's `{:?}` for `str`.
pub struct Q<'a>(pub &'a str);

impl fmt::Display for Q<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.escape_debug() {
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}

/// True in a build where `{:?}` prints nothing (`-Zfmt-debug=none`).
pub fn debug_fmt_disabled() -> bool {
    format!("{:?}", "").is_empty() // debug-fmt: intended (the probe itself)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_debug() {
        for s in [
            "",
            "eth1",
            "a\"b",
            "back\\slash",
            "new\nline\ttab",
            "Grüße",
            "\u{7f}",
        ] {
            assert_eq!(Q(s).to_string(), format!("{s:?}"), "{s:?}");
        }
        assert!(!debug_fmt_disabled());
    }
}
