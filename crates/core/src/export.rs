//! Export formats, rendered incrementally: the store reads conversations and their messages
//! in order and the renderer appends each to the chunk of bytes being filled, so an export of
//! any size is written with memory for one chunk.
//!
//! - `ndjson`: one conversation per line, `{…conversation fields…, "messages": […]}`; the format
//!   `import` reads back (export → import → export is byte-identical).
//! - `json`: the same objects in one array.
//! - `csv`: one row per conversation; seed 000's columns first (ID, Title, User ID, Messages,
//!   Created, Updated), then Status, Agent, Source, Sentiment. RFC 4180 (CRLF, quoted as needed).
//! - `csv` with rows=messages: one row per message.
//! - `markdown`: a readable transcript per conversation.

use serde::{Deserialize, Serialize};

use crate::model::{Conversation, Message, Role, Sentiment};
use crate::timefmt::rfc3339;

/// What an export produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One conversation (with messages) per line.
    Ndjson,
    /// One JSON array.
    Json,
    /// One CSV row per conversation.
    Csv,
    /// One CSV row per message.
    CsvMessages,
    /// Markdown transcripts.
    Markdown,
}

impl ExportFormat {
    /// Whether the rows carry messages (the conversation CSV needs none).
    pub fn needs_messages(self) -> bool {
        self != ExportFormat::Csv
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "application/x-ndjson",
            ExportFormat::Json => "application/json",
            ExportFormat::Csv | ExportFormat::CsvMessages => "text/csv; charset=utf-8",
            ExportFormat::Markdown => "text/markdown; charset=utf-8",
        }
    }

    /// A file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Json => "json",
            ExportFormat::Csv | ExportFormat::CsvMessages => "csv",
            ExportFormat::Markdown => "md",
        }
    }
}

/// Conversation CSV header: seed 000's columns, then confab's.
pub const CONVERSATION_CSV_HEADER: [&str; 10] = [
    "ID",
    "Title",
    "User ID",
    "Messages",
    "Created",
    "Updated",
    "Status",
    "Agent",
    "Source",
    "Sentiment",
];

/// Message CSV header.
pub const MESSAGE_CSV_HEADER: [&str; 12] = [
    "Conversation ID",
    "Message ID",
    "Seq",
    "Role",
    "Content",
    "Created",
    "Model",
    "Tokens",
    "Prompt Tokens",
    "Completion Tokens",
    "Latency (ms)",
    "Source",
];

/// One line of the NDJSON format, for reading it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// The conversation's fields.
    #[serde(flatten)]
    pub conversation: Conversation,
    /// Its messages in seq order.
    #[serde(default)]
    pub messages: Vec<Message>,
}

impl ExportRecord {
    /// Checks what the store relies on: messages belong to the conversation, seqs are dense
    /// from 0, and the count matches. Field paths are relative to the record.
    pub fn validate(&self) -> Result<(), crate::ValidationError> {
        let mut e = crate::ValidationError::default();
        let c = &self.conversation;
        if c.message_count != self.messages.len() as i64 {
            e.push(
                "message_count",
                format!(
                    "is {} but there are {} messages",
                    c.message_count,
                    self.messages.len()
                ),
            );
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.conversation_id != c.id {
                e.push(
                    format!("messages[{i}].conversation_id"),
                    "is not the conversation's id",
                );
            }
            if m.seq != i as i64 {
                e.push(
                    format!("messages[{i}].seq"),
                    format!("must be {i} (seqs are dense from 0, in order)"),
                );
            }
        }
        e.into_result(())
    }
}

/// Turns a stream of conversations and messages into bytes of one format.
pub struct ExportRenderer {
    format: ExportFormat,
    conversations: u64,
    /// A JSON conversation object is open and this many messages were written into it.
    open: Option<u64>,
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn role_label(r: Role) -> &'static str {
    match r {
        Role::User => "User",
        Role::Assistant => "Assistant",
        Role::System => "System",
        Role::Tool => "Tool",
    }
}

impl ExportRenderer {
    /// A renderer for `format`.
    pub fn new(format: ExportFormat) -> Self {
        ExportRenderer {
            format,
            conversations: 0,
            open: None,
        }
    }

