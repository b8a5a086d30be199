//! Non-blocking connects, optionally from a chosen source address.
//!
//! One destination (IP, port) and one source IP allow at most the local
//! port range (about 28,000 ports by default) of connections. Spreading
//! sources over 127.0.0.1..127.0.0.N lifts that limit, but neither std nor
//! mio can bind a socket before connecting it. The C library std already
//! links can: `socket`, `setsockopt(IP_BIND_ADDRESS_NO_PORT)`, `bind`,
//! `connect`, declared here (Linux only) rather than pulled in through a
//! new dependency.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

/// Starts a non-blocking connect to `target`, bound first to `source` if
/// given. Completion is reported as writability.
pub fn connect(target: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<mio::net::TcpStream> {
    match source {
        None => mio::net::TcpStream::connect(target),
        Some(src) => match target {
            SocketAddr::V4(t) => connect_from(*t.ip(), t.port(), src),
            SocketAddr::V6(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a source address needs an IPv4 target",
            )),
        },
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::os::raw::{c_int, c_long, c_void};

    extern "C" {
        pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
        pub fn setsockopt(
            fd: c_int,
            level: c_int,
            name: c_int,
            value: *const c_void,
            len: u32,
        ) -> c_int;
        pub fn bind(fd: c_int, addr: *const c_void, len: u32) -> c_int;
        pub fn connect(fd: c_int, addr: *const c_void, len: u32) -> c_int;
        pub fn sysconf(name: c_int) -> c_long;
    }

    // Linux values (x86_64, aarch64 and the other generic-ABI targets).
    pub const AF_INET: c_int = 2;
    pub const SOCK_STREAM: c_int = 1;
    pub const SOCK_NONBLOCK: c_int = 0o4000;
    pub const SOCK_CLOEXEC: c_int = 0o2000000;
    pub const IPPROTO_IP: c_int = 0;
    /// Pick the source port at connect time, per destination, instead of
    /// at bind time (where it would have to be unique across all
    /// destinations). Linux 4.2+.
    pub const IP_BIND_ADDRESS_NO_PORT: c_int = 24;
    pub const EINPROGRESS: i32 = 115;
    pub const SC_CLK_TCK: c_int = 2;

    /// `struct sockaddr_in`.
    #[repr(C)]
    pub struct SockaddrIn {
        pub family: u16,
        /// Network byte order.
        pub port: u16,
        /// Network byte order.
        pub addr: [u8; 4],
        pub zero: [u8; 8],
    }
}

#[cfg(target_os = "linux")]
fn connect_from(ip: Ipv4Addr, port: u16, src: Ipv4Addr) -> io::Result<mio::net::TcpStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::raw::c_void;

    let sa = |ip: Ipv4Addr, port: u16| sys::SockaddrIn {
        family: sys::AF_INET as u16,
        port: port.to_be(),
        addr: ip.octets(),
        zero: [0; 8],
    };
    let len = std::mem::size_of::<sys::SockaddrIn>() as u32;
    // SAFETY: plain system calls with valid pointers to live, correctly
    // sized values; the returned descriptor is owned by `fd` at once, so
    // every error path closes it.
    unsafe {
        let raw = sys::socket(
            sys::AF_INET,
            sys::SOCK_STREAM | sys::SOCK_NONBLOCK | sys::SOCK_CLOEXEC,
            0,
        );
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(raw);
        let one: i32 = 1;
        // Best effort: without it, binding picks the port now (still works,
        // with fewer ports).
        sys::setsockopt(
            fd.as_raw_fd(),
            sys::IPPROTO_IP,
            sys::IP_BIND_ADDRESS_NO_PORT,
            &one as *const i32 as *const c_void,
            4,
        );
        let local = sa(src, 0);
        if sys::bind(fd.as_raw_fd(), &local as *const _ as *const c_void, len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let remote = sa(ip, port);
        if sys::connect(fd.as_raw_fd(), &remote as *const _ as *const c_void, len) != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(sys::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(mio::net::TcpStream::from_std(std::net::TcpStream::from(fd)))
    }
}

#[cfg(not(target_os = "linux"))]
fn connect_from(_: Ipv4Addr, _: u16, _: Ipv4Addr) -> io::Result<mio::net::TcpStream> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "--sources is implemented for Linux only",
    ))
}

#[cfg(target_os = "linux")]
pub fn clock_ticks() -> Option<u64> {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { sys::sysconf(sys::SC_CLK_TCK) };
    (v > 0).then_some(v as u64)
}

#[cfg(not(target_os = "linux"))]
pub fn clock_ticks() -> Option<u64> {
    None
}
