//! `org.apache.kafka.log4jappender.KafkaLog4jAppender` as a log4rs appender
//! (docs/logging.md "Kafka appender"): each record is rendered by the
//! appender's layout (without its trailing newline) and handed to a delivery
//! queue of its own (`run/spool/kafka-appender-<NAME>/` when the broker
//! cannot take it), so a record never waits on the network and a broker
//! outage loses nothing. A record whose sender waits for it (WRITTEN,
//! FSYNC) goes to that spool first, its write-ahead log, as the network
//! targets' do: a crash loses nothing that was answered. The key is the query's `serviceId` on the queries
//! logger, else none. Each appender registers its delivery in the
//! configuration's `AppenderRegistry`, which drains it at stop. Also: the
//! mapping of Apache Kafka's appender properties to librdkafka's.

use std::path::Path;
use std::sync::Arc;

use log4rs::append::Append;
use log4rs::encode::Encode;
use log4rs::encode::writer::simple::SimpleWriter;

use super::record::KafkaRecord;
use crate::appender::AppenderRegistry;
use crate::delivery::Delivery;
use crate::record_context::RecordContext;

/// A log4rs appender producing to one Kafka topic.
pub struct KafkaAppender {
    topic: String,
    encoder: Box<dyn Encode>,
    delivery: Arc<Delivery<KafkaRecord>>,
}

impl std::fmt::Debug for KafkaAppender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAppender").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl KafkaAppender {
    /// Creates the producer (checking every property) and starts delivery,
    /// spooling under `spool_dir`, registered in `registry`.
    ///
    /// # Errors
    /// A bad broker list or property, or a spool that cannot be opened.
    pub fn new(
        name: &str,
        topic: &str,
        properties: &[(String, String)],
        encoder: Box<dyn Encode>,
        spool_dir: &Path,
        registry: &AppenderRegistry,
    ) -> Result<KafkaAppender, String> {
        let delivery_name = format!("kafka-appender-{name}");
        let events = Some(registry.events());
        let delivery = super::record::start_delivery(&delivery_name, "KAFKA_APPENDER", properties, spool_dir, events)
            .map_err(|e| format!("appender {name}: {e}"))?;
        let delivery = Arc::new(delivery);
        registry.add_delivery(delivery.clone());
        Ok(KafkaAppender { topic: topic.to_owned(), encoder, delivery })
    }
}

impl Append for KafkaAppender {
    fn append(&self, record: &log::Record<'_>) -> anyhow::Result<()> {
        let mut out = SimpleWriter(Vec::with_capacity(512));
        self.encoder.encode(&mut out, record)?;
        let mut value = String::from_utf8_lossy(&out.0).into_owned();
        while value.ends_with(['\n', '\r']) {
            value.pop();
        }
        let key = if record.target().ends_with("::queries") || record.target().ends_with(".queries") {
            super::target::service_id(&record.args().to_string())
        } else {
            None
        };
        let record = KafkaRecord { topic: self.topic.clone(), key, value, headers: Vec::new() };
        // A record whose sender waits (WRITTEN, FSYNC) is journaled in the
        // spool before its ticket settles, like the network targets': a
        // crash then loses nothing that was answered.
        match RecordContext::current_ticket() {
            Some(ticket) => self.delivery.send_ticketed(record, &ticket),
            None => self.delivery.send(record),
        }
        Ok(())
    }

    fn flush(&self) {}
}

/// A bad appender property: its name and what is wrong.
pub type PropertyError = (String, String);

/// Apache Kafka's appender properties → librdkafka properties.
///
/// # Errors
/// Every property that is unknown or has a bad value, as (property, message).
pub fn librdkafka_properties(props: &[(String, String)]) -> Result<Vec<(String, String)>, Vec<PropertyError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in props {
        let v = value.trim();
        let lower = name.to_ascii_lowercase();
        let mapped = match lower.as_str() {
            "brokerlist" => Some("bootstrap.servers"),
            "requirednumacks" => Some("acks"),
            "compressiontype" => Some("compression.type"),
            "retries" => Some("retries"),
            "securityprotocol" => Some("security.protocol"),
            "saslmechanism" => Some("sasl.mechanism"),
            _ => None,
        };
        if let Some(m) = mapped {
            let v = if m == "security.protocol" { v.to_ascii_lowercase() } else { v.to_owned() };
            out.push((m.to_owned(), v));
        } else if lower == "sasljaasconfig" {
            match jaas_credentials(v) {
                Some((user, password)) => {
                    out.push(("sasl.username".into(), user));
                    out.push(("sasl.password".into(), password));
                }
                None => {
                    errors.push((name.clone(), "SaslJaasConfig must hold username=\"...\" and password=\"...\"".into()))
                }
            }
        } else if let Some(p) = name.strip_prefix("ProducerConfig.").or_else(|| name.strip_prefix("producerconfig.")) {
            out.push((p.to_owned(), v.to_owned()));
        } else if lower == "syncsend" {
            // Delivery is always asynchronous to requests and at least once
            // through the spool; the value is only checked.
            if !matches!(v.to_ascii_lowercase().as_str(), "true" | "false") {
                errors.push((name.clone(), format!("must be true or false, not {v:?}")));
            }
        } else if lower.starts_with("ssl") {
            // Java's keystores (JKS) mean nothing to librdkafka: PEM files do.
            errors.push((
                name.clone(),
                format!(
                    "{name} (a Java keystore) is not read here: give PEM files as ProducerConfig.ssl.ca.location, ProducerConfig.ssl.certificate.location and ProducerConfig.ssl.key.location"
                ),
            ));
        } else {
            errors.push((name.clone(), format!("unknown property {name} of KafkaLog4jAppender")));
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// `username="u" password="p"` from a JAAS line.
fn jaas_credentials(jaas: &str) -> Option<(String, String)> {
    let field = |name: &str| {
        let start = jaas.find(&format!("{name}=\""))? + name.len() + 2;
        let end = jaas[start..].find('"')? + start;
        Some(jaas[start..end].to_owned())
    };
    Some((field("username")?, field("password")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn apache_properties_map_to_librdkafka() {
        let got = librdkafka_properties(&props(&[
            ("BrokerList", "a:9092"),
            ("RequiredNumAcks", "-1"),
            ("CompressionType", "gzip"),
            ("SecurityProtocol", "SASL_PLAINTEXT"),
            ("SaslMechanism", "PLAIN"),
            (
                "SaslJaasConfig",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";"#,
            ),
            ("ProducerConfig.linger.ms", "20"),
            ("SyncSend", "true"),
        ]))
        .expect("valid");
        for want in [
            ("bootstrap.servers", "a:9092"),
            ("acks", "-1"),
            ("compression.type", "gzip"),
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
            ("linger.ms", "20"),
        ] {
            assert!(got.contains(&(want.0.to_owned(), want.1.to_owned())), "{want:?} missing");
        }
        let errors =
            librdkafka_properties(&props(&[("Colour", "red"), ("SyncSend", "maybe"), ("SaslJaasConfig", "x")]))
                .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        let tls = librdkafka_properties(&props(&[
            ("SecurityProtocol", "SSL"),
            ("ProducerConfig.ssl.ca.location", "/etc/ca.pem"),
            ("SslTruststoreLocation", "/etc/trust.jks"),
        ]))
        .unwrap_err();
        assert!(tls[0].1.contains("ProducerConfig.ssl.ca.location"), "{tls:?}");
    }
}
