//! Write sesame command modules in Rust.
//!
//! A command module is a WebAssembly component that the sesame daemon (`sesamed`) runs for one
//! request: it receives an [`Invocation`] (who asked, for which command, with which arguments)
//! and returns the text shown to the client, or an error message. It can ask the host for
//! work through the interfaces of `wit/sesame.wit`, wrapped here as [`firewall`], [`salt`],
//! [`users`], [`exec`] (programs the operator declared), [`hostkeys`] (the host's SSH host
//! public keys), [`grants`] (the caller's own temporary changes, of every kind) and [`log`] (and, for tests on the host, faked by [`testing`]). Calling one of them is asking for a capability: the daemon
//! links only the interfaces the module's cluster allows, and checks every call against the
//! grant the policy issued for the request, so any call can fail with [`HostError::Denied`].
//!
//! # A complete module
//!
//! ```no_run
//! use sesame_guest::{Args, Command, Invocation, firewall, log};
//!
//! /// `open PORT [--ttl SECS] [--udp]`: opens PORT to the caller's address for a while.
//! struct Open;
//!
//! impl Command for Open {
//!     fn run(inv: Invocation) -> Result<String, String> {
//!         let args = inv.args().value_flags(&["--ttl"]);
//!         let port: u16 = args.parse(0, "PORT")?;
//!         let ttl_secs: u32 = args.parse_flag("--ttl")?.unwrap_or(300);
//!         let proto = if args.has_flag("--udp") { firewall::Proto::Udp } else { firewall::Proto::Tcp };
//!         let source = inv.source_ip.clone().ok_or("no source address (SQS request?)")?;
//!
//!         let rule = firewall::Rule { source, port, proto, ttl_secs };
//!         let grant_id = firewall::allow(&rule)?; // HostError converts into the String error
//!         log::info(&format!("opened port {port} for {}", inv.client));
//!         Ok(format!("grant={grant_id} ttl={ttl_secs}s"))
//!     }
//! }
//!
//! sesame_guest::export_command!(Open);
//! ```
//!
//! # Testing a module on the host
//!
//! `cargo test` for the host target (not `wasm32-wasip2`) can call [`Command::run`] directly:
//! there, [`testing`] replaces the daemon with a [`FakeHost`](testing::FakeHost) that answers
//! each host function as the test scripts it, denies the ones it does not script, and records
//! every call and log line. Tests for the module above, in its own crate:
//!
//! ```rust,test_harness
//! # use sesame_guest::{Args, Command, Invocation, firewall, log};
//! # struct Open;
//! # impl Command for Open {
//! #     fn run(inv: Invocation) -> Result<String, String> {
//! #         let args = inv.args().value_flags(&["--ttl"]);
//! #         let port: u16 = args.parse(0, "PORT")?;
//! #         let ttl_secs: u32 = args.parse_flag("--ttl")?.unwrap_or(300);
//! #         let proto = if args.has_flag("--udp") { firewall::Proto::Udp } else { firewall::Proto::Tcp };
//! #         let source = inv.source_ip.clone().ok_or("no source address (SQS request?)")?;
//! #         let rule = firewall::Rule { source, port, proto, ttl_secs };
//! #         let grant_id = firewall::allow(&rule)?;
//! #         log::info(&format!("opened port {port} for {}", inv.client));
//! #         Ok(format!("grant={grant_id} ttl={ttl_secs}s"))
//! #     }
//! # }
//! #[cfg(test)]
//! mod tests {
//!     use super::*;
//!     use sesame_guest::HostError;
//!     use sesame_guest::firewall::{Proto, Rule};
//!     use sesame_guest::testing::{Call, FakeHost, LogLine, invocation};
//!
//!     fn alice(args: &[&str]) -> Invocation {
//!         invocation("alice", args).with_source_ip("203.0.113.5")
//!     }
//!
//!     #[test]
//!     fn opens_the_port_for_the_caller() {
//!         let run = FakeHost::new()
//!             .firewall_allow(|_rule| Ok("fw-1".into()))
//!             .run::<Open>(alice(&["22", "--ttl", "60"]));
//!         assert_eq!(run.output, Ok("grant=fw-1 ttl=60s".into()));
//!         let rule = Rule { source: "203.0.113.5".into(), port: 22, proto: Proto::Tcp, ttl_secs: 60 };
//!         assert_eq!(run.calls, [Call::FirewallAllow(rule)]);
//!         assert_eq!(run.logs, [LogLine::info("opened port 22 for alice")]);
//!     }
//!
//!     #[test]
//!     fn host_errors_reach_the_client() {
//!         // Unscripted: denied, as by a daemon whose policy does not grant the opening.
//!         let run = FakeHost::new().run::<Open>(alice(&["22"]));
//!         assert_eq!(run.output, Err("denied: not scripted in this test: firewall.allow".into()));
//!
//!         let run = FakeHost::new()
//!             .firewall_allow(|_rule| Err(HostError::Failed("nft exited 1".into())))
//!             .run::<Open>(alice(&["22"]));
//!         assert_eq!(run.output, Err("failed: nft exited 1".into()));
//!         assert!(run.logs.is_empty());
//!     }
//!
//!     #[test]
//!     fn bad_arguments_never_reach_the_host() {
//!         let run = FakeHost::new().run::<Open>(alice(&["ssh"]));
//!         assert_eq!(run.output, Err("invalid PORT `ssh`: invalid digit found in string".into()));
//!         assert_eq!(run.calls, []);
//!     }
//! }
//! ```
//!
//! A helper below `run` that takes the host function as a parameter can be tested the same way
//! inside [`FakeHost::scope`](testing::FakeHost::scope). `scripts/new-command NAME` starts a
//! new module from `commands/template`, a small module with such tests.
//!
//! # Building it
//!
//! The module is its own crate, compiled as a `cdylib` for `wasm32-wasip2`, which makes
//! `rustc` link a component directly (no separate `wasm-tools component new` step):
//!
//! ```toml
//! [package]
//! name = "open"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! sesame-guest = { path = "../../guest-sdk" }
//!
//! [profile.release]
//! opt-level = "s"
//! lto = true
//! codegen-units = 1
//! strip = true
//! panic = "abort"
//! ```
//!
//! ```sh
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2   # -> target/wasm32-wasip2/release/open.wasm
//! ```
//!
//! The stock modules live in `commands/` (one cargo workspace; `commands/build` builds them).
//!
//! # What the daemon lets a module do
//!
//! Modules use `std`, so the component also imports WASI interfaces (`io` and `cli`; `std`
//! pulls in `clocks` and `random` when the module uses time or hashing). The daemon links
//! those to a closed context: no filesystem, no sockets, no environment variables; stdout and
//! stderr go to small memory pipes that only the daemon's log sees. A module that imports
//! anything else (for example `wasi:filesystem`, which `std::fs` pulls in) is refused when
//! the daemon loads it. Return output from [`Command::run`]; report progress with [`log`]. A
//! panic or a runaway loop ends the request with an error, not the daemon.
//!
//! A module imports only the sesame interfaces it calls: a module that never calls
//! [`firewall`] does not import it, and runs in clusters without the firewall capability.
//!
//! # `unsafe`
//!
//! The crate denies `unsafe_code` but cannot forbid it: the bindings `wit-bindgen` generates
//! (the canonical ABI glue in the hidden `__private::bindings` module, and the exported `run`
//! function that [`export_command!`] expands to) are `unsafe` by nature. Everything written
//! by hand here is safe code; module crates need no `unsafe` of their own and may
//! `#![forbid(unsafe_code)]` (the stock modules in `commands/` do).

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod args;
mod error;
pub mod exec;
pub mod firewall;
pub mod grants;
pub mod hostkeys;
pub mod log;
pub mod salt;
#[cfg(not(target_family = "wasm"))]
pub mod testing;
pub mod users;

