//! A faithful plug simulator: profiles, faults, TCP/UDP servers (not built yet).