    /// Appends one CSV row to `out`.
    fn csv_row<I, T>(out: &mut Vec<u8>, row: I)
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        // A writer per row keeps nothing buffered between rows; writing into a Vec cannot fail.
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        w.write_record(row).expect("CSV into memory");
        w.flush().expect("CSV into memory");
    }

    /// Appends to `out` what comes before the first conversation.
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        match self.format {
            ExportFormat::Json => out.push(b'['),
            ExportFormat::Csv => Self::csv_row(out, CONVERSATION_CSV_HEADER),
            ExportFormat::CsvMessages => Self::csv_row(out, MESSAGE_CSV_HEADER),
            ExportFormat::Ndjson | ExportFormat::Markdown => {}
        }
    }

    fn close_json(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            out.extend_from_slice(b"]}");
            if self.format == ExportFormat::Ndjson {
                out.push(b'\n');
            }
        }
    }

    /// Appends to `out` the start of a conversation (its messages follow); `sentiment` comes
    /// from its insights.
    pub fn conversation(
        &mut self,
        out: &mut Vec<u8>,
        c: &Conversation,
        sentiment: Option<Sentiment>,
    ) {
        self.close_json(out);
        self.conversations += 1;
        match self.format {
            ExportFormat::Ndjson | ExportFormat::Json => {
                if self.format == ExportFormat::Json {
                    out.extend_from_slice(if self.conversations == 1 {
                        b"\n"
                    } else {
                        b",\n"
                    });
                }
                crate::json_out::write(out, c).expect("a conversation serializes");
                // `{…}` → `{…,"messages":[`: the messages are streamed into the open array.
                out.pop();
                out.extend_from_slice(b",\"messages\":[");
                self.open = Some(0);
            }
            ExportFormat::Csv => {
                let row = [
                    c.id.to_string(),
                    opt(&c.title).to_owned(),
                    opt(&c.user_id).to_owned(),
                    c.message_count.to_string(),
                    rfc3339(c.created_at),
                    rfc3339(c.updated_at),
                    c.status.as_str().to_owned(),
                    opt(&c.agent_id).to_owned(),
                    opt(&c.source).to_owned(),
                    sentiment.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                ];
                Self::csv_row(out, row);
            }
            ExportFormat::CsvMessages => {}
            ExportFormat::Markdown => {
                if self.conversations > 1 {
                    out.extend_from_slice(b"\n---\n\n");
                }
                let title = c.title.as_deref().unwrap_or("Untitled conversation");
                let mut s = format!("# {}\n\n- ID: `{}`\n", title.replace('\n', " "), c.id);
                for (k, v) in [
                    ("User", &c.user_id),
                    ("Agent", &c.agent_id),
                    ("Source", &c.source),
                ] {
                    if let Some(v) = v {
                        s.push_str(&format!("- {k}: {v}\n"));
                    }
                }
                s.push_str(&format!(
                    "- Status: {}\n- Created: {}\n- Messages: {}\n",
                    c.status,
                    rfc3339(c.created_at),
                    c.message_count
                ));
                out.extend_from_slice(s.as_bytes());
            }
        }
    }

    /// Appends to `out` one message of the current conversation.
    pub fn message(&mut self, out: &mut Vec<u8>, m: &Message) {
        match self.format {
            ExportFormat::Ndjson | ExportFormat::Json => {
                if let Some(n) = self.open.as_mut() {
                    if *n > 0 {
                        out.push(b',');
                    }
                    *n += 1;
                }
                crate::json_out::write(out, m).expect("a message serializes");
            }
            ExportFormat::CsvMessages => {
                let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
                let row = [
                    m.conversation_id.to_string(),
                    m.id.to_string(),
                    m.seq.to_string(),
                    m.role.as_str().to_owned(),
                    m.content.clone(),
                    rfc3339(m.created_at),
                    opt(&m.model).to_owned(),
                    num(m.tokens),
                    num(m.prompt_tokens),
                    num(m.completion_tokens),
                    num(m.latency_ms),
                    opt(&m.source).to_owned(),
                ];
                Self::csv_row(out, row);
            }
            ExportFormat::Markdown => out.extend_from_slice(
                format!(
                    "\n**{}** · {}\n\n{}\n",
                    role_label(m.role),
                    rfc3339(m.created_at),
                    m.content
                )
                .as_bytes(),
            ),
            ExportFormat::Csv => {}
        }
    }

    /// Appends to `out` what comes after the last conversation.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.close_json(out);
        if self.format == ExportFormat::Json {
            out.extend_from_slice(if self.conversations == 0 {
                b"]\n"
            } else {
                b"\n]\n"
            });
        }
    }
}

/// Renders a whole (small) export in memory; for tests and single conversations.
pub fn render_all(format: ExportFormat, items: &[(Conversation, Vec<Message>)]) -> Vec<u8> {
    let mut r = ExportRenderer::new(format);
    let mut out = Vec::new();
    r.begin(&mut out);
    for (c, msgs) in items {
        r.conversation(&mut out, c, None);
        for m in msgs {
            r.message(&mut out, m);
        }
    }
    r.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use crate::timefmt::parse;
    use uuid::Uuid;

    fn sample() -> (Conversation, Vec<Message>) {
        let t = parse("2025-01-15T10:30:00Z").unwrap();
        let id = Uuid::from_u128(1);
        let c = Conversation {
            id,
            agent_id: Some("bot".into()),
            user_id: Some("u1".into()),
            title: Some("Hello, \"world\"\nagain".into()),
            status: Status::Completed,
            source: Some("web".into()),
            model: None,
            company_name: None,
            added_to_memory: false,
            metadata: Default::default(),
            message_count: 1,
            analyze: true,
            created_at: t,
            updated_at: t,
            completed_at: None,
        };
        let m = Message {
            id: Uuid::from_u128(2),
            conversation_id: id,
            seq: 0,
            role: Role::User,
            content: "a, b".into(),
            created_at: t,
            model: None,
            tokens: None,
            prompt_tokens: None,
            completion_tokens: None,
            latency_ms: None,
            tool_calls: None,
            metadata: None,
            source: Some("web".into()),
            is_trigger: false,
        };
        (c, vec![m])
    }

    #[test]
    fn ndjson_reads_back() {
        let item = sample();
        let out = render_all(ExportFormat::Ndjson, std::slice::from_ref(&item));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        let back: ExportRecord = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back.conversation, item.0);
        assert_eq!(back.messages, item.1);
    }

    #[test]
    fn csv_quotes_per_rfc4180() {
        let out = String::from_utf8(render_all(ExportFormat::Csv, &[sample()])).unwrap();
        assert_eq!(
            out,
            "ID,Title,User ID,Messages,Created,Updated,Status,Agent,Source,Sentiment\r\n\
             00000000-0000-0000-0000-000000000001,\"Hello, \"\"world\"\"\nagain\",u1,1,\
             2025-01-15T10:30:00.000000Z,2025-01-15T10:30:00.000000Z,completed,bot,web,\r\n"
        );
    }

    #[test]
    fn json_is_one_array() {
        let out = render_all(ExportFormat::Json, &[sample(), sample()]);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(render_all(ExportFormat::Json, &[]), b"[]\n");
    }
}
