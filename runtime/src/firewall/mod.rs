//! Temporary firewall openings that always expire.

pub mod backend;
pub mod nft;
pub mod rule;
pub mod ufw;
