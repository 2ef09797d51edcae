//! Converra's field names in error details. The core names fields in its own snake_case
//! (`tool_calls`, `agent_id`); a Converra client sent `toolCalls` and `promptId`, so the details
//! must name those. This is the one place the two vocabularies meet.

use confab_core::ValidationError;
use confab_core::transcript::TranscriptError;

use crate::error::ApiError;

/// Core message field → Converra message field.
const MESSAGE_FIELDS: &[(&str, &str)] = &[
    ("tool_calls", "toolCalls"),
    ("latency_ms", "latencyMs"),
    ("prompt_tokens", "usage.promptTokens"),
    ("completion_tokens", "usage.completionTokens"),
];

/// Renames one path: the last segment of a message field, or a whole top-level field from
/// `top` (which differs per route: `agent_id` is whichever prompt field the client used).
fn rename(field: &str, top: &[(&str, &str)]) -> String {
    if let Some((_, to)) = top.iter().find(|(from, _)| *from == field) {
        return (*to).to_owned();
    }
    if let Some((head, last)) = field.rsplit_once('.')
        && let Some((_, to)) = MESSAGE_FIELDS.iter().find(|(from, _)| *from == last)
    {
        return format!("{head}.{to}");
    }
    field.to_owned()
}

/// A core validation error with Converra's field names.
pub fn wire_names(mut e: ValidationError, top: &[(&str, &str)]) -> ValidationError {
    for f in &mut e.errors {
        f.field = rename(&f.field, top);
    }
    e
}

/// 413 for a limit, 400 for anything malformed; details name the field either way.
pub fn transcript_error(e: TranscriptError) -> ApiError {
    match e {
        TranscriptError::TooLarge(v) => {
            let v = wire_names(v, &[]);
            let mut err = ApiError::too_large(format!("Payload too large: {v}"));
            for f in &v.errors {
                err = err.with_detail(&f.field, f.message.clone());
            }
            err
        }
        TranscriptError::Invalid(v) => wire_names(v, &[]).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_message_and_top_fields() {
        let top = [("agent_id", "systemPromptId"), ("model", "llmModel")];
        assert_eq!(
            rename("messages[2].tool_calls", &top),
            "messages[2].toolCalls"
        );
        assert_eq!(
            rename("content.messages[0].prompt_tokens", &top),
            "content.messages[0].usage.promptTokens"
        );
        assert_eq!(rename("agent_id", &top), "systemPromptId");
        assert_eq!(rename("model", &top), "llmModel");
        assert_eq!(rename("messages[0].model", &top), "messages[0].model");
    }
}
