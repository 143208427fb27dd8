//! The HTTP client under the SDK: hyper's, TLS by rustls on ring, and, on
//! Linux, two socket options the SDK's own client cannot set:
//! - `TCP_USER_TIMEOUT` at the stall timeout. Hyper closes a connection by
//!   flushing what it holds first: a request cut while the server had
//!   stopped reading its body (a zero window) kept its connection, and the
//!   part it was sending, for the life of the process. Now the kernel
//!   aborts a connection whose bytes have sat unacknowledged (or unsent,
//!   under a zero window) that long, and that flush ends.
//! - `TCP_NOTSENT_LOWAT`, and a handle on what each socket still has to
//!   send (`socket`), so a slow uplink's body is not taken for silence.
//!
//! Otherwise it does what the SDK's client does: the connect timeout,
//! pooled connections, the SDK's handle to poison one after a failure, and
//! its error classes (which decide the retries).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{
    capture_connection, CaptureConnection, HttpConnector as Tcp, HttpInfo,
};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::socket::{Connection, Sockets};

/// The CA certificates of the system, loaded once per process.
static ROOTS: LazyLock<Vec<rustls::pki_types::CertificateDer<'static>>> =
    LazyLock::new(|| rustls_native_certs::load_native_certs().certs);

/// Whether the system has CA certificates to verify HTTPS with.
pub(super) fn has_ca_roots() -> bool {
    !ROOTS.is_empty()
}

/// The client; a connector (with its connection pool) per distinct
/// connect and stall timeouts, as the SDK asks for one per request.
pub(super) fn client() -> SharedHttpClient {
    SharedHttpClient::new(Pools::default())
}

/// A pool's connect and stall timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug, Default)]
struct Pools(Mutex<HashMap<Timeouts, SharedHttpConnector>>);

impl HttpClient for Pools {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut pools = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(Pool::new(key.0, key.1)))
            .clone()
    }
}

#[derive(Debug)]
struct Pool(Client<HttpsConnector<Sockets>, SdkBody>);

impl Pool {
    fn new(connect: Option<Duration>, stall: Option<Duration>) -> Self {
        let mut tcp = Tcp::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect);
        #[cfg(target_os = "linux")]
        tcp.set_tcp_user_timeout(stall);
        #[cfg(not(target_os = "linux"))]
        let _ = stall;
        let https = HttpsConnector::from((Sockets(tcp), tls_config()));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            // What hyper holds of a body beyond the kernel: drained after
            // the body's last slice is taken, before the answer can come,
            // so it too is silence to the stall timer on a slow uplink.
            .http1_max_buf_size(BUFFERED)
            .build(https);
        Pool(client)
    }
}

/// What hyper buffers of a connection's bytes at most (its default: about
/// 400 KB), each way.
const BUFFERED: usize = 128 * 1024;

/// rustls on ring with the system's CA certificates and the cipher suites
/// the SDK allows, HTTP/1.1 only (S3 speaks nothing else).
fn tls_config() -> Arc<rustls::ClientConfig> {
    let base = rustls::crypto::ring::default_provider();
    let suites = [
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: base
            .cipher_suites
            .iter()
            .filter(|s| suites.contains(&s.suite()))
            .cloned()
            .collect(),
        ..base
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(ROOTS.iter().cloned());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

impl HttpConnector for Pool {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let captured = capture_connection(&mut request);
        if let Some(connection) = request.extensions().get::<Connection>() {
            connection.attach(&captured);
        }
        if let Some(capture) = request.extensions().get::<CaptureSmithyConnection>() {
            capture.set_connection_retriever(move || metadata(&captured));
        }
        let answer = self.0.request(request);
        HttpConnectorFuture::new(async move {
            match answer.await {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e.into())),
            }
        })
    }
}

/// What the SDK knows of a request's connection, and how it poisons it
/// (never reused) after a failure.
fn metadata(captured: &CaptureConnection) -> Option<ConnectionMetadata> {
    let connected = captured.connection_metadata();
    let connected = connected.as_ref()?;
    let mut extensions = http::Extensions::new();
    connected.get_extras(&mut extensions);
    let info = extensions.get::<HttpInfo>();
    let captured = captured.clone();
    let mut builder = ConnectionMetadata::builder()
        .proxied(connected.is_proxied())
        .poison_fn(move || {
            if let Some(connected) = captured.connection_metadata().as_ref() {
                connected.poison();
            }
        });
    builder
        .set_local_addr(info.map(HttpInfo::local_addr))
        .set_remote_addr(info.map(HttpInfo::remote_addr));
    Some(builder.build())
}

/// A failed request's class, as the SDK's client gives it: a timeout or an
/// I/O failure is retried; a request that could not be made is the
/// caller's; an answer cut short is transient.
fn classify(err: BoxError) -> ConnectorError {
    let io = |e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut;
    if find::<std::io::Error>(err.as_ref()).is_some_and(io) {
        return ConnectorError::timeout(err);
    }
    if let Some(e) = find::<hyper::Error>(err.as_ref()) {
        if e.is_timeout() {
            return ConnectorError::timeout(err);
        }
        if e.is_user() {
            return ConnectorError::user(err);
        }
        if e.is_closed() || e.is_canceled() || find::<std::io::Error>(e).is_some() {
            return ConnectorError::io(err);
        }
        if e.is_incomplete_message() {
            return ConnectorError::other(err, Some(ErrorKind::TransientError));
        }
        return ConnectorError::other(err, None);
    }
    match find::<hyper_util::client::legacy::Error>(err.as_ref()) {
        Some(e) if e.is_connect() || find::<std::io::Error>(e).is_some() => ConnectorError::io(err),
        _ => ConnectorError::other(err, None),
    }
}

fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    std::iter::successors(Some(err), |&e| e.source()).find_map(|e| e.downcast_ref::<E>())
}
