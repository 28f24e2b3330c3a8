//! Placeholder until the status-LED module lands (being written now).
