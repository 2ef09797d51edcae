//! Layered settings: flags and `CONFAB_*` variables (clap), then a TOML file, then defaults.
//! Loading has no side effects: nothing is written, no variable is set.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use confab_server::ServerConfig;
use confab_store::StoreOptions;
use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The optional TOML file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    database_url: Option<String>,
    addr: Option<SocketAddr>,
    max_body_bytes: Option<usize>,
    request_timeout_secs: Option<u64>,
    key_pepper: Option<String>,
    log_format: Option<LogFormat>,
    pool_size: Option<u32>,
}

impl FileConfig {
    /// Reads `path` if given.
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Resolved settings.
pub struct Config {
    pub database_url: String,
    pub log_format: LogFormat,
    pub key_pepper: String,
    pub addr: SocketAddr,
    pub server: ServerConfig,
    /// Database connections (`StoreOptions::read_connections`).
    pub pool_size: u32,
    /// `confab serve`: the store does its background upkeep (the SQLite writer's idle merge of
    /// the search index). One-shot commands leave it to the server, so an export or a key
    /// listing never starts rewriting the index.
    pub serving: bool,
    /// `StoreOptions::long_searches`.
    pub long_searches: Option<usize>,
}

impl Config {
    /// Settings every command needs.
    pub fn resolve(
        database: Option<String>,
        log_format: Option<LogFormat>,
        file: &FileConfig,
    ) -> Result<Config> {
        let key_pepper = std::env::var("CONFAB_KEY_PEPPER")
            .ok()
            .or_else(|| file.key_pepper.clone())
            .unwrap_or_else(|| confab_store::keys::DEFAULT_PEPPER.to_owned());
        Ok(Config {
            database_url: database
                .or_else(|| file.database_url.clone())
                .unwrap_or_else(|| "sqlite://confab.db".into()),
            log_format: log_format.or(file.log_format).unwrap_or_default(),
            key_pepper,
            addr: "127.0.0.1:8080".parse().expect("static address"),
            server: ServerConfig::default(),
            pool_size: StoreOptions::default().read_connections,
            serving: false,
            long_searches: None,
        })
    }

    /// The database pool size from the flag (or `CONFAB_POOL_SIZE`), else the file.
    pub fn apply_pool_size(&mut self, flag: Option<u32>, file: &FileConfig) -> Result<()> {
        if let Some(n) = flag.or(file.pool_size) {
            anyhow::ensure!(
                (2..=1000).contains(&n),
                "pool_size must be between 2 and 1000, got {n}"
            );
            self.pool_size = n;
        }
        Ok(())
    }

    /// Settings only `serve` needs.
    pub fn apply_serve(
        &mut self,
        addr: Option<SocketAddr>,
        max_body: Option<usize>,
        timeout_secs: Option<u64>,
        file: &FileConfig,
    ) -> Result<()> {
        if let Some(a) = addr.or(file.addr) {
            self.addr = a;
        }
        if let Some(b) = max_body.or(file.max_body_bytes) {
            anyhow::ensure!(b >= 1024, "max_body_bytes must be at least 1024");
            self.server.max_body_bytes = b;
        }
        if let Some(t) = timeout_secs.or(file.request_timeout_secs) {
            anyhow::ensure!(t >= 1, "request_timeout_secs must be at least 1");
            self.server.request_timeout = Duration::from_secs(t);
        }
        Ok(())
    }

    /// Store settings.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            pepper: self.key_pepper.as_bytes().to_vec(),
            read_connections: self.pool_size,
            search_merge_idle: if self.serving {
                StoreOptions::default().search_merge_idle
            } else {
                None
            },
            // A read past the request timeout is stopped: its answer could not be sent.
            read_timeout: self.serving.then_some(self.server.request_timeout),
            long_searches: self.long_searches,
            ..StoreOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_server_merges_the_search_index() {
        let mut cfg = Config::resolve(None, None, &FileConfig::default()).unwrap();
        assert_eq!(cfg.store_options().search_merge_idle, None);
        cfg.serving = true;
        assert_eq!(
            cfg.store_options().search_merge_idle,
            StoreOptions::default().search_merge_idle
        );
        assert!(cfg.store_options().search_merge_idle.is_some());
    }

    #[test]
    fn only_the_server_stops_reads_at_its_request_timeout() {
        let mut cfg = Config::resolve(None, None, &FileConfig::default()).unwrap();
        assert_eq!(cfg.store_options().read_timeout, None);
        cfg.serving = true;
        cfg.apply_serve(None, None, Some(7), &FileConfig::default())
            .unwrap();
        assert_eq!(
            cfg.store_options().read_timeout,
            Some(Duration::from_secs(7))
        );
    }
}
