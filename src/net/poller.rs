//! The poller: refreshes sysinfo and readings of known devices (not built yet).
