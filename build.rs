//! Links the router builds with a linker script when scripts/cross-build
//! names one (ROADIE_HOT_TEXT: scripts/zig/hot-text.ld for MIPS, the code
//! run until roadie serves placed first). Host builds and the OpenWrt SDK's
//! build get nothing from here.

fn main() {
    println!("cargo:rerun-if-env-changed=ROADIE_HOT_TEXT");
    if let Some(script) = std::env::var_os("ROADIE_HOT_TEXT") {
        let script = script.to_string_lossy();
        // Relinks when the script changes, which cargo would not see.
        println!("cargo:rerun-if-changed={script}");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{script}");
    }
}
