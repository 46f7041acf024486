//! Arbitrary bytes as a control request: a parsed call or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = roadie::control::protocol::parse_request(data) {
        // The error goes back to the client as a JSON reply line: it must parse.
        let reply = roadie::control::protocol::error_reply(&e);
        assert!(!reply.contains('\n'));
        assert_eq!(roadie::control::protocol::parse_reply(&reply), Ok(Err(e)));
    }
});
