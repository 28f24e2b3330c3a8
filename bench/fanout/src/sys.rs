//! Linux-only plumbing: a level-triggered epoll set, /proc readers for CPU time and
//! memory, and signals. All of the bench's `unsafe` lives here.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// An epoll instance; sockets are registered for readability with a caller-chosen token.
pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: plain syscall; the returned fd is owned by `Epoll` and closed in Drop.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Epoll {
            fd,
            events: vec![empty; capacity.max(1)],
        })
    }

    /// Level-triggered: a socket with unread bytes is reported again on the next wait.
    pub fn add(&self, socket: &impl AsRawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: token,
        };
        // SAFETY: `ev` outlives the call; the kernel copies it.
        let rc =
            unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, socket.as_raw_fd(), &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn remove(&self, socket: &impl AsRawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; an error (fd already gone) is harmless here.
        unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_DEL, socket.as_raw_fd(), &mut ev) };
    }

    /// Waits up to `timeout` and returns the tokens of ready sockets.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<impl Iterator<Item = u64> + '_> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: the buffer is valid for `len` events and lives in `self`.
        let n = unsafe {
            libc::epoll_wait(
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        };
        let n = if n >= 0 {
            n as usize
        } else {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            0
        };
        Ok(self.events[..n].iter().map(|e: &libc::epoll_event| e.u64))
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
    }
}

/// Clock ticks per second for /proc/*/stat CPU times (almost always 100).
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: plain query.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a whole process (all threads), in seconds. `pid` "self" works too.
pub fn cpu_secs(pid: &str) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed /proc stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((ticks(14) + ticks(15)) as f64 / clock_ticks_per_sec())
}

/// One `key:   value kB` line of /proc/PID/status, in MiB (or a plain count for `Threads`).
pub fn status_value(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    let mut parts = line[key.len() + 1..].split_whitespace();
    let n: f64 = parts.next()?.parse().ok()?;
    Some(if parts.next() == Some("kB") {
        n / 1024.0
    } else {
        n
    })
}

pub fn kill(pid: u32, signal: i32) {
    // SAFETY: plain syscall on a child we spawned and have not reaped yet.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// Makes the kernel SIGKILL the child if the bench dies, so no camhub outlives a crashed
/// or killed bench. Call between fork and exec (`Command::pre_exec`).
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl with integer arguments is async-signal-safe.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
