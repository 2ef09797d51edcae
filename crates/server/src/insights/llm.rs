//! The optional analyzer: one OpenAI-compatible chat-completions call per conversation (a local
//! model server is the usual target). The prompt and the validation of the reply are core
//! rules (`confab_core::analysis::llm`); this file only does the HTTP.

use std::time::Duration;

use confab_core::Message;
use confab_core::analysis::{Analysis, llm};
use serde_json::{Value, json};

/// Where and how to call the model.
#[derive(Clone)]
pub struct LlmConfig {
    /// Base URL up to the API version, e.g. `http://127.0.0.1:11434/v1`; `/chat/completions`
    /// is appended.
    pub base_url: String,
    /// Model name sent in the request and recorded as `llm:<model>`.
    pub model: String,
    /// Bearer key, when the server wants one.
    pub api_key: Option<String>,
    /// Whole-call limit; past it the built-in result is stored.
    pub timeout: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A ready client.
pub struct LlmAnalyzer {
    client: reqwest::Client,
    url: String,
    cfg: LlmConfig,
}

impl LlmAnalyzer {
    /// Builds the client. reqwest is compiled without a default TLS provider (the default one
    /// needs a C toolchain), so the ring provider is installed first; installing it twice is
    /// harmless.
    pub fn new(cfg: LlmConfig) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let url = format!("{}/chat/completions", cfg.base_url.trim_end_matches('/'));
        Ok(LlmAnalyzer { client, url, cfg })
    }

    /// `llm:<model>`.
    pub fn name(&self) -> String {
        format!("llm:{}", self.cfg.model)
    }

    /// Asks the model; `Err` says why its answer cannot be used.
    pub async fn analyze(&self, messages: &[Message]) -> Result<Analysis, String> {
        let body = json!({
            "model": self.cfg.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": llm::SYSTEM_PROMPT},
                {"role": "user", "content": llm::transcript(messages)},
            ],
        });
        let mut req = self.client.post(&self.url).json(&body);
        if let Some(k) = &self.cfg.api_key {
            req = req.bearer_auth(k);
        }
        let res = req.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {:?}", self.cfg.timeout)
            } else {
                format!("request failed: {e}")
            }
        })?;
        let status = res.status();
        if !status.is_success() {
            return Err(format!("the model server answered {status}"));
        }
        let v: Value = res
            .json()
            .await
            .map_err(|e| format!("the model server's answer is not JSON: {e}"))?;
        let content = v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or("the answer has no choices[0].message.content")?;
        llm::parse_reply(content)
    }
}
