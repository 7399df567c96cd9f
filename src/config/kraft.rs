//! A Kafka KRaft node's `server.properties`, taken as it is: operators'
//! configs carry over. Each line is one of four kinds:
//!
//! - a setting sluice applies (`num.partitions`, `log.segment.bytes`, ...):
//!   to [`BrokerSettings`], as before;
//! - a key that describes the process (`listeners`, `advertised.listeners`,
//!   `log.dirs`, `process.roles`, the quorum, `node.id`): it becomes the
//!   broker's address and data directory, checked against what one broker
//!   that is its own one-voter quorum can be;
//! - a key in Kafka's other units (`log.retention.hours`, `log.roll.hours`,
//!   ...): converted to the millisecond key unless that is set, with
//!   Kafka's precedence (ms, then minutes, then hours);
//! - a key that tunes Kafka's JVM broker and means nothing here (thread
//!   counts, socket buffers, transaction topics): accepted and named in one
//!   warning.
//!
//! Anything else is refused, so that a typo never leaves a default in place.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::PathBuf;

use super::{BrokerSettings, ConfigError, list_items};

/// Keys that describe the process rather than tune the broker.
const PROCESS_KEYS: &[&str] = &[
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "node.id",
    "broker.id",
];

/// Kafka keys with no meaning for sluice, and why.
const INAPPLICABLE_KEYS: &[(&str, &str)] = &[
    ("num.network.threads", "a shard per core serves its own connections"),
    ("num.io.threads", "a shard per core handles its own requests"),
    ("num.recovery.threads.per.data.dir", "each shard recovers its own partitions"),
    ("num.replica.fetchers", "replication comes with issue 24"),
    ("socket.send.buffer.bytes", "the kernel's defaults are used"),
    ("socket.receive.buffer.bytes", "the kernel's defaults are used"),
    ("delete.topic.enable", "topics can always be deleted, as in Kafka 4.0"),
    ("metadata.log.dir", "the metadata log lives in the data directory"),
    ("transaction.state.log.replication.factor", "transactions are a later issue"),
    ("transaction.state.log.min.isr", "transactions are a later issue"),
    ("transaction.state.log.num.partitions", "transactions are a later issue"),
    ("share.coordinator.state.topic.replication.factor", "share groups are not served"),
    ("share.coordinator.state.topic.min.isr", "share groups are not served"),
    ("log.cleaner.threads", "each shard compacts its own partitions"),
    ("log.cleaner.dedupe.buffer.size", "compaction keeps its key map per pass"),
];

/// Keys in Kafka's other units: (key, the millisecond key, ms per unit, rank:
/// a finer unit wins over a coarser one).
const TIME_UNIT_KEYS: &[(&str, &str, i64, u8)] = &[
    ("log.retention.hours", "log.retention.ms", 3_600_000, 0),
    ("log.retention.minutes", "log.retention.ms", 60_000, 1),
    ("log.roll.hours", "log.roll.ms", 3_600_000, 0),
];

/// What the process keys say about this broker's address and storage;
/// `None` where the file does not say (the command line's or the built-in
/// default then applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessOptions {
    /// The client listener's address, if it names one.
    pub host: Option<IpAddr>,
    /// The client listener's port (shard 0's; shard k listens on port + k).
    pub port: Option<u16>,
    /// The host the client listener is advertised as.
    pub advertised_host: Option<String>,
    /// The one log dir.
    pub data_dir: Option<PathBuf>,
    /// `node.id` (or `broker.id`), as the file gives it.
    pub node_id: Option<i32>,
    /// A quorum of several voters (`controller.quorum.voters`), when the
    /// file names one: this node is then one broker of a cluster.
    pub cluster: Option<ClusterProcess>,
}

