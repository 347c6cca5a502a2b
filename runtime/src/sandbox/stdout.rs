//! A module's standard output: when its client takes the output as it comes, what the module
//! writes there (`println!`) is streamed like a program's standard output, whole characters only
//! and within the request's output limit; otherwise it goes nowhere, as before, and the stream
//! closes after `STDIO_CAPTURE` bytes, as wasmtime's memory pipe did, so a module that writes
//! until refused is refused.
//!
//! wasmtime's own pipes either keep bytes in memory or write to a file; this one hands each write
//! to a [`TextTap`] at once. Writing never waits, so it needs no bound of its own: the tap's sink
//! waits for a slow client only until the request's deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::bytes::Bytes;
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamError};

use crate::progress::{OverLimit, TextTap};

/// How much a module may write at once (what `check-write` reports): the largest piece a
/// progress message carries.
const WRITE_BUDGET: usize = sesame_proto::MAX_PROGRESS_TEXT;

/// A run's standard output (see the module docs).
#[derive(Debug, Clone)]
pub(super) struct ModuleStdout {
    tap: Option<Arc<TextTap>>,
    /// Bytes discarded without a tap; past `discard_limit` the stream is closed, so a module
    /// writing forever is refused rather than spinning on a stream that never fills.
    discarded: Arc<AtomicUsize>,
    discard_limit: usize,
}

impl ModuleStdout {
    /// Streams to `tap`; without one, discards up to `discard_limit` bytes and then closes.
    pub(super) fn new(tap: Option<Arc<TextTap>>, discard_limit: usize) -> Self {
        Self {
            tap,
            discarded: Arc::new(AtomicUsize::new(0)),
            discard_limit,
        }
    }

    /// Room left to write: the largest piece streamed, or what may still be discarded.
    fn room(&self) -> Result<usize, StreamError> {
        if self.tap.is_some() {
            return Ok(WRITE_BUDGET);
        }
        match self
            .discard_limit
            .saturating_sub(self.discarded.load(Ordering::Relaxed))
        {
            0 => Err(StreamError::Closed),
            left => Ok(left.min(WRITE_BUDGET)),
        }
    }

    /// Streams what is held (a character cut at the end) and says whether streaming stopped
    /// at the output limit.
    pub(super) fn finish(&self) -> Option<OverLimit> {
        self.tap.as_ref().and_then(|tap| tap.finish())
    }

    fn push(&self, bytes: &[u8]) -> Result<(), OverLimit> {
        match &self.tap {
            Some(tap) => {
                tap.push(bytes);
                tap.over().map_or(Ok(()), Err)
            }
            None => {
                self.discarded.fetch_add(bytes.len(), Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

impl IsTerminal for ModuleStdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ModuleStdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for ModuleStdout {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if bytes.len() > self.room()? {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "write of {} bytes beyond what check-write allowed",
                bytes.len()
            )));
        }
        // Past the limit the module is stopped: the run reports 3003 from the tap's finish.
        self.push(&bytes).map_err(|over| {
            StreamError::Trap(wasmtime::format_err!(
                "streamed output of {} bytes exceeds the limit of {} bytes",
                over.len,
                over.limit
            ))
        })
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        self.room()
    }
}

impl Pollable for ModuleStdout {
    // Always ready: a write never waits (what `#[async_trait]` would write).
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl tokio::io::AsyncWrite for ModuleStdout {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.push(buf)
                .map(|()| buf.len())
                .map_err(|over| std::io::Error::other(format!("output limit of {} bytes", over.limit))),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
