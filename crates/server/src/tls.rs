//! rustls needs a process-wide crypto provider before any client is built (reqwest panics
//! otherwise); confab uses ring, which builds without cmake or a C toolchain beyond cc.

/// Installs ring as the default provider once; later calls do nothing.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
