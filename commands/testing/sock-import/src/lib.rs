//! Test module: connects to a TCP port with `std::net`, so the component imports
//! `wasi:sockets`. The daemon must refuse to load it.

use sesame_guest::{Command, Invocation};

/// Opens a connection.
#[derive(Debug)]
pub struct SockImport;

impl Command for SockImport {
    fn run(_inv: Invocation) -> Result<String, String> {
        let stream = std::net::TcpStream::connect("192.0.2.1:22").map_err(|e| e.to_string())?;
        Ok(format!("connected from {:?}", stream.local_addr()))
    }
}

sesame_guest::export_command!(SockImport);
