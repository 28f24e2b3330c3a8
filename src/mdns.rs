//! Placeholder until the mDNS module lands (being written now).
