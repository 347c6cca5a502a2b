//! The nftables back end (being written).
