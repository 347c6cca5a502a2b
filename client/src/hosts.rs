//! The hosts this client trusts, as `hosts.toml` holds them (see [`crate::home`]): each
//! one's pinned key, its routes (a QUIC address with its certificate's fingerprint, an SQS
//! queue, or both) and its labels.

use serde::{Deserialize, Serialize};
use sesame_proto::{HostPin, KeyDigest, PublicKey};

use crate::labels::Labels;

/// A host the client trusts: its key, and how to reach it (QUIC, SQS or both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// `IP:PORT` or `NAME:PORT` of its QUIC listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// Its crypto_box public key.
    pub key: PublicKey,
    /// SHA-256 of the key the host will rotate to (`sesamed show`): the only key this client
    /// follows a rotation to. Without it, rotations are never followed by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key_sha256: Option<KeyDigest>,
    /// SHA-256 of its TLS certificate, 64 hex characters (with `addr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// The daemon's own host name when it differs from the name the client uses for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its SQS request queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<SqsRoute>,
    /// Its labels, for `sesame run --where` (this client's own: the host never sees them).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// Where a host's SQS request queue is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsRoute {
    /// The queue's name (`sesame-req-<host>`) or URL.
    pub queue: String,
    /// Its region (else `AWS_REGION` or the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The SQS endpoint (else `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL` or AWS's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The AWS profile (else `AWS_PROFILE` or `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl SqsRoute {
    /// The AWS settings it names.
    pub fn settings(&self) -> sesame_sqs::Settings {
        sesame_sqs::Settings {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            profile: self.profile.clone(),
        }
    }
}

impl HostEntry {
    /// A host known by its key alone: no route, no next-key digest, no labels (fill them in
    /// with struct update syntax).
    pub fn new(key: PublicKey) -> Self {
        Self {
            addr: None,
            key,
            next_key_sha256: None,
            cert_sha256: None,
            name: None,
            sqs: None,
            labels: Labels::default(),
        }
    }

    /// The name requests must carry: the daemon's configured host name.
    pub fn daemon_name<'a>(&'a self, alias: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(alias)
    }

    /// Its QUIC address and pinned certificate fingerprint, if it is reached over QUIC.
    pub fn quic(&self) -> Option<(&str, &str)> {
        Some((self.addr.as_deref()?, self.cert_sha256.as_deref()?))
    }

    /// The pinned keys: the key and the next key's digest.
    pub fn pin(&self) -> HostPin {
        HostPin {
            key: self.key,
            next_key_sha256: self.next_key_sha256,
        }
    }

    /// The entry for scripts (`sesame host list --json`): `name` (the pinned name), `host_name`
    /// (the daemon's), `key`, `next_key_sha256`, `addr` and `cert_sha256` (QUIC), `sqs`
    /// (`queue`, `region`, `endpoint_url`, `profile`); what the host lacks is `null`.
    pub fn to_json(&self, alias: &str) -> serde_json::Value {
        serde_json::json!({
            "name": alias,
            "host_name": self.daemon_name(alias),
            "key": self.key.to_string(),
            "next_key_sha256": self.next_key_sha256.map(|d| d.to_string()),
            "addr": self.addr,
            "cert_sha256": self.cert_sha256,
            "sqs": self.sqs.as_ref().map(|r| serde_json::json!({
                "queue": r.queue,
                "region": r.region,
                "endpoint_url": r.endpoint_url,
                "profile": r.profile,
            })),
            "labels": self.labels.to_json(),
        })
    }

    /// The transport used when none is asked for: QUIC if the host has an address, else SQS.
    pub fn default_transport(&self) -> Transport {
        if self.addr.is_some() {
            Transport::Quic
        } else {
            Transport::Sqs
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        match (&self.addr, &self.cert_sha256) {
            (Some(_), Some(fp)) => check_fingerprint(fp)?,
            (None, None) => {}
            (Some(_), None) => return Err("addr needs cert_sha256 (the pinned certificate)".into()),
            (None, Some(_)) => return Err("cert_sha256 without addr".into()),
        }
        if let Some(sqs) = &self.sqs
            && sesame_sqs::queue_name(&sqs.queue).is_none()
        {
            return Err(format!("sqs.queue {:?} is not a queue name or URL", sqs.queue));
        }
        if self.addr.is_none() && self.sqs.is_none() {
            return Err("no route: give it addr (QUIC) or sqs (a queue)".into());
        }
        Ok(())
    }
}

/// How a request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// QUIC to the host's address.
    Quic,
    /// The host's SQS request queue.
    Sqs,
}

impl Transport {
    /// `quic` or `sqs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quic => "quic",
            Self::Sqs => "sqs",
        }
    }
}

fn check_fingerprint(fp: &str) -> Result<(), String> {
    if fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "{fp:?} is not a full SHA-256 fingerprint (64 hex characters)"
        ))
    }
}
