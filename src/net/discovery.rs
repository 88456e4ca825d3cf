//! Discovery: UDP broadcast, known hosts, TCP sweep and the UDP 20002 probe (not built yet).