/// This node's part in a cluster with a quorum of several voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterProcess {
    /// `node.id`: the broker's id and its voter id.
    pub node_id: i32,
    /// Every voter's id and controller address (`host:port`); empty for a
    /// broker given only `bootstrap`, which asks the quorum at start.
    pub voters: BTreeMap<u64, String>,
    /// `controller.quorum.bootstrap.servers`, for a broker that does not
    /// vote and is not given `controller.quorum.voters`.
    pub bootstrap: Vec<String>,
    /// Where this node's controller listener binds.
    pub controller: std::net::SocketAddr,
    /// For a broker that does not vote (`process.roles=broker`): the
    /// address voters replicate the log to. `None` for a voter.
    pub learner_addr: Option<String>,
    /// Whether it may vote (`process.roles` names `controller`): a node
    /// that is not among the voters joins as an observer until AddRaftVoter
    /// makes it one.
    pub can_vote: bool,
    /// False for a node that only votes (`process.roles=controller`): it
    /// has no shards and no client listener.
    pub serves_clients: bool,
}

/// Reads settings in Kafka's `server.properties` terms: feed every pair,
/// then [`Self::finish`].
#[derive(Debug, Default)]
pub struct KafkaProperties {
    process: BTreeMap<String, String>,
    units: Vec<(&'static str, i64, u8)>,
    /// Millisecond keys set directly: a unit key never overrides them.
    ms_set: Vec<String>,
    /// Inapplicable keys seen, with why.
    pub inapplicable: Vec<(String, &'static str)>,
}

impl KafkaProperties {
    /// Takes one `key=value` into `settings` or this reader.
    pub fn apply(&mut self, settings: &mut BrokerSettings, key: &str, value: &str) -> Result<(), ConfigError> {
        let (key, value) = (key.trim(), value.trim());
        if PROCESS_KEYS.contains(&key) {
            self.process.insert(key.to_string(), value.to_string());
            return Ok(());
        }
        if let Some((_, why)) = INAPPLICABLE_KEYS.iter().find(|(k, _)| *k == key) {
            self.inapplicable.push((key.to_string(), why));
            return Ok(());
        }
        if let Some(&(_, ms_key, per_unit, rank)) = TIME_UNIT_KEYS.iter().find(|(k, ..)| *k == key) {
            let n: i64 = value.parse().map_err(|_| ConfigError::InvalidValue {
                key: key.to_string(),
                value: value.to_string(),
                expected: "an integer",
            })?;
            self.units.push((ms_key, n.saturating_mul(per_unit), rank));
            return Ok(());
        }
        settings.set(key, value)?;
        self.ms_set.push(key.to_string());
        Ok(())
    }

    /// Applies the unit keys (where their millisecond key was not set) and
    /// resolves the process keys.
    pub fn finish(mut self, settings: &mut BrokerSettings) -> Result<ProcessOptions, ConfigError> {
        self.units.sort_by_key(|(_, _, rank)| *rank);
        for (ms_key, ms, _) in &self.units {
            if !self.ms_set.iter().any(|k| k == ms_key) {
                settings.set(ms_key, &ms.to_string())?;
            }
        }
        resolve(&self.process)
    }
}

fn bad(key: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue { key: key.to_string(), value: value.to_string(), expected }
}

/// Checks the process keys against one broker that is its own one-voter
/// quorum, and reads its address and log dir from them.
fn resolve(p: &BTreeMap<String, String>) -> Result<ProcessOptions, ConfigError> {
    let get = |k: &str| p.get(k).map(String::as_str);
    // Whether this node votes and whether it serves clients:
    // `broker,controller` (or no roles given) both; `broker` alone a broker
    // that follows the quorum; `controller` alone a voter without shards.
    let (voting, serves_clients) = match get("process.roles").map(list_items).as_deref() {
        None => (true, true),
        Some(["broker", "controller"] | ["controller", "broker"]) => (true, true),
        Some(["broker"]) => (false, true),
        Some(["controller"]) => (true, false),
        Some(_) => {
            return Err(bad(
                "process.roles",
                get("process.roles").unwrap_or(""),
                "broker,controller, broker or controller",
            ));
        }
    };
    let bootstrap = get("controller.quorum.bootstrap.servers").map(parse_servers).transpose()?.unwrap_or_default();
    let mut out = ProcessOptions::default();
    if let Some(id) = get("node.id").or(get("broker.id")) {
        out.node_id = Some(id.parse().map_err(|_| bad("node.id", id, "an integer"))?);
    }
    let voters = get("controller.quorum.voters").map(parse_voters).transpose()?.unwrap_or_default();
    if voters.len() > 1 {
        out.cluster = Some(cluster_process(p, out.node_id, voters, voting, serves_clients)?);
    } else if voters.is_empty() && !bootstrap.is_empty() && !(serves_clients && names_itself(p, &bootstrap)) {
        // A node that joins a quorum it finds through these servers: a
        // broker that does not vote, or a node that may vote once an
        // operator adds it (AddRaftVoter). A broker and controller whose
        // one bootstrap server is its own controller listener is Kafka's
        // single-node file: the embedded one-voter quorum.
        let mut c = cluster_process(p, out.node_id, voters, voting, serves_clients)?;
        c.bootstrap = bootstrap;
        out.cluster = Some(c);
    } else if !voting || !serves_clients {
        let roles = get("process.roles").unwrap_or("");
        return Err(bad("process.roles", roles, "a quorum of several voters (controller.quorum.voters) to be part of"));
    }
    if let Some(dirs) = get("log.dirs").or(get("log.dir")) {
        match list_items(dirs).as_slice() {
            [one] => out.data_dir = Some(PathBuf::from(one)),
            _ => return Err(bad("log.dirs", dirs, "one directory (sluice keeps one log dir)")),
        }
    }
    if let Some(listeners) = get("listeners").filter(|_| serves_clients) {
        let name = client_listener_name(p, listeners)?;
        let (host, port) =
            find_listener(listeners, &name).ok_or_else(|| bad("listeners", listeners, "NAME://host:port"))?;
        out.port = Some(port);
        out.host = Some(bind_address(&host)?);
        if let Some(adv) = get("advertised.listeners") {
            let (adv_host, adv_port) = find_listener(adv, &name)
                .ok_or_else(|| bad("advertised.listeners", adv, "the client listener's name"))?;
            if adv_port != port {
                return Err(bad("advertised.listeners", adv, "the listener's own port (shard k is port + k)"));
            }
            out.advertised_host = Some(adv_host).filter(|h| !h.is_empty());
        }
    }
    Ok(out)
}

/// `id@host:port,...`.
fn parse_voters(v: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let expected = "id@host:port,... with distinct ids";
    let mut voters = BTreeMap::new();
    for item in list_items(v) {
        let (id, addr) = item.split_once('@').ok_or_else(|| bad("controller.quorum.voters", v, expected))?;
        let id: u64 = id.trim().parse().map_err(|_| bad("controller.quorum.voters", v, expected))?;
        let port = addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
        if port.is_none() || voters.insert(id, addr.trim().to_string()).is_some() {
            return Err(bad("controller.quorum.voters", v, expected));
        }
    }
    Ok(voters)
}

/// Whether `bootstrap` names only this node's own controller listener (or
/// the node has none, so it cannot join anything): Kafka's single-node
/// file, `controller.quorum.bootstrap.servers=localhost:9093` beside
/// `CONTROLLER://:9093`.
fn names_itself(p: &BTreeMap<String, String>, bootstrap: &[String]) -> bool {
    let names = p.get("controller.listener.names").map(|v| list_items(v)).unwrap_or_default();
    let listeners = p.get("listeners").map_or("", String::as_str);
    let Some((host, port)) = names.iter().find_map(|n| find_listener(listeners, n)) else {
        return true;
    };
    let advertised = p.get("advertised.listeners").and_then(|a| names.iter().find_map(|n| find_listener(a, n)));
    let [server] = bootstrap else {
        return false;
    };
    let Some((h, server_port)) = server.rsplit_once(':') else {
        return false;
    };
    let h = h.trim_matches(['[', ']']);
    let local = ["localhost", "127.0.0.1", "::1", "0.0.0.0", ""].contains(&h)
        || h == host
        || advertised.as_ref().is_some_and(|(a, _)| a == h);
    server_port.parse() == Ok(port) && local
}

/// `host:port,...`.
fn parse_servers(v: &str) -> Result<Vec<String>, ConfigError> {
    let servers: Vec<String> = list_items(v).iter().map(|s| s.to_string()).collect();
    let valid = |s: &String| s.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if servers.is_empty() || !servers.iter().all(valid) {
        return Err(bad("controller.quorum.bootstrap.servers", v, "host:port,..."));
    }
    Ok(servers)
}

/// This node in a quorum of `voters` (none: it asks bootstrap servers):
/// one of them, or a node that joins (a broker that does not vote, or a
/// controller until AddRaftVoter makes it a voter). `listeners` must name
/// its controller listener.
fn cluster_process(
    p: &BTreeMap<String, String>,
    node_id: Option<i32>,
    voters: BTreeMap<u64, String>,
    voting: bool,
    serves_clients: bool,
) -> Result<ClusterProcess, ConfigError> {
    let text = p.get("node.id").map_or("", String::as_str);
    let node_id = node_id.filter(|id| *id >= 0).ok_or_else(|| bad("node.id", text, "a node id"))?;
    // Given only bootstrap servers (no voters), a broker that does not
    // vote cannot tell here whether its id is a voter's: that is checked
    // against the voters it is told at start.
    let is_voter = voters.contains_key(&(node_id as u64));
    if is_voter && !voting {
        return Err(bad("node.id", text, "an id that is not a voter's (process.roles=broker does not vote)"));
    }
    // Voters push the log to every node: a broker that does not vote
    // listens for it too, on its controller listener.
    let names = p.get("controller.listener.names").map(|v| list_items(v)).unwrap_or_default();
    let listeners = p.get("listeners").map_or("", String::as_str);
    let (host, port) = names.iter().find_map(|n| find_listener(listeners, n)).ok_or_else(|| {
        bad("listeners", listeners, "a listener named in controller.listener.names (CONTROLLER://host:port)")
    })?;
    let controller = std::net::SocketAddr::new(bind_address(&host)?, port);
    let learner_addr = (!is_voter).then(|| {
        let adv = p.get("advertised.listeners").and_then(|a| names.iter().find_map(|n| find_listener(a, n)));
        match adv {
            Some((h, port)) if !h.is_empty() => format!("{h}:{port}"),
            _ if host.is_empty() || controller.ip().is_unspecified() => format!("127.0.0.1:{port}"),
            _ => format!("{host}:{port}"),
        }
    });
    Ok(ClusterProcess {
        node_id,
        voters,
        bootstrap: Vec::new(),
        controller,
        learner_addr,
        serves_clients,
        can_vote: voting,
    })
}

/// The listener clients use: `inter.broker.listener.name`, else PLAINTEXT,
/// else the first that is not a controller listener; it must speak
/// PLAINTEXT (TLS and SASL come with security, a later issue).
fn client_listener_name(p: &BTreeMap<String, String>, listeners: &str) -> Result<String, ConfigError> {
    let controllers: Vec<&str> = p.get("controller.listener.names").map(|v| list_items(v)).unwrap_or_default();
    let names: Vec<&str> = list_items(listeners).iter().filter_map(|l| l.split_once("://").map(|(n, _)| n)).collect();
    let name = match p.get("inter.broker.listener.name") {
        Some(n) => n.clone(),
        None if names.contains(&"PLAINTEXT") => "PLAINTEXT".to_string(),
        None => names
            .iter()
            .find(|n| !controllers.contains(n))
            .map(|n| n.to_string())
            .ok_or_else(|| bad("listeners", listeners, "a client listener"))?,
    };
    let protocol = p
        .get("listener.security.protocol.map")
        .and_then(|m| {
            list_items(m).iter().find_map(|e| e.split_once(':').filter(|(n, _)| *n == name).map(|(_, s)| s.to_string()))
        })
        .unwrap_or_else(|| name.clone());
    if protocol != "PLAINTEXT" {
        return Err(bad("listeners", listeners, "a PLAINTEXT client listener (TLS and SASL are a later issue)"));
    }
    Ok(name)
}

/// `host` and `port` of the listener named `name` in a `NAME://host:port`
/// list.
fn find_listener(list: &str, name: &str) -> Option<(String, u16)> {
    list_items(list).iter().find_map(|l| {
        let (n, addr) = l.split_once("://")?;
        if n != name {
            return None;
        }
        let (host, port) = addr.rsplit_once(':')?;
        Some((host.trim_matches(['[', ']']).to_string(), port.parse().ok()?))
    })
}

/// The address to bind for a listener's host: all interfaces when empty,
/// else the address it names or resolves to.
fn bind_address(host: &str) -> Result<IpAddr, ConfigError> {
    if host.is_empty() || host == "0.0.0.0" {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(|s| s.is_ipv4()).or_else(|| (host, 0).to_socket_addrs().ok()?.next()))
        .map(|s| s.ip())
        .ok_or_else(|| bad("listeners", host, "a host name that resolves"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings lines of Kafka 4.0's config/server.properties.
    const KAFKA_40: &str = "process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000";

    fn read(text: &str) -> Result<(BrokerSettings, ProcessOptions, usize), ConfigError> {
        let mut settings = BrokerSettings::default();
        let mut props = KafkaProperties::default();
        for line in text.lines() {
            let (k, v) = line.split_once('=').unwrap();
            props.apply(&mut settings, k, v)?;
        }
        let inapplicable = props.inapplicable.len();
        let process = props.finish(&mut settings)?;
        Ok((settings, process, inapplicable))
    }

    #[test]
    fn kafkas_own_file_is_read_whole() {
        let (settings, p, inapplicable) = read(KAFKA_40).unwrap();
        assert_eq!(p.port, Some(9092));
        assert_eq!(p.host, Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        assert_eq!(p.advertised_host.as_deref(), Some("localhost"));
        assert_eq!(p.data_dir, Some(PathBuf::from("/tmp/kraft-combined-logs")));
        assert_eq!(p.node_id, Some(1));
        assert_eq!(inapplicable, 9);
        assert_eq!(settings.topic(&Default::default()).retention_ms, 168 * 3_600_000);
        assert_eq!(settings.typed().offsets_topic_replication_factor, 1);
        assert_eq!(p.cluster, None, "its one bootstrap server is its own listener: the embedded single broker");
    }

    #[test]
    fn units_follow_kafkas_precedence() {
        let (s, ..) = read("log.retention.hours=1\nlog.retention.minutes=2").unwrap();
        assert_eq!(s.topic(&Default::default()).retention_ms, 120_000, "minutes win over hours");
        let (s, ..) = read("log.retention.ms=5\nlog.retention.minutes=2").unwrap();
        assert_eq!(s.topic(&Default::default()).retention_ms, 5, "ms wins");
    }

    #[test]
    fn what_one_broker_cannot_be_is_refused_clearly() {
        for (text, key) in [
            ("process.roles=broker", "process.roles"),
            ("process.roles=controller", "process.roles"),
            ("process.roles=broker,observer", "process.roles"),
            ("process.roles=broker\nnode.id=2\ncontroller.quorum.voters=1@a:9093,2@b:9093,3@c:9093", "node.id"),
            ("node.id=1\ncontroller.quorum.voters=1@a:9093,2@b:9093", "listeners"),
            ("controller.quorum.voters=1@a,2@b:9093", "controller.quorum.voters"),
            ("process.roles=broker\ncontroller.quorum.bootstrap.servers=a", "controller.quorum.bootstrap.servers"),
            ("log.dirs=/a,/b", "log.dirs"),
            ("listeners=SSL://:9093", "listeners"),
            ("listeners=PLAINTEXT://:9092\nadvertised.listeners=PLAINTEXT://h:19092", "advertised.listeners"),
            ("no.such.key=1", "no.such.key"),
        ] {
            let err = read(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        let (_, p, _) = read("listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://:9093").unwrap();
        assert_eq!((p.host, p.port), (Some("127.0.0.1".parse().unwrap()), Some(19092)));
        assert_eq!(p.cluster, None, "no voters named: the embedded one-voter quorum");
    }

    #[test]
    fn a_quorum_of_three_makes_this_node_one_of_a_cluster() {
        let (_, p, _) = read(
            "node.id=2\ncontroller.quorum.voters=1@h1:9093,2@h2:9093,3@h3:9093\n\
             listeners=PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093\ncontroller.listener.names=CONTROLLER",
        )
        .unwrap();
        let c = p.cluster.expect("a cluster");
        assert_eq!(c.node_id, 2);
        assert_eq!(c.voters.len(), 3);
        assert_eq!(c.voters[&3], "h3:9093");
        assert_eq!(c.controller, "127.0.0.1:9093".parse::<std::net::SocketAddr>().unwrap());
        assert_eq!(c.learner_addr, None, "a voter");
        assert!(c.serves_clients);
        // A fourth broker that does not vote: it is sent the log at its
        // controller listener's advertised address.
        let (_, p, _) = read(
            "process.roles=broker\nnode.id=4\ncontroller.quorum.voters=1@h1:9093,2@h2:9093,3@h3:9093\n\
             listeners=PLAINTEXT://:9092,CONTROLLER://:9094\ncontroller.listener.names=CONTROLLER\n\
             advertised.listeners=PLAINTEXT://h4:9092,CONTROLLER://h4:9094",
        )
        .unwrap();
        assert_eq!(p.cluster.unwrap().learner_addr.as_deref(), Some("h4:9094"));
        // A voter without shards: no client listener needed.
        let (_, p, _) = read(
            "process.roles=controller\nnode.id=3\ncontroller.quorum.voters=1@h1:9093,2@h2:9093,3@h3:9093\n\
             listeners=CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER",
        )
        .unwrap();
        let c = p.cluster.expect("a cluster");
        assert!(!c.serves_clients && c.learner_addr.is_none());
        assert_eq!(p.port, None);
        // A broker given only bootstrap servers asks them for the voters.
        let (_, p, _) = read(
            "process.roles=broker\nnode.id=7\ncontroller.quorum.bootstrap.servers=h1:9093, h2:9093\n\
             listeners=PLAINTEXT://:9092,CONTROLLER://:9094\ncontroller.listener.names=CONTROLLER",
        )
        .unwrap();
        let c = p.cluster.expect("a cluster");
        assert_eq!(c.bootstrap, ["h1:9093", "h2:9093"]);
        assert!(c.voters.is_empty() && c.learner_addr.as_deref() == Some("127.0.0.1:9094"));
        // A controller that is not among the voters joins as an observer,
        // until AddRaftVoter makes it a voter; so does one given only
        // several bootstrap servers.
        for quorum in [
            "controller.quorum.voters=1@h1:9093,2@h2:9093,3@h3:9093",
            "controller.quorum.bootstrap.servers=h1:9093,h2:9093",
            "controller.quorum.bootstrap.servers=h1:9093",
        ] {
            let text = format!(
                "process.roles=controller\nnode.id=4\n{quorum}\n\
                 listeners=CONTROLLER://:9094\ncontroller.listener.names=CONTROLLER"
            );
            let c = read(&text).unwrap().1.cluster.expect("a cluster");
            assert!(c.can_vote && c.learner_addr.as_deref() == Some("127.0.0.1:9094"), "{quorum}");
        }
        // A broker and controller with one bootstrap server elsewhere joins;
        // with its own listener it is Kafka's single-node file (above).
        let (_, p, _) = read(
            "process.roles=broker,controller\nnode.id=5\ncontroller.quorum.bootstrap.servers=h1:9093\n\
             listeners=PLAINTEXT://:9092,CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER",
        )
        .unwrap();
        assert!(p.cluster.is_some_and(|c| c.can_vote && c.learner_addr.is_some()));
        // A broker that does not vote cannot have a voter's id.
        let text = "process.roles=broker\nnode.id=2\ncontroller.quorum.voters=1@h1:9093,2@h2:9093,3@h3:9093\n\
                    listeners=PLAINTEXT://:9092,CONTROLLER://:9094\ncontroller.listener.names=CONTROLLER";
        assert!(read(text).unwrap_err().to_string().contains("node.id"));
    }
}
