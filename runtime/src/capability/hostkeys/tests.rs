use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::capability::Services;
use crate::host::bindings::sesame::host::hostkeys::{self as wit, Host as _};
use crate::host::{CallContext, HostError, HostFault};

/// Real public keys (ssh-keygen, OpenSSH 9.2), one of each type served, with their comments.
const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKKLn/q97bFQU3fk4Kir6HIV21r27Mp6Hs8MEGbcvL4n";
const NISTP256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBM44TwVzCFz65fzcjdOjTY5YUOaLLn/qvYM1/H6xyJ2lgyNqNc9Qt8vHrkVP1oByCE/IWUg1KVMXZMTKpLDvi34=";
const NISTP384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBEa0frKBjQ1yUMgM2YMCVGJRqARpxsCP32iPDm7WgF/blnogYO8DzBN6yLtA897LD4ET6Pkv6gWOVEfyFNjNv98ZugsyaHofgyfl4reHmEaLBVkUHCd1LGzl8Y37bJcvfg==";
const NISTP521: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAGcQwK4dOinAh8lzN+iV8Yft58vqBdBXXlY4vEKCfXDT644WwcsAOcqH5aB4MeKe5GjpZGkiMfhL068j0J8uSWBWwAnmc62WjMGIqKbOOaF9MnP99mS/63WIIMFgsaFpFzrIhQy3dBNSkpurL1pnsiq/TXuxySWMBbthKTd5saYEpvxDQ==";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC+krC3JgtJ0lwrHOtoOZ4hqxf8LJ4mCVUwfUjxOMHw99uh3yMFJg1Y11bUSs4kDuIiLIoB5jg6JShtAtYaUlMMVZ5s1DZMo4klo6+1kh1JVbewuA+rJmW7i5vBtxAkNzG5HhOJYF5z2o9wA0pDgdv4j0Grdxc1L1d0cLTLWw5gqkTzV6yhpgNT+Fh9Z+woEwG0NnE9ZLLrgx2/240hBJXbzaolD/LSlqKbo2pFh4+8L32NfySx07/uDAOhEj15aaP8PvJ4yfwnEVzbdIvKwqroGlvSDwWLRfZY+7Eq0OevTzMEjDx7NTup3doo16t6u/FEiUE4KyxZkbXi60BUt1HD";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

/// What a listing skipped: file name and why, in name order.
fn skipped(listing: &Listing) -> Vec<(String, String)> {
    listing
        .skipped
        .iter()
        .map(|(path, why)| {
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            (name, why.clone())
        })
        .collect()
}

#[test]
fn every_key_type_is_served_sorted_without_its_comment_and_only_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "ssh_host_ed25519_key.pub",
        &format!("{ED25519} root@web1 made on a  Tuesday\n"),
    );
    write(d, "ssh_host_ecdsa_key.pub", &format!("{NISTP256} root@web1\n"));
    write(d, "ssh_host_ecdsa384_key.pub", &format!("{NISTP384}\n"));
    write(d, "ssh_host_ecdsa521_key.pub", NISTP521);
    write(d, "ssh_host_rsa_key.pub", &format!("{RSA} root@web1\n"));
    // The same key twice (a copy, a link) is served once.
    write(d, "ssh_host_copy_key.pub", &format!("{ED25519} a copy\n"));
    // Not host key files: never read, never reported.
    write(
        d,
        "ssh_host_ed25519_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n",
    );
    write(
        d,
        "ssh_host_ed25519_key-cert.pub",
        "ssh-ed25519-cert-v01@openssh.com AAAA\n",
    );
    write(d, "ssh_host_key.pub", "an SSH1 key\n");
    write(d, "moduli", "garbage\n");
    write(d, "sshd_config", "Port 22\n");
    let listing = HostKeys::new(d.to_owned()).list().expect("list");
    let shown: Vec<String> = listing.keys.iter().map(ToString::to_string).collect();
    assert_eq!(shown, [NISTP256, NISTP384, NISTP521, ED25519, RSA]);
    assert_eq!(skipped(&listing), []);
}

