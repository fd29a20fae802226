//! A real Kafka-compatible broker for the tests: `tansu` (installed by
//! `tools/setup-kafka`, whose path `tools/test` exports as `APINODE_TANSU`)
//! on 127.0.0.1 with a free port and sqlite storage in a temporary folder,
//! so that its topics and records survive a stop and a start. With
//! `KAFKA_BOOTSTRAP_SERVERS` set, that broker is used instead (it must create
//! topics on first use) and tests that stop the broker are skipped. Records are read back with an rdkafka
//! consumer assigned to every partition from the beginning.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Offset, TopicPartitionList};
use tempfile::TempDir;

use super::dss::free_port;

/// Makes every consumer's group id its own.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The tansu binary: `APINODE_TANSU`, else what `tools/setup-kafka` installs.
fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("APINODE_TANSU") {
        return p.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/setup-kafka");
    let out = Command::new(&script).output().expect("tools/setup-kafka runs");
    assert!(out.status.success(), "tools/setup-kafka failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().expect("the tansu path").trim().into()
}

/// A broker.
pub struct Broker {
    dir: TempDir,
    port: u16,
    /// The port advertised in metadata (a TLS terminator in front), if not `port`.
    advertised: Option<u16>,
    external: Option<String>,
    child: Option<Child>,
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub key: Option<String>,
    pub value: String,
    pub headers: Vec<(String, String)>,
}

impl Broker {
    /// Starts a broker (or uses `KAFKA_BOOTSTRAP_SERVERS`).
    pub fn start() -> Broker {
        let external = std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok().filter(|s| !s.is_empty());
        let mut b = Broker {
            dir: tempfile::tempdir().expect("tmp"),
            port: free_port(),
            advertised: None,
            external,
            child: None,
        };
        b.resume();
        b
    }

    /// Starts a broker of its own (never an external one) that tells clients
    /// to connect to `advertised` (a TLS terminator in front of it).
    pub fn start_behind(advertised: u16) -> Broker {
        let mut b = Broker {
            dir: tempfile::tempdir().expect("tmp"),
            port: free_port(),
            advertised: Some(advertised),
            external: None,
            child: None,
        };
        b.resume();
        b
    }

    /// The port the broker itself listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this broker can be stopped and started (not an external one).
    pub fn controllable(&self) -> bool {
        self.external.is_none()
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.external.clone().unwrap_or_else(|| format!("127.0.0.1:{}", self.port))
    }

    /// Starts (again) the broker process on the same port and storage.
    pub fn resume(&mut self) {
        if self.external.is_some() || self.child.is_some() {
            return;
        }
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised.unwrap_or(self.port));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("broker log");
        let child = Command::new(tansu())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &advertised, "--storage-engine"])
            // tansu reads the sqlite path relative to its working folder.
            .arg("sqlite://tansu.db")
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none() && Instant::now() < deadline, "tansu did not listen: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker process (the storage stays).
    pub fn pause(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The broker's own output.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// Creates a topic with `partitions` partitions (an external broker is
    /// expected to create topics on first use: `auto.create.topics.enable`).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        if self.external.is_some() {
            return;
        }
        let out = Command::new(tansu())
            .args(["topic", "create", name, "--broker", &format!("tcp://{}", self.bootstrap())])
            .args(["--partitions", &partitions.to_string()])
            .output()
            .expect("tansu topic create runs");
        assert!(
            out.status.success(),
            "topic {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Reads `topic` from the beginning until `want` records came, or until
    /// nothing new came for a few seconds after `timeout`.
    pub fn consume(&self, topic: &str, want: usize, timeout: Duration) -> Vec<Consumed> {
        self.consume_with(topic, want, timeout, &[("bootstrap.servers", &self.bootstrap())])
    }

    /// [`Broker::consume`] with these client properties (`bootstrap.servers`
    /// among them: a TLS terminator's address, say).
    pub fn consume_with(
        &self,
        topic: &str,
        want: usize,
        timeout: Duration,
        properties: &[(&str, &str)],
    ) -> Vec<Consumed> {
        let mut config = ClientConfig::new();
        config
            .set("group.id", format!("apinode-tests-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
            .set("enable.auto.commit", "false");
        for (k, v) in properties {
            config.set(*k, *v);
        }
        let consumer: BaseConsumer = config.create().expect("consumer");
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
        assert!(partitions > 0, "topic {topic} has no partitions");
        let mut list = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            list.add_partition_offset(topic, p, Offset::Beginning).expect("partition");
        }
        consumer.assign(&list).expect("assign");
        let mut out = Vec::new();
        let started = Instant::now();
        let deadline = started + timeout;
        while out.len() < want && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => out.push(Consumed {
                    partition: m.partition(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
                Some(Err(e)) => eprintln!("consumer: {e}"),
                None => {}
            }
        }
        eprintln!("consumed {} records of {topic} in {:.1} s", out.len(), started.elapsed().as_secs_f64());
        // A moment more to see whether anything unexpected follows.
        let extra = Instant::now() + Duration::from_millis(500);
        while Instant::now() < extra {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push(Consumed {
                    partition: m.partition(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    headers: Vec::new(),
                });
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.pause();
    }
}
