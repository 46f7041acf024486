//! CPU seconds per GiB sealing 32 KiB packets: this crate, ring's
//! `chacha20_poly1305_openssh` (what russh used before), RustCrypto's
//! ChaCha20 alone (this crate's path for what is not a whole 512-byte chunk,
//! or without AVX2) and Poly1305 alone. Run from the repository root:
//! `cargo run --release -p openssh-chacha --example speed`
use chacha20::cipher::{KeyIvInit, StreamCipher};
use poly1305::universal_hash::{KeyInit, UniversalHash};
use std::time::Instant;

const PACKETS: u32 = 20_000;

fn main() {
    let key = [7u8; 64];
    let mut buf = vec![1u8; 32 * 1024 + 20];
    let mut tag = [0u8; 16];

    let ours = openssh_chacha::Keys::new(&key);
    time("openssh-chacha", &mut buf, |s, b| ours.seal(s, b, &mut tag));
    let ring = ring::aead::chacha20_poly1305_openssh::SealingKey::new(&key);
    time("ring", &mut buf, |s, b| ring.seal_in_place(s, b, &mut tag));
    time("chacha20 alone", &mut buf, |s, b| {
        let mut nonce = chacha20::Nonce::default();
        nonce[8..].copy_from_slice(&s.to_be_bytes());
        chacha20::ChaCha20::new(&chacha20::Key::default(), &nonce).apply_keystream(b);
    });
    // A non-zero key and black_box: with r = 0 the compiler folds it away.
    let poly_key = poly1305::Key::from([3u8; 32]);
    time("poly1305 alone", &mut buf, |_, b| {
        let mut mac = poly1305::Poly1305::new(&poly_key);
        let (blocks, rest) = poly1305::Block::slice_as_chunks(std::hint::black_box(b));
        mac.update(blocks);
        std::hint::black_box(mac.compute_unpadded(rest));
    });
}

fn time(label: &str, buf: &mut [u8], mut seal: impl FnMut(u32, &mut [u8])) {
    let gib = (buf.len() as f64 * f64::from(PACKETS)) / f64::from(1u32 << 30);
    let t = Instant::now();
    for s in 0..PACKETS {
        seal(s, buf);
    }
    println!("{label:15} {:.2} s/GiB", t.elapsed().as_secs_f64() / gib);
}