#[test]
fn files_that_do_not_parse_are_skipped_with_why_and_never_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "ssh_host_ed25519_key.pub", &format!("{ED25519} root@web1\n"));
    let ed_data = &ED25519["ssh-ed25519 ".len()..];
    write(
        d,
        "ssh_host_a_key.pub",
        &format!("ssh-rsa {ed_data} mismatched\n"),
    );
    write(d, "ssh_host_b_key.pub", "this is not a key at all\n");
    write(
        d,
        "ssh_host_c_key.pub",
        &format!("{ED25519} {}\n", "x".repeat(MAX_HOST_KEY_LINE)),
    );
    write(d, "ssh_host_d_key.pub", &format!("{ED25519} one\n{RSA} two\n"));
    write(
        d,
        "ssh_host_dsa_key.pub",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAKIA root@web1\n",
    );
    write(d, "ssh_host_e_key.pub", "");
    std::fs::write(d.join("ssh_host_f_key.pub"), [0xff, 0xfe, b'\n']).expect("write");
    std::fs::create_dir(d.join("ssh_host_g_key.pub")).expect("mkdir");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        d.join("ssh_host_h_key.pub"),
        rustix::fs::Mode::RUSR,
    )
    .expect("mkfifo");
    let listing = HostKeys::new(d.to_owned()).list().expect("list");
    let shown: Vec<String> = listing.keys.iter().map(ToString::to_string).collect();
    assert_eq!(shown, [ED25519]);
    let skipped = skipped(&listing);
    let names: Vec<&str> = skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ssh_host_a_key.pub",
            "ssh_host_b_key.pub",
            "ssh_host_c_key.pub",
            "ssh_host_d_key.pub",
            "ssh_host_dsa_key.pub",
            "ssh_host_e_key.pub",
            "ssh_host_f_key.pub",
            "ssh_host_g_key.pub",
            "ssh_host_h_key.pub",
        ]
    );
    let why = |name: &str| &skipped.iter().find(|(n, _)| n == name).expect("skipped").1;
    assert_eq!(
        why("ssh_host_a_key.pub"),
        "the key data is not a ssh-rsa key: it names another key type"
    );
    assert!(why("ssh_host_b_key.pub").contains("key type \"this\" is not one of"));
    assert_eq!(
        why("ssh_host_c_key.pub"),
        &format!("is longer than {MAX_HOST_KEY_LINE} bytes")
    );
    assert_eq!(why("ssh_host_d_key.pub"), "not one line of text");
    assert!(why("ssh_host_dsa_key.pub").contains("\"ssh-dss\" is not one of"));
    assert_eq!(why("ssh_host_e_key.pub"), "no key type and key data");
    assert_eq!(why("ssh_host_f_key.pub"), "is not text");
    assert_eq!(why("ssh_host_g_key.pub"), "is not a regular file");
    assert_eq!(
        why("ssh_host_h_key.pub"),
        "is not a regular file",
        "a FIFO is never waited on"
    );
}

#[test]
fn at_most_so_many_files_are_read_and_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..=MAX_KEY_FILES {
        write(
            dir.path(),
            &format!("ssh_host_{i:02}_key.pub"),
            &format!("{ED25519}\n"),
        );
    }
    let listing = HostKeys::new(dir.path().to_owned()).list().expect("list");
    assert_eq!(listing.keys.len(), 1);
    assert_eq!(
        skipped(&listing),
        [(
            format!("ssh_host_{MAX_KEY_FILES:02}_key.pub"),
            format!("more than {MAX_KEY_FILES} host key files")
        )]
    );
    let missing = dir.path().join("not-here");
    let err = HostKeys::new(missing.clone()).list().expect_err("missing");
    assert!(
        err.to_string().starts_with(&missing.display().to_string()),
        "{err}"
    );
}

/// A call context holding `grant`, with the service reading `dir` when `served`.
fn context(dir: &Path, list: bool, served: bool) -> CallContext {
    let grant = crate::policy::Grant {
        hostkeys: HostKeysGrant { list },
        ..Default::default()
    };
    CallContext::new("req".into(), grant).with_services(Services {
        hostkeys: served.then(|| Arc::new(HostKeys::new(dir.to_owned()))),
        ..Services::default()
    })
}

#[test]
fn the_call_needs_the_grant_and_returns_type_and_key_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "ssh_host_ed25519_key.pub",
        &format!("{ED25519} root@web1\n"),
    );
    write(dir.path(), "ssh_host_rsa_key.pub", &format!("{RSA} root@web1\n"));

    let mut granted = context(dir.path(), true, true);
    let keys = granted.list().unwrap_or_else(|_| panic!("granted"));
    let shown: Vec<String> = keys
        .iter()
        .map(|k: &wit::HostKey| format!("{} {}", k.kind, k.key))
        .collect();
    assert_eq!(shown, [ED25519, RSA]);
    assert!(
        granted.denied.is_empty() && granted.effects.is_empty(),
        "read-only, allowed"
    );
    assert_eq!(granted.host_calls, 1);

    for (list, served, why) in [
        (
            false,
            true,
            "hostkeys.list: the grant does not allow reading the host keys",
        ),
        (
            true,
            false,
            "hostkeys.list: this host does not serve its host keys",
        ),
    ] {
        let mut cx = context(dir.path(), list, served);
        match cx.list() {
            Err(HostFault::Error(HostError::Denied(message))) => assert_eq!(message, why),
            other => panic!("expected a denial, got {other:?}"),
        }
        assert_eq!(cx.denied, [why]);
    }

    let mut unreadable = context(&dir.path().join("gone"), true, true);
    match unreadable.list() {
        Err(HostFault::Error(HostError::Failed(message))) => {
            assert_eq!(
                message,
                "hostkeys.list: the host keys could not be read (see the daemon log)"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(unreadable.tool_failures, 1);
}
