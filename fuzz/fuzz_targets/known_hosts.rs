//! Arbitrary text as a known_hosts file: entries or per-line problems, never a
//! panic; matching any host against what parsed never panics either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roadie::tunnel::hostkeys;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (entries, _problems) = hostkeys::parse(text);
    let _ = hostkeys::known_algorithms(&entries, "serveo.net", 22);
    let _ = hostkeys::known_algorithms(&entries, "10.0.0.1", 2222);
    for line in text.lines().take(8) {
        let pattern = line.split_whitespace().next().unwrap_or("");
        let _ = hostkeys::matches_host(pattern, "serveo.net", 22);
    }
});
