//! The data commands against a running server (`--server URL --token T`) instead of the local
//! database: the same answers, through the native HTTP API. Plain `http://` only (no TLS stack
//! is linked); put a TLS-terminating proxy's local address here, or run the command locally.

use std::io::Write;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// A server and a token.
#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    /// Base URL of a running confab server (http://HOST:PORT); the local database is not used.
    #[arg(long, env = "CONFAB_SERVER", value_name = "URL", requires = "token")]
    pub server: Option<String>,
    /// API token (key_id.key_secret) for --server.
    #[arg(
        long,
        env = "CONFAB_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// A client for one server.
pub struct Remote {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Remote {
    /// `Some` when `--server` was given.
    pub fn from_args(a: &RemoteArgs) -> Option<Remote> {
        Some(Remote {
            base: a.server.as_ref()?.trim_end_matches('/').to_owned(),
            token: a.token.clone().unwrap_or_default(),
            client: reqwest::Client::new(),
        })
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<reqwest::Response> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}{path}", self.base),
            query.iter().map(|(k, v)| (*k, v.as_str())),
        )
        .with_context(|| format!("--server {} is not a URL", self.base))?;
        let r = self
            .client
            .get(url.clone())
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !r.status().is_success() {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            bail!("GET {url}: {status}: {body}");
        }
        Ok(r)
    }

    /// Prints each hit as a JSON line.
    pub async fn search(&self, q: &str, limit: i64, recent: bool) -> Result<()> {
        let mut query = vec![("q", q.to_owned()), ("limit", limit.to_string())];
        if recent {
            query.push(("sort", "recent".to_owned()));
        }
        let v: serde_json::Value = self.get("/v1/search", &query).await?.json().await?;
        let mut out = std::io::stdout().lock();
        for h in v["data"].as_array().into_iter().flatten() {
            writeln!(out, "{h}")?;
        }
        Ok(())
    }

    /// Prints the summary.
    pub async fn stats(&self) -> Result<()> {
        let v: serde_json::Value = self.get("/v1/analytics/summary", &[]).await?.json().await?;
        println!("{v}");
        Ok(())
    }

    /// Streams the export to `out`, counting bytes on stderr.
    pub async fn export(&self, query: &[(&str, String)], out: &mut dyn Write) -> Result<()> {
        let mut r = self.get("/v1/export", query).await?;
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {bytes} received ({bytes_per_sec})")
                .expect("static template"),
        );
        while let Some(chunk) = r.chunk().await.context("reading the export")? {
            out.write_all(&chunk)?;
            pb.inc(chunk.len() as u64);
        }
        out.flush()?;
        pb.finish_and_clear();
        eprintln!("received {} bytes", pb.position());
        Ok(())
    }
}
