//! Writes the seed corpora under `fuzz/corpus/`: a few valid requests, responses, envelopes and SSH
//! host keys, made deterministically (from the fixture keys, and real host keys written out) so
//! that regenerating them changes no byte.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds

use std::fs;
use std::path::{Path, PathBuf};

use sesame_fuzz::ReplayNonce;
use sesame_proto::{
    Domain, ErrorCode, GrantNote, HostKeyNote, MAGIC, NONCE_LEN, PROTOCOL_VERSION, PublicKey, Request,
    RequestId, Response, Sealer, TAG_LEN,
};

fn main() -> std::io::Result<()> {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let host = sesame_fuzz::host(0);
    let client = sesame_fuzz::client();

    let minimal = request(1, None, vec![], None);
    let full = request(
        2,
        Some("nginx"),
        vec!["--graceful".into(), String::new(), "ünïcode \"quoted\"\n".into()],
        Some("sesame-replies_web-1"),
    );
    let ok = Response {
        grants: vec![GrantNote {
            id: "g-1".into(),
            kind: "firewall".into(),
            detail: "tcp/22 from 192.0.2.7".into(),
            expires_at_ms: Some(1_700_000_060_000),
        }],
        ..Response::ok(full.id, "reloaded\n".into(), 1234)
    };
    let denied = Response::error(minimal.id, ErrorCode::Denied, "denied by policy");
    let rotated = Response {
        host_key_rotated: Some(
            HostKeyNote::new(
                &mut ReplayNonce::new([6; NONCE_LEN]),
                &host,
                &client.public_key(),
                Some(client.public_key().digest()),
                1_700_000_600_000,
            )
            .expect("note"),
        ),
        ..Response::ok(minimal.id, String::new(), 7)
    };

    let request_dir = corpus.join("request");
    write(&request_dir, "seed-request-minimal.json", &minimal.encode())?;
    write(&request_dir, "seed-request-full.json", &full.encode())?;
    write(&request_dir, "seed-response-ok.json", &ok.encode())?;
    write(&request_dir, "seed-response-denied.json", &denied.encode())?;
    write(&request_dir, "seed-response-rotated.json", &rotated.encode())?;

    let to_host = seal(&client, Domain::Request, &host.public_key(), 3, &full.encode());
    let to_client = seal(&host, Domain::Response, &client.public_key(), 4, &denied.encode());
    let to_host_empty = seal(&client, Domain::Request, &host.public_key(), 5, b"");
    // The host's answer turned back at it (sender rewritten to the client): authentic, refused.
    let mut reflected = to_client.clone();
    reflected[4..36].copy_from_slice(client.public_key().as_bytes());
    let mut shortest = MAGIC.to_vec();
    shortest.extend_from_slice(&[0x42; 32 + NONCE_LEN + TAG_LEN]);

    let envelope_dir = corpus.join("envelope");
    write(&envelope_dir, "seed-request-to-host.bin", &to_host)?;
    write(&envelope_dir, "seed-response-to-client.bin", &to_client)?;
    write(&envelope_dir, "seed-shortest.bin", &shortest)?;

    let open_dir = corpus.join("open");
    write(&open_dir, "seed-request-to-host.bin", &to_host)?;
    write(&open_dir, "seed-empty-to-host.bin", &to_host_empty)?;
    write(&open_dir, "seed-response-to-client.bin", &to_client)?;
    write(&open_dir, "seed-response-reflected-to-host.bin", &reflected)?;

    // One real key of every type served (ssh-keygen, OpenSSH 9.2), as its .pub file holds it.
    let host_key_dir = corpus.join("host_key");
    for (name, key) in [
        ("ed25519", ED25519),
        ("nistp256", NISTP256),
        ("nistp384", NISTP384),
        ("nistp521", NISTP521),
        ("rsa", RSA),
    ] {
        let line = format!("{key} root@web1\n");
        write(&host_key_dir, &format!("seed-{name}.pub"), line.as_bytes())?;
    }
    Ok(())
}

/// Real host public keys (ssh-keygen, OpenSSH 9.2), one of each type served.
const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKKLn/q97bFQU3fk4Kir6HIV21r27Mp6Hs8MEGbcvL4n";
const NISTP256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBM44TwVzCFz65fzcjdOjTY5YUOaLLn/qvYM1/H6xyJ2lgyNqNc9Qt8vHrkVP1oByCE/IWUg1KVMXZMTKpLDvi34=";
const NISTP384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBEa0frKBjQ1yUMgM2YMCVGJRqARpxsCP32iPDm7WgF/blnogYO8DzBN6yLtA897LD4ET6Pkv6gWOVEfyFNjNv98ZugsyaHofgyfl4reHmEaLBVkUHCd1LGzl8Y37bJcvfg==";
const NISTP521: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAGcQwK4dOinAh8lzN+iV8Yft58vqBdBXXlY4vEKCfXDT644WwcsAOcqH5aB4MeKe5GjpZGkiMfhL068j0J8uSWBWwAnmc62WjMGIqKbOOaF9MnP99mS/63WIIMFgsaFpFzrIhQy3dBNSkpurL1pnsiq/TXuxySWMBbthKTd5saYEpvxDQ==";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC+krC3JgtJ0lwrHOtoOZ4hqxf8LJ4mCVUwfUjxOMHw99uh3yMFJg1Y11bUSs4kDuIiLIoB5jg6JShtAtYaUlMMVZ5s1DZMo4klo6+1kh1JVbewuA+rJmW7i5vBtxAkNzG5HhOJYF5z2o9wA0pDgdv4j0Grdxc1L1d0cLTLWw5gqkTzV6yhpgNT+Fh9Z+woEwG0NnE9ZLLrgx2/240hBJXbzaolD/LSlqKbo2pFh4+8L32NfySx07/uDAOhEj15aaP8PvJ4yfwnEVzbdIvKwqroGlvSDwWLRfZY+7Eq0OevTzMEjDx7NTup3doo16t6u/FEiUE4KyxZkbXi60BUt1HD";

fn request(seed: u8, cluster: Option<&str>, args: Vec<String>, reply_to: Option<&str>) -> Request {
    Request {
        v: PROTOCOL_VERSION,
        id: RequestId::from_bytes([seed; 16]),
        issued_at_ms: 1_700_000_000_000,
        host: "web-1.prod".into(),
        cluster: cluster.map(str::to_owned),
        command: "reload".into(),
        args,
        reply_to: reply_to.map(str::to_owned),
        reason: None,
        stream: false,
        detach: false,
    }
}

fn seal(sender: &Sealer, domain: Domain, recipient: &PublicKey, nonce: u8, plaintext: &[u8]) -> Vec<u8> {
    sender
        .seal(
            domain,
            recipient,
            &mut ReplayNonce::new([nonce; NONCE_LEN]),
            plaintext,
        )
        .expect("the fixture keys are valid and the seeds are small")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes)
}
