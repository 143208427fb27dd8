//! The read timeout, counted from the last sign of life of a request rather
//! than from its start. The SDK's counts the time its body takes to send
//! (smithy-rs#3145): on a slow uplink an 8 MiB part could never be sent
//! within it, however steadily the bytes went. Here a request fails with a
//! timeout (which the SDK retries) only once, for the whole timeout, no
//! piece of its body has been taken, no answer has come, and its
//! connection's queue has not fallen (once the body is all taken, what the
//! kernel holds of it drains before the answer can come: on a slow uplink,
//! longer than the timeout).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::socket::Connection;
use crate::life::Life;

/// Body bytes handed to the connection at a time. The connection asks for
/// the next slice once it has room for it, so each ask shows the bytes
/// before it moving; at 64 KiB, a body moving at 3 KB/s still shows life
/// within the default timeout.
const SLICE: usize = 64 * 1024;

/// `http` (`super::http`, which times no request itself: it only has the
/// kernel abort a connection whose bytes sit unacknowledged that long)
/// with the read timeout counted here, from the last piece of body taken,
/// not from the start of the request.
pub(super) fn watched(http: SharedHttpClient) -> SharedHttpClient {
    http_client_fn(move |settings, components| {
        let inner = http.http_connector(settings, components);
        match settings.read_timeout() {
            Some(stall) => SharedHttpConnector::new(Watched { inner, stall }),
            None => inner,
        }
    })
}

#[derive(Debug)]
struct Watched {
    inner: SharedHttpConnector,
    stall: Duration,
}

impl HttpConnector for Watched {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let life = Arc::new(Life::default());
        let connection = Connection::default();
        request.add_extension(connection.clone());
        if request.body().content_length() != Some(0) {
            let body = request.take_body();
            *request.body_mut() = SdkBody::from_body_1_x(Noted {
                inner: body,
                rest: Bytes::new(),
                life: life.clone(),
            });
        }
        let (answer, stall) = (self.inner.call(request), self.stall);
        HttpConnectorFuture::new(async move {
            tokio::select! {
                answer = answer => answer,
                () = silent(&life, stall, &connection) => Err(ConnectorError::timeout(
                    format!("HTTP read timeout: nothing sent or received for {stall:?}").into(),
                )),
            }
        })
    }
}

/// Waits until neither the request (`life`) nor its connection's queue has
/// moved for `stall`: the queue is looked at every quarter of it, and one
/// lower than the look before is bytes the network took, life from then.
async fn silent(life: &Life, stall: Duration, connection: &Connection) {
    let mut seen = None;
    let mut fell = || {
        let now = connection.queued();
        let fell = seen.zip(now).is_some_and(|(before, now)| now < before);
        seen = now;
        if fell {
            life.now();
        }
        fell
    };
    loop {
        life.stalled(stall, |_| {
            fell();
        })
        .await;
        if !fell() {
            return;
        }
    }
}

/// A request body that notes each time the connection asks for more, in
/// slices of `SLICE` bytes.
struct Noted {
    inner: SdkBody,
    /// What is left of the last frame taken from `inner`.
    rest: Bytes,
    life: Arc<Life>,
}

impl Body for Noted {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.life.now();
        if self.rest.is_empty() {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.rest = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        }
        let take = self.rest.len().min(SLICE);
        Poll::Ready(Some(Ok(Frame::data(self.rest.split_to(take)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_is_handed_over_in_slices_each_noted_as_life() {
        let data = Bytes::from(vec![7u8; SLICE * 2 + 10]);
        let mut body = Noted {
            inner: SdkBody::from(data.clone()),
            rest: Bytes::new(),
            life: Arc::default(),
        };
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let mut got = Vec::new();
        let mut frames = 0;
        while let Some(frame) =
            futures::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= SLICE);
            got.extend_from_slice(&data);
            frames += 1;
            assert_eq!(
                body.size_hint().exact(),
                Some((SLICE * 2 + 10 - got.len()) as u64)
            );
        }
        assert_eq!(got, data);
        assert_eq!(frames, 3);
        assert!(body.is_end_stream());
    }
}
