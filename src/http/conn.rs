//! Per-connection plumbing: socket options that bound how long a dead peer can hold a
//! connection, and a guard that drops a viewer whose socket stops accepting data.

use async_io::Timer;
use futures_lite::{AsyncRead, AsyncWrite};
use socket2::{SockRef, TcpKeepalive};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Keepalive finds peers that vanished (Wi-Fi dropped) even while we have nothing to
/// send; TCP_USER_TIMEOUT bounds how long unacknowledged data may sit. Best effort: a
/// failure to set them is not worth refusing the connection.
pub fn tune(stream: &smol::net::TcpStream, send_timeout: Duration) {
    let sock = SockRef::from(stream);
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let _ = sock.set_tcp_keepalive(&keepalive);
    let _ = sock.set_tcp_user_timeout(Some(send_timeout));
    // Frames are written whole; don't let Nagle hold the tail of one back.
    let _ = sock.set_tcp_nodelay(true);
}

/// Answers a connection over the limit with a 503 (best effort, never waiting) and
/// closes it.
pub fn refuse(stream: smol::net::TcpStream) {
    use std::io::{Read, Write};
    tracing::debug!("connection limit reached; refusing a connection");
    let stream: std::sync::Arc<async_io::Async<std::net::TcpStream>> = stream.into();
    // A fresh socket's send buffer is empty, so this small write does not block.
    let _ = stream.get_ref().write(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nRetry-After: 5\r\nConnection: close\r\n\r\ntoo many connections\r\n",
    );
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
    // Closing with unread request bytes makes Linux send RST, which can discard the 503
    // before the client reads it: drain what has arrived (non-blocking, bounded).
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match stream.get_ref().read(&mut buf) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

/// Binds a listening socket with a large backlog (std's `bind` uses 128).
pub fn bind(addr: std::net::SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // Restarting camhub must not fail on the previous run's TIME_WAIT sockets.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Fails a write that has made no progress for `timeout`: a client that stopped reading
/// (a phone that locked its screen with the tab open) would otherwise keep its
/// connection and in-flight frame forever. Reads pass through untouched.
pub struct SendTimeout<T> {
    io: T,
    timeout: Duration,
    /// Running while a write is blocked; cleared by any progress.
    blocked: Option<Timer>,
}

impl<T> SendTimeout<T> {
    pub fn new(io: T, timeout: Duration) -> Self {
        SendTimeout {
            io,
            timeout,
            blocked: None,
        }
    }

    fn check<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(r) => {
                self.blocked = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let timer = self.blocked.get_or_insert_with(|| Timer::after(timeout));
                match Pin::new(timer).poll(cx) {
                    Poll::Ready(_) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client accepted no data within the send timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}
