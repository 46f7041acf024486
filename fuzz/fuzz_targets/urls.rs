//! Arbitrary session-channel output (what a hostile tunnel server may print):
//! scraped URLs are well-formed http(s) URLs that occur in the text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roadie::tunnel::urls;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let clean = urls::strip_ansi(&text);
    for url in urls::scrape(&text) {
        assert!(url.starts_with("http://") || url.starts_with("https://"), "{url}");
        assert!(clean.contains(&url) || text.contains(&url), "{url} not in the text");
        let _ = urls::host_of(&url);
        let _ = urls::is_public_url(&url, "serveo.net");
    }
});
