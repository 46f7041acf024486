//! AES-CTR and AES-GCM for roadie's vendored russh on routers without AES
//! instructions (MIPS, and for CTR 32-bit ARM).
//!
//! Why: there russh's AES is RustCrypto's bitsliced AES (CTR) and ring's
//! constant-time fallbacks (GCM), which cost 2.4 times the instructions per
//! byte of OpenSSH's OpenSSL on the same router CPU (`scripts/bench router
//! mipsel`). This is what OpenSSL's MIPS assembly and Dropbear's libtomcrypt
//! do: table lookups (`block.rs`), and GHASH by tables of multiples of H
//! (`gcm.rs`).
//!
//! The cost of tables: which table entries a block touches depends on the
//! key and the data, so the time a block takes can leak through the cache to
//! a program on the same CPU, as with OpenSSL's and Dropbear's AES on these
//! routers. chacha20-poly1305, roadie's first choice, has no tables.
//!
//! This is its own crate so that Cargo.toml can build it at opt-level 3
//! while the rest of the binary is optimised for size.
#![deny(unsafe_code)]

mod block;
mod ctr;
mod gcm;

pub use block::Aes;
pub use ctr::{Aes128Ctr, Aes192Ctr, Aes256Ctr, Ctr};
pub use gcm::{BadTag, Gcm};
