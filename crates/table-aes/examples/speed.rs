//! Seals 32 KiB packets with one implementation, named by the argument:
//! `table-gcm`, `ring-gcm`, `table-ctr`, `rustcrypto-ctr`. Prints CPU
//! seconds per GiB; under `qemu-mipsel -plugin bench/qemu-plugin/insns.so`
//! the plugin's count over the run gives instructions per GiB (the run is
//! 1 GiB / 32). Run from the repository root:
//! `cargo run --release -p table-aes --example speed -- table-gcm`
use std::time::Instant;

const PACKETS: u32 = 1024; // 32 MiB

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let key = [7u8; 16];
    let mut buf = vec![1u8; 32 * 1024];
    let t = Instant::now();
    match which.as_str() {
        "table-gcm" => {
            let mut g = table_aes::Gcm::new(&key, &[3; 12]).expect("key");
            for _ in 0..PACKETS {
                std::hint::black_box(g.seal(&[0, 0, 128, 0], std::hint::black_box(&mut buf)));
            }
        }
        "ring-gcm" => {
            use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
            let k = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).expect("key"));
            for s in 0..PACKETS {
                let mut n = [3u8; 12];
                n[8..].copy_from_slice(&s.to_be_bytes());
                let tag = k
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(n),
                        Aad::from(&[0u8; 4]),
                        &mut buf,
                    )
                    .expect("seal");
                let _ = std::hint::black_box(tag);
            }
        }
        "table-ctr" => {
            let mut c = table_aes::Ctr::new(&key, &[3; 16]).expect("key");
            for _ in 0..PACKETS {
                c.apply(std::hint::black_box(&mut buf));
            }
        }
        "rustcrypto-ctr" => {
            use ctr::cipher::{KeyIvInit, StreamCipher};
            let mut c = ctr::Ctr128BE::<aes::Aes128>::new(&key.into(), &[3; 16].into());
            for _ in 0..PACKETS {
                c.apply_keystream(std::hint::black_box(&mut buf));
            }
        }
        _ => {
            eprintln!("usage: speed table-gcm|ring-gcm|table-ctr|rustcrypto-ctr");
            std::process::exit(2);
        }
    }
    let gib = (buf.len() as f64 * f64::from(PACKETS)) / f64::from(1u32 << 30);
    println!("{which}: {:.2} s/GiB", t.elapsed().as_secs_f64() / gib);
}
