//! `com.dataiku.dip.logging.JSONAuditLayout` (alias `JsonLayout`): one JSON
//! object per line, `{"severity", "logger", "message", "mdc", "timestamp"}`.
//! A message that is itself JSON (an audit record) is embedded as JSON, not
//! as a string, so consumers parse one level only. The timestamp is ISO-8601
//! with the local offset.

use log4rs::encode::{Encode, Write};
use serde_json::value::RawValue;

use super::{dotted, level_name};
use crate::record_context::RecordContext;

/// The JSON audit layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonAuditLayout;

#[derive(serde::Serialize)]
struct Line<'a> {
    severity: &'static str,
    logger: &'a str,
    message: Message<'a>,
    mdc: serde_json::Map<String, serde_json::Value>,
    timestamp: String,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum Message<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

impl JsonAuditLayout {
    /// Renders one line (with its newline).
    pub fn render(&self, record: &log::Record<'_>, context: &RecordContext) -> String {
        let text = record.args().to_string();
        let trimmed = text.trim();
        let embedded = if trimmed.starts_with('{') || trimmed.starts_with('[') {
            serde_json::from_str::<&RawValue>(trimmed).ok()
        } else {
            None
        };
        let line = Line {
            severity: level_name(record.level()),
            logger: &dotted(record.target()),
            message: embedded.map_or(Message::Text(&text), Message::Json),
            mdc: serde_json::Map::new(),
            timestamp: context.local_time().format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        };
        let mut out = serde_json::to_string(&line).unwrap_or_else(|e| format!("{{\"layoutError\":\"{e}\"}}"));
        out.push('\n');
        out
    }
}

impl Encode for JsonAuditLayout {
    fn encode(&self, w: &mut dyn Write, record: &log::Record<'_>) -> anyhow::Result<()> {
        let line = RecordContext::with_current(|context| self.render(record, context));
        w.write_all(line.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> serde_json::Value {
        let context = RecordContext::fixed("t", "2026-11-22T10:15:02.123Z");
        let args = format_args!("{message}");
        let record =
            log::Record::builder().target("dku::apinode::audit::queries").level(log::Level::Info).args(args).build();
        let text = JsonAuditLayout.render(&record, &context);
        assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'));
        serde_json::from_str(&text).expect("one JSON object")
    }

    #[test]
    fn embeds_json_messages_and_quotes_text() {
        let v = line(r#"{"msgType": "prediction-query", "n": 1}"#);
        assert_eq!(v["message"]["msgType"], "prediction-query");
        assert_eq!(v["logger"], "dku.apinode.audit.queries");
        assert_eq!(v["severity"], "INFO");
        assert_eq!(v["mdc"], serde_json::json!({}));
        let ts = v["timestamp"].as_str().expect("timestamp");
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert_eq!(line("plain \"text\"")["message"], "plain \"text\"");
        assert_eq!(line("{not json")["message"], "{not json");
    }
}