pub use args::Args;
pub use error::HostError;

/// What the module is asked to do, and on whose behalf (the WIT `invocation` record).
///
/// `args` are the client's arguments, unparsed; [`Invocation::args`] wraps them in [`Args`].
pub use __private::bindings::sesame::host::types::Invocation;

/// A command module: implement this and name the type in [`export_command!`].
pub trait Command {
    /// Runs the command for one request.
    ///
    /// `Ok` is the output shown to the client. `Err` is a failure message the client sees
    /// with error code 3006; it should say what went wrong in one line, without secrets.
    fn run(inv: Invocation) -> Result<String, String>;
}

impl Invocation {
    /// The client's arguments, ready for positional and flag lookups.
    pub fn args(&self) -> Args<'_> {
        Args::new(&self.args)
    }
}

/// Exports a [`Command`] implementation as the module's `run` function.
///
/// Use it exactly once per module crate, at the crate's top level:
///
/// ```no_run
/// struct Hello;
/// impl sesame_guest::Command for Hello {
///     fn run(inv: sesame_guest::Invocation) -> Result<String, String> {
///         Ok(format!("hello, {}", inv.client))
///     }
/// }
/// sesame_guest::export_command!(Hello);
/// ```
#[macro_export]
macro_rules! export_command {
    ($ty:ty) => {
        const _: () = {
            struct __SesameCommandExport;
            impl $crate::__private::bindings::Guest for __SesameCommandExport {
                fn run(
                    inv: $crate::Invocation,
                ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                    <$ty as $crate::Command>::run(inv)
                }
            }
            $crate::__private::bindings::__export_command_impl!(
                __SesameCommandExport with_types_in $crate::__private::bindings
            );
        };
    };
}

/// Not public API: the generated bindings, reachable only so that [`export_command!`] can
/// expand in module crates. Nothing here follows semver.
#[doc(hidden)]
pub mod __private {
    /// The code `wit-bindgen` generates for world `command` of `wit/sesame.wit`.
    // Canonical ABI glue is unsafe; exports take one argument per flattened field.
    #[allow(unsafe_code, clippy::too_many_arguments)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "command",
            pub_export_macro: true,
            export_macro_name: "__export_command_impl",
            default_bindings_module: "::sesame_guest::__private::bindings",
            // Records compare in tests (`testing::Call`, assertions on `Rule`, `Grant`, ...).
            additional_derives: [PartialEq, Eq],
        });
    }
}
