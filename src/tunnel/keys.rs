//! The client's identity: an OpenSSH private key file, checked like OpenSSH
//! checks it (no group/other access), loaded without a passphrase.

use russh::keys::PrivateKey;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// OpenSSH refuses a private key that group or others can access.
pub fn check_mode(path: &Path, mode: u32) -> Result<(), String> {
    let perm = mode & 0o777;
    if perm & 0o077 != 0 {
        return Err(format!(
            "private key {p} is accessible by others (mode {perm:04o}); roadie, like ssh, \
             refuses it. Fix with: chmod 600 {p}",
            p = path.display()
        ));
    }
    Ok(())
}

/// Load the key at `path`: mode checked, no passphrase.
pub fn load(path: &Path) -> Result<PrivateKey, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read private key {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("private key {} is not a file", path.display()));
    }
    check_mode(path, meta.mode())?;
    russh::keys::load_secret_key(path, None).map_err(|e| match e {
        russh::keys::Error::KeyIsEncrypted => format!(
            "private key {p} is protected by a passphrase; roadie runs unattended and needs a key \
             without one (remove it with: ssh-keygen -p -N '' -f {p})",
            p = path.display()
        ),
        other => format!(
            "cannot load private key {}: {other} (expected an OpenSSH private key, e.g. from ssh-keygen -t ed25519)",
            path.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_like_openssh() {
        let p = Path::new("/etc/roadie/id_ed25519");
        for ok in [0o600, 0o400, 0o700, 0o100600] {
            assert!(check_mode(p, ok).is_ok(), "{ok:o}");
        }
        for bad in [0o644, 0o640, 0o604, 0o660, 0o777, 0o100644] {
            let e = check_mode(p, bad).unwrap_err();
            assert!(e.contains("chmod 600 /etc/roadie/id_ed25519"), "{e}");
            assert!(e.contains(&format!("{:04o}", bad & 0o777)), "{e}");
        }
    }

    #[test]
    fn loading_reports_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("roadie-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let missing = load(&dir.join("nope")).unwrap_err();
        assert!(missing.contains("cannot read private key"), "{missing}");
        let junk = dir.join("junk");
        std::fs::write(&junk, "not a key").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load(&junk).unwrap_err();
        assert!(e.contains("cannot load private key"), "{e}");
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&junk).unwrap_err().contains("chmod 600"));
        assert!(load(&dir).unwrap_err().contains("not a file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
