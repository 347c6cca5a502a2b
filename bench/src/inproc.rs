//! In-process measurements of the daemon's parts: a policy decision, and the sandbox per
//! request with each instance allocation strategy (plus module load, compiled and cached).

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::stats::summary;

/// The policy input of an `echo hello` request from alice (group `users`) to host `demo`, as
/// the daemon builds it, for `cluster::command` run by a module with `imports`.
pub fn policy_input(cluster: &str, command: &str, imports: &[String]) -> sesamed::policy::PolicyInput {
    use sesamed::policy::{ClientInput, HostInput, ModuleInput, PolicyInput, RequestInput};
    PolicyInput {
        client: ClientInput {
            name: "alice".into(),
            key: "00".repeat(32),
            groups: vec!["users".into()],
        },
        request: RequestInput {
            id: "00".repeat(16),
            cluster: cluster.into(),
            command: command.into(),
            args: vec!["hello".into()],
            transport: "quic".into(),
            source_ip: Some("127.0.0.1".into()),
            reason: None,
        },
        host: HostInput {
            name: "demo".into(),
            labels: Default::default(),
        },
        module: ModuleInput {
            name: format!("{cluster}::{command}"),
            digest: format!("sha256:{}", "0".repeat(64)),
            imports: imports.to_vec(),
        },
        now_ns: 0,
    }
}

/// The invocation of an `echo hello` request (`bench::module`), as the sandbox sees it.
pub fn invocation() -> sesamed::host::Invocation {
    sesamed::host::Invocation {
        id: "00".repeat(16),
        cluster: "bench".into(),
        command: "module".into(),
        args: vec!["hello".into()],
        client: "alice".into(),
        groups: vec!["users".into()],
        source_ip: None,
    }
}

/// The daemon's default limits.
pub fn limits() -> sesamed::sandbox::RunLimits {
    sesamed::sandbox::RunLimits {
        timeout: Duration::from_secs(5),
        memory_bytes: 64 << 20,
        output_bytes: 64 << 10,
        host_calls: sesamed::host::DEFAULT_MAX_HOST_CALLS,
    }
}

/// The imports of the component at `module`, as the daemon puts them in the policy input.
pub fn module_imports(module: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let spec = sesamed::config::CommandModule {
        path: module.to_owned(),
        digest: None,
    };
    let mut sandbox = sesamed::sandbox::Sandbox::new(1, 64 << 20)?;
    Ok(sandbox.load("bench", "module", &spec, &[])?.imports.clone())
}

/// One policy decision (`Policy::decide`, as the daemon calls it) for an allowed and a denied
/// request, with the imports of `module` in the input as the daemon would give them: evaluated
/// (the decision cache off), then remembered (the cache on, every decision after the first a hit),
/// then with the cache on and every input new (a miss each: evaluation, key and insert); prints
/// `policy-allow …`, `policy-deny …`, `policy-allow-cached …`, `policy-deny-cached …` and
/// `policy-allow-missed …`.
pub fn policy(dir: &std::path::Path, module: &std::path::Path, count: usize) -> anyhow::Result<()> {
    use sesamed::policy::Policy;
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let cached = Policy::load(dir)?;
    if let Err(varying) = cached.cacheable() {
        bail!("{}: decisions cannot be cached ({varying})", dir.display());
    }
    let evaluated = cached.clone().with_decision_cache(0);
    let imports = module_imports(module)?;
    // (case, policy, cluster::command, allowed, every input new)
    for (case, policy, (cluster, command), allowed, distinct) in [
        ("allow", &evaluated, ("basic", "echo"), true, false),
        ("deny", &evaluated, ("testing", "spin"), false, false),
        ("allow-cached", &cached, ("basic", "echo"), true, false),
        ("deny-cached", &cached, ("testing", "spin"), false, false),
        ("allow-missed", &cached, ("basic", "echo"), true, true),
    ] {
        let mut samples = Vec::with_capacity(count);
        let mut input = policy_input(cluster, command, &imports);
        for i in 0..count + count / 10 {
            if distinct {
                input.request.args = vec![format!("hello-{i}")];
            }
            let started = Instant::now();
            let (decision, hit) = policy.decide_cached(&input);
            let elapsed = started.elapsed();
            if decision.is_allowed() != allowed {
                bail!("{case}: unexpected decision {decision:?}");
            }
            if hit != (policy.cache_stats().is_some() && i > 0 && !distinct) {
                bail!(
                    "{case}: decision {i} was {}a cache hit",
                    if hit { "" } else { "not " }
                );
            }
            if i >= count / 10 {
                samples.push(elapsed);
            }
        }
        println!("policy-{case} {}", summary(samples));
    }
    Ok(())
}

/// Module load (compiled, then from the cache), then a fresh store, instantiate and call per
/// request with each allocation strategy; prints `load-…` and `sandbox-<strategy> …` lines.
pub fn sandbox(module: &std::path::Path, count: usize) -> anyhow::Result<()> {
    use sesamed::config::CommandModule;
    use sesamed::host::CallContext;
    use sesamed::policy::Grant;
    use sesamed::sandbox::{Sandbox, Strategy};
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let spec = CommandModule {
        path: module.to_owned(),
        digest: None,
    };
    // Start-up: compiling the module, then loading it from the precompiled cache.
    let cache = std::env::temp_dir().join(format!("sesame-bench-cache-{}", std::process::id()));
    for (label, round) in [("compile", 0), ("cached", 1)] {
        let mut sandbox = Sandbox::new(1, 64 << 20)?;
        sandbox.use_cache(&cache)?;
        let started = Instant::now();
        let loaded = sandbox.load("bench", "module", &spec, &[])?;
        let elapsed = started.elapsed();
        if loaded.cached != (round == 1) {
            bail!("cache round {round}: cached = {}", loaded.cached);
        }
        println!("load-{label} us={:.1}", elapsed.as_secs_f64() * 1e6);
    }
    let _ = std::fs::remove_dir_all(&cache);

    let invocation = invocation();
    let limits = limits();
    // The same run with each instance allocation strategy, in rounds so that machine noise
    // falls on all three alike.
    let strategies = [
        ("on-demand", Strategy::OnDemand),
        ("pooling-default", Strategy::PoolingDefault),
        ("pooling", Strategy::Pooling),
    ];
    let mut sandboxes = Vec::new();
    for (label, strategy) in strategies {
        let mut sandbox = Sandbox::with_strategy(strategy, 4, 64 << 20)?;
        let loaded = sandbox.load("bench", "module", &spec, &[])?;
        sandboxes.push((label, sandbox, loaded, Vec::with_capacity(count)));
    }
    let rounds = 10;
    let per_round = count.div_ceil(rounds);
    for round in 0..=rounds {
        for (_, sandbox, loaded, samples) in &mut sandboxes {
            for _ in 0..per_round {
                let calls = CallContext::new(invocation.id.clone(), Grant::default());
                let started = Instant::now();
                let outcome = sandbox.run(loaded, &invocation, calls, limits);
                let elapsed = started.elapsed();
                if let Err(e) = outcome.result {
                    bail!("run failed: {e}");
                }
                // Round 0 warms up.
                if round > 0 {
                    samples.push(elapsed);
                }
            }
        }
    }
    for (label, _, _, samples) in sandboxes {
        println!("sandbox-{label} {}", summary(samples));
    }
    Ok(())
}
