//! Arbitrary bytes as a frame on the LAN (anyone there can send one): parsed
//! or not, never a panic; what the follow task would answer is well formed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roadie::follow::{decide, frame};

fuzz_target!(|data: &[u8]| {
    let Some(incoming) = frame::parse(data) else {
        return;
    };
    let windows = [decide::Window {
        from: "192.168.1.0/24".parse().unwrap(),
        server_id: "192.168.1.1".parse().unwrap(),
        until_ms: u64::MAX,
    }];
    let current = "10.97.79.0/24".parse().unwrap();
    if let Some(reply) = decide::answer(&windows, current, &incoming, 0) {
        for f in decide::frames([2, 0, 0, 0, 0, 1], &reply, current) {
            // Every frame we send parses as a frame again (ARP) or is a
            // BOOTREPLY, which parse ignores: never a request we would answer.
            match frame::parse(&f) {
                None | Some(frame::Incoming::Arp(_)) => {}
                Some(other) => panic!("we would answer our own frame: {other:?}"),
            }
            assert!(f.len() >= 60 && f.len() <= 1514, "{}", f.len());
        }
    }
});
