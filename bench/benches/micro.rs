//! Micro benchmarks (criterion) of the daemon's per-request steps, in-process:
//!
//! - `envelope/open-cached`: decode and open a sealed request from a known client whose box is
//!   cached (every request after a client's first), and `envelope/open-fresh` with the
//!   Diffie-Hellman step each time (a client's first request); `envelope/open-current-key` and
//!   `envelope/open-previous-key` the same through the daemon's host keys, after a rotation, for
//!   a client sealing to the new key and to the replaced one;
//! - `policy/decide-allow` and `policy/decide-deny`: one decision on the stock policies;
//! - `sandbox/echo`: fresh store, instantiate and call the `echo` module, with the pooling
//!   allocator as `sesamed` configures it.
//!
//! `cargo bench -p sesame-bench --bench micro` (`bench/run` runs it; add `-- --quick` for a short
//! run). The `echo` module must be built first (`commands/build`).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use sesame_proto::{Domain, Envelope, Request, Sealer, SecretKey};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn envelope(c: &mut Criterion) {
    let mut rng = rand_core::OsRng;
    let client = SecretKey::generate(&mut rng);
    let client_key = client.public_key();
    let host = SecretKey::generate(&mut rng);
    let host_key = host.public_key();
    let request = Request::new(&mut rng, 0, "demo", Some("basic"), "echo", vec!["hello".into()]);
    let sealed = Sealer::new(client)
        .seal(Domain::Request, &host_key, &mut rng, &request.encode())
        .expect("seal");
    let mut group = c.benchmark_group("envelope");
    let cached = Sealer::new(SecretKey::from_hex(&host.to_hex()).expect("same key"));
    group.bench_function("open-cached", |b| {
        b.iter(|| {
            let envelope = Envelope::decode(black_box(&sealed)).expect("decode");
            cached
                .open(Domain::Request, &envelope, |k| *k == client_key)
                .expect("open")
        });
    });
    // After `sesamed rotate-key`, a client still sealing to the old key: the current key's MAC
    // check fails first, then the previous key opens it.
    let rotated = sesamed::identity::HostKeys::with_previous(
        SecretKey::generate(&mut rng),
        SecretKey::from_hex(&host.to_hex()).expect("same key"),
        u64::MAX,
    );
    group.bench_function("open-current-key", |b| {
        let current =
            sesamed::identity::HostKeys::single(SecretKey::from_hex(&host.to_hex()).expect("same key"));
        b.iter(|| {
            let envelope = Envelope::decode(black_box(&sealed)).expect("decode");
            current.open(0, &envelope, |k| *k == client_key).expect("open")
        });
    });
    group.bench_function("open-previous-key", |b| {
        b.iter(|| {
            let envelope = Envelope::decode(black_box(&sealed)).expect("decode");
            rotated.open(0, &envelope, |k| *k == client_key).expect("open")
        });
    });
    let fresh = Sealer::with_cache_capacity(host, 0);
    group.bench_function("open-fresh", |b| {
        b.iter(|| {
            let envelope = Envelope::decode(black_box(&sealed)).expect("decode");
            fresh
                .open(Domain::Request, &envelope, |k| *k == client_key)
                .expect("open")
        });
    });
    group.finish();
}

/// The `echo` component, built by `commands/build`.
fn echo() -> PathBuf {
    let path = repo().join("commands/target/wasm32-wasip2/release/echo.wasm");
    assert!(
        path.exists(),
        "{} is missing: run commands/build first",
        path.display()
    );
    path
}

fn policy(c: &mut Criterion) {
    let cached = sesamed::policy::Policy::load(&repo().join("policies")).expect("the stock policies load");
    let policy = cached.clone().with_decision_cache(0);
    let imports = sesame_bench::inproc::module_imports(&echo()).expect("load echo");
    let allow = sesame_bench::inproc::policy_input("basic", "echo", &imports);
    let deny = sesame_bench::inproc::policy_input("testing", "spin", &imports);
    assert!(policy.decide(&allow).is_allowed());
    assert!(!policy.decide(&deny).is_allowed());
    assert!(cached.decide(&allow).is_allowed() && cached.decide_cached(&allow).1);
    let mut group = c.benchmark_group("policy");
    group.bench_function("decide-allow", |b| b.iter(|| policy.decide(black_box(&allow))));
    group.bench_function("decide-deny", |b| b.iter(|| policy.decide(black_box(&deny))));
    group.bench_function("decide-allow-cached", |b| {
        b.iter(|| cached.decide(black_box(&allow)))
    });
    group.finish();
}

fn sandbox(c: &mut Criterion) {
    use sesamed::host::CallContext;
    use sesamed::policy::Grant;
    let spec = sesamed::config::CommandModule {
        path: echo(),
        digest: None,
    };
    let mut sandbox = sesamed::sandbox::Sandbox::new(4, 64 << 20).expect("sandbox");
    let loaded = sandbox.load("bench", "module", &spec, &[]).expect("load echo");
    let invocation = sesame_bench::inproc::invocation();
    let limits = sesame_bench::inproc::limits();
    c.bench_function("sandbox/echo", |b| {
        b.iter(|| {
            let calls = CallContext::new(invocation.id.clone(), Grant::default());
            let outcome = sandbox.run(&loaded, &invocation, calls, limits);
            outcome.result.expect("echo runs")
        });
    });
}

criterion_group!(benches, envelope, policy, sandbox);
criterion_main!(benches);
