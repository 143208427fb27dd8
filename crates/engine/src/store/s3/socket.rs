//! The TCP connections under the HTTP client, and what each still has to
//! send.
//!
//! On Linux every connection gets `TCP_NOTSENT_LOWAT` (`UNSENT`): the
//! kernel otherwise takes up to 4 MB of a body before the link sends it, and
//! asks for no more while it drains: on a slow uplink that is silence to
//! the stall timer (which counts the body taken, `stall`), and a part still
//! moving was cut. Holding back what is not yet sent keeps the body taken
//! as the link sends it.
//!
//! What is still queued once a body's last slice is taken (the unsent
//! `UNSENT`, what the network holds unacknowledged) drains before the
//! answer can come. Each connection carries a handle (`Queue`) through
//! which a request asks how much its socket still holds: a queue that
//! falls is a body still moving (`Connection::queued`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use aws_smithy_runtime_api::box_error::BoxError;
use hyper_util::client::legacy::connect::{
    CaptureConnection, Connected, Connection as Connect, HttpConnector as Tcp,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Bytes of a body the kernel holds unsent at most (see the module's
/// comment): a slice taken at least every `UNSENT` bytes the link sends
/// (every 1.3 s at 100 KB/s), and a loopback upload as fast as without.
#[cfg(target_os = "linux")]
const UNSENT: u32 = 128 * 1024;

/// The TCP connector: hyper-util's, with `TCP_NOTSENT_LOWAT` set on each
/// connection and a `Queue` handle in its metadata.
#[derive(Debug, Clone)]
pub(super) struct Sockets(pub(super) Tcp);

type Connecting = Pin<Box<dyn std::future::Future<Output = Result<Socket, BoxError>> + Send>>;

impl tower_service::Service<http::Uri> for Sockets {
    type Response = Socket;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Connecting {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            #[cfg(target_os = "linux")]
            socket2::SockRef::from(io.inner()).set_tcp_notsent_lowat(UNSENT)?;
            Ok(Socket::new(io))
        })
    }
}

/// How many bytes a connection's socket still holds: sent and not yet
/// acknowledged, or not sent yet. Its descriptor is forgotten (under the
/// lock) before the socket closes, so another socket given the same number
/// is never asked.
#[derive(Debug, Clone, Default)]
struct Queue(Arc<Mutex<Option<i32>>>);

impl Queue {
    #[cfg(target_os = "linux")]
    fn bytes(&self) -> Option<u32> {
        let fd = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let fd = (*fd)?;
        let mut n: libc::c_int = 0;
        // SAFETY: `fd` stays open while the lock is held (see `Socket`'s
        // drop); `TIOCOUTQ` (`SIOCOUTQ` on a socket) writes one int.
        let asked = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
        (asked == 0).then(|| u32::try_from(n).unwrap_or(0))
    }

    #[cfg(not(target_os = "linux"))]
    fn bytes(&self) -> Option<u32> {
        None
    }
}

/// A connection: the stream, and its `Queue` handle.
#[derive(Debug)]
pub(super) struct Socket {
    io: TokioIo<TcpStream>,
    queue: Queue,
}

impl Socket {
    fn new(io: TokioIo<TcpStream>) -> Self {
        let queue = Queue::default();
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            *queue.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(io.inner().as_raw_fd());
        }
        Socket { io, queue }
    }
}

impl Drop for Socket {
    // Runs before `io` closes the descriptor.
    fn drop(&mut self) {
        *self.queue.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Connect for Socket {
    fn connected(&self) -> Connected {
        self.io.connected().extra(self.queue.clone())
    }
}

impl hyper::rt::Read for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// A request's connection, once the pool has given it one (`attach`),
/// as a request extension: the stall timer asks it what is still queued.
#[derive(Debug, Clone, Default)]
pub(super) struct Connection(Arc<OnceLock<CaptureConnection>>);

impl Connection {
    /// Ties this handle to the connection the pool gives the request.
    pub(super) fn attach(&self, captured: &CaptureConnection) {
        let _ = self.0.set(captured.clone());
    }

    /// The bytes its socket still holds; `None` before it has one, or where
    /// the system does not say.
    pub(super) fn queued(&self) -> Option<u32> {
        let connected = self.0.get()?.connection_metadata();
        let mut extras = http::Extensions::new();
        connected.as_ref()?.get_extras(&mut extras);
        extras.get::<Queue>()?.bytes()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_says_what_it_still_holds_until_it_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        // The peer accepts and never reads.
        let (_peer, _) = listener.accept().await.unwrap();
        let socket = Socket::new(TokioIo::new(stream));
        let queue = socket.queue.clone();
        assert_eq!(queue.bytes(), Some(0));
        let mut socket = Box::pin(socket);
        // Written until the kernel takes no more: the peer's buffer is full,
        // so the rest waits here, unacknowledged or unsent.
        let data = vec![1u8; 64 * 1024];
        let written = futures::future::poll_fn(|cx| {
            let mut total = 0;
            loop {
                match hyper::rt::Write::poll_write(socket.as_mut(), cx, &data) {
                    Poll::Ready(Ok(n)) => total += n,
                    Poll::Pending => return Poll::Ready(total),
                    Poll::Ready(Err(e)) => panic!("{e}"),
                }
            }
        })
        .await;
        assert!(queue
            .bytes()
            .is_some_and(|n| n > 0 && n as usize <= written));
        drop(socket);
        assert_eq!(queue.bytes(), None, "never asked once closed");
    }
}
