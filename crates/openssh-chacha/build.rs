//! Assembles Poly1305's MIPS block loop (src/poly_mips32.rs says why) with
//! the target's C compiler: CC_<target> from scripts/cross-build, or the
//! OpenWrt SDK's TARGET_CC. Other targets build nothing here.
fn main() {
    println!("cargo:rerun-if-changed=src/poly1305-mips32.S");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("mips") {
        cc::Build::new()
            .file("src/poly1305-mips32.S")
            .compile("openssh_chacha_mips32");
    }
}
