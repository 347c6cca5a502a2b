//! SQS: sesame's round trip over a queue, and a bare relay doing the same SQS calls as the
//! baseline (see `sesame-bench sqs --help`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sesame_client::ClientHome;
use sesame_proto::{Sealer, Status};

use crate::stats::summary;

/// Sequential requests over SQS to a daemon polling the host's queue, then the same number
/// through the relay; prints `sqs-sesame …` and `sqs-relay …`.
pub async fn run(alias: &str, count: usize, warmup: usize) -> anyhow::Result<()> {
    use sesame_sqs::Queue;
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let home = ClientHome::from_env()?;
    let host = home.host(alias)?;
    let route = host.sqs.clone().context("the host has no SQS route")?;
    let sealer = std::sync::Arc::new(Sealer::new(home.key()?));
    let settings = route.settings();
    let client = sesame_sqs::client(&settings, Duration::from_secs(10)).await;
    Queue::open_or_create(&client, &route.queue, &[]).await?;

    // sesame over SQS: the daemon must be polling the host's queue.
    let link = sesame_client::SqsLink::connect(&settings, std::sync::Arc::clone(&sealer)).await?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let request = crate::new_request(&host, alias, Some("basic"), "echo", &["hello".to_owned()]);
        let started = Instant::now();
        // The first requests may wait for a daemon still backing off from a missing queue.
        let response = link
            .send_request(&host, &sealer, &request, Duration::from_secs(60))
            .await?;
        let elapsed = started.elapsed();
        if response.status != Status::Ok {
            bail!("request failed: {} {}", response.code, response.message);
        }
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    drop(link);
    println!("sqs-sesame {}", summary(samples));

    // The baseline: the same SQS calls through a relay, in its own process like the daemon,
    // that does nothing else.
    let (inbound, outbound) = relay_queues(&client).await?;
    let mut relay = std::process::Command::new(std::env::current_exe()?)
        .args(["sqs-relay", alias])
        .spawn()
        .context("starting the relay")?;
    let payload = vec![0u8; 200];
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let started = Instant::now();
        inbound.send(&payload).await?;
        let reply = loop {
            if let Some(m) = outbound.receive(10, 20, 30).await?.into_iter().next() {
                break m;
            }
        };
        outbound.delete(&reply.receipt).await?;
        let elapsed = started.elapsed();
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    let _ = relay.kill();
    let _ = relay.wait();
    println!("sqs-relay {}", summary(samples));
    Ok(())
}

async fn relay_queues(client: &sesame_sqs::Client) -> anyhow::Result<(sesame_sqs::Queue, sesame_sqs::Queue)> {
    use sesame_sqs::Queue;
    Ok((
        Queue::open_or_create(client, "sesame-bench-relay-in", &[]).await?,
        Queue::open_or_create(client, "sesame-bench-relay-out", &[]).await?,
    ))
}

/// Receives each message on the relay's inbound queue, sends it to the outbound one, deletes it.
pub async fn relay(alias: &str) -> anyhow::Result<()> {
    let host = ClientHome::from_env()?.host(alias)?;
    let route = host.sqs.context("the host has no SQS route")?;
    let client = sesame_sqs::client(&route.settings(), Duration::from_secs(10)).await;
    let (inbound, outbound) = relay_queues(&client).await?;
    loop {
        for m in inbound.receive(10, 20, 30).await? {
            if let Ok(body) = m.envelope {
                outbound.send(&body).await?;
            }
            inbound.delete(&m.receipt).await?;
        }
    }
}
