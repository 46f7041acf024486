//! Arbitrary text as a state file: parsed or refused, never a panic; what
//! parses survives a save/parse round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(state) = roadie::lan::state::parse(text) {
        let again = toml::to_string(&state).expect("a parsed state encodes");
        assert_eq!(roadie::lan::state::parse(&again), Ok(state));
    }
});
