//! SSH keys for the tests, made by the real `ssh-keygen` (OpenSSH's client tools must be
//! installed).

use std::path::Path;
use std::process::Command;

/// The host key types a fresh sshd has (`ssh-keygen -A`), as file name parts and key types.
pub const HOST_KEY_KINDS: &[(&str, &str)] = &[
    ("ed25519", "ssh-ed25519"),
    ("ecdsa", "ecdsa-sha2-nistp256"),
    ("rsa", "ssh-rsa"),
];

/// Makes a key pair at `path` (private) and `path.pub`, of `kind` (`ed25519`, `ecdsa`, `rsa`),
/// without a passphrase; returns the public key's line, `TYPE KEY COMMENT`.
pub fn keygen(path: &Path, kind: &str, comment: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen (install openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen -t {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    std::fs::read_to_string(public)
        .expect("the public key")
        .trim_end()
        .to_owned()
}

/// Makes the host keys sshd would have in `dir` (`ssh_host_ed25519_key`, `…_ecdsa_key`,
/// `…_rsa_key` and their `.pub` files, with a comment of several words); returns their
/// `TYPE KEY` lines as sesamed serves them: sorted, without the comments.
pub fn host_keys(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = HOST_KEY_KINDS
        .iter()
        .map(|(name, _)| {
            let line = keygen(
                &dir.join(format!("ssh_host_{name}_key")),
                name,
                "root@web1 made for a test",
            );
            let mut fields = line.split(' ');
            format!(
                "{} {}",
                fields.next().unwrap_or_default(),
                fields.next().unwrap_or_default()
            )
        })
        .collect();
    lines.sort();
    lines
}
