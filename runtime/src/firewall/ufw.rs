//! The ufw back end (being written).
