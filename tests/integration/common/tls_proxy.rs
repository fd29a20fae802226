//! A TLS terminator the tests run in front of a plaintext server (the test
//! broker, tansu 0.6, cannot serve TLS itself: its `--cert` and `--key`
//! options refuse each other): it accepts TLS with a certificate (and,
//! optionally, requires a client certificate), and relays the bytes to
//! `127.0.0.1:<target>`. It runs on a thread with its own runtime until
//! dropped.

use std::path::Path;
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

use super::dss::free_port;

/// A running terminator.
pub struct TlsProxy {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsProxy {
    /// Listens on `port` (TLS with `cert`/`key`, client certificates signed
    /// by `client_ca` when given) and relays to `target`.
    pub fn start(port: u16, target: u16, cert: &Path, key: &Path, client_ca: Option<&Path>) -> TlsProxy {
        let files = serve::TlsFiles {
            cert_file: cert.to_path_buf(),
            key_file: key.to_path_buf(),
            client_ca_file: client_ca.map(Path::to_path_buf),
        };
        let mut config = (*files.server_config().expect("TLS settings")).clone();
        config.alpn_protocols.clear();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
            rt.block_on(async move {
                let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
                let _ = ready.send(());
                let accept = async {
                    loop {
                        let Ok((inbound, _)) = listener.accept().await else { continue };
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let Ok(mut tls) = acceptor.accept(inbound).await else { return };
                            let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await else { return };
                            let _ = copy_bidirectional(&mut tls, &mut outbound).await;
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        is_ready.recv().expect("the proxy listens");
        TlsProxy { stop: Some(stop), thread: Some(thread) }
    }

    /// A free port to start a proxy on.
    pub fn free_port() -> u16 {
        free_port()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
