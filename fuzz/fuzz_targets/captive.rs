//! Arbitrary answers to the captive-portal probe (whatever the hotel's
//! network sends back) and arbitrary probe URLs: no panic; a portal's URL is
//! absolute; only the expected answer counts as open.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roadie::captive::probe::{self, Expect, Outcome};

fuzz_target!(|data: &[u8]| {
    let (head, answer) = data.split_at(data.len().min(64));
    if let Ok(u) = probe::parse_url(&String::from_utf8_lossy(head)) {
        let _ = probe::request(&u);
        let _ = u.authority();
    }
    let url = probe::parse_url(probe::DEFAULT_URL).expect("the default URL parses");
    let _ = probe::complete(answer);
    for expect in [Expect::NoContent, Expect::Body("success".into())] {
        match probe::classify(&url, &expect, answer) {
            Outcome::Portal { url } => {
                assert!(url.contains("://"), "{url}");
            }
            Outcome::Open => {
                let a = probe::parse_answer(answer).ok().flatten().expect("open means an answer");
                assert!(a.status == 204 || a.status == 200, "{}", a.status);
            }
            Outcome::NoAnswer(_) => {}
        }
    }
});
