//! The closed WASI a module gets: io, cli, clocks and random, with every wait bounded by the
//! request's deadline and ended by its client's cancel.
//!
//! wasmtime's synchronous WASI bindings wait in host code: `poll`, `pollable.block` and the
//! `blocking-*` stream calls run a future to completion on the host thread, where epoch
//! interruption never looks. A module that sleeps for an hour (a clock pollable, blocked on)
//! would hold its thread, its concurrency slot and its client's answer for that hour. So
//! `wasi:io/poll` and `wasi:io/streams` are linked through [`Bounded`], which runs each of those
//! futures under the run's [`Until`] and traps with [`Stopped`] (error 3002 at the deadline, 3008
//! when the client cancels) when it comes.
//! The calls that cannot wait are passed straight to wasmtime's own implementation.

use std::future::Future;

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{StreamError, StreamResult};
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    HostInputStream as AsyncInput, HostOutputStream as AsyncOutput,
};
use wasmtime_wasi_io::poll::DynPollable;
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

use super::RunState;
use crate::deadline::{Stopped, Until};

/// Links the WASI interfaces in [`super::WASI_ALLOWED`], and nothing else of WASI.
pub(super) fn link_closed_wasi(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::p2::bindings::sync::{cli, clocks, random};
    use wasmtime_wasi::random::WasiRandom;

    struct HasTable;
    impl wasmtime::component::HasData for HasTable {
        type Data<'a> = &'a mut ResourceTable;
    }
    let l = linker;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<RunState, HasTable>(l, |s| &mut s.table)?;
    poll::add_to_linker::<RunState, BoundedIo>(l, Bounded::of)?;
    streams::add_to_linker::<RunState, BoundedIo>(l, Bounded::of)?;
    cli::exit::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::environment::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stdin::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stdout::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stderr::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_input::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_output::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stdin::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stdout::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stderr::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    clocks::monotonic_clock::add_to_linker::<RunState, WasiClocks>(l, RunState::clocks)?;
    clocks::wall_clock::add_to_linker::<RunState, WasiClocks>(l, RunState::clocks)?;
    random::random::add_to_linker::<RunState, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure::add_to_linker::<RunState, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure_seed::add_to_linker::<RunState, WasiRandom>(l, |s| s.wasi.random())?;
    Ok(())
}

/// The run's resource table with its bound: what `wasi:io/poll` and `wasi:io/streams` calls
/// see.
pub(super) struct Bounded<'a> {
    table: &'a mut ResourceTable,
    until: &'a Until,
}

/// The [`HasData`](wasmtime::component::HasData) marker that links `wasi:io` to [`Bounded`].
struct BoundedIo;

impl wasmtime::component::HasData for BoundedIo {
    type Data<'a> = Bounded<'a>;
}

impl Bounded<'_> {
    fn of(state: &mut RunState) -> Bounded<'_> {
        Bounded {
            table: &mut state.table,
            until: &state.until,
        }
    }
}

/// Runs `wait` on the host until it finishes or `until` comes, whichever is first.
fn until<F: Future>(until: &Until, wait: F) -> Result<F::Output, Stopped> {
    wasmtime_wasi::runtime::in_tokio(until.within(wait))
}

/// [`until`] for a call that returns a `wasmtime::Result`: the bound is a trap.
fn trap_at<T>(bound: &Until, wait: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    until(bound, wait)?
}

/// [`until`] for a stream call: the bound is a trap, which the module cannot catch.
fn stream_at<T>(bound: &Until, wait: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    until(bound, wait).map_err(|e| StreamError::Trap(e.into()))?
}

impl poll::Host for Bounded<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        trap_at(self.until, async_poll::Host::poll(self.table, pollables))
    }
}

impl poll::HostPollable for Bounded<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        trap_at(self.until, async_poll::HostPollable::ready(self.table, pollable))
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        trap_at(self.until, async_poll::HostPollable::block(self.table, pollable))
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.table, pollable)
    }
}

impl streams::Host for Bounded<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.table, err)
    }
}

impl streams::HostOutputStream for Bounded<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        trap_at(self.until, AsyncOutput::drop(self.table, stream))
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(self.table, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(self.table, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        stream_at(
            self.until,
            AsyncOutput::blocking_write_and_flush(self.table, stream, bytes),
        )
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        stream_at(
            self.until,
            AsyncOutput::blocking_write_zeroes_and_flush(self.table, stream, len),
        )
    }

    fn subscribe(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(self.table, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(self.table, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(self.table, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        stream_at(self.until, AsyncOutput::blocking_flush(self.table, stream))
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(self.table, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        stream_at(
            self.until,
            AsyncOutput::blocking_splice(self.table, dst, src, len),
        )
    }
}

impl streams::HostInputStream for Bounded<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        trap_at(self.until, AsyncInput::drop(self.table, stream))
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(self.table, stream, len)
    }

    fn blocking_read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        stream_at(self.until, AsyncInput::blocking_read(self.table, stream, len))
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(self.table, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        stream_at(self.until, AsyncInput::blocking_skip(self.table, stream, len))
    }

    fn subscribe(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(self.table, stream)
    }
}
