//! A real `mosquitto` broker on a loopback port, and `mosquitto_sub` as the
//! reading client, for the MQTT mirror's tests.
//!
//! The broker persists to its temp dir and subscribers use persistent
//! sessions (`-c`, QoS 1): messages published while a subscriber is
//! reconnecting after a broker restart are queued for it, so an outage test
//! can tell "the daemon never sent it" from "the test client missed it".

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{temp_dir, wait_for};

/// Generous: only reached when a test is failing.
pub const WAIT: Duration = Duration::from_secs(60);

/// A mosquitto process; killed and its directory removed on drop.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    /// Username and password every client must give, if set.
    auth: Option<(String, String)>,
}

impl Mosquitto {
    /// Starts a broker on a free loopback port, persisting into a temp dir.
    pub fn start() -> Mosquitto {
        Self::launch(None)
    }

    /// Like [`Mosquitto::start`], refusing anonymous clients: only `user`
    /// with `password` may connect.
    pub fn start_with_password(user: &str, password: &str) -> Mosquitto {
        Self::launch(Some((user.to_owned(), password.to_owned())))
    }

    fn launch(auth: Option<(String, String)>) -> Mosquitto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = temp_dir("mosquitto");
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence true\n\
             persistence_location {}/\nlog_dest file {}/log\nuser root\n",
            dir.display(),
            dir.display()
        );
        match &auth {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let file = dir.join("passwd");
                let made = Command::new("mosquitto_passwd")
                    .arg("-c")
                    .arg("-b")
                    .arg(&file)
                    .args([user, password])
                    .status()
                    .unwrap();
                assert!(made.success(), "mosquitto_passwd");
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let mut m = Mosquitto {
            child: None,
            port,
            dir,
            auth,
        };
        m.resume();
        m
    }

    /// `-p PORT` and credentials, for mosquitto_pub and mosquitto_sub.
    fn client_args(&self) -> Vec<String> {
        let mut a = vec!["-p".to_owned(), self.port.to_string()];
        if let Some((user, password)) = &self.auth {
            a.extend([
                "-u".to_owned(),
                user.clone(),
                "-P".to_owned(),
                password.clone(),
            ]);
        }
        a
    }

    /// Starts it again on the same port and persistence file.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn /usr/sbin/mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        wait_for(WAIT, || TcpStream::connect(&addr).ok()).expect("mosquitto did not listen");
    }

    /// SIGTERM and wait: the broker saves its sessions and retained messages.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the broker stops reading; its kernel still accepts bytes.
    pub fn pause(&mut self) {
        self.signal("-STOP");
    }

    /// SIGKILL (works on a paused broker too): whatever it had not read or
    /// saved is gone, as in a power cut. [`Mosquitto::resume`] starts it again.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("broker running")
            .id()
            .to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Bytes that reached the broker's end of its connections but that it has
    /// not read (from `/proc/net/tcp`): what a paused broker was sent.
    pub fn unread_bytes(&self) -> u64 {
        let port = format!(":{:04X}", self.port);
        let tables = ["/proc/net/tcp", "/proc/net/tcp6"]
            .map(|p| std::fs::read_to_string(p).unwrap_or_default());
        tables
            .iter()
            .flat_map(|t| t.lines().skip(1))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // local_address, st (01 = established), tx_queue:rx_queue
                let (local, state, queues) = (f.get(1)?, f.get(3)?, f.get(4)?);
                (local.ends_with(&port) && *state == "01")
                    .then(|| u64::from_str_radix(queues.split(':').nth(1)?, 16).ok())
                    .flatten()
            })
            .sum()
    }

    /// The daemon's environment for this broker.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OPENNVR_MQTT_HOST", "127.0.0.1".into()),
            ("OPENNVR_MQTT_PORT", self.port.to_string()),
        ]
    }

    /// Publishes one message with `mosquitto_pub` (QoS 1).
    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let mut c = Command::new("mosquitto_pub");
        c.args(self.client_args())
            .args(["-q", "1", "-t", topic, "-m", payload]);
        if retain {
            c.arg("-r");
        }
        assert!(c.status().unwrap().success(), "mosquitto_pub {topic}");
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One received message.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    /// Delivered from the broker's retained store (not live).
    pub retained: bool,
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Msg {
    /// The payload as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The payload as JSON (panics with the text if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.topic, self.text()))
    }
}

/// A `mosquitto_sub` with a persistent session, read line by line (payloads
/// hex-encoded, so JPEGs pass intact).
pub struct Sub {
    child: Child,
    rx: mpsc::Receiver<Msg>,
    /// Messages that arrived while waiting for the probe (retained ones), kept for the test.
    early: RefCell<VecDeque<Msg>>,
    /// The topic [`Sub::wait_ready`] sends itself.
    probe: String,
}

impl Sub {
    /// Subscribes to `filter` as client `id` and returns once the
    /// subscription is live (a probe message came back).
    pub fn start(broker: &Mosquitto, id: &str, filter: &str) -> Sub {
        let probe = format!("probe/{id}");
        let mut child = Command::new("mosquitto_sub")
            .args(broker.client_args())
            .args(["-q", "1", "-c", "-i", id])
            .args(["-t", filter, "-t", &probe, "-F", "%r %t %x"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto_sub (apt-get install mosquitto-clients)");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, ' ');
                let (Some(r), Some(topic)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let payload = decode_hex(parts.next().unwrap_or(""));
                let msg = Msg {
                    retained: r == "1",
                    topic: topic.to_owned(),
                    payload,
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let sub = Sub {
            child,
            rx,
            early: RefCell::new(VecDeque::new()),
            probe,
        };
        sub.wait_ready(broker);
        sub
    }

    /// Returns once the subscription is live (a probe sent to itself came
    /// back), e.g. after the client reconnected to a restarted broker.
    /// Messages that arrive meanwhile are kept, in order.
    pub fn wait_ready(&self, broker: &Mosquitto) {
        let mut early = VecDeque::new();
        let ready = wait_for(WAIT, || {
            broker.publish(&self.probe, "probe", false);
            self.next_matching(Duration::from_millis(500), |m| {
                let hit = m.topic == self.probe;
                if !hit {
                    early.push_back(m.clone());
                }
                hit
            })
        });
        assert!(ready.is_some(), "mosquitto_sub never subscribed");
        let rest = self.early.take();
        early.extend(rest);
        self.early.replace(early);
    }

    /// What arrived before the subscription was confirmed: the broker's
    /// retained messages for the filter (it sends them before any later
    /// publish), so an empty answer for a topic proves nothing is retained.
    pub fn retained_at_start(&self) -> Vec<Msg> {
        self.early
            .borrow()
            .iter()
            .filter(|m| m.retained)
            .cloned()
            .collect()
    }

    /// The next message on `topic` (others skipped) within [`WAIT`].
    pub fn next_on(&self, topic: &str) -> Msg {
        self.next_matching(WAIT, |m| m.topic == topic)
            .unwrap_or_else(|| panic!("nothing on {topic}"))
    }

    /// The next message satisfying `pred` within `limit`; others are skipped.
    pub fn next_matching(
        &self,
        limit: Duration,
        mut pred: impl FnMut(&Msg) -> bool,
    ) -> Option<Msg> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let early = self.early.borrow_mut().pop_front();
            let m = match early {
                Some(m) => m,
                None => {
                    let left = deadline.checked_duration_since(std::time::Instant::now())?;
                    self.rx.recv_timeout(left).ok()?
                }
            };
            if pred(&m) {
                return Some(m);
            }
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}
