//! Baselines served over the same QUIC as the daemon, in a process of their own:
//!
//! - the *floor*: each stream's bytes are sent straight back. Same certificate, TLS, ALPN, stream
//!   and idle limits as `sesamed` (`transport::quic::server_config`) and the same single-threaded
//!   runtime, but no crypto_box, no replay check, no policy, no sandbox and no audit. Nothing that
//!   answers over this QUIC can be faster.
//! - the *fork/exec relay* (`--exec PROGRAM`): what a relay that runs a process per request does
//!   (UsCmdRelay and most home-grown tools): each request's bytes go to a fresh PROGRAM's stdin
//!   (no shell) and its stdout is the answer. With `/bin/cat` the answer is the request again, so
//!   the load generator checks it exactly as it checks the floor.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use sesame_proto::MAX_ENVELOPE_LEN;
use sesamed::identity::HostIdentity;
use tokio::io::AsyncWriteExt;

/// Serves until killed. Prints `listening on ADDR` once bound.
pub fn serve(state_dir: &Path, listen: SocketAddr, exec: Option<PathBuf>) -> anyhow::Result<()> {
    let identity = HostIdentity::load(state_dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let config = sesamed::transport::quic::server_config(&identity)?;
        let endpoint =
            quinn::Endpoint::server(config, listen).with_context(|| format!("binding {listen}"))?;
        println!("listening on {}", endpoint.local_addr()?);
        let exec = std::sync::Arc::new(exec);
        while let Some(incoming) = endpoint.accept().await {
            let exec = std::sync::Arc::clone(&exec);
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((send, recv)) = conn.accept_bi().await {
                    tokio::spawn(stream(send, recv, std::sync::Arc::clone(&exec)));
                }
            });
        }
        anyhow::Ok(())
    })
}

async fn stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    exec: std::sync::Arc<Option<PathBuf>>,
) {
    let Ok(bytes) = recv.read_to_end(MAX_ENVELOPE_LEN).await else {
        return;
    };
    let answer = match exec.as_ref() {
        None => bytes,
        Some(program) => match run(program, &bytes).await {
            Ok(out) => out,
            Err(e) => {
                eprintln!("floor: {e:#}");
                return;
            }
        },
    };
    if send.write_all(&answer).await.is_ok() {
        let _ = send.finish();
        let _ = send.stopped().await;
    }
}

/// Runs `program` with `input` on its stdin; its stdout.
async fn run(program: &Path, input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = tokio::process::Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let (written, output) = tokio::join!(
        async {
            stdin.write_all(input).await?;
            drop(stdin);
            std::io::Result::Ok(())
        },
        child.wait_with_output()
    );
    written?;
    let output = output?;
    if !output.status.success() {
        bail!("{} exited with {}", program.display(), output.status);
    }
    Ok(output.stdout)
}
