//! Everything that touches the kernel: the system calls (`sys`), a core's
//! socket ring (`ring`), what a connection needs of its socket
//! (`transport`, the seam) and a socket on the ring (`socket`), a TLS connection over one (`tls`), a file
//! body and the pipes it is spliced through (`file`), and the listening
//! sockets (`listener`). Nothing here knows HTTP.

pub(crate) mod file;
pub(crate) mod listener;
pub(crate) mod ring;
pub(crate) mod socket;
pub(crate) mod sys;
pub(crate) mod tls;
pub(crate) mod transport;
